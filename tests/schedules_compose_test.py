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
    # multiply: PyTorch ChainedScheduler (its compound-scheduler tests)
    Case(
        "multiply/torch-exp-and-step",
        lambda p: S.multiply(
            S.exponential_decay(p["lr"], p["gamma"], 1), S.step_decay(1.0, 3, p["step_gamma"])
        ),
        lambda t, p: (
            R.torch_exponential_lr(t, p["lr"], p["gamma"])
            * R.torch_step_lr_closed(t, 1.0, 3, p["step_gamma"])
        ),
        dict(lr=0.05, gamma=0.9, step_gamma=0.1),
        horizon=30,
        edges=(0, 2, 3, 4, 1000),
    ),
    Case(
        "multiply/torch-cosine-and-step",
        lambda p: S.multiply(S.cosine_decay(p["lr"], 10, p["eta_min"]), S.step_decay(1.0, 3, 0.1)),
        lambda t, p: (
            R.cosine_to_floor(t, p["lr"], 10, p["eta_min"]) * R.torch_step_lr_closed(t, 1.0, 3, 0.1)
        ),
        dict(lr=0.05, eta_min=1e-10),
        horizon=12,
        edges=(0, 2, 3, 9, 10),
    ),
    Case(
        "multiply/torch-linear-warmup-and-multistep",
        lambda p: S.multiply(
            S.linear(p["lr"] * 0.2, p["lr"], 4), S.multistep_decay(1.0, [2, 5, 9], 0.1)
        ),
        lambda t, p: (
            R.torch_linear_lr(t, p["lr"], 0.2, 1.0, 4)
            * R.torch_multistep_lr_closed(t, 1.0, [2, 5, 9], 0.1)
        ),
        dict(lr=0.05),
        horizon=15,
        edges=(0, 1, 2, 3, 4, 5, 9),
        constant_tail=True,
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
    (S.lr_noise, dict(schedule=_inner, noise_range_t=3, noise_std=0.5), "noise_pct", [0.1, 0.5]),
    (S.lr_noise, dict(schedule=_inner, noise_range_t=(2, 30)), "noise_std", [1.0, 0.1]),
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
    # Not a schedule, or not a list: accepted, then failing when called (issue 19, item 6).
    "warmup-not-a-schedule": (
        lambda: S.warmup("not a schedule", 10),
        r"schedule must be a schedule, a callable step -> learning rate.*'not a schedule'",
    ),
    "scale-not-a-schedule": (lambda: S.scale(0.1, 2.0), r"schedule must be a schedule"),
    "clip-not-a-schedule": (lambda: S.clip(None, 0.1), r"schedule must be a schedule"),
    "repeat-not-a-schedule": (lambda: S.repeat([1.0], 10), r"schedule must be a schedule"),
    "swa_schedule-not-a-schedule": (
        lambda: S.swa_schedule("cosine", 10, 0.1),
        r"schedule must be a schedule",
    ),
    "join-piece-not-a-schedule": (
        lambda: S.join([S.constant(1.0), 0.5], [10]),
        r"schedules\[1\] must be a schedule",
    ),
    "join-schedules-not-a-list": (
        lambda: S.join(S.constant(1.0), []),
        r"schedules must be a list of schedules",
    ),
    "join-boundaries-not-a-list": (
        lambda: S.join([S.constant(1.0)] * 2, 10),
        r"boundaries must be a list of increasing integer steps",
    ),
    "multiply-none": (lambda: S.multiply(), r"multiply needs at least one schedule"),
    "multiply-not-a-schedule": (
        lambda: S.multiply(S.constant(1.0), "step"),
        r"schedules\[1\] must be a schedule",
    ),
    "schedule_family_switch-not-a-schedule": (
        lambda: S.schedule_family_switch(0, [0.1, 0.2]),
        r"schedules\[0\] must be a schedule",
    ),
    "lr_noise-not-a-schedule": (lambda: S.lr_noise(0.1), r"schedule must be a schedule"),
    "lr_noise-range-negative": (
        lambda: S.lr_noise(S.constant(1.0), -1),
        r"noise_range_t must be an integer >= 0",
    ),
    "lr_noise-range-empty": (
        lambda: S.lr_noise(S.constant(1.0), (5, 5)),
        r"noise_range_t\[1\] must be an integer >= 6",
    ),
    "lr_noise-range-triple": (
        lambda: S.lr_noise(S.constant(1.0), (1, 2, 3)),
        r"noise_range_t must be a step or a pair \(start, stop\)",
    ),
    "lr_noise-noise_pct-0": (
        lambda: S.lr_noise(S.constant(1.0), noise_pct=0.0),
        r"noise_pct must be a finite number > 0",
    ),
    "lr_noise-seed-negative": (
        lambda: S.lr_noise(S.constant(1.0), seed=-1),
        r"seed must be an integer in \[0, 4294967295\]",
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


# ------------------------------------------------------------------------------------------------
# multiply: PyTorch's ChainedScheduler, against PyTorch itself.
# ------------------------------------------------------------------------------------------------


def _torch_chained(make, steps: int, lr: float = 0.05) -> np.ndarray:
    """The LR of each step of PyTorch's ChainedScheduler (after t calls of step())."""
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.ChainedScheduler(make(torch.optim.lr_scheduler, optimizer))
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.asarray(out)


# PyTorch's compound tests (test/optim/test_lrscheduler.py): torch schedulers -> lrjax factors.
CHAINED = {
    "step-and-multistep": (
        lambda L, o: [L.StepLR(o, 3, 0.1), L.MultiStepLR(o, [2, 5, 9], 0.1)],
        lambda: S.multiply(S.step_decay(0.05, 3, 0.1), S.multistep_decay(1.0, [2, 5, 9], 0.1)),
    ),
    "step-and-exp": (
        lambda L, o: [L.StepLR(o, 3, 0.1), L.ExponentialLR(o, 0.9)],
        lambda: S.multiply(S.step_decay(0.05, 3, 0.1), S.exponential_decay(1.0, 0.9, 1)),
    ),
    "exp-and-multistep": (
        lambda L, o: [L.MultiStepLR(o, [2, 5, 9], 0.1), L.ExponentialLR(o, 0.9)],
        lambda: S.multiply(S.multistep_decay(0.05, [2, 5, 9], 0.1), S.exponential_decay(1, 0.9, 1)),
    ),
    "exp-and-linear-warmup": (
        lambda L, o: [L.ExponentialLR(o, 0.9), L.LinearLR(o, 0.2, 1.0, 4)],
        lambda: S.multiply(S.exponential_decay(0.05, 0.9, 1), S.linear(0.2, 1.0, 4)),
    ),
    "step-and-constant": (
        lambda L, o: [L.StepLR(o, 3, 0.1), L.ConstantLR(o, 0.4, 4)],
        lambda: S.multiply(S.step_decay(0.05, 3, 0.1), S.piecewise_constant([3], [0.4, 1.0])),
    ),
    "linear-warmup-and-multistep": (
        lambda L, o: [L.LinearLR(o, 0.2, 1.0, 4), L.MultiStepLR(o, [2, 5, 9], 0.1)],
        lambda: S.multiply(S.linear(0.01, 0.05, 4), S.multistep_decay(1.0, [2, 5, 9], 0.1)),
    ),
}


@pytest.mark.parametrize("name", list(CHAINED))
def test_multiply_matches_pytorch_chained_scheduler(name):
    chained, ours = CHAINED[name]
    want = _torch_chained(chained, 20)
    assert_matches(lrs(ours(), np.arange(20)), want)


def test_multiply_of_cosine_matches_pytorch_compound_test_targets():
    # test_compound_cosanneal_and_{step,exp,multistep}_lr take the product of the closed forms
    # as the target (PyTorch's chained recursion of the cosine drifts from it by ~1e-5).
    steps = np.arange(10)
    cosine = R.cosine_to_floor(steps, 0.05, 10, 1e-10)
    pairs = [
        (S.step_decay(1.0, 3, 0.1), 0.1 ** (steps // 3)),
        (S.exponential_decay(1.0, 0.9, 1), 0.9**steps),
        (S.multistep_decay(1.0, [2, 5, 9], 0.1), 0.1 ** np.searchsorted([2, 5, 9], steps, "right")),
    ]
    for factor, want in pairs:
        got = lrs(S.multiply(S.cosine_decay(0.05, 10, 1e-10), factor), steps)
        assert_matches(got, cosine * f32(1.0) * want)


def test_multiply_vmaps_over_a_traced_peak():
    build = jax.vmap(
        lambda peak: jax.vmap(S.multiply(S.cosine_decay(peak, 20), S.step_decay(1.0, 5, 0.5)))(
            jnp.arange(30)
        )
    )
    batched = build(jnp.asarray([1.0, 0.25], jnp.float32))
    np.testing.assert_allclose(batched[1], 0.25 * batched[0], rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# lr_noise: timm's noise, a pure function of the step.
# ------------------------------------------------------------------------------------------------


def _documented_noise(steps, seed, pct, std):
    """The draw lr_noise documents: truncated_normal(fold_in(key(seed), t mod 2**32), +-p/s) s."""
    key = jax.random.key(seed)
    bound = jnp.float32(pct) / jnp.float32(std)

    def one(t):
        return jax.random.truncated_normal(jax.random.fold_in(key, t), -bound, bound)

    return np.asarray(jax.vmap(one)(jnp.asarray(steps, jnp.uint32)) * jnp.float32(std))


def test_lr_noise_multiplies_by_one_plus_the_documented_draw_inside_the_range():
    base = S.cosine_decay(1.0, 200, 0.1)
    noisy = S.lr_noise(base, (50, 150), noise_pct=0.3, noise_std=0.5, seed=7)
    steps = np.arange(200)
    got, clean = lrs(noisy, steps), lrs(base, steps)
    inside = (steps >= 50) & (steps < 150)
    np.testing.assert_array_equal(got[~inside], clean[~inside])
    noise = _documented_noise(steps, 7, 0.3, 0.5)
    np.testing.assert_allclose(got[inside], clean[inside] * (1 + noise[inside]), rtol=1e-6)
    assert np.all(np.abs(got[inside] / clean[inside] - 1) < 0.3 + 1e-6)
    assert np.std(noise[inside]) > 0.05  # it is noise, not a constant


def test_lr_noise_is_a_pure_function_of_the_step():
    noisy = S.lr_noise(S.constant(0.5), 3, noise_pct=0.5, seed=3)
    steps = [2, 17, 2**31 - 1]
    jitted = np.asarray(jax.jit(jax.vmap(noisy))(jnp.asarray(steps, jnp.int32)))
    assert jitted[0] == 0.5 and np.all(jitted[1:] != 0.5)  # noise from step 3 on
    for kind in (
        np.asarray([noisy(s) for s in steps[1:]]),  # Python ints
        np.asarray(noisy(np.asarray(steps[1:], np.int64))),  # host int64
    ):
        np.testing.assert_allclose(kind, jitted[1:], rtol=1e-6)
    # t and t + 2**32 draw the same noise (the key takes t mod 2**32).
    assert float(noisy(17 + 2**32)) == pytest.approx(jitted[1], rel=1e-6)


def test_lr_noise_distribution_is_timms_truncated_normal():
    # timm resamples N(0, 1) until |n| < noise_pct; noise_std scales it here (timm ignores it).
    steps = np.arange(20_000)
    for pct, std in ((0.67, 1.0), (0.2, 0.1)):
        noise = lrs(S.lr_noise(S.constant(1.0), 0, pct, std, seed=11), steps) - 1.0
        mean, sd = R.truncated_normal_moments(pct, std)
        assert np.max(np.abs(noise)) < pct
        assert abs(np.mean(noise) - mean) < 4 * sd / np.sqrt(steps.size)
        assert abs(np.std(noise) - sd) < 0.02 * sd


def test_lr_noise_vmaps_over_seed():
    steps = jnp.arange(10, 30)

    def run(seed):
        return jax.vmap(S.lr_noise(S.constant(1.0), 0, 0.5, seed=seed))(steps)

    batched = np.asarray(jax.jit(jax.vmap(run))(jnp.asarray([0, 1, 0], jnp.int32)))
    np.testing.assert_array_equal(batched[0], batched[2])
    assert not np.allclose(batched[0], batched[1])
    np.testing.assert_allclose(batched[1], np.asarray(jax.jit(run)(1)), rtol=1e-6)
