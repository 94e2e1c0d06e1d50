"""Tests for lrjax.schedules._recipes (warmup + decay recipes, hard restarts, inverse sqrt,
WSD) against float64 references of Hugging Face's lambdas (tests/schedules_reference.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import schedules_reference as R
from schedules_testing import (
    INF,
    Case,
    ScheduleContract,
    assert_matches,
    check_continuous,
    check_monotone_warmup,
    check_non_increasing,
    check_peak_reached_at_boundary,
    check_raises,
    f32,
    lrs,
)

from lrjax import schedules as S

CASES = [
    # 12. Hugging Face recipes
    Case(
        "warmup_linear_decay/hf",
        lambda p: S.warmup_linear_decay(p["peak"], p["warmup_steps"], p["total_steps"]),
        lambda t, p: R.hf_warmup_linear_decay(t, p["peak"], p["warmup_steps"], p["total_steps"]),
        dict(peak=1.0, warmup_steps=10, total_steps=100),
        horizon=120,
        edges=(0, 9, 10, 11, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "warmup_linear_decay/hf-init-end",
        lambda p: S.warmup_linear_decay(
            p["peak"], p["warmup_steps"], p["total_steps"], p["end"], p["init"]
        ),
        lambda t, p: R.hf_warmup_linear_decay(
            t, p["peak"], p["warmup_steps"], p["total_steps"], p["end"], p["init"]
        ),
        dict(peak=0.5, warmup_steps=7, total_steps=50, end=0.05, init=0.01),
        horizon=60,
        edges=(0, 6, 7, 8, 49, 50, 51),
        constant_tail=True,
    ),
    Case(
        "warmup_cosine_decay/hf",
        lambda p: S.warmup_cosine_decay(p["peak"], p["warmup_steps"], p["total_steps"]),
        lambda t, p: R.hf_warmup_cosine_decay(t, p["peak"], p["warmup_steps"], p["total_steps"]),
        dict(peak=1.0, warmup_steps=10, total_steps=100),
        horizon=130,
        edges=(0, 9, 10, 11, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "warmup_cosine_decay/hf-min-lr",
        lambda p: S.warmup_cosine_decay(
            p["peak"], p["warmup_steps"], p["total_steps"], p["end"], p["init"]
        ),
        lambda t, p: R.hf_warmup_cosine_decay(
            t, p["peak"], p["warmup_steps"], p["total_steps"], p["end"], p["init"]
        ),
        dict(peak=0.3, warmup_steps=5, total_steps=60, end=0.03, init=0.003),
        horizon=80,
        edges=(0, 4, 5, 6, 59, 60, 61),
        constant_tail=True,
    ),
    Case(
        "warmup_cosine_decay/hf-fractional-warmup",
        lambda p: S.warmup_cosine_decay(p["peak"], 0.1, p["total_steps"]),
        lambda t, p: R.hf_warmup_cosine_decay(t, p["peak"], 10, p["total_steps"]),
        dict(peak=1.0, total_steps=100),
        horizon=110,
        edges=(9, 10, 11),
        constant_tail=True,
    ),
    Case(
        "warmup_cosine_decay/optax-exponent",
        lambda p: S.warmup_cosine_decay(p["peak"], 12, 72, p["end"], p["init"], exponent=3.0),
        lambda t, p: np.where(
            t < 12,
            p["init"] + (p["peak"] - p["init"]) * t / 12,
            R.optax_cosine(np.maximum(t - 12, 0), p["peak"], 60, p["end"] / p["peak"], 3.0),
        ),
        dict(peak=1.5, end=0.125, init=0.25),
        horizon=90,
        edges=(0, 11, 12, 13, 71, 72, 73),
        constant_tail=True,
    ),
    # timm CosineLRScheduler (cosine_lr.py), restarts located exactly
    Case(
        "timm_cosine/defaults-warmup-overlay",
        lambda p: S.timm_cosine(
            p["lr"], 50, p["lr_min"], warmup_t=8, warmup_lr_init=p["warmup_lr_init"]
        ),
        lambda t, p: R.timm_cosine(
            t, p["lr"], 50, p["lr_min"], warmup_t=8, warmup_lr_init=p["warmup_lr_init"]
        ),
        dict(lr=0.5, lr_min=0.01, warmup_lr_init=0.001),
        horizon=70,  # one cycle (cycle_limit=1), then lr_min
        edges=(0, 7, 8, 9, 49, 50, 51),
        constant_tail=True,
    ),
    Case(
        "timm_cosine/prefix-cycles-k_decay-decay",
        lambda p: S.timm_cosine(
            p["lr"],
            10,
            p["lr_min"],
            2.0,
            p["cycle_decay"],
            3,
            5,
            p["warmup_lr_init"],
            True,
            k_decay=p["k_decay"],
        ),
        lambda t, p: R.timm_cosine(
            t,
            p["lr"],
            10,
            p["lr_min"],
            2.0,
            p["cycle_decay"],
            3,
            5,
            p["warmup_lr_init"],
            True,
            p["k_decay"],
        ),
        dict(lr=1.0, lr_min=0.125, cycle_decay=0.5, warmup_lr_init=0.0, k_decay=1.5),
        horizon=90,  # cycles start at 5, 15, 35; the fourth (75) is held at lr_min
        edges=(4, 5, 6, 14, 15, 16, 34, 35, 36, 74, 75, 76),
        constant_tail=True,
    ),
    Case(
        "timm_cosine/cycle_mul-1.5-unlimited",
        lambda p: S.timm_cosine(p["lr"], 6, 0.0, 1.5, p["cycle_decay"], None),
        lambda t, p: R.timm_cosine(t, p["lr"], 6, 0.0, 1.5, p["cycle_decay"], None),
        dict(lr=0.5, cycle_decay=0.8),
        horizon=120,  # cycles start at 6, 15, 28.5 (step 29), 48.75 (step 49), ...
        edges=(5, 6, 14, 15, 28, 29, 48, 49),
    ),
    Case(
        "cosine_with_hard_restarts/hf",
        lambda p: S.cosine_with_hard_restarts(
            p["peak"], p["warmup_steps"], p["total_steps"], p["num_cycles"]
        ),
        lambda t, p: R.hf_cosine_hard_restarts(
            t, p["peak"], p["warmup_steps"], p["total_steps"], p["num_cycles"]
        ),
        dict(peak=1.0, warmup_steps=10, total_steps=100, num_cycles=3),
        horizon=120,
        edges=(0, 9, 10, 11, 39, 40, 41, 69, 70, 71, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "cosine_with_hard_restarts/hf-init-end-uneven",
        lambda p: S.cosine_with_hard_restarts(
            p["peak"], p["warmup_steps"], p["total_steps"], p["num_cycles"], p["end"], p["init"]
        ),
        lambda t, p: R.hf_cosine_hard_restarts(
            t, p["peak"], p["warmup_steps"], p["total_steps"], p["num_cycles"], p["end"], p["init"]
        ),
        dict(peak=0.4, warmup_steps=5, total_steps=55, num_cycles=4, end=0.04, init=0.01),
        horizon=70,
        edges=(0, 4, 5, 17, 18, 29, 30, 42, 43, 54, 55, 56),
        constant_tail=True,
    ),
    Case(
        "inverse_sqrt/hf",
        lambda p: S.inverse_sqrt(p["peak"], p["warmup_steps"]),
        lambda t, p: R.hf_inverse_sqrt(t, p["peak"], p["warmup_steps"]),
        dict(peak=1.0, warmup_steps=10),
        horizon=200,
        edges=(0, 9, 10, 11),
    ),
    Case(
        "inverse_sqrt/hf-timescale-init",
        lambda p: S.inverse_sqrt(p["peak"], p["warmup_steps"], p["timescale"], p["init"]),
        lambda t, p: R.hf_inverse_sqrt(t, p["peak"], p["warmup_steps"], p["timescale"], p["init"]),
        dict(peak=0.01, warmup_steps=20, timescale=100, init=0.001),
        horizon=200,
        edges=(0, 19, 20, 21),
    ),
    Case(
        "inverse_sqrt/hf-no-warmup-default-timescale",
        lambda p: S.inverse_sqrt(p["peak"], p["warmup_steps"]),
        lambda t, p: R.hf_inverse_sqrt(t, p["peak"], p["warmup_steps"]),
        dict(peak=0.5, warmup_steps=0),
        horizon=50,
        edges=(0, 1, 10000, 30000),
    ),
    # 13. warmup-stable-decay: HF get_wsd_schedule
    Case(
        "wsd/hf-linear",
        lambda p: S.warmup_stable_decay(
            p["peak"], p["total_steps"], p["warmup_steps"], p["decay_steps"]
        ),
        lambda t, p: R.hf_wsd(t, p["peak"], p["total_steps"], p["warmup_steps"], p["decay_steps"]),
        dict(peak=1.0, total_steps=100, warmup_steps=10, decay_steps=20),
        horizon=120,
        edges=(0, 9, 10, 11, 79, 80, 81, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "wsd/hf-cosine-fractions",
        lambda p: S.warmup_stable_decay(p["peak"], p["total_steps"], 0.05, 0.2, "cosine", p["end"]),
        lambda t, p: R.hf_wsd(t, p["peak"], p["total_steps"], 10, 40, "cosine", p["end"]),
        dict(peak=0.5, total_steps=200, end=0.05),
        horizon=220,
        edges=(0, 9, 10, 159, 160, 161, 199, 200),
        constant_tail=True,
    ),
    Case(
        "wsd/hf-1-sqrt-min_lr_ratio",
        lambda p: S.warmup_stable_decay(
            p["peak"],
            p["total_steps"],
            p["warmup_steps"],
            p["decay_steps"],
            "1-sqrt",
            p["end"],
            p["init"],
        ),
        lambda t, p: R.hf_wsd(
            t,
            p["peak"],
            p["total_steps"],
            p["warmup_steps"],
            p["decay_steps"],
            "1-sqrt",
            p["end"],
            p["init"],
        ),
        dict(peak=1.0, total_steps=120, warmup_steps=12, decay_steps=36, end=0.1, init=0.1),
        horizon=130,
        edges=(0, 11, 12, 13, 83, 84, 85, 119, 120, 121),
        constant_tail=True,
    ),
    Case(
        "wsd/hf-no-warmup",
        lambda p: S.warmup_stable_decay(p["peak"], p["total_steps"], 0, p["decay_steps"]),
        lambda t, p: R.hf_wsd(t, p["peak"], p["total_steps"], 0, p["decay_steps"]),
        dict(peak=1.0, total_steps=30, decay_steps=30),
        horizon=40,
        edges=(0, 1, 29, 30, 31),
        constant_tail=True,
    ),
    Case(
        "warmup_cosine_fraction/fractional-warmup-end",
        lambda p: S.warmup_cosine_fraction(p["peak_value"], p["warmup_fraction"], 90),
        lambda t, p: R.warmup_cosine_fraction(t, p["peak_value"], p["warmup_fraction"], 90),
        dict(peak_value=0.8, warmup_fraction=0.125),  # W = 11.25 steps
        horizon=100,
        edges=(0, 11, 12, 89, 90, 91),
        constant_tail=True,
    ),
    Case(
        "warmup_cosine_fraction/no-warmup",
        lambda p: S.warmup_cosine_fraction(p["peak_value"], p["warmup_fraction"], 40),
        lambda t, p: R.warmup_cosine_fraction(t, p["peak_value"], p["warmup_fraction"], 40),
        dict(peak_value=1.0, warmup_fraction=0.0),
        horizon=50,
        edges=(0, 1, 39, 40, 41),
        constant_tail=True,
    ),
]

HYPER = [
    (S.warmup_linear_decay, dict(warmup_steps=5, total_steps=30), "peak_value", [1.0, 0.2]),
    (
        S.warmup_linear_decay,
        dict(peak_value=1.0, warmup_steps=5, total_steps=30),
        "end_value",
        [0.0, 0.1],
    ),
    (
        S.warmup_linear_decay,
        dict(peak_value=1.0, warmup_steps=5, total_steps=30),
        "init_value",
        [0.0, 0.1],
    ),
    (S.warmup_cosine_decay, dict(warmup_steps=5, total_steps=30), "peak_value", [1.0, 0.2]),
    (
        S.warmup_cosine_decay,
        dict(peak_value=1.0, warmup_steps=5, total_steps=30, end_value=0.1),
        "exponent",
        [1.0, 2.0, 0.5],
    ),
    (S.timm_cosine, dict(t_initial=10, cycle_limit=2), "learning_rate", [1.0, 0.2]),
    (S.timm_cosine, dict(learning_rate=1.0, t_initial=10), "lr_min", [0.0, 0.1]),
    (
        S.timm_cosine,
        dict(learning_rate=1.0, t_initial=10, cycle_mul=2.0, cycle_limit=None),
        "cycle_decay",
        [1.0, 0.5],
    ),
    (
        S.timm_cosine,
        dict(learning_rate=1.0, t_initial=30, warmup_t=5),
        "warmup_lr_init",
        [0.0, 0.1],
    ),
    (S.timm_cosine, dict(learning_rate=1.0, t_initial=30), "k_decay", [1.0, 2.0]),
    (
        S.warmup_cosine_decay,
        dict(peak_value=1.0, warmup_steps=5, total_steps=30),
        "end_value",
        [0.0, 0.1],
    ),
    (
        S.warmup_cosine_decay,
        dict(peak_value=1.0, warmup_steps=5, total_steps=30),
        "init_value",
        [0.0, 0.1],
    ),
    (
        S.cosine_with_hard_restarts,
        dict(warmup_steps=5, total_steps=30, num_cycles=2),
        "peak_value",
        [1.0, 0.2],
    ),
    (
        S.cosine_with_hard_restarts,
        dict(peak_value=1.0, warmup_steps=5, total_steps=30),
        "end_value",
        [0.0, 0.1],
    ),
    (
        S.cosine_with_hard_restarts,
        dict(peak_value=1.0, warmup_steps=5, total_steps=30),
        "init_value",
        [0.0, 0.1],
    ),
    (S.inverse_sqrt, dict(warmup_steps=5), "peak_value", [1.0, 0.2]),
    (S.inverse_sqrt, dict(peak_value=1.0, warmup_steps=5), "init_value", [0.0, 0.1]),
    (
        S.warmup_stable_decay,
        dict(total_steps=30, warmup_steps=5, decay_steps=10),
        "peak_value",
        [1.0, 0.2],
    ),
    (
        S.warmup_stable_decay,
        dict(peak_value=1.0, total_steps=30, warmup_steps=5, decay_steps=10, decay_type="1-sqrt"),
        "end_value",
        [0.0, 0.1],
    ),
    (
        S.warmup_stable_decay,
        dict(peak_value=1.0, total_steps=30, warmup_steps=5, decay_steps=10, decay_type="cosine"),
        "init_value",
        [0.0, 0.1],
    ),
    (S.warmup_cosine_fraction, dict(warmup_fraction=0.2, total_steps=30), "peak_value", [1.0, 0.2]),
    (
        S.warmup_cosine_fraction,
        dict(peak_value=1.0, total_steps=30),
        "warmup_fraction",
        [0.0, 0.1, 0.5],
    ),
]


class TestContract(ScheduleContract):
    CASES = tuple(CASES)
    HYPER = tuple(HYPER)


# ------------------------------------------------------------------------------------------------
# Shape properties.
# ------------------------------------------------------------------------------------------------

WARMUPS = {
    "warmup_linear_decay": (lambda: S.warmup_linear_decay(2.0, 15, 60), 15, 2.0),
    "warmup_cosine_decay": (lambda: S.warmup_cosine_decay(2.0, 15, 60, 0.2, 0.1), 15, 2.0),
    "cosine_with_hard_restarts": (lambda: S.cosine_with_hard_restarts(1.0, 7, 60, 3), 7, 1.0),
    "inverse_sqrt": (lambda: S.inverse_sqrt(1.0, 20), 20, 1.0),
    "wsd": (lambda: S.warmup_stable_decay(1.0, 100, 10, 20, "cosine", 0.1, 0.1), 10, 1.0),
}


@pytest.mark.parametrize("name", list(WARMUPS))
def test_monotone_warmup(name):
    check_monotone_warmup(*WARMUPS[name])


@pytest.mark.parametrize("name", list(WARMUPS))
def test_peak_reached_at_boundary(name):
    check_peak_reached_at_boundary(*WARMUPS[name])


DECAYS = {
    "warmup_linear_decay": (lambda: S.warmup_linear_decay(1.0, 10, 60), 10, 80),
    "warmup_cosine_decay": (lambda: S.warmup_cosine_decay(1.0, 10, 60, 0.1), 10, 80),
    "inverse_sqrt": (lambda: S.inverse_sqrt(1.0, 10), 10, 300),
    "wsd": (lambda: S.warmup_stable_decay(1.0, 100, 10, 30, "1-sqrt"), 10, 120),
}


@pytest.mark.parametrize("name", list(DECAYS))
def test_non_increasing_decay(name):
    check_non_increasing(*DECAYS[name])


JOINS = {
    "warmup_linear_decay": (lambda: S.warmup_linear_decay(1.0, 10, 60), [10, 60]),
    "warmup_cosine_decay": (lambda: S.warmup_cosine_decay(1.0, 10, 60, 0.1), [10, 60]),
    "inverse_sqrt": (lambda: S.inverse_sqrt(1.0, 10), [10]),
    "wsd-linear": (lambda: S.warmup_stable_decay(1.0, 100, 10, 20), [10, 80, 100]),
    "wsd-cosine": (
        lambda: S.warmup_stable_decay(1.0, 100, 10, 20, "cosine", 0.1, 0.1),
        [10, 80, 100],
    ),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_continuity_across_joins(name):
    check_continuous(*JOINS[name])


# ------------------------------------------------------------------------------------------------
# Bad input: each documented error names the argument and its allowed range.
# ------------------------------------------------------------------------------------------------

ERRORS = {
    "warmup_linear_decay-warmup-too-long": (
        lambda: S.warmup_linear_decay(1.0, 100, 100),
        r"warmup_steps.*\[0, total_steps\)",
    ),
    "warmup_linear_decay-total_steps-0": (
        lambda: S.warmup_linear_decay(1.0, 0, 0),
        r"total_steps.*>= 1",
    ),
    "warmup_cosine_decay-warmup-negative": (
        lambda: S.warmup_cosine_decay(1.0, -1, 100),
        r"warmup_steps.*>= 0",
    ),
    "warmup_cosine_decay-warmup-fraction-above-1": (
        lambda: S.warmup_cosine_decay(1.0, 1.5, 100),
        r"warmup_steps.*\[0, 1\]",
    ),
    "hard_restarts-num_cycles-0": (
        lambda: S.cosine_with_hard_restarts(1.0, 5, 100, 0),
        r"num_cycles.*>= 1",
    ),
    "inverse_sqrt-warmup-negative": (lambda: S.inverse_sqrt(1.0, -2), r"warmup_steps.*>= 0"),
    "inverse_sqrt-timescale-0": (lambda: S.inverse_sqrt(1.0, 10, timescale=0), r"timescale.*>= 1"),
    "wsd-unknown-decay_type": (
        lambda: S.warmup_stable_decay(1.0, 100, 10, 20, "exponential"),
        r"decay_type.*linear.*cosine.*1-sqrt",
    ),
    "wsd-decay-too-long": (lambda: S.warmup_stable_decay(1.0, 100, 10, 95), r"decay_steps.*\[1, "),
    "wsd-decay-0": (lambda: S.warmup_stable_decay(1.0, 100, 10, 0), r"decay_steps.*\[1, "),
    "wsd-decay-fraction-negative": (
        lambda: S.warmup_stable_decay(1.0, 100, 10, -0.2),
        r"decay_steps.*\[0, 1\]",
    ),
    "warmup_cosine_decay-peak-negative": (
        lambda: S.warmup_cosine_decay(-0.1, 10, 100),
        r"peak_value must be a finite number >= 0, got -0.1",
    ),
    "warmup_cosine_decay-num_cycles-negative": (
        lambda: S.warmup_cosine_decay(0.1, 10, 100, num_cycles=-1),
        r"num_cycles must be a finite number > 0, got -1",
    ),
    "wsd-end-negative": (
        lambda: S.warmup_stable_decay(1.0, 100, 10, 20, end_value=-1e-3),
        r"end_value must be a finite number >= 0",
    ),
    "hard_restarts-init-inf": (
        lambda: S.cosine_with_hard_restarts(1.0, 10, 100, init_value=INF),
        r"init_value must be a finite number >= 0, got inf",
    ),
    "inverse_sqrt-peak-numpy-nan": (
        lambda: S.inverse_sqrt(np.float32("nan"), 10),
        r"peak_value must be a finite number >= 0",
    ),
    "warmup_cosine_fraction-fraction-1": (
        lambda: S.warmup_cosine_fraction(1.0, 1.0, 100),
        r"warmup_fraction must be a finite number in \[0, 1\), got 1.0",
    ),
    "warmup_cosine_fraction-total_steps-0": (
        lambda: S.warmup_cosine_fraction(1.0, 0.1, 0),
        r"total_steps must be an integer >= 1",
    ),
    "timm_cosine-warmup_prefix-string": (
        lambda: S.timm_cosine(1.0, 100, warmup_t=5, warmup_prefix="no"),
        r"warmup_prefix must be True or False, got 'no'",
    ),
    "timm_cosine-cycle_limit-0": (
        lambda: S.timm_cosine(1.0, 100, cycle_limit=0),
        r"cycle_limit must be an integer >= 1",
    ),
    "timm_cosine-cycle_mul-below-1": (
        lambda: S.timm_cosine(1.0, 100, cycle_mul=0.5),
        r"cycle_mul must be a finite number >= 1",
    ),
    "timm_cosine-t_initial-0": (
        lambda: S.timm_cosine(1.0, 0),
        r"t_initial must be an integer >= 1",
    ),
    "timm_cosine-noise_range": (
        lambda: S.timm_cosine(1.0, 100, noise_range_t=(10, 5)),
        r"noise_range_t\[1\] must be an integer >= 11",
    ),
    "warmup_cosine_decay-exponent-negative": (
        lambda: S.warmup_cosine_decay(1.0, 10, 100, exponent=-1.0),
        r"exponent must be a finite number > 0",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_naming_argument_and_range(name):
    check_raises(*ERRORS[name])


# ------------------------------------------------------------------------------------------------
# Peer checks and restart values.
# ------------------------------------------------------------------------------------------------


def test_wsd_matches_hf_min_lr_ratio_warmup_and_floor():
    # HF warms up from min_lr_ratio * lr (not from 0) and decays to the same ratio.
    peak, ratio, total, w, d = 0.8, 0.125, 100, 10, 30
    steps = np.arange(0, 120)
    for decay_type in ("linear", "cosine", "1-sqrt"):
        got = lrs(
            S.warmup_stable_decay(peak, total, w, d, decay_type, peak * ratio, peak * ratio), steps
        )
        want = [
            f32(peak)
            * R.hf_wsd_lambda(
                int(s),
                num_warmup_steps=w,
                num_stable_steps=total - w - d,
                num_decay_steps=d,
                warmup_type="linear",
                decay_type=decay_type,
                min_lr_ratio=ratio,
            )
            for s in steps
        ]
        assert_matches(got, want)


@pytest.mark.parametrize(
    ("hf_lambda", "make", "kwargs"),
    [
        (R.hf_linear_with_warmup_lambda, lambda: S.warmup_linear_decay(0.5, 8, 64), {}),
        (
            R.hf_cosine_with_warmup_lambda,
            lambda: S.warmup_cosine_decay(0.5, 8, 64),
            dict(num_cycles=0.5),
        ),
        (
            R.hf_cosine_with_warmup_lambda,
            lambda: S.warmup_cosine_decay(0.5, 8, 64, 0.05),
            dict(num_cycles=0.5, min_lr_rate=0.1),
        ),
        (
            R.hf_hard_restarts_lambda,
            lambda: S.cosine_with_hard_restarts(0.5, 8, 64, 4),
            dict(num_cycles=4),
        ),
    ],
    ids=["linear", "cosine", "cosine_with_min_lr", "cosine_with_restarts"],
)
def test_hf_recipes_equal_base_lr_times_lambda(hf_lambda, make, kwargs):
    steps = np.arange(0, 65)  # HF's cosine lambda keeps oscillating past num_training_steps
    want = [
        0.5 * hf_lambda(int(s), num_warmup_steps=8, num_training_steps=64, **kwargs) for s in steps
    ]
    assert_matches(lrs(make(), steps), want)


def test_inverse_sqrt_matches_hf_lambda():
    steps = np.arange(0, 300)
    for w, ts in ((10, None), (16, 100), (0, None)):
        want = [
            0.5 * R.hf_inverse_sqrt_lambda(int(s), num_warmup_steps=w, timescale=ts) for s in steps
        ]
        assert_matches(lrs(S.inverse_sqrt(0.5, w, ts), steps), want)


def test_hard_restarts_return_to_peak():
    hard = S.cosine_with_hard_restarts(1.0, 10, 100, num_cycles=3)
    for s in (10, 40, 70):
        assert float(hard(s)) == pytest.approx(1.0, rel=1e-6)
        assert float(hard(s - 1)) < 0.01 or s == 10
    assert float(hard(100)) == pytest.approx(0.0, abs=1e-7)


def test_warmup_cosine_decay_exponent_matches_optax():
    steps = np.arange(0, 120)
    theirs = optax.warmup_cosine_decay_schedule(0.0, 1.5, 10, 100, 0.125, exponent=2.0)
    want = np.asarray(jax.vmap(theirs)(jnp.asarray(steps, jnp.float32)))  # optax needs floats
    assert_matches(lrs(S.warmup_cosine_decay(1.5, 10, 100, 0.125, exponent=2.0), steps), want)


def test_timm_cosine_with_noise_is_the_clean_schedule_times_lr_noise():
    clean = S.timm_cosine(0.5, 40, 0.01, warmup_t=5)
    noisy = S.timm_cosine(0.5, 40, 0.01, warmup_t=5, noise_range_t=(10, 30), noise_seed=4)
    steps = np.arange(50)
    got, base = lrs(noisy, steps), lrs(clean, steps)
    np.testing.assert_array_equal(got, lrs(S.lr_noise(clean, (10, 30), seed=4), steps))
    np.testing.assert_array_equal(got[:10], base[:10])
    np.testing.assert_array_equal(got[30:], base[30:])
    assert np.all(np.abs(got[10:30] / base[10:30] - 1) < 0.67)
