"""Tests for lrjax.schedules._steps: exact integer positions inside periods and staircases at
giant steps (against float64 references), the step's conversions, and :func:`to_steps`.
"""

import dataclasses
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import schedules_reference as R
from schedules_testing import NAN, assert_matches, check_raises, f32

from lrjax import schedules as S

# ------------------------------------------------------------------------------------------------
# Giant steps: periods and staircases in integer arithmetic, against float64 references.
# ------------------------------------------------------------------------------------------------

# float32 holds every integer only below 2**24; optax's count is int32 up to 2**31 - 1.
# 52_428_822 and 21_547_998 are where the float32 cast first pushed the two cyclic cases below
# base_value under jit.
GIANT_STEPS = np.array(
    sorted(
        {
            *(2**24 + k for k in range(-2, 9)),
            21_547_998,
            52_428_822,
            5 * 10**7 - 1,
            5 * 10**7,
            5 * 10**7 + 1,
            2**31 - 2,
            2**31 - 1,
        }
    ),
    np.int64,
)


GIANT_SAMPLE = np.random.default_rng(0).integers(2**24, 2**31 - 1, size=1000, dtype=np.int64)


# Python ints and int64 arrays beyond int32, divided on the host. (Further out the float64
# references themselves lose the phase: s / period carries ulp(s / period) of error.)
BEYOND_INT32 = (2**31 + 5, 2**32 + 7)


@dataclasses.dataclass(frozen=True)
class Giant:
    id: str
    make: Callable[[], optax.Schedule]
    ref: Callable[[np.ndarray], np.ndarray]  # float64, magnitudes rounded to float32
    low: float  # the documented range of the schedule
    high: float


