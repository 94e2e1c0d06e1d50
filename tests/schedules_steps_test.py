"""Tests for lrjax.schedules._steps: exact integer positions inside periods and staircases at
giant steps (against float64 references), the step's conversions, and :func:`to_steps`.
"""

import dataclasses
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
