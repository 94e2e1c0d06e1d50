"""Tests for lrjax.schedules._decays against float64 references of PyTorch, Keras, optax,
scikit-learn and timm (tests/schedules_reference.py).
"""

import math

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
    check_non_increasing,
    check_raises,
    f32,
    lrs,
)

from lrjax import schedules as S

CASES = [
    # 1. constant
    Case(
        "constant",
        lambda p: S.constant(p["value"]),
        lambda t, p: R.constant(t, p["value"]),
        dict(value=0.3),
        horizon=20,
        edges=(0, 1000),
        constant_tail=True,
    ),
    # 2. linear: optax linear_schedule; PyTorch LinearLR as factors of a base LR
    Case(
        "linear/optax",
        lambda p: S.linear(p["init_value"], p["end_value"], p["steps"]),
        lambda t, p: R.optax_linear(t, p["init_value"], p["end_value"], p["steps"]),
        dict(init_value=1.0, end_value=0.1, steps=50),
        horizon=60,
        edges=(0, 49, 50, 51, 1000),
        constant_tail=True,
    ),
    Case(
        "linear/optax-begin",
        lambda p: S.linear(
            p["init_value"], p["end_value"], p["steps"], transition_begin=p["begin"]
        ),
        lambda t, p: R.optax_linear(t, p["init_value"], p["end_value"], p["steps"], p["begin"]),
        dict(init_value=0.01, end_value=0.5, steps=40, begin=10),
        horizon=60,
        edges=(0, 9, 10, 11, 49, 50, 51),
        constant_tail=True,
    ),
    Case(
        "linear/torch-LinearLR",
        lambda p: S.linear(p["base"] * p["start"], p["base"] * p["end"], p["iters"]),
        lambda t, p: R.torch_linear_lr(t, p["base"], p["start"], p["end"], p["iters"]),
        dict(base=0.05, start=0.05, end=1.0, iters=40),
        horizon=60,
        edges=(0, 1, 39, 40, 41),
        constant_tail=True,
    ),
    # 3. step, multi-step, piecewise constant
    Case(
        "step/torch-StepLR",
        lambda p: S.step_decay(p["init_value"], p["step_size"], p["gamma"]),
        lambda t, p: R.torch_step_lr(t, p["init_value"], p["step_size"], p["gamma"]),
        dict(init_value=0.05, step_size=30, gamma=0.1),
        horizon=130,
        edges=(0, 29, 30, 31, 59, 60, 89, 90),
    ),
    Case(
        "step/torch-StepLR-half",
        lambda p: S.step_decay(p["init_value"], p["step_size"], p["gamma"]),
        lambda t, p: R.torch_step_lr(t, p["init_value"], p["step_size"], p["gamma"]),
        dict(init_value=2.0, step_size=7, gamma=0.5),
        horizon=100,
        edges=(6, 7, 8, 13, 14),
    ),
    Case(
        "multistep/torch-MultiStepLR",
        lambda p: S.multistep_decay(p["init_value"], p["milestones"], p["gamma"]),
        lambda t, p: R.torch_multistep_lr(t, p["init_value"], p["milestones"], p["gamma"]),
        dict(init_value=0.05, milestones=(30, 80), gamma=0.1),
        horizon=120,
        edges=(0, 29, 30, 31, 79, 80, 81),
        constant_tail=True,
    ),
    Case(
        "multistep/torch-MultiStepLR-adjacent",
        lambda p: S.multistep_decay(p["init_value"], p["milestones"], p["gamma"]),
        lambda t, p: R.torch_multistep_lr(t, p["init_value"], p["milestones"], p["gamma"]),
        dict(init_value=1.0, milestones=(1, 5, 6, 20), gamma=0.5),
        horizon=40,
        edges=(0, 1, 2, 4, 5, 6, 7, 19, 20, 21),
        constant_tail=True,
    ),
    Case(
        "piecewise_constant/keras",
        lambda p: S.piecewise_constant(p["boundaries"], p["values"]),
        lambda t, p: R.keras_piecewise_constant(t, p["boundaries"], p["values"]),
        dict(boundaries=(10, 25, 40), values=(1.0, 0.5, 0.1, 0.01)),
        horizon=60,
        edges=(0, 9, 10, 11, 24, 25, 26, 39, 40, 41),
        constant_tail=True,
    ),
    Case(
        "piecewise_constant/keras-docstring",
        lambda p: S.piecewise_constant(p["boundaries"], p["values"]),
        lambda t, p: R.keras_piecewise_constant(t, p["boundaries"], p["values"]),
        dict(boundaries=(100000, 110000), values=(1.0, 0.5, 0.1)),
        horizon=20,
        edges=(99999, 100000, 100001, 109999, 110000, 110001, 200000),
        constant_tail=True,
    ),
    Case(
        "piecewise_constant/keras-boundary-0",
        lambda p: S.piecewise_constant(p["boundaries"], p["values"]),
        lambda t, p: R.keras_piecewise_constant(t, p["boundaries"], p["values"]),
        dict(boundaries=(0, 3), values=(2.0, 1.0, 0.5)),
        horizon=10,
        edges=(0, 1, 2, 3, 4),
        constant_tail=True,
    ),
    # 4. exponential: Keras ExponentialDecay (+ optax's transition_begin / end_value)
    Case(
        "exponential/keras",
        lambda p: S.exponential_decay(p["init_value"], p["decay_rate"], p["decay_steps"]),
        lambda t, p: R.keras_optax_exponential(
            t, p["init_value"], p["decay_rate"], p["decay_steps"]
        ),
        dict(init_value=0.1, decay_rate=0.96, decay_steps=10),
        horizon=200,
        edges=(0, 9, 10, 11, 100),
    ),
    Case(
        "exponential/keras-staircase",
        lambda p: S.exponential_decay(
            p["init_value"], p["decay_rate"], p["decay_steps"], staircase=True
        ),
        lambda t, p: R.keras_optax_exponential(
            t, p["init_value"], p["decay_rate"], p["decay_steps"], True
        ),
        dict(init_value=0.1, decay_rate=0.5, decay_steps=10),
        horizon=120,
        edges=(0, 9, 10, 11, 19, 20, 21),
    ),
    Case(
        "exponential/optax-floor-begin",
        lambda p: S.exponential_decay(
            p["init_value"],
            p["decay_rate"],
            p["decay_steps"],
            end_value=p["end_value"],
            transition_begin=p["begin"],
        ),
        lambda t, p: R.keras_optax_exponential(
            t, p["init_value"], p["decay_rate"], p["decay_steps"], False, p["end_value"], p["begin"]
        ),
        dict(init_value=1.0, decay_rate=0.7, decay_steps=5, end_value=0.05, begin=20),
        horizon=100,
        edges=(0, 19, 20, 21, 62, 63, 64),
        constant_tail=True,
    ),
    Case(
        "exponential/optax-growth-ceiling",
        lambda p: S.exponential_decay(
            p["init_value"],
            p["decay_rate"],
            p["decay_steps"],
            staircase=True,
            end_value=p["end_value"],
        ),
        lambda t, p: R.keras_optax_exponential(
            t, p["init_value"], p["decay_rate"], p["decay_steps"], True, p["end_value"]
        ),
        dict(init_value=0.01, decay_rate=1.5, decay_steps=4, end_value=0.5),
        horizon=60,
        edges=(0, 3, 4, 35, 36, 39, 40),
        constant_tail=True,
    ),
    Case(
        "exponential/torch-ExponentialLR",
        lambda p: S.exponential_decay(p["init_value"], p["gamma"], 1),
        lambda t, p: R.torch_exponential_lr(t, p["init_value"], p["gamma"]),
        dict(init_value=0.1, gamma=0.97),
        horizon=100,
        edges=(0, 1, 2),
    ),
    # 5. inverse time (Keras), scikit-learn invscaling / optimal
    Case(
        "inverse_time/keras",
        lambda p: S.inverse_time_decay(p["init_value"], p["decay_rate"], p["decay_steps"]),
        lambda t, p: R.keras_inverse_time(t, p["init_value"], p["decay_rate"], p["decay_steps"]),
        dict(init_value=0.1, decay_rate=0.5, decay_steps=1),
        horizon=100,
        edges=(0, 1),
    ),
    Case(
        "inverse_time/keras-staircase",
        lambda p: S.inverse_time_decay(p["init_value"], p["decay_rate"], p["decay_steps"], True),
        lambda t, p: R.keras_inverse_time(
            t, p["init_value"], p["decay_rate"], p["decay_steps"], True
        ),
        dict(init_value=1.0, decay_rate=2.0, decay_steps=10),
        horizon=100,
        edges=(0, 9, 10, 11, 19, 20),
    ),
    Case(
        "invscaling/sklearn",
        lambda p: S.invscaling(p["eta0"], p["power_t"]),
        lambda t, p: R.sklearn_invscaling(t, p["eta0"], p["power_t"]),
        dict(eta0=0.01, power_t=0.25),
        horizon=200,
        edges=(0, 1, 2),
    ),
    Case(
        "invscaling/sklearn-sqrt",
        lambda p: S.invscaling(p["eta0"], p["power_t"]),
        lambda t, p: R.sklearn_invscaling(t, p["eta0"], p["power_t"]),
        dict(eta0=1.0, power_t=0.5),
        horizon=100,
        edges=(0, 1, 2),
    ),
    Case(
        "optimal/sklearn-heuristic-small-alpha",
        lambda p: S.optimal(p["alpha"]),
        lambda t, p: R.sklearn_optimal(t, p["alpha"]),
        dict(alpha=1e-4),
        horizon=200,
        edges=(0, 1, 2),
    ),
    Case(
        "optimal/sklearn-heuristic-alpha-1e-2",
        lambda p: S.optimal(p["alpha"]),
        lambda t, p: R.sklearn_optimal(t, p["alpha"]),
        dict(alpha=1e-2),
        horizon=100,
        edges=(0, 1, 2),
    ),
    Case(
        "optimal/sklearn-heuristic-large-alpha",
        lambda p: S.optimal(p["alpha"]),
        lambda t, p: R.sklearn_optimal(t, p["alpha"]),
        dict(alpha=4.0),
        horizon=100,
        edges=(0, 1, 2),
    ),
    Case(
        "optimal/sklearn-t0",
        lambda p: S.optimal(p["alpha"], t0=p["t0"]),
        lambda t, p: R.sklearn_optimal(t, p["alpha"], p["t0"]),
        dict(alpha=0.01, t0=50.0),
        horizon=100,
        edges=(0, 1, 2),
    ),
    # 6. polynomial: Keras PolynomialDecay (incl. cycle=True), PyTorch PolynomialLR
    Case(
        "polynomial/keras",
        lambda p: S.polynomial_decay(p["init_value"], p["end_value"], p["decay_steps"], p["power"]),
        lambda t, p: R.keras_polynomial(
            t, p["init_value"], p["end_value"], p["decay_steps"], p["power"]
        ),
        dict(init_value=0.1, end_value=0.01, decay_steps=100, power=0.5),
        horizon=130,
        edges=(0, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "polynomial/keras-cycle",
        lambda p: S.polynomial_decay(
            p["init_value"], p["end_value"], p["decay_steps"], p["power"], cycle=True
        ),
        lambda t, p: R.keras_polynomial(
            t, p["init_value"], p["end_value"], p["decay_steps"], p["power"], cycle=True
        ),
        dict(init_value=1.0, end_value=0.1, decay_steps=20, power=2.0),
        horizon=100,
        edges=(0, 1, 19, 20, 21, 39, 40, 41, 60, 61),
    ),
    Case(
        "polynomial/torch-PolynomialLR",
        lambda p: S.polynomial_decay(p["init_value"], 0.0, p["total_iters"], p["power"]),
        lambda t, p: R.torch_polynomial_lr(t, p["init_value"], p["total_iters"], p["power"]),
        dict(init_value=0.05, total_iters=50, power=0.9),
        horizon=70,
        edges=(0, 1, 49, 50, 51),
        constant_tail=True,
    ),
    # 7. cosine: PyTorch CosineAnnealingLR on [0, T], Keras CosineDecay past T
    Case(
        "cosine/torch-CosineAnnealingLR",
        lambda p: S.cosine_decay(p["init_value"], p["decay_steps"], p["end_value"]),
        lambda t, p: R.cosine_to_floor(t, p["init_value"], p["decay_steps"], p["end_value"]),
        dict(init_value=1.0, decay_steps=100, end_value=0.1),
        horizon=130,
        edges=(0, 1, 50, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "cosine/torch-CosineAnnealingLR-zero-floor",
        lambda p: S.cosine_decay(p["init_value"], p["decay_steps"]),
        lambda t, p: R.cosine_to_floor(t, p["init_value"], p["decay_steps"], 0.0),
        dict(init_value=0.5, decay_steps=37),
        horizon=50,
        edges=(0, 36, 37, 38),
        constant_tail=True,
    ),
    Case(
        "cosine/keras-CosineDecay-alpha",
        lambda p: S.cosine_decay(p["init_value"], p["decay_steps"], p["init_value"] * p["alpha"]),
        lambda t, p: R.keras_cosine_decay(t, p["init_value"], p["decay_steps"], p["alpha"]),
        dict(init_value=2.0, decay_steps=60, alpha=0.05),
        horizon=80,
        edges=(0, 59, 60, 61),
        constant_tail=True,
    ),
    Case(
        "cosine/optax-exponent",
        lambda p: S.cosine_decay(p["init_value"], 60, p["end_value"], p["exponent"]),
        lambda t, p: R.optax_cosine(
            t, p["init_value"], 60, p["end_value"] / p["init_value"], p["exponent"]
        ),
        dict(init_value=2.0, end_value=0.25, exponent=2.5),
        horizon=80,
        edges=(0, 1, 30, 59, 60, 61),
        constant_tail=True,
    ),
    # 15. tanh: timm TanhLRScheduler
    Case(
        "tanh/timm",
        lambda p: S.tanh_decay(p["init_value"], p["total_steps"]),
        lambda t, p: R.timm_tanh(t, p["init_value"], p["total_steps"]),
        dict(init_value=1.0, total_steps=100),
        horizon=130,
        edges=(0, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "tanh/timm-bounds-floor",
        lambda p: S.tanh_decay(p["init_value"], p["total_steps"], p["end"], p["lb"], p["ub"]),
        lambda t, p: R.timm_tanh(t, p["init_value"], p["total_steps"], p["end"], p["lb"], p["ub"]),
        dict(init_value=0.5, total_steps=64, end=0.01, lb=-4.0, ub=4.0),
        horizon=80,
        edges=(0, 63, 64, 65),
        constant_tail=True,
    ),
]

HYPER = [
    (S.constant, {}, "value", [0.1, 0.5, 2.0]),
    (
        S.linear,
        dict(end_value=0.1, transition_steps=20, transition_begin=3),
        "init_value",
        [1.0, 0.5, 2.0],
    ),
    (S.linear, dict(init_value=1.0, transition_steps=20), "end_value", [0.0, 0.1, 3.0]),
    (S.step_decay, dict(step_size=7, gamma=0.5), "init_value", [1.0, 0.3]),
    (S.step_decay, dict(init_value=1.0, step_size=7), "gamma", [0.1, 0.5, 0.9]),
    (S.multistep_decay, dict(milestones=[5, 12], gamma=0.5), "init_value", [1.0, 0.3]),
    (S.multistep_decay, dict(init_value=1.0, milestones=[5, 12]), "gamma", [0.1, 0.5, 0.9]),
    (
        S.piecewise_constant,
        dict(boundaries=[5, 12]),
        "values",
        [[1.0, 0.5, 0.1], [2.0, 1.0, 0.0], [0.3, 0.3, 0.3]],
    ),
    (S.exponential_decay, dict(decay_rate=0.9, decay_steps=3), "init_value", [1.0, 0.1]),
    (
        S.exponential_decay,
        dict(init_value=1.0, decay_steps=3, end_value=0.3),
        "decay_rate",
        [0.5, 0.9, 1.2],
    ),
    (
        S.exponential_decay,
        dict(init_value=1.0, decay_rate=0.8, decay_steps=3),
        "end_value",
        [0.0, 0.2, 0.5],
    ),
    (S.inverse_time_decay, dict(decay_rate=0.5, decay_steps=2), "init_value", [1.0, 0.1]),
    (S.inverse_time_decay, dict(init_value=1.0, decay_steps=2), "decay_rate", [0.1, 0.5, 2.0]),
    (S.invscaling, dict(power_t=0.25), "init_value", [1.0, 0.01]),
    (S.invscaling, dict(init_value=0.1), "power_t", [0.25, 0.5, 1.0]),
    (S.optimal, {}, "alpha", [1e-4, 1e-2, 4.0]),  # t0=None: the heuristic itself is traced
    (S.optimal, dict(t0=100.0), "alpha", [1e-4, 1e-2]),
    (S.optimal, dict(alpha=0.01), "t0", [10.0, 100.0, 1000.0]),
    (S.polynomial_decay, dict(end_value=0.1, decay_steps=20, power=2.0), "init_value", [1.0, 0.5]),
    (S.polynomial_decay, dict(init_value=1.0, decay_steps=20, power=2.0), "end_value", [0.0, 0.1]),
    (
        S.polynomial_decay,
        dict(init_value=1.0, end_value=0.1, decay_steps=20, cycle=True),
        "power",
        [0.5, 1.0, 3.0],
    ),
    (S.cosine_decay, dict(decay_steps=20, end_value=0.1), "init_value", [1.0, 0.5]),
    (S.cosine_decay, dict(init_value=1.0, decay_steps=20), "end_value", [0.0, 0.1, 0.9]),
    (S.cosine_decay, dict(init_value=1.0, decay_steps=20), "exponent", [1.0, 0.5, 3.0]),
    (S.tanh_decay, dict(total_steps=30), "init_value", [1.0, 0.2]),
    (S.tanh_decay, dict(init_value=1.0, total_steps=30), "end_value", [0.0, 0.1]),
    (S.tanh_decay, dict(init_value=1.0, total_steps=30), "lower_bound", [-7.0, -3.0]),
    (S.tanh_decay, dict(init_value=1.0, total_steps=30), "upper_bound", [3.0, 5.0]),
]


class TestContract(ScheduleContract):
    CASES = tuple(CASES)
    HYPER = tuple(HYPER)


# ------------------------------------------------------------------------------------------------
# Shape properties.
# ------------------------------------------------------------------------------------------------

DECAYS = {
    "linear": (lambda: S.linear(1.0, 0.1, 50), 0, 60),
    "step_decay": (lambda: S.step_decay(1.0, 10, 0.5), 0, 60),
    "multistep_decay": (lambda: S.multistep_decay(1.0, [5, 17], 0.3), 0, 30),
    "piecewise_constant": (lambda: S.piecewise_constant([3, 9], [1.0, 0.5, 0.2]), 0, 20),
    "exponential_decay": (lambda: S.exponential_decay(1.0, 0.8, 4, end_value=0.05), 0, 100),
    "inverse_time_decay": (lambda: S.inverse_time_decay(1.0, 0.5, 3, True), 0, 60),
    "invscaling": (lambda: S.invscaling(1.0, 0.5), 0, 200),
    "optimal": (lambda: S.optimal(1e-3), 0, 200),
    "polynomial_decay": (lambda: S.polynomial_decay(1.0, 0.1, 40, 3.0), 0, 60),
    "cosine_decay": (lambda: S.cosine_decay(1.0, 40, 0.1), 0, 60),
    "tanh_decay": (lambda: S.tanh_decay(1.0, 50, 0.01), 0, 70),
}


@pytest.mark.parametrize("name", list(DECAYS))
def test_non_increasing_decay(name):
    check_non_increasing(*DECAYS[name])


JOINS = {
    "cosine_decay-end": (lambda: S.cosine_decay(1.0, 40, 0.1), [40]),
    "polynomial-end": (lambda: S.polynomial_decay(1.0, 0.1, 40), [40]),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_continuity_across_joins(name):
    check_continuous(*JOINS[name])


# ------------------------------------------------------------------------------------------------
# Bad input: each documented error names the argument and its allowed range.
# ------------------------------------------------------------------------------------------------

ERRORS = {
    "linear-transition_steps-0": (lambda: S.linear(1.0, 0.0, 0), r"transition_steps.*>= 1"),
    "linear-transition_begin-negative": (
        lambda: S.linear(1.0, 0.0, 10, transition_begin=-1),
        r"transition_begin.*>= 0",
    ),
    "step_decay-step_size-0": (lambda: S.step_decay(1.0, 0), r"step_size.*>= 1"),
    "step_decay-step_size-negative": (lambda: S.step_decay(1.0, -5), r"step_size.*>= 1"),
    "step_decay-step_size-float": (lambda: S.step_decay(1.0, 2.5), r"step_size.*integer"),
    "multistep-unsorted": (lambda: S.multistep_decay(1.0, [30, 10]), r"milestones.*increasing"),
    "multistep-repeated": (lambda: S.multistep_decay(1.0, [10, 10]), r"milestones.*increasing"),
    "multistep-milestone-0": (lambda: S.multistep_decay(1.0, [0, 10]), r"milestones.*>= 1"),
    "piecewise-unsorted": (
        lambda: S.piecewise_constant([10, 5], [1.0, 0.5, 0.1]),
        r"boundaries.*increasing",
    ),
    "piecewise-negative-boundary": (
        lambda: S.piecewise_constant([-1, 5], [1.0, 0.5, 0.1]),
        r"boundaries.*>= 0",
    ),
    "piecewise-length-mismatch": (
        lambda: S.piecewise_constant([10, 20], [1.0, 0.5]),
        r"values.*len\(boundaries\) \+ 1",
    ),
    "exponential-decay_steps-0": (lambda: S.exponential_decay(1.0, 0.5, 0), r"decay_steps.*>= 1"),
    "exponential-transition_begin-negative": (
        lambda: S.exponential_decay(1.0, 0.5, 5, transition_begin=-3),
        r"transition_begin.*>= 0",
    ),
    "inverse_time-decay_steps-0": (lambda: S.inverse_time_decay(1.0, 0.5, 0), r"decay_steps.*>= 1"),
    "polynomial-decay_steps-0": (lambda: S.polynomial_decay(1.0, 0.0, 0), r"decay_steps.*>= 1"),
    "cosine-decay_steps-0": (lambda: S.cosine_decay(1.0, 0), r"decay_steps.*>= 1"),
    "cosine-decay_steps-negative": (lambda: S.cosine_decay(1.0, -10), r"decay_steps.*>= 1"),
    "tanh-total_steps-0": (lambda: S.tanh_decay(1.0, 0), r"total_steps.*>= 1"),
    "cosine_decay-init-nan": (
        lambda: S.cosine_decay(NAN, 100),
        r"init_value must be a finite number >= 0, got nan",
    ),
    "cosine_decay-init-inf": (
        lambda: S.cosine_decay(INF, 100),
        r"init_value must be a finite number >= 0, got inf",
    ),
    "step_decay-gamma-nan": (
        lambda: S.step_decay(0.1, 10, gamma=NAN),
        r"gamma must be a finite number > 0, got nan",
    ),
    "step_decay-gamma-negative": (
        lambda: S.step_decay(0.1, 10, gamma=-0.5),
        r"gamma must be a finite number > 0, got -0.5",
    ),
    "exponential_decay-decay_rate-negative": (
        lambda: S.exponential_decay(0.1, decay_rate=-0.5, decay_steps=10),
        r"decay_rate must be a finite number > 0, got -0.5",
    ),
    "polynomial_decay-power-negative": (
        lambda: S.polynomial_decay(0.1, 0.0, 100, power=-1),
        r"power must be a finite number > 0, got -1",
    ),
    "optimal-alpha-0": (lambda: S.optimal(alpha=0.0), r"alpha must be a finite number > 0"),
    "optimal-alpha-negative": (
        lambda: S.optimal(alpha=-1e-4),
        r"alpha must be a finite number > 0",
    ),
    "inverse_time_decay-decay_rate-negative": (
        lambda: S.inverse_time_decay(0.1, decay_rate=-1.0, decay_steps=1),
        r"decay_rate must be a finite number >= 0, got -1.0",
    ),
    "cosine_decay-vector-init": (
        lambda: S.cosine_decay([0.1, 0.2], 100),
        r"init_value must be a scalar, got shape \(2,\).*jax\.vmap",
    ),
    # The same rule for the other factories' ranges.
    "linear-end-negative": (lambda: S.linear(1.0, -0.1, 10), r"end_value must be .* >= 0"),
    "multistep-gamma-0": (
        lambda: S.multistep_decay(1.0, [5], gamma=0.0),
        r"gamma must be a finite number > 0, got 0.0",
    ),
    "piecewise-value-negative": (
        lambda: S.piecewise_constant([5], [1.0, -0.5]),
        r"values\[1\] must be a finite number >= 0, got -0.5",
    ),
    "exponential-end_value-nan": (
        lambda: S.exponential_decay(1.0, 0.5, 10, end_value=NAN),
        r"end_value must be a finite number >= 0, got nan",
    ),
    "invscaling-power_t-inf": (
        lambda: S.invscaling(0.1, power_t=INF),
        r"power_t must be a finite number, got inf",
    ),
    "optimal-t0-0": (lambda: S.optimal(0.01, t0=0.0), r"t0 must be a finite number > 0"),
    "tanh-lower_bound-nan": (
        lambda: S.tanh_decay(1.0, 100, lower_bound=NAN),
        r"lower_bound must be a finite number, got nan",
    ),
    # Inputs that were accepted silently or failed deep (issue 19, item 6).
    "multistep-milestones-int": (
        lambda: S.multistep_decay(0.1, 30),
        r"milestones must be a list of increasing integer steps \(e.g. \[30, 80\]\), got 30",
    ),
    "multistep-milestones-string": (
        lambda: S.multistep_decay(0.1, "30,80"),
        r"milestones must be a list of increasing integer steps",
    ),
    "piecewise-boundaries-int": (
        lambda: S.piecewise_constant(10, [1.0, 0.5]),
        r"boundaries must be a list of increasing integer steps",
    ),
    "exponential-staircase-string": (
        lambda: S.exponential_decay(1.0, 0.5, 10, staircase="no"),
        r"staircase must be True or False, got 'no'",
    ),
    "inverse_time-staircase-string": (
        lambda: S.inverse_time_decay(1.0, 0.5, 10, staircase="no"),
        r"staircase must be True or False, got 'no'",
    ),
    "polynomial-cycle-string": (
        lambda: S.polynomial_decay(1.0, 0.0, 10, cycle="False"),
        r"cycle must be True or False, got 'False'",
    ),
    "polynomial-cycle-int": (
        lambda: S.polynomial_decay(1.0, 0.0, 10, cycle=1),
        r"cycle must be True or False, got 1",
    ),
    "cosine-exponent-0": (
        lambda: S.cosine_decay(1.0, 10, exponent=0.0),
        r"exponent must be a finite number > 0",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_naming_argument_and_range(name):
    check_raises(*ERRORS[name])


# ------------------------------------------------------------------------------------------------
# Peer checks and restart values.
# ------------------------------------------------------------------------------------------------


def test_sklearn_optimal_t0_heuristic_is_sklearn_s():
    # _plain_sgd: typw = sqrt(1/sqrt(alpha)); eta0 = typw / max(1, hinge.cy_gradient(1, -typw))
    # and the hinge gradient there is -1, so eta0 = typw: the first update uses typw, also
    # for alpha < 1 (where typw > 1).
    for alpha in (1e-6, 1e-4, 1e-2, 1.0, 4.0):
        typw = math.sqrt(1.0 / math.sqrt(alpha))
        assert R.sklearn_optimal_t0(alpha) == pytest.approx(1.0 / (typw * alpha))
        assert float(S.optimal(alpha)(0)) == pytest.approx(typw, rel=1e-6)


def _sklearn_etas(learning_rate: str, n: int, **kwargs) -> np.ndarray:
    """The eta scikit-learn used for each of its first n samples, read back from coef_.

    Each sample has its own one-hot feature and w starts at 0, so the hinge margin is 0, the
    loss gradient is -y, and sample k leaves w_k = eta_k * y_k (no penalty, no intercept).
    """
    linear_model = pytest.importorskip("sklearn.linear_model")
    x = np.eye(n)
    y = np.where(np.arange(n) % 2 == 0, 1, -1)
    model = linear_model.SGDClassifier(
        loss="hinge",
        penalty=None,
        learning_rate=learning_rate,
        fit_intercept=False,
        shuffle=False,
        max_iter=1,
        tol=None,
        **kwargs,
    )
    model.fit(x, y)
    return model.coef_.ravel() * y


@pytest.mark.parametrize("alpha", [1e-4, 0.3, 4.0])
def test_optimal_matches_scikit_learn_itself(alpha):
    etas = _sklearn_etas("optimal", 50, alpha=alpha)
    assert_matches(lrs(S.optimal(alpha), np.arange(50)), etas)


def test_invscaling_matches_scikit_learn_itself():
    etas = _sklearn_etas("invscaling", 50, eta0=0.5, power_t=0.3, alpha=1e-4)
    assert_matches(lrs(S.invscaling(0.5, 0.3), np.arange(50)), etas)


@pytest.mark.parametrize(
    ("decay_rate", "decay_steps"), [(0.999, 1), (0.999**100, 100)], ids=["per-step", "per-100"]
)
def test_long_exponential_decay_keeps_relative_precision(decay_rate, decay_steps):
    # 10k steps of gamma = 0.999 span e^-10. float32 rounds the exponent t / decay_steps, which
    # costs about |t / decay_steps * ln(rate)| * 2**-24 relative (6e-7 here for decay_steps=100);
    # the tail must still match PyTorch ExponentialLR / Keras ExponentialDecay to 1e-6.
    steps = np.arange(0, 10_001, 7)
    want = R.keras_optax_exponential(steps, 1.0, f32(decay_rate), decay_steps)
    if decay_steps == 1:
        want = R.torch_exponential_lr(steps, 1.0, f32(decay_rate))
    assert_matches(lrs(S.exponential_decay(1.0, decay_rate, decay_steps), steps), want)


def test_cosine_exponent_matches_optax_cosine_decay_schedule():
    steps = np.arange(0, 130)
    for alpha, exponent in ((0.0, 2.0), (0.1, 0.5), (0.25, 1.0)):
        theirs = optax.cosine_decay_schedule(2.0, 100, alpha=alpha, exponent=exponent)
        ours = S.cosine_decay(2.0, 100, 2.0 * alpha, exponent)
        # optax's own closure mixes a Python float with the count: give it float32 steps.
        want = np.asarray(jax.vmap(theirs)(jnp.asarray(steps, jnp.float32)))
        assert_matches(lrs(ours, steps), want, scale=2.0)