GIANTS = [
    Giant(
        "cyclic-10-15",
        lambda: S.cyclic(0.001, 0.1, 10, 15),
        lambda t: R.torch_cyclic(t, f32(0.001), f32(0.1), 10, 15),
        f32(0.001),
        f32(0.1),
    ),
    Giant(
        "cyclic-1000-1000",
        lambda: S.cyclic(0.001, 0.1, 1000, 1000),
        lambda t: R.torch_cyclic(t, f32(0.001), f32(0.1), 1000),
        f32(0.001),
        f32(0.1),
    ),
    Giant(
        "cyclic-exp_range",
        lambda: S.cyclic(0.01, 1.0, 7, 6, "exp_range", 0.99),
        lambda t: R.torch_cyclic(t, f32(0.01), 1.0, 7, 6, "exp_range", f32(0.99)),
        f32(0.01),
        1.0,
    ),
    Giant(
        "sgdr-T_mult-1",
        lambda: S.sgdr(0.1, 10),
        lambda t: R.torch_cosine_warm_restarts_closed(t, f32(0.1), 10),
        0.0,
        f32(0.1),
    ),
    Giant(
        "sgdr-T_mult-1-floor",
        lambda: S.sgdr(1.0, 7, end_value=0.125),
        lambda t: R.torch_cosine_warm_restarts_closed(t, 1.0, 7, 0.125),
        0.125,
        1.0,
    ),
    Giant(
        # Growing periods stay in float32 (the phase error shrinks with the period); checked.
        "sgdr-t_mul-2",
        lambda: S.sgdr(1.0, 10, 2.0, 0.95, 0.01),
        lambda t: R.keras_cosine_decay_restarts(t, 1.0, 10, 2.0, f32(0.95), f32(0.01)),
        f32(0.01),
        1.0,
    ),
    Giant(
        "snapshot_ensemble",
        lambda: S.snapshot_ensemble(0.01, 1000, 7),
        lambda t: R.huang_snapshot(t, f32(0.01), 1000, 7),
        0.0,
        f32(0.01),
    ),
    Giant(
        "repeat",
        lambda: S.repeat(S.warmup_linear_decay(1.0, 5, 25), 25),
        lambda t: R.repeat(t, lambda s: R.hf_warmup_linear_decay(s, 1.0, 5, 25), 25),
        0.0,
        1.0,
    ),
    Giant(
        "polynomial-cycle",
        lambda: S.polynomial_decay(1.0, 0.125, 20, power=0.5, cycle=True),
        lambda t: R.keras_polynomial(t, 1.0, 0.125, 20, 0.5, cycle=True),
        0.125,
        1.0,
    ),
    Giant(
        # n D < 2**31: the phase (n s) mod D is int32 arithmetic; restarts every D / 3 steps.
        "cosine_with_hard_restarts",
        lambda: S.cosine_with_hard_restarts(1.0, 0, 3 * (2**24 + 3), 3, 0.125),
        lambda t: R.hf_cosine_hard_restarts(t, 1.0, 0, 3 * (2**24 + 3), 3, 0.125),
        0.125,
        1.0,
    ),
    Giant(
        # n D >= 2**31: the documented float32 fallback, still within 1e-6 here.
        "cosine_with_hard_restarts-float-fallback",
        lambda: S.cosine_with_hard_restarts(1.0, 16, 2**30, 3),
        lambda t: R.hf_cosine_hard_restarts(t, 1.0, 16, 2**30, 3),
        0.0,
        1.0,
    ),
    Giant(
        "step_decay",
        lambda: S.step_decay(1.0, 2**24 + 1, 0.5),
        lambda t: R.torch_step_lr_closed(t, 1.0, 2**24 + 1, 0.5),
        0.0,
        1.0,
    ),
    Giant(
        "exponential-staircase-begin",
        lambda: S.exponential_decay(1.0, 0.5, 2**24 + 1, staircase=True, transition_begin=3),
        lambda t: R.keras_optax_exponential(t, 1.0, 0.5, 2**24 + 1, True, None, 3),
        0.0,
        1.0,
    ),
    Giant(
        "inverse_time-staircase",
        lambda: S.inverse_time_decay(1.0, 1.0, 2**24 + 1, staircase=True),
        lambda t: R.keras_inverse_time(t, 1.0, 1.0, 2**24 + 1, True),
        0.0,
        1.0,
    ),
    Giant(
        "multistep",
        lambda: S.multistep_decay(1.0, [2**24 + 1, 5 * 10**7], 0.5),
        lambda t: R.torch_multistep_lr_closed(t, 1.0, [2**24 + 1, 5 * 10**7], 0.5),
        0.25,
        1.0,
    ),
    Giant(
        "piecewise_constant",
        # float32 reads 2**24 + 1 as 2**24 (not past b_0) and 5 * 10**7 - 1 as 5 * 10**7.
        lambda: S.piecewise_constant([2**24, 5 * 10**7 - 1], [1.0, 0.5, 0.25]),
        lambda t: R.keras_piecewise_constant(t, [2**24, 5 * 10**7 - 1], [1.0, 0.5, 0.25]),
        0.25,
        1.0,
    ),
]


@pytest.mark.parametrize("giant", GIANTS, ids=[g.id for g in GIANTS])
def test_giant_int32_steps_match_float64_reference_under_jit(giant):
    steps = np.concatenate([GIANT_STEPS, GIANT_SAMPLE])
    got = np.asarray(jax.jit(jax.vmap(giant.make()))(jnp.asarray(steps, jnp.int32)))
    assert_matches(got, giant.ref(steps), scale=giant.high)
    tol = 4 * 2**-23 * giant.high
    outside = steps[(got < giant.low - tol) | (got > giant.high + tol)]
    assert outside.size == 0, f"LR leaves [{giant.low}, {giant.high}] at steps {outside[:5]}"


@pytest.mark.parametrize("giant", GIANTS, ids=[g.id for g in GIANTS])
def test_giant_host_integer_steps_match_float64_reference(giant):
    # Python ints and NumPy int64 are divided on the host, exactly, also beyond int32.
    schedule = giant.make()
    steps = np.concatenate([GIANT_STEPS, BEYOND_INT32])
    want = giant.ref(steps)
    assert_matches(np.asarray(schedule(steps)), want, scale=giant.high)
    for step, expected in zip(steps[-6:], want[-6:], strict=True):
        assert_matches(schedule(int(step)), expected, scale=giant.high)


