"""Tests for lrjax.schedules._compose (join, scale, clip, repeat, warmup, SWA hand-over,
family switch) against float64 references (tests/schedules_reference.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import schedules_reference as R
from schedules_testing import (
    INF,
    NAN,
    Case,
    ScheduleContract,
    assert_matches,
    check_continuous,
    check_monotone_warmup,
    check_peak_reached_at_boundary,
    check_raises,
    f32,
    lrs,
    warmed,
)

from lrjax import schedules as S

CASES = [
    # 11. warmup combinator
    Case(
        "warmup/linear-into-cosine",
        lambda p: S.warmup(S.cosine_decay(1.0, 100), p["warmup_steps"], p["init_value"], p["mode"]),
        lambda t, p: warmed(t, p, lambda s: R.cosine_to_floor(s, 1.0, 100, 0.0)),
        dict(warmup_steps=10, init_value=0.0, mode="linear"),
        horizon=130,
        edges=(0, 9, 10, 11, 109, 110, 111),
        constant_tail=True,
    ),
    Case(
        "warmup/exponential-into-step",
        lambda p: S.warmup(
            S.step_decay(0.4, 20, 0.5), p["warmup_steps"], p["init_value"], p["mode"]
        ),
        lambda t, p: warmed(t, p, lambda s: R.torch_step_lr(s, f32(0.4), 20, 0.5)),
        dict(warmup_steps=8, init_value=0.004, mode="exponential"),
        horizon=80,
        edges=(0, 7, 8, 9, 27, 28, 29),
    ),
    Case(
        "warmup/cosine-into-linear",
        lambda p: S.warmup(S.linear(2.0, 0.2, 50), p["warmup_steps"], p["init_value"], p["mode"]),
        lambda t, p: warmed(t, p, lambda s: R.optax_linear(s, 2.0, f32(0.2), 50)),
        dict(warmup_steps=16, init_value=0.2, mode="cosine"),
        horizon=80,
        edges=(0, 15, 16, 17, 65, 66, 67),
        constant_tail=True,
    ),
    Case(
        "warmup/1-sqrt-into-cosine",
        lambda p: S.warmup(
            S.cosine_decay(0.8, 40, 0.1), p["warmup_steps"], p["init_value"], p["mode"]
        ),
        lambda t, p: warmed(t, p, lambda s: R.cosine_to_floor(s, f32(0.8), 40, f32(0.1))),
        dict(warmup_steps=12, init_value=0.05, mode="1-sqrt"),
        horizon=70,
        edges=(0, 1, 11, 12, 13, 51, 52, 53),
        constant_tail=True,
    ),
    Case(
        "warmup/zero-steps",
        lambda p: S.warmup(S.constant(0.3), p["warmup_steps"], p["init_value"], p["mode"]),
        lambda t, p: warmed(t, p, lambda s: R.constant(s, f32(0.3))),
        dict(warmup_steps=0, init_value=0.0, mode="linear"),
        horizon=5,
        edges=(0, 1),
        constant_tail=True,
    ),
    # SWA: PyTorch SWALR taking over from a schedule
    Case(
        "swa_schedule/torch-SWALR-cos",
        lambda p: S.swa_schedule(S.cosine_decay(1.0, 100), p["swa_start"], p["swa_lr"]),
        lambda t, p: R.torch_swalr(
            t, lambda s: R.cosine_to_floor(s, 1.0, 100, 0.0), p["swa_start"], p["swa_lr"]
        ),
        dict(swa_start=60, swa_lr=0.05),
        horizon=90,
        edges=(0, 59, 60, 61, 69, 70, 71),
        constant_tail=True,
    ),
    Case(
        "swa_schedule/torch-SWALR-linear",
        lambda p: S.swa_schedule(
            S.step_decay(0.5, 10, 0.5), p["swa_start"], p["swa_lr"], p["anneal_steps"], "linear"
        ),
        lambda t, p: R.torch_swalr(
            t,
            lambda s: R.torch_step_lr(s, 0.5, 10, 0.5),
            p["swa_start"],
            p["swa_lr"],
            p["anneal_steps"],
            "linear",
        ),
        dict(swa_start=25, swa_lr=0.2, anneal_steps=7),
        horizon=50,
        edges=(0, 24, 25, 26, 31, 32, 33),
        constant_tail=True,
    ),
    Case(
        "swa_schedule/torch-SWALR-no-anneal",
        lambda p: S.swa_schedule(S.linear(1.0, 0.0, 40), p["swa_start"], p["swa_lr"], 0),
        lambda t, p: R.torch_swalr(
            t, lambda s: R.optax_linear(s, 1.0, 0.0, 40), p["swa_start"], p["swa_lr"], 0
        ),
        dict(swa_start=20, swa_lr=0.1),
        horizon=30,
        edges=(0, 19, 20, 21),
        constant_tail=True,
    ),
    Case(
        "swa_schedule/torch-SWALR-from-start",
        lambda p: S.swa_schedule(S.constant(0.3), p["swa_start"], p["swa_lr"], 5),
        lambda t, p: R.torch_swalr(t, lambda s: R.constant(s, f32(0.3)), 0, p["swa_lr"], 5),
        dict(swa_start=0, swa_lr=0.01),
        horizon=10,
        edges=(0, 1, 4, 5, 6),
        constant_tail=True,
    ),
    # 16. composition
    Case(
        "join/optax",
        lambda p: S.join(
            [S.linear(0.0, 1.0, 10), S.cosine_decay(1.0, 50), S.constant(0.05)], p["boundaries"]
        ),
        lambda t, p: R.optax_join(
            t,
            [
                lambda s: R.optax_linear(s, 0.0, 1.0, 10),
                lambda s: R.cosine_to_floor(s, 1.0, 50, 0.0),
                lambda s: R.constant(s, f32(0.05)),
            ],
            p["boundaries"],
        ),
        dict(boundaries=(10, 60)),
        horizon=80,
        edges=(0, 9, 10, 11, 59, 60, 61),
        constant_tail=True,
    ),
    Case(
        "scale",
        lambda p: S.scale(S.cosine_decay(1.0, 40), p["factor"]),
        lambda t, p: R.scale(t, lambda s: R.cosine_to_floor(s, 1.0, 40, 0.0), p["factor"]),
        dict(factor=0.5),
        horizon=50,
        edges=(0, 39, 40, 41),
        constant_tail=True,
    ),
    Case(
        "clip",
        lambda p: S.clip(S.cyclic(0.0, 1.0, 10), p["min_value"], p["max_value"]),
        lambda t, p: R.clip(
            t, lambda s: R.torch_cyclic(s, 0.0, 1.0, 10), p["min_value"], p["max_value"]
        ),
        dict(min_value=0.2, max_value=0.8),
        horizon=40,
        edges=(0, 1, 2, 8, 9, 10, 11, 12, 18, 19, 20),
    ),
    Case(
        "clip/min-only",
        lambda p: S.clip(S.exponential_decay(1.0, 0.5, 5), min_value=p["min_value"]),
        lambda t, p: R.clip(t, lambda s: R.keras_optax_exponential(s, 1.0, 0.5, 5), p["min_value"]),
        dict(min_value=0.01),
        horizon=60,
        edges=(0, 33, 34, 35),
        constant_tail=True,
    ),
    Case(
        "repeat",
        lambda p: S.repeat(S.warmup_linear_decay(1.0, 5, 25), p["period"]),
        lambda t, p: R.repeat(t, lambda s: R.hf_warmup_linear_decay(s, 1.0, 5, 25), p["period"]),
        dict(period=25),
        horizon=80,
        edges=(0, 4, 5, 24, 25, 26, 49, 50),
    ),
]

_inner = S.cosine_decay(1.0, 30)
HYPER = [
    (S.warmup, dict(schedule=_inner, warmup_steps=5), "init_value", [0.0, 0.5]),
    (
        S.warmup,
        dict(schedule=_inner, warmup_steps=5, mode="exponential"),
        "init_value",
        [0.01, 0.5],
    ),
    (S.swa_schedule, dict(schedule=_inner, swa_start=10, anneal_steps=5), "swa_lr", [0.05, 0.5]),
    (S.scale, dict(schedule=_inner), "factor", [1.0, 0.5, 2.0]),
    (S.clip, dict(schedule=_inner, max_value=0.8), "min_value", [0.1, 0.3]),
    (S.clip, dict(schedule=_inner, min_value=0.1), "max_value", [0.8, 0.5]),
]


class TestContract(ScheduleContract):
    CASES = tuple(CASES)
    HYPER = tuple(HYPER)


# ------------------------------------------------------------------------------------------------
# Shape properties.
# ------------------------------------------------------------------------------------------------

WARMUPS = {
    "warmup-linear": (lambda: S.warmup(S.cosine_decay(1.0, 50), 10), 10, 1.0),
    "warmup-exponential": (lambda: S.warmup(S.constant(0.5), 12, 1e-4, "exponential"), 12, 0.5),
    "warmup-cosine": (lambda: S.warmup(S.linear(0.3, 0.0, 20), 9, 0.03, "cosine"), 9, 0.3),
}


@pytest.mark.parametrize("name", list(WARMUPS))
def test_monotone_warmup(name):
    check_monotone_warmup(*WARMUPS[name])


@pytest.mark.parametrize("name", list(WARMUPS))
def test_peak_reached_at_boundary(name):
    check_peak_reached_at_boundary(*WARMUPS[name])


JOINS = {
    "warmup-into-cosine": (lambda: S.warmup(S.cosine_decay(1.0, 50), 10), [10]),
    "warmup-cosine-into-linear": (lambda: S.warmup(S.linear(1.0, 0.0, 30), 8, 0.0, "cosine"), [8]),
    "join-linear-cosine": (
        lambda: S.join([S.linear(0.0, 1.0, 10), S.cosine_decay(1.0, 50)], [10]),
        [10],
    ),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_continuity_across_joins(name):
    check_continuous(*JOINS[name])


# ------------------------------------------------------------------------------------------------
# Bad input: each documented error names the argument and its allowed range.
# ------------------------------------------------------------------------------------------------

ERRORS = {
    "warmup-warmup_steps-negative": (lambda: S.warmup(S.constant(1.0), -1), r"warmup_steps.*>= 0"),
    "warmup-unknown-mode": (
        lambda: S.warmup(S.constant(1.0), 5, mode="quadratic"),
        r"mode.*linear.*exponential.*cosine",
    ),
    "warmup-exponential-init-0": (
        lambda: S.warmup(S.constant(1.0), 5, 0.0, "exponential"),
        r"init_value.*> 0",
    ),
    "join-unsorted": (lambda: S.join([S.constant(1.0)] * 3, [20, 10]), r"boundaries.*increasing"),
    "join-boundary-0": (lambda: S.join([S.constant(1.0)] * 2, [0]), r"boundaries.*>= 1"),
    "join-too-few-boundaries": (
        lambda: S.join([S.constant(1.0)] * 3, [10]),
        r"boundaries.*len\(schedules\) - 1",
    ),
    "join-too-many-boundaries": (
        lambda: S.join([S.constant(1.0)] * 2, [10, 20]),
        r"boundaries.*len\(schedules\) - 1",
    ),
    "join-no-schedules": (lambda: S.join([], []), r"schedules.*at least one"),
    "clip-no-bounds": (lambda: S.clip(S.constant(1.0)), r"min_value.*max_value"),
    "repeat-period-0": (lambda: S.repeat(S.constant(1.0), 0), r"period.*>= 1"),
    "swa-swa_start-negative": (
        lambda: S.swa_schedule(S.constant(1.0), -1, 0.1),
        r"swa_start.*>= 0",
    ),
    "swa-anneal_steps-negative": (
        lambda: S.swa_schedule(S.constant(1.0), 10, 0.1, -2),
        r"anneal_steps.*>= 0",
    ),
    "swa-unknown-anneal": (
        lambda: S.swa_schedule(S.constant(1.0), 10, 0.1, anneal="cosine"),
        r"anneal.*cos.*linear",
    ),
    "clip-min-above-max": (
        lambda: S.clip(S.cosine_decay(1.0, 10), min_value=0.5, max_value=0.1),
        r"min_value must be <= max_value, got min_value=0.5, max_value=0.1",
    ),
    "warmup-init-negative": (
        lambda: S.warmup(S.constant(1.0), 5, init_value=-0.1),
        r"init_value must be a finite number >= 0",
    ),
    "scale-factor-negative": (
        lambda: S.scale(S.constant(1.0), -2.0),
        r"factor must be a finite number >= 0",
    ),
    "clip-min-inf": (
        lambda: S.clip(S.constant(1.0), min_value=INF),
        r"min_value must be a finite number >= 0, got inf",
    ),
    "swa_schedule-swa_lr-nan": (
        lambda: S.swa_schedule(S.constant(1.0), 10, NAN),
        r"swa_lr must be a finite number >= 0, got nan",
    ),
    "schedule_family_switch-no-schedules": (
        lambda: S.schedule_family_switch(0, []),
        r"schedules must hold at least one schedule",
    ),
    "schedule_family_switch-index-out-of-range": (
        lambda: S.schedule_family_switch(2, [S.constant(1.0), S.constant(0.5)]),
        r"schedule family index must be in \[0, 2\), got 2",
    ),
    "schedule_family_switch-index-float": (
        lambda: S.schedule_family_switch(0.0, [S.constant(1.0)]),
        r"index must be an integer scalar",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_naming_argument_and_range(name):
    check_raises(*ERRORS[name])


# ------------------------------------------------------------------------------------------------
# Peer checks and restart values.
# ------------------------------------------------------------------------------------------------


def test_repeat_restarts_at_each_period():
    inner = S.warmup_cosine_decay(1.0, 3, 20)
    schedule = S.repeat(inner, 20)
    for k in range(5):
        assert_matches(lrs(schedule, np.arange(20) + 20 * k), lrs(inner, np.arange(20)))


def test_join_equals_optax_join_schedules_when_valid():
    pieces = [S.linear(0.1, 1.0, 5), S.cosine_decay(1.0, 20, 0.1), S.constant(0.1)]
    steps = np.arange(0, 40)
    assert_matches(
        lrs(S.join(pieces, [5, 25]), steps), lrs(optax.join_schedules(pieces, [5, 25]), steps)
    )


def test_scale_clip_repeat_compose():
    inner = S.cyclic(0.0, 1.0, 5)
    steps = np.arange(0, 30)
    want = np.clip(0.5 * R.torch_cyclic(steps % 7, 0.0, 1.0, 5), 0.1, 0.4)
    got = lrs(S.clip(S.scale(S.repeat(inner, 7), 0.5), 0.1, 0.4), steps)
    assert_matches(got, want)


def test_schedule_family_switch_selects_each_family_per_member():
    families = [S.cosine_decay(1.0, 20), S.step_decay(0.5, 5, 0.5), S.one_cycle(20, 1.0)]
    steps = jnp.arange(25)

    def member(index):
        return jax.vmap(S.schedule_family_switch(index, families))(steps)

    got = jax.jit(jax.vmap(member))(jnp.arange(3))
    for i, family in enumerate(families):
        np.testing.assert_array_equal(got[i], lrs(family, np.arange(25)))