@pytest.mark.parametrize(
    ("make", "period"),
    [
        (lambda: S.cyclic(0.001, 0.1, 10, 15), 25),
        (lambda: S.cyclic(0.01, 1.0, 7, 6, "exp_range", 1.0), 13),
        (lambda: S.sgdr(1.0, 7, end_value=0.125), 7),
        (lambda: S.snapshot_ensemble(0.01, 1000, 7), 143),
        (lambda: S.repeat(S.warmup_linear_decay(1.0, 5, 25), 25), 25),
    ],
    ids=["cyclic", "cyclic-exp_range-gamma-1", "sgdr", "snapshot_ensemble", "repeat"],
)
def test_periodic_schedules_are_exactly_periodic_at_any_python_int(make, period):
    # Beyond int64, where no float reference holds the phase, the period itself is the check.
    schedule = make()
    for step in (2**40 + 3, 2**63 + 11, 10**30 + 17):
        np.testing.assert_array_equal(schedule(step), schedule(step % period), err_msg=str(step))


# ------------------------------------------------------------------------------------------------
# Durations, concrete and traced arguments, non-finite steps.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "total", "want"),
    [
        (0, 100, 0),
        (30, 250, 30),
        (1, 1000, 1),
        (0.0, 100, 0),
        (1.0, 100, 100),
        (0.1, 250, 25),
        (0.05, 1000, 50),
        (0.37, 10, 4),
        (0.33, 10, 3),
        (0.999, 10, 10),
        (0.3, 37, 11),
        (np.float32(0.5), 64, 32),
        (np.int64(7), 64, 7),
    ],
)
def test_to_steps_converts_steps_and_fractions(duration, total, want):
    got = S.to_steps(duration, total, "warmup_steps")
    assert got == want and type(got) is int


@pytest.mark.parametrize(
    ("duration", "pattern"),
    [
        (-1, r"warmup_steps.*>= 0"),
        (1.5, r"warmup_steps.*\[0, 1\]"),
        (-0.1, r"warmup_steps.*\[0, 1\]"),
        ("10", r"warmup_steps"),
        (None, r"warmup_steps"),
        (True, r"warmup_steps"),
    ],
    ids=["negative-int", "fraction-above-1", "negative-fraction", "string", "none", "bool"],
)
def test_to_steps_rejects_bad_values(duration, pattern):
    with pytest.raises(ValueError, match=pattern):
        S.to_steps(duration, 100, "warmup_steps")


def test_traced_magnitudes_skip_the_build_time_checks():
    # Out-of-range values on purpose: under vmap they are tracers and nothing may inspect them.
    steps = jnp.arange(5)
    build = {
        "gamma": lambda g: S.step_decay(1.0, 2, g)(steps),
        "power": lambda p: S.polynomial_decay(1.0, 0.0, 10, p)(steps),
        "min_value": lambda m: S.clip(S.constant(0.5), m, 0.1)(steps),
        "init_value": lambda v: S.cosine_decay(v, 10)(steps),
    }
    for name, fn in build.items():
        out = jax.vmap(fn)(jnp.asarray([-0.5, 2.0], jnp.float32))
        assert out.shape == (2, 5), name


def test_concrete_jax_scalars_are_checked_like_python_numbers():
    with pytest.raises(ValueError, match=r"gamma must be a finite number > 0"):
        S.step_decay(1.0, 10, jnp.asarray(-0.5, jnp.float32))
    assert float(S.step_decay(1.0, 10, jnp.asarray(0.5, jnp.float32))(10)) == 0.5


ERRORS = {
    "schedule-nan-step": (
        lambda: S.cosine_decay(0.1, 100)(float("nan")),
        r"step must be finite, got nan",
    ),
    "to_steps-fraction-nan": (
        lambda: S.to_steps(NAN, 100, "warmup_steps"),
        r"warmup_steps .* must be in \[0, 1\], got nan",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_naming_argument_and_range(name):
    check_raises(*ERRORS[name])


# ------------------------------------------------------------------------------------------------
# Step counts beyond int32: every factory builds, and is right at int32, int64 and Python-int
# steps (issue 19, item 2: cosine_decay(1000.0, int(1e10)) was accepted and then raised
# OverflowError at every call).
# ------------------------------------------------------------------------------------------------

BIG = 10**10


def _hf(name, **kwargs):
    return S.get(name, **kwargs)


def _swa_ref(t, start, swa_lr, anneal_steps):
    q = np.clip((t - start) / anneal_steps, 0.0, 1.0)
    return np.where(t < start, 1.0, 1.0 + (swa_lr - 1.0) * (1 - np.cos(np.pi * q)) / 2)


# id -> (the schedule with a step count beyond int32, its float64 reference, the extra steps
# beyond int32 where it changes). Every factory with a step-count argument is here (checked by
# test_every_step_count_factory_is_audited below).
LARGE_STEP_COUNTS = {
    "cosine_decay": (
        lambda: S.cosine_decay(1000.0, BIG),
        lambda t: R.optax_cosine(t, 1000.0, BIG),
        (BIG - 1, BIG, BIG + 1),
    ),
    "linear-transition_steps": (
        lambda: S.linear(1.0, 0.0, BIG),
        lambda t: R.optax_linear(t, 1.0, 0.0, BIG),
        (BIG - 1, BIG),
    ),
    "linear-transition_begin": (
        lambda: S.linear(1.0, 0.5, 100, transition_begin=BIG),
        lambda t: R.optax_linear(t, 1.0, 0.5, 100, BIG),
        (BIG - 1, BIG, BIG + 1, BIG + 37, BIG + 100),
    ),
    "step_decay": (
        lambda: S.step_decay(1.0, BIG, 0.5),
        lambda t: R.torch_step_lr_closed(t, 1.0, BIG, 0.5),
        (BIG - 1, BIG, 2 * BIG),
    ),
    "multistep_decay": (
        lambda: S.multistep_decay(1.0, [100, BIG, 2 * BIG], 0.5),
        lambda t: R.torch_multistep_lr_closed(t, 1.0, [100, BIG, 2 * BIG], 0.5),
        (BIG - 1, BIG, 2 * BIG - 1, 2 * BIG),
    ),
    "piecewise_constant": (
        lambda: S.piecewise_constant([100, BIG], [1.0, 0.5, 0.25]),
        lambda t: R.keras_piecewise_constant(t, [100, BIG], [1.0, 0.5, 0.25]),
        (BIG, BIG + 1),
    ),
    "exponential_decay": (
        lambda: S.exponential_decay(1.0, 0.5, BIG),
        lambda t: R.keras_optax_exponential(t, 1.0, 0.5, BIG),
        (BIG, 3 * BIG),
    ),
    "exponential_decay-staircase-transition_begin": (
        lambda: S.exponential_decay(1.0, 0.5, BIG, staircase=True, transition_begin=BIG),
        lambda t: R.keras_optax_exponential(t, 1.0, 0.5, BIG, True, None, BIG),
        (2 * BIG - 1, 2 * BIG, 3 * BIG),
    ),
    "inverse_time_decay": (
        lambda: S.inverse_time_decay(1.0, 1.0, BIG),
        lambda t: R.keras_inverse_time(t, 1.0, 1.0, BIG),
        (BIG, 3 * BIG),
    ),
    "inverse_time_decay-staircase": (
        lambda: S.inverse_time_decay(1.0, 1.0, BIG, staircase=True),
        lambda t: R.keras_inverse_time(t, 1.0, 1.0, BIG, True),
        (BIG - 1, BIG),
    ),
    "polynomial_decay": (
        lambda: S.polynomial_decay(1.0, 0.125, BIG, 2.0),
        lambda t: R.keras_polynomial(t, 1.0, 0.125, BIG, 2.0),
        (BIG - 1, BIG, BIG + 1),
    ),
    "polynomial_decay-cycle": (
        lambda: S.polynomial_decay(1.0, 0.125, BIG, 2.0, cycle=True),
        lambda t: R.keras_polynomial(t, 1.0, 0.125, BIG, 2.0, cycle=True),
        (BIG - 1, BIG, BIG + 1, 2 * BIG),
    ),
    "tanh_decay": (
        lambda: S.tanh_decay(1.0, BIG),
        lambda t: R.timm_tanh(t, 1.0, BIG),
        (BIG // 2, BIG - 1, BIG),
    ),
    "sgdr": (
        lambda: S.sgdr(1.0, BIG, end_value=0.125),
        lambda t: R.sgdr_exact(t, 1.0, BIG, end_value=0.125),
        (BIG - 1, BIG, BIG + 1),
    ),
    "sgdr-period_mult": (
        lambda: S.sgdr(1.0, BIG, 2.0, 0.5),
        lambda t: R.sgdr_exact(t, 1.0, BIG, 2.0, 0.5),
        (BIG - 1, BIG, 3 * BIG - 1, 3 * BIG),
    ),
    "cyclic": (
        lambda: S.cyclic(0.125, 1.0, BIG, 2 * BIG, "triangular2"),
        lambda t: R.torch_cyclic(t, 0.125, 1.0, BIG, 2 * BIG, "triangular2"),
        (BIG, 3 * BIG - 1, 3 * BIG, 4 * BIG),
    ),
    "one_cycle": (
        lambda: S.one_cycle(BIG, 1.0, 0.25),
        lambda t: R.torch_one_cycle(t, BIG, 1.0, 0.25),
        (BIG // 4 - 1, BIG // 2, BIG - 1),
    ),
    "one_cycle_momentum": (
        lambda: S.one_cycle_momentum(BIG, pct_start=0.25),
        lambda t: R.torch_one_cycle(t, BIG, 1.0, 0.25, which="momentum"),
        (BIG // 4 - 1, BIG // 2, BIG - 1),
    ),
    "snapshot_ensemble": (
        lambda: S.snapshot_ensemble(1.0, 3 * BIG, 3),
        lambda t: R.huang_snapshot(t, 1.0, 3 * BIG, 3),
        (BIG - 1, BIG, 2 * BIG + 5),
    ),
    "warmup": (
        lambda: S.warmup(S.cosine_decay(1.0, 100), BIG),
        lambda t: R.warmup(t, lambda s: R.cosine_to_floor(s, 1.0, 100, 0.0), BIG),
        (BIG // 2, BIG - 1, BIG, BIG + 50, BIG + 100),
    ),
    "swa_schedule": (
        lambda: S.swa_schedule(S.constant(1.0), BIG, 0.5, BIG),
        lambda t: _swa_ref(t, BIG, f32(0.5), BIG),
        (BIG - 1, BIG, BIG + BIG // 2, 2 * BIG),
    ),
    "join": (
        lambda: S.join([S.constant(1.0), S.linear(0.5, 0.0, 100)], [BIG]),
        lambda t: np.where(t < BIG, 1.0, R.optax_linear(np.maximum(t - BIG, 0), 0.5, 0.0, 100)),
        (BIG - 1, BIG, BIG + 1, BIG + 50),
    ),
    "repeat": (
        lambda: S.repeat(S.linear(1.0, 0.0, BIG), BIG),
        lambda t: R.repeat(t, lambda s: R.optax_linear(s, 1.0, 0.0, BIG), BIG),
        (BIG - 1, BIG, BIG + 1, 2 * BIG - 1),
    ),
    "warmup_linear_decay": (
        lambda: S.warmup_linear_decay(1.0, BIG, 3 * BIG),
        lambda t: R.hf_warmup_linear_decay(t, 1.0, BIG, 3 * BIG),
        (BIG - 1, BIG, 2 * BIG, 3 * BIG - 1, 3 * BIG),
    ),
    "warmup_cosine_decay": (
        lambda: S.warmup_cosine_decay(1.0, BIG, 3 * BIG),
        lambda t: R.hf_warmup_cosine_decay(t, 1.0, BIG, 3 * BIG),
        (BIG - 1, BIG, 2 * BIG, 3 * BIG - 1, 3 * BIG),
    ),
    "cosine_with_hard_restarts": (
        lambda: S.cosine_with_hard_restarts(1.0, BIG, 4 * BIG, 3, 0.125),
        lambda t: R.hf_cosine_hard_restarts(t, 1.0, BIG, 4 * BIG, 3, 0.125),
        (BIG, 2 * BIG - 1, 2 * BIG, 4 * BIG - 1, 4 * BIG),
    ),
    "inverse_sqrt": (
        lambda: S.inverse_sqrt(1.0, BIG),
        lambda t: R.hf_inverse_sqrt(t, 1.0, BIG),
        (BIG - 1, BIG, 4 * BIG),
    ),
    "inverse_sqrt-timescale": (
        lambda: S.inverse_sqrt(1.0, 10, BIG),
        lambda t: R.hf_inverse_sqrt(t, 1.0, 10, BIG),
        (BIG, 4 * BIG),
    ),
    "warmup_stable_decay": (
        lambda: S.warmup_stable_decay(1.0, 10 * BIG, BIG, 2 * BIG, "cosine", 0.125, 0.125),
        lambda t: R.hf_wsd(t, 1.0, 10 * BIG, BIG, 2 * BIG, "cosine", 0.125, 0.125),
        (BIG - 1, BIG, 8 * BIG, 9 * BIG, 10 * BIG - 1, 10 * BIG),
    ),
    "warmup_cosine_fraction": (
        lambda: S.warmup_cosine_fraction(1.0, 0.25, 4 * BIG),
        lambda t: R.warmup_cosine_fraction(t, 1.0, f32(0.25), 4 * BIG),
        (BIG - 1, BIG, 2 * BIG, 4 * BIG),
    ),
    "timm_cosine": (
        lambda: S.timm_cosine(1.0, BIG, 0.125, 2.0, 0.5, 3, BIG // 10, warmup_prefix=True),
        lambda t: R.timm_cosine(t, 1.0, BIG, 0.125, 2.0, 0.5, 3, BIG // 10, 0.0, True),
        (BIG // 10 - 1, BIG // 10, 11 * BIG // 10, 31 * BIG // 10, 71 * BIG // 10),
    ),
    "lr_noise": (
        lambda: S.lr_noise(S.constant(1.0), (BIG, 2 * BIG)),
        lambda t: np.ones(np.shape(t)),  # no noise outside [BIG, 2 BIG)
        (BIG - 1, 2 * BIG, 3 * BIG),
    ),
    "schedule_family_switch": (
        lambda: S.schedule_family_switch(1, [S.constant(0.5), S.cosine_decay(1.0, BIG)]),
        lambda t: R.optax_cosine(t, 1.0, BIG),
        (BIG - 1, BIG),
    ),
    "get-hf-linear": (
        lambda: S.get(
            "linear", learning_rate=1.0, num_warmup_steps=BIG, num_training_steps=3 * BIG
        ),
        lambda t: R.hf_warmup_linear_decay(t, 1.0, BIG, 3 * BIG),
        (BIG - 1, BIG, 3 * BIG),
    ),
    "get-hf-cosine_warmup_with_min_lr": (
        lambda: S.get(
            "cosine_warmup_with_min_lr",
            learning_rate=1.0,
            num_warmup_steps=BIG,
            num_training_steps=3 * BIG,
            min_lr_rate=0.125,
        ),
        lambda t: R._closed(
            lambda s: R.hf_cosine_warmup_with_min_lr_rate_lambda(
                s,
                num_warmup_steps=BIG,
                num_training_steps=3 * BIG,
                num_cycles=0.5,
                min_lr_rate=0.125,
            ),
            np.minimum(t, 3 * BIG - 1),
        ),
        (BIG - 1, BIG, 3 * BIG - 2, 3 * BIG - 1, 3 * BIG),
    ),
}

_INT32_STEPS = np.asarray([0, 1, 99, 100, 101, 10**9, 2**31 - 2, 2**31 - 1], np.int64)
# Host steps come padded to one length, so the eager calls of every row share compilations.
_PAD = (5 * BIG + 3, 7 * BIG + 1, 9 * BIG, 11 * BIG + 5, 13 * BIG, 17 * BIG)


@pytest.mark.parametrize("name", list(LARGE_STEP_COUNTS))
def test_step_counts_beyond_int32_are_supported(name):
    make, reference, beyond = LARGE_STEP_COUNTS[name]
    schedule = make()
    host = np.asarray((*beyond, *_PAD)[:6], np.int64)  # int64 on the host
    scale = float(np.max(np.abs(reference(np.r_[_INT32_STEPS, host]))))
    got = jax.jit(jax.vmap(schedule))(jnp.asarray(_INT32_STEPS, jnp.int32))  # optax's count
    assert_matches(np.asarray(got), reference(_INT32_STEPS), scale)
    assert_matches(np.asarray(schedule(host)), reference(host), scale)
    python = int(beyond[-1])  # and a Python int
    assert_matches(schedule(python), reference(np.asarray([python]))[0], scale)


def test_cosine_decay_beyond_int32_matches_optax():
    # The example: optax returns 975.53 at step 1e9.
    ours = S.cosine_decay(1000.0, int(1e10))
    theirs = optax.cosine_decay_schedule(1000.0, int(1e10))
    assert float(ours(10**9)) == pytest.approx(float(theirs(10**9)), rel=1e-6)
    assert float(ours(10**9)) == pytest.approx(975.5283, rel=1e-6)


def _step_count_arguments() -> set[tuple[str, str]]:
    """(factory, argument) for every argument that is a number of steps, read from the
    signatures: an int default or a name that says steps."""
    names = {
        "transition_steps", "transition_begin", "step_size", "milestones", "boundaries",
        "decay_steps", "first_period", "step_size_up", "step_size_down", "total_steps",
        "warmup_steps", "timescale", "swa_start", "anneal_steps", "period", "t_initial",
        "warmup_t", "noise_range_t",
    }  # fmt: skip
    out = set()
    for name in S.__all__:
        factory = getattr(S, name)
        if not callable(factory) or "Schedule" not in str(
            getattr(factory, "__annotations__", {}).get("return", "")
        ):
            continue
        for param in inspect.signature(factory).parameters:
            if param in names:
                out.add((name, param))
    return out


def test_every_step_count_factory_is_audited():
    audited = {key.split("-")[0] for key in LARGE_STEP_COUNTS}
    missing = {factory for factory, _ in _step_count_arguments()} - audited
    assert not missing, f"add a beyond-int32 row for {sorted(missing)}"


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: S.cosine_decay(1.0, 2**63), r"decay_steps must be an integer < 2\*\*63"),
        (lambda: S.multistep_decay(1.0, [5, 2**63]), r"milestones must be < 2\*\*63"),
        (lambda: S.warmup(S.constant(1.0), 2**64), r"warmup_steps must be an integer < 2\*\*63"),
        (lambda: S.to_steps(2**63), r"duration must be an integer < 2\*\*63"),
    ],
    ids=["cosine_decay", "multistep_decay", "warmup", "to_steps"],
)
def test_step_counts_beyond_int64_are_refused_at_build(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


def test_int64_device_steps_under_x64_match_the_host():
    # With jax_enable_x64, JAX int64 steps beyond int32 divide and compare in int64 exactly.
    steps = np.asarray([0, 2**31 + 5, 2**40, 2**40 + 1, 3 * 2**40 + 7, 2**62], np.int64)
    makes = {
        "sgdr": lambda: S.sgdr(1.0, 2**40, 2.0, 0.5, 0.125),
        "multistep": lambda: S.multistep_decay(1.0, [2**31 + 5, 2**40 + 1], 0.5),
        "repeat": lambda: S.repeat(S.linear(1.0, 0.0, 2**40), 2**40),
    }
    with jax.enable_x64(True):
        for name, make in makes.items():
            schedule = make()
            device = jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int64))
            assert device.dtype == jnp.float32, name
            np.testing.assert_array_equal(np.asarray(device), np.asarray(schedule(steps)), name)
