"""Tests for lrjax.schedules against independent float64 references of each peer library.

The references live in ``schedules_reference.py`` and never import lrjax. Values are compared
with ``rtol=1e-6`` plus an absolute term of four float32 ulps of the schedule's largest value
(see ``assert_matches``); step ``t`` is the optax count, the LR used by the update at count
``t``. Traced magnitudes reach the references rounded to float32, as lrjax receives them.
"""

import dataclasses
import functools
import inspect
import math
import pathlib
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import schedules_reference as R

import lrjax
from lrjax import schedules as S

GIANT_PY = 2**31 + 5
INT32_MAX = int(jnp.iinfo(jnp.int32).max)


def f32(x: float) -> float:
    """The float64 value of ``x`` rounded to float32: what a traced float32 magnitude holds."""
    return float(np.float32(x))


def assert_matches(got, want, scale: float | None = None, rtol: float = 1e-6) -> None:
    """float32 ``got`` against float64 ``want``: ``rtol`` plus four float32 ulps of the peak.

    ``scale`` is the schedule's largest |value| (default: that of ``want``). The absolute term
    only matters where a schedule passes near zero: there terms of size ~peak are combined in
    float32 (``1 - cos(theta)`` just after a phase start, ``1 - t / T`` just before the end),
    so the error is about one ulp of the peak however small the result is. Away from zero the
    test is the plain relative 1e-6.
    """
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.dtype == np.float32, got.dtype
    if scale is None:
        scale = float(np.max(np.abs(want), initial=0.0))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=4 * 2**-23 * scale)


# ------------------------------------------------------------------------------------------------
# The schedule table: each lrjax configuration with its peer reference and its edge steps.
# ------------------------------------------------------------------------------------------------

# Parameters that lrjax keeps static (Python floats used to lay out phases/periods), so the
# reference must see them unrounded. Every other float is a traced float32 magnitude.
STATIC_FLOATS = frozenset({"pct_start", "period_mult", "num_cycles"})


def _round_traced(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if key in STATIC_FLOATS or isinstance(value, bool):
            out[key] = value
        elif isinstance(value, float):
            out[key] = f32(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], float):
            out[key] = tuple(f32(v) for v in value)
        else:
            out[key] = value
    return out


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[dict[str, Any]], optax.Schedule]  # builds the lrjax schedule
    ref: Callable[[np.ndarray, dict[str, Any]], np.ndarray]  # float64 peer reference
    params: dict[str, Any]
    horizon: int  # dense grid 0..horizon; for schedules that end, past the end
    edges: tuple[int, ...] = ()
    constant_tail: bool = False  # holds its final value past the horizon

    def schedule(self) -> optax.Schedule:
        return self.make(self.params)

    def reference(self, t) -> np.ndarray:
        return self.ref(np.asarray(t, dtype=np.int64), _round_traced(self.params))

    def grid(self) -> np.ndarray:
        return np.unique(np.concatenate([np.arange(self.horizon + 1), self.edges])).astype(np.int64)


def _warm(t, p, inner):
    return R.warmup(t, inner, p["warmup_steps"], p["init_value"], p["mode"])


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
    # 8. SGDR: PyTorch CosineAnnealingWarmRestarts (integer T_mult), Keras CosineDecayRestarts
    Case(
        "sgdr/torch-T_mult-1",
        lambda p: S.sgdr(p["init_value"], p["first_period"]),
        lambda t, p: R.torch_cosine_warm_restarts(t, p["init_value"], p["first_period"]),
        dict(init_value=0.1, first_period=10),
        horizon=50,
        edges=(0, 9, 10, 11, 19, 20, 30),
    ),
    Case(
        "sgdr/torch-T_mult-2",
        lambda p: S.sgdr(
            p["init_value"], p["first_period"], p["period_mult"], end_value=p["end_value"]
        ),
        lambda t, p: R.torch_cosine_warm_restarts(
            t, p["init_value"], p["first_period"], p["period_mult"], p["end_value"]
        ),
        dict(init_value=1.0, first_period=10, period_mult=2, end_value=0.1),
        horizon=160,
        edges=(0, 9, 10, 11, 29, 30, 31, 69, 70, 71, 150, 151),
    ),
    Case(
        "sgdr/keras-t_mul-1.5-m_mul",
        lambda p: S.sgdr(
            p["init_value"], p["first_period"], p["period_mult"], p["peak_decay"], p["end_value"]
        ),
        lambda t, p: R.keras_cosine_decay_restarts(
            t,
            p["init_value"],
            p["first_period"],
            p["period_mult"],
            p["peak_decay"],
            p["end_value"] / p["init_value"],
        ),
        dict(init_value=1.0, first_period=10, period_mult=1.5, peak_decay=0.5, end_value=0.05),
        horizon=140,
        edges=(0, 9, 10, 11, 24, 25, 26, 47, 48, 81, 82, 131, 132),
    ),
    Case(
        "sgdr/keras-t_mul-3-m_mul",
        lambda p: S.sgdr(p["init_value"], p["first_period"], p["period_mult"], p["peak_decay"]),
        lambda t, p: R.keras_cosine_decay_restarts(
            t, p["init_value"], p["first_period"], p["period_mult"], p["peak_decay"], 0.0
        ),
        dict(init_value=0.5, first_period=4, period_mult=3.0, peak_decay=0.8),
        horizon=170,
        edges=(0, 3, 4, 5, 15, 16, 17, 51, 52, 53, 159, 160, 161),
    ),
    Case(
        "sgdr/keras-t_mul-1-m_mul",
        lambda p: S.sgdr(p["init_value"], p["first_period"], 1.0, p["peak_decay"], p["end_value"]),
        lambda t, p: R.keras_cosine_decay_restarts(
            t,
            p["init_value"],
            p["first_period"],
            1.0,
            p["peak_decay"],
            p["end_value"] / p["init_value"],
        ),
        dict(init_value=2.0, first_period=25, peak_decay=0.9, end_value=0.2),
        horizon=130,
        edges=(0, 24, 25, 26, 49, 50, 51, 100),
    ),
    Case(
        # Late restarts s_i = 10 (2^i - 1) where float32 log1p(t (m-1)/P) / log(m) rounds to the
        # wrong period (s_13 = 81910 reads as period 12, s_17 - 1 as period 17).
        "sgdr/keras-t_mul-2-late-restarts",
        lambda p: S.sgdr(p["init_value"], 10, 2.0, p["peak_decay"], p["end_value"]),
        lambda t, p: R.keras_cosine_decay_restarts(
            t, p["init_value"], 10, 2.0, p["peak_decay"], p["end_value"] / p["init_value"]
        ),
        dict(init_value=1.0, peak_decay=0.95, end_value=0.01),
        horizon=20,
        edges=(81909, 81910, 81911, 327669, 327670, 327671, 1310709, 1310710, 1310711),
    ),
    # 9. cyclical: PyTorch CyclicLR
    Case(
        "cyclic/torch-triangular",
        lambda p: S.cyclic(p["base"], p["max"], p["up"]),
        lambda t, p: R.torch_cyclic(t, p["base"], p["max"], p["up"]),
        dict(base=0.01, max=0.1, up=10),
        horizon=60,
        edges=(0, 9, 10, 11, 19, 20, 21),
    ),
    Case(
        "cyclic/torch-triangular2-asymmetric",
        lambda p: S.cyclic(p["base"], p["max"], p["up"], p["down"], mode="triangular2"),
        lambda t, p: R.torch_cyclic(t, p["base"], p["max"], p["up"], p["down"], "triangular2"),
        dict(base=0.001, max=0.006, up=20, down=5),
        horizon=110,
        edges=(0, 19, 20, 21, 24, 25, 26, 45, 50, 75),
    ),
    Case(
        "cyclic/torch-exp_range",
        lambda p: S.cyclic(p["base"], p["max"], p["up"], p["down"], "exp_range", p["gamma"]),
        lambda t, p: R.torch_cyclic(
            t, p["base"], p["max"], p["up"], p["down"], "exp_range", p["gamma"]
        ),
        dict(base=0.1, max=1.0, up=8, down=12, gamma=0.99),
        horizon=120,
        edges=(0, 7, 8, 9, 19, 20, 21),
    ),
    # 10. one-cycle: PyTorch OneCycleLR (lr and momentum)
    Case(
        "one_cycle/torch-cos",
        lambda p: S.one_cycle(p["total_steps"], p["max_value"]),
        lambda t, p: R.torch_one_cycle(t, p["total_steps"], p["max_value"]),
        dict(total_steps=100, max_value=1.0),
        horizon=120,
        edges=(0, 28, 29, 30, 98, 99, 100, 101),
        constant_tail=True,
    ),
    Case(
        "one_cycle/torch-linear-float-phase-end",
        lambda p: S.one_cycle(
            p["total_steps"],
            p["max_value"],
            p["pct_start"],
            p["div_factor"],
            p["final_div_factor"],
            anneal="linear",
        ),
        lambda t, p: R.torch_one_cycle(
            t,
            p["total_steps"],
            p["max_value"],
            p["pct_start"],
            p["div_factor"],
            p["final_div_factor"],
            "linear",
        ),
        dict(total_steps=37, max_value=0.5, pct_start=0.3, div_factor=10.0, final_div_factor=100.0),
        horizon=45,
        edges=(0, 9, 10, 11, 35, 36, 37),
        constant_tail=True,
    ),
    Case(
        "one_cycle/torch-three-phase",
        lambda p: S.one_cycle(p["total_steps"], p["max_value"], p["pct_start"], three_phase=True),
        lambda t, p: R.torch_one_cycle(
            t, p["total_steps"], p["max_value"], p["pct_start"], three_phase=True
        ),
        dict(total_steps=200, max_value=2.0, pct_start=0.25),
        horizon=220,
        edges=(0, 48, 49, 50, 97, 98, 99, 198, 199, 200),
        constant_tail=True,
    ),
    Case(
        "one_cycle/torch-three-phase-linear-float-ends",
        lambda p: S.one_cycle(
            p["total_steps"], p["max_value"], p["pct_start"], anneal="linear", three_phase=True
        ),
        lambda t, p: R.torch_one_cycle(
            t,
            p["total_steps"],
            p["max_value"],
            p["pct_start"],
            anneal_strategy="linear",
            three_phase=True,
        ),
        dict(total_steps=45, max_value=1.0, pct_start=0.35),
        horizon=50,
        edges=(0, 14, 15, 29, 30, 43, 44, 45),
        constant_tail=True,
    ),
    Case(
        "one_cycle_momentum/torch-cos",
        lambda p: S.one_cycle_momentum(p["total_steps"]),
        lambda t, p: R.torch_one_cycle(t, p["total_steps"], 1.0, which="momentum"),
        dict(total_steps=100),
        horizon=120,
        edges=(0, 28, 29, 30, 98, 99, 100),
        constant_tail=True,
    ),
    Case(
        "one_cycle_momentum/torch-three-phase-linear",
        lambda p: S.one_cycle_momentum(
            p["total_steps"],
            p["base_momentum"],
            p["max_momentum"],
            p["pct_start"],
            "linear",
            three_phase=True,
        ),
        lambda t, p: R.torch_one_cycle(
            t,
            p["total_steps"],
            1.0,
            p["pct_start"],
            anneal_strategy="linear",
            three_phase=True,
            base_momentum=p["base_momentum"],
            max_momentum=p["max_momentum"],
            which="momentum",
        ),
        dict(total_steps=45, base_momentum=0.8, max_momentum=0.9, pct_start=0.35),
        horizon=50,
        edges=(0, 14, 15, 29, 30, 44, 45),
        constant_tail=True,
    ),
    # 11. warmup combinator
    Case(
        "warmup/linear-into-cosine",
        lambda p: S.warmup(S.cosine_decay(1.0, 100), p["warmup_steps"], p["init_value"], p["mode"]),
        lambda t, p: _warm(t, p, lambda s: R.cosine_to_floor(s, 1.0, 100, 0.0)),
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
        lambda t, p: _warm(t, p, lambda s: R.torch_step_lr(s, f32(0.4), 20, 0.5)),
        dict(warmup_steps=8, init_value=0.004, mode="exponential"),
        horizon=80,
        edges=(0, 7, 8, 9, 27, 28, 29),
    ),
    Case(
        "warmup/cosine-into-linear",
        lambda p: S.warmup(S.linear(2.0, 0.2, 50), p["warmup_steps"], p["init_value"], p["mode"]),
        lambda t, p: _warm(t, p, lambda s: R.optax_linear(s, 2.0, f32(0.2), 50)),
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
        lambda t, p: _warm(t, p, lambda s: R.cosine_to_floor(s, f32(0.8), 40, f32(0.1))),
        dict(warmup_steps=12, init_value=0.05, mode="1-sqrt"),
        horizon=70,
        edges=(0, 1, 11, 12, 13, 51, 52, 53),
        constant_tail=True,
    ),
    Case(
        "warmup/zero-steps",
        lambda p: S.warmup(S.constant(0.3), p["warmup_steps"], p["init_value"], p["mode"]),
        lambda t, p: _warm(t, p, lambda s: R.constant(s, f32(0.3))),
        dict(warmup_steps=0, init_value=0.0, mode="linear"),
        horizon=5,
        edges=(0, 1),
        constant_tail=True,
    ),
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
    # 14. snapshot ensembles (Huang et al. 2017)
    Case(
        "snapshot_ensemble/huang",
        lambda p: S.snapshot_ensemble(p["init_value"], p["total_steps"], p["num_cycles"]),
        lambda t, p: R.huang_snapshot(t, p["init_value"], p["total_steps"], p["num_cycles"]),
        dict(init_value=0.2, total_steps=300, num_cycles=3),
        horizon=330,
        edges=(0, 99, 100, 101, 199, 200, 299, 300),
    ),
    Case(
        "snapshot_ensemble/huang-uneven",
        lambda p: S.snapshot_ensemble(p["init_value"], p["total_steps"], p["num_cycles"]),
        lambda t, p: R.huang_snapshot(t, p["init_value"], p["total_steps"], p["num_cycles"]),
        dict(init_value=0.1, total_steps=100, num_cycles=3),
        horizon=110,
        edges=(0, 33, 34, 67, 68, 99, 100),
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

CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "case ids must be unique"
CASES_BY_ID = {c.id: c for c in CASES}


@dataclasses.dataclass
class Compiled:
    """One case's schedule and its compiled forms, shared by the tests of that case."""

    schedule: optax.Schedule
    over_steps: Callable[[jax.Array], jax.Array]  # jit(vmap(schedule))
    scalar: Callable[[jax.Array], jax.Array]  # jit(schedule), counting its traces
    traces: list[int]


@functools.cache
def compiled(case_id: str) -> Compiled:
    schedule = CASES_BY_ID[case_id].schedule()
    traces = [0]

    def traced(step):
        traces[0] += 1
        return schedule(step)

    return Compiled(schedule, jax.jit(jax.vmap(schedule)), jax.jit(traced), traces)


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request) -> Case:
    return request.param


# ------------------------------------------------------------------------------------------------
# Values against the references: vmap over steps (jitted), plain calls, jit.
# ------------------------------------------------------------------------------------------------


def test_vmap_over_steps_matches_reference(case):
    grid = case.grid()
    want = case.reference(grid)
    got = compiled(case.id).over_steps(jnp.asarray(grid, jnp.int32))
    assert got.shape == grid.shape
    assert_matches(got, want)


def test_plain_calls_at_edges_match_reference(case):
    # Un-jitted scalar calls, the way optax calls a schedule: Python ints, int32 and float32.
    schedule = compiled(case.id).schedule
    scale = float(np.max(np.abs(case.reference(case.grid()))))
    for edge in sorted({0, *case.edges}):
        want = case.reference(edge)
        for step in (edge, np.int32(edge), jnp.asarray(edge, jnp.float32)):
            value = schedule(step)
            assert jnp.shape(value) == (), (edge, step)
            assert_matches(value, want, scale)


def test_jit_compiles_once_across_100_steps(case):
    fns = compiled(case.id)
    stride = max(1, (case.horizon + 20) // 100)
    steps = np.arange(100, dtype=np.int64) * stride
    got = np.array([fns.scalar(jnp.asarray(s, jnp.int32)) for s in steps], dtype=np.float32)
    assert fns.traces[0] == 1
    assert fns.scalar._cache_size() == 1
    assert_matches(got, case.reference(steps), float(np.max(np.abs(case.reference(case.grid())))))


def test_giant_step_is_finite(case):
    fns = compiled(case.id)
    values = {
        "python-int-2**31+5": fns.schedule(GIANT_PY),
        "int32-max": fns.schedule(jnp.asarray(INT32_MAX, jnp.int32)),
        "jit-int32-max": fns.scalar(jnp.asarray(INT32_MAX, jnp.int32)),
    }
    for how, value in values.items():
        value = np.asarray(value)
        assert value.dtype == np.float32 and value.shape == (), how
        assert np.isfinite(value), how
    if case.constant_tail:
        tail = case.reference(case.grid()[-1:])[0]
        scale = float(np.max(np.abs(case.reference(case.grid()))))
        for value in values.values():
            assert_matches(value, tail, scale)


def test_negative_steps_count_as_zero(case):
    # Python's % would wrap a negative step into the period (repeat at -5 gave f(20)).
    schedule = compiled(case.id).schedule
    want = np.asarray(schedule(0))
    for step in (-5, np.int32(-5), jnp.asarray(-5, jnp.int32), jnp.asarray(-5.0, jnp.float32)):
        np.testing.assert_array_equal(np.asarray(schedule(step)), want, err_msg=repr(step))


def test_concrete_non_finite_step_is_rejected(case):
    schedule = compiled(case.id).schedule
    for step in (float("nan"), float("inf"), np.float32("-inf"), jnp.asarray([0.0, np.nan])):
        with pytest.raises(ValueError, match=r"step must be finite"):
            schedule(step)
    # A traced step cannot be inspected: under jit it goes through unchecked, as before.
    assert jax.jit(schedule)(jnp.asarray(np.nan, jnp.float32)).shape == ()


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
# vmap over every traceable hyperparameter.
# ------------------------------------------------------------------------------------------------

# factory, fixed kwargs, traced kwarg, values. Each factory's documented traced arguments are
# listed in TRACED_ARGS; test_every_traced_argument_is_vmapped checks this table covers them.
_inner = S.cosine_decay(1.0, 30)
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
    (S.sgdr, dict(first_period=5, period_mult=2.0, peak_decay=0.5), "init_value", [1.0, 0.1]),
    (S.sgdr, dict(init_value=1.0, first_period=5, period_mult=1.5), "peak_decay", [1.0, 0.5, 0.9]),
    (S.sgdr, dict(init_value=1.0, first_period=5), "end_value", [0.0, 0.1]),
    (S.cyclic, dict(max_value=1.0, step_size_up=4, mode="triangular2"), "base_value", [0.0, 0.1]),
    (S.cyclic, dict(base_value=0.1, step_size_up=4, step_size_down=6), "max_value", [1.0, 0.5]),
    (
        S.cyclic,
        dict(base_value=0.1, max_value=1.0, step_size_up=4, mode="exp_range"),
        "gamma",
        [1.0, 0.99, 0.9],
    ),
    (S.one_cycle, dict(total_steps=30), "max_value", [1.0, 0.1]),
    (S.one_cycle, dict(total_steps=30, max_value=1.0, three_phase=True), "div_factor", [25.0, 5.0]),
    (
        S.one_cycle,
        dict(total_steps=30, max_value=1.0, anneal="linear"),
        "final_div_factor",
        [1e4, 10.0],
    ),
    (S.one_cycle_momentum, dict(total_steps=30, max_momentum=0.95), "base_momentum", [0.85, 0.5]),
    (
        S.one_cycle_momentum,
        dict(total_steps=30, base_momentum=0.85, three_phase=True),
        "max_momentum",
        [0.95, 0.99],
    ),
    (S.warmup, dict(schedule=_inner, warmup_steps=5), "init_value", [0.0, 0.5]),
    (
        S.warmup,
        dict(schedule=_inner, warmup_steps=5, mode="exponential"),
        "init_value",
        [0.01, 0.5],
    ),
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
    (S.snapshot_ensemble, dict(total_steps=30, num_cycles=3), "init_value", [1.0, 0.2]),
    (S.tanh_decay, dict(total_steps=30), "init_value", [1.0, 0.2]),
    (S.tanh_decay, dict(init_value=1.0, total_steps=30), "end_value", [0.0, 0.1]),
    (S.tanh_decay, dict(init_value=1.0, total_steps=30), "lower_bound", [-7.0, -3.0]),
    (S.tanh_decay, dict(init_value=1.0, total_steps=30), "upper_bound", [3.0, 5.0]),
    (S.swa_schedule, dict(schedule=_inner, swa_start=10, anneal_steps=5), "swa_lr", [0.05, 0.5]),
    (S.scale, dict(schedule=_inner), "factor", [1.0, 0.5, 2.0]),
    (S.clip, dict(schedule=_inner, max_value=0.8), "min_value", [0.1, 0.3]),
    (S.clip, dict(schedule=_inner, min_value=0.1), "max_value", [0.8, 0.5]),
]

# The traced (`*`) arguments of docs/schedules_api.md, per factory.
TRACED_ARGS = {
    "constant": {"value"},
    "linear": {"init_value", "end_value"},
    "step_decay": {"init_value", "gamma"},
    "multistep_decay": {"init_value", "gamma"},
    "piecewise_constant": {"values"},
    "exponential_decay": {"init_value", "decay_rate", "end_value"},
    "inverse_time_decay": {"init_value", "decay_rate"},
    "invscaling": {"init_value", "power_t"},
    "optimal": {"alpha", "t0"},
    "polynomial_decay": {"init_value", "end_value", "power"},
    "cosine_decay": {"init_value", "end_value"},
    "sgdr": {"init_value", "peak_decay", "end_value"},
    "cyclic": {"base_value", "max_value", "gamma"},
    "one_cycle": {"max_value", "div_factor", "final_div_factor"},
    "one_cycle_momentum": {"base_momentum", "max_momentum"},
    "warmup": {"init_value"},
    "warmup_linear_decay": {"peak_value", "end_value", "init_value"},
    "warmup_cosine_decay": {"peak_value", "end_value", "init_value"},
    "cosine_with_hard_restarts": {"peak_value", "end_value", "init_value"},
    "inverse_sqrt": {"peak_value", "init_value"},
    "warmup_stable_decay": {"peak_value", "end_value", "init_value"},
    "snapshot_ensemble": {"init_value"},
    "tanh_decay": {"init_value", "end_value", "lower_bound", "upper_bound"},
    "scale": {"factor"},
    "clip": {"min_value", "max_value"},
    "swa_schedule": {"swa_lr"},  # added after the API note: SWA's hand-over
}

_HYPER_STEPS = jnp.asarray(np.r_[0:40, 100, 1000], jnp.int32)


@pytest.mark.parametrize(
    ("factory", "fixed", "name", "values"),
    HYPER,
    ids=[f"{f.__name__}-{n}-{i}" for i, (f, _, n, _) in enumerate(HYPER)],
)
def test_vmap_over_hyperparameter(factory, fixed, name, values):
    def lrs(value):
        return jax.vmap(factory(**fixed, **{name: value}))(_HYPER_STEPS)

    @jax.jit
    def batched_and_single(batch):
        # The single calls see the Python values at build time: the untraced path.
        return jax.vmap(lrs)(batch), jnp.stack([lrs(v) for v in values])

    batched, singles = batched_and_single(jnp.asarray(values, jnp.float32))
    assert batched.shape == (len(values), _HYPER_STEPS.shape[0])
    assert np.all(np.isfinite(batched))
    for row, one in zip(batched, singles, strict=True):
        np.testing.assert_allclose(row, one, rtol=1e-6, atol=1e-7 * float(np.max(np.abs(one))))


def test_every_traced_argument_is_vmapped():
    covered: dict[str, set[str]] = {}
    for factory, _, name, _ in HYPER:
        covered.setdefault(factory.__name__, set()).add(name)
    assert covered == TRACED_ARGS
    registry = {f.__name__ for f in S.SCHEDULES.values()}
    assert registry <= set(TRACED_ARGS), registry - set(TRACED_ARGS)
    for factory_name, names in TRACED_ARGS.items():
        params = inspect.signature(getattr(S, factory_name)).parameters
        assert names <= set(params), (factory_name, names - set(params))


# ------------------------------------------------------------------------------------------------
# Peer checks that need a specific mapping of arguments.
# ------------------------------------------------------------------------------------------------


def _lrs(schedule, steps) -> np.ndarray:
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32)))


def test_wsd_matches_hf_min_lr_ratio_warmup_and_floor():
    # HF warms up from min_lr_ratio * lr (not from 0) and decays to the same ratio.
    peak, ratio, total, w, d = 0.8, 0.125, 100, 10, 30
    steps = np.arange(0, 120)
    for decay_type in ("linear", "cosine", "1-sqrt"):
        got = _lrs(
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
    assert_matches(_lrs(make(), steps), want)


def test_inverse_sqrt_matches_hf_lambda():
    steps = np.arange(0, 300)
    for w, ts in ((10, None), (16, 100), (0, None)):
        want = [
            0.5 * R.hf_inverse_sqrt_lambda(int(s), num_warmup_steps=w, timescale=ts) for s in steps
        ]
        assert_matches(_lrs(S.inverse_sqrt(0.5, w, ts), steps), want)


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
    assert_matches(_lrs(S.optimal(alpha), np.arange(50)), etas)


def test_invscaling_matches_scikit_learn_itself():
    etas = _sklearn_etas("invscaling", 50, eta0=0.5, power_t=0.3, alpha=1e-4)
    assert_matches(_lrs(S.invscaling(0.5, 0.3), np.arange(50)), etas)


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
    assert_matches(_lrs(S.exponential_decay(1.0, decay_rate, decay_steps), steps), want)


def test_snapshot_steps_are_cycle_ends():
    for total, cycles in ((300, 3), (100, 3), (10, 10), (7, 1), (1000, 6)):
        assert S.snapshot_steps(total, cycles) == R.huang_snapshot_steps(total, cycles)
    schedule = S.snapshot_ensemble(1.0, 100, 3)
    for end in S.snapshot_steps(100, 3)[:-1]:  # the next update starts a new cycle at lr0
        assert float(schedule(end)) == pytest.approx(1.0, rel=1e-6)


# ------------------------------------------------------------------------------------------------
# Shape properties.
# ------------------------------------------------------------------------------------------------

WARMUPS = {
    "warmup-linear": (lambda: S.warmup(S.cosine_decay(1.0, 50), 10), 10, 1.0),
    "warmup-exponential": (lambda: S.warmup(S.constant(0.5), 12, 1e-4, "exponential"), 12, 0.5),
    "warmup-cosine": (lambda: S.warmup(S.linear(0.3, 0.0, 20), 9, 0.03, "cosine"), 9, 0.3),
    "warmup_linear_decay": (lambda: S.warmup_linear_decay(2.0, 15, 60), 15, 2.0),
    "warmup_cosine_decay": (lambda: S.warmup_cosine_decay(2.0, 15, 60, 0.2, 0.1), 15, 2.0),
    "cosine_with_hard_restarts": (lambda: S.cosine_with_hard_restarts(1.0, 7, 60, 3), 7, 1.0),
    "inverse_sqrt": (lambda: S.inverse_sqrt(1.0, 20), 20, 1.0),
    "wsd": (lambda: S.warmup_stable_decay(1.0, 100, 10, 20, "cosine", 0.1, 0.1), 10, 1.0),
    "one_cycle": (lambda: S.one_cycle(100, 1.0, 0.3), 29, 1.0),
    "one_cycle-three-phase": (lambda: S.one_cycle(100, 1.0, 0.2, three_phase=True), 19, 1.0),
    "cyclic": (lambda: S.cyclic(0.1, 1.0, 12, 4), 12, 1.0),
}


@pytest.mark.parametrize("name", list(WARMUPS))
def test_monotone_warmup(name):
    make, peak_step, _ = WARMUPS[name]
    lrs = _lrs(make(), np.arange(peak_step + 1))
    assert np.all(np.diff(lrs) >= 0), lrs
    assert lrs[0] < lrs[-1]


@pytest.mark.parametrize("name", list(WARMUPS))
def test_peak_reached_at_boundary(name):
    make, peak_step, peak = WARMUPS[name]
    schedule = make()
    assert float(schedule(peak_step)) == pytest.approx(f32(peak), rel=1e-6)
    assert float(schedule(peak_step - 1)) < f32(peak)
    lrs = _lrs(schedule, np.arange(3 * peak_step + 200))
    assert np.max(lrs) <= f32(peak) * (1 + 1e-6)  # never overshoots


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
    "sgdr-within-first-period": (lambda: S.sgdr(1.0, 25, 2.0), 0, 24),
    "one_cycle-after-peak": (lambda: S.one_cycle(100, 1.0, 0.3), 29, 120),
    "warmup_linear_decay": (lambda: S.warmup_linear_decay(1.0, 10, 60), 10, 80),
    "warmup_cosine_decay": (lambda: S.warmup_cosine_decay(1.0, 10, 60, 0.1), 10, 80),
    "inverse_sqrt": (lambda: S.inverse_sqrt(1.0, 10), 10, 300),
    "wsd": (lambda: S.warmup_stable_decay(1.0, 100, 10, 30, "1-sqrt"), 10, 120),
    "tanh_decay": (lambda: S.tanh_decay(1.0, 50, 0.01), 0, 70),
    "snapshot-within-cycle": (lambda: S.snapshot_ensemble(1.0, 90, 3), 0, 29),
}


@pytest.mark.parametrize("name", list(DECAYS))
def test_non_increasing_decay(name):
    make, start, stop = DECAYS[name]
    lrs = _lrs(make(), np.arange(start, stop + 1))
    assert np.all(np.diff(lrs) <= 2**-22 * np.max(np.abs(lrs))), lrs
    assert lrs[-1] < lrs[0]


JOINS = {
    "warmup-into-cosine": (lambda: S.warmup(S.cosine_decay(1.0, 50), 10), [10]),
    "warmup-cosine-into-linear": (lambda: S.warmup(S.linear(1.0, 0.0, 30), 8, 0.0, "cosine"), [8]),
    "join-linear-cosine": (
        lambda: S.join([S.linear(0.0, 1.0, 10), S.cosine_decay(1.0, 50)], [10]),
        [10],
    ),
    "warmup_linear_decay": (lambda: S.warmup_linear_decay(1.0, 10, 60), [10, 60]),
    "warmup_cosine_decay": (lambda: S.warmup_cosine_decay(1.0, 10, 60, 0.1), [10, 60]),
    "inverse_sqrt": (lambda: S.inverse_sqrt(1.0, 10), [10]),
    "wsd-linear": (lambda: S.warmup_stable_decay(1.0, 100, 10, 20), [10, 80, 100]),
    "wsd-cosine": (
        lambda: S.warmup_stable_decay(1.0, 100, 10, 20, "cosine", 0.1, 0.1),
        [10, 80, 100],
    ),
    "one_cycle": (lambda: S.one_cycle(100, 1.0, 0.3), [29, 30, 99]),
    "one_cycle-three-phase": (lambda: S.one_cycle(100, 1.0, 0.2, three_phase=True), [19, 38, 99]),
    "one_cycle_momentum": (lambda: S.one_cycle_momentum(100), [29, 30]),
    "cosine_decay-end": (lambda: S.cosine_decay(1.0, 40, 0.1), [40]),
    "polynomial-end": (lambda: S.polynomial_decay(1.0, 0.1, 40), [40]),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_continuity_across_joins(name):
    make, joins = JOINS[name]
    schedule = make()
    for b in joins:
        f = _lrs(schedule, np.arange(b - 2, b + 2)).astype(np.float64)
        jump = abs(f[2] - f[1])
        neighbour_slope = max(abs(f[1] - f[0]), abs(f[3] - f[2]))
        tol = 1e-6 * np.max(np.abs(f))
        assert jump <= neighbour_slope * (1 + 1e-5) + tol, (b, f)


def test_sgdr_restarts_to_decayed_peak():
    init, end, decay = 1.0, 0.1, 0.5
    for mult, restarts in ((1.0, [10, 20, 30]), (2.0, [10, 30, 70]), (3, [10, 40, 130])):
        assert [int(s) for s in R.sgdr_restart_steps(10, mult, 3)] == restarts
        schedule = S.sgdr(init, 10, mult, decay, end)
        for i, s in enumerate(restarts, start=1):
            assert float(schedule(s)) == pytest.approx(end + (init - end) * decay**i, rel=1e-6)
            assert float(schedule(s - 1)) < end + 0.05 * (init - end) * decay ** (i - 1)


def test_snapshot_and_hard_restarts_return_to_peak():
    snap = S.snapshot_ensemble(0.2, 300, 3)
    for s in (0, 100, 200):
        assert float(snap(s)) == pytest.approx(0.2, rel=1e-6)
        if s:
            assert float(snap(s - 1)) < 0.2 * 1e-3
    hard = S.cosine_with_hard_restarts(1.0, 10, 100, num_cycles=3)
    for s in (10, 40, 70):
        assert float(hard(s)) == pytest.approx(1.0, rel=1e-6)
        assert float(hard(s - 1)) < 0.01 or s == 10
    assert float(hard(100)) == pytest.approx(0.0, abs=1e-7)


def test_cyclic_restarts_at_base_and_triangular2_halves():
    schedule = S.cyclic(0.1, 1.1, 6, 4, "triangular2")
    for k in range(4):
        assert float(schedule(10 * k)) == pytest.approx(0.1, rel=1e-6)
        assert float(schedule(10 * k + 6)) == pytest.approx(0.1 + 1.0 / 2**k, rel=1e-6)


def test_repeat_restarts_at_each_period():
    inner = S.warmup_cosine_decay(1.0, 3, 20)
    schedule = S.repeat(inner, 20)
    for k in range(5):
        assert_matches(_lrs(schedule, np.arange(20) + 20 * k), _lrs(inner, np.arange(20)))


# ------------------------------------------------------------------------------------------------
# Bad input: one test per documented error, matching the argument name and its allowed range.
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
    "sgdr-first_period-0": (lambda: S.sgdr(1.0, 0), r"first_period.*>= 1"),
    "sgdr-period_mult-below-1": (lambda: S.sgdr(1.0, 10, period_mult=0.5), r"period_mult.*>= 1"),
    "sgdr-period_mult-0": (lambda: S.sgdr(1.0, 10, period_mult=0), r"period_mult.*>= 1"),
    "cyclic-step_size_up-0": (lambda: S.cyclic(0.1, 1.0, 0), r"step_size_up.*>= 1"),
    "cyclic-step_size_down-0": (lambda: S.cyclic(0.1, 1.0, 5, 0), r"step_size_down.*>= 1"),
    "cyclic-unknown-mode": (
        lambda: S.cyclic(0.1, 1.0, 5, mode="triangle"),
        r"mode.*triangular.*triangular2.*exp_range",
    ),
    "one_cycle-total_steps-0": (lambda: S.one_cycle(0, 1.0), r"total_steps.*>= "),
    "one_cycle-pct_start-0": (lambda: S.one_cycle(100, 1.0, pct_start=0.0), r"pct_start.*\(0, 1\)"),
    "one_cycle-pct_start-1": (lambda: S.one_cycle(100, 1.0, pct_start=1.0), r"pct_start.*\(0, 1\)"),
    "one_cycle-pct_start-negative": (
        lambda: S.one_cycle(100, 1.0, pct_start=-0.1),
        r"pct_start.*\(0, 1\)",
    ),
    "one_cycle-pct_start-above-1": (
        lambda: S.one_cycle(100, 1.0, pct_start=1.5),
        r"pct_start.*\(0, 1\)",
    ),
    "one_cycle-empty-first-phase": (
        lambda: S.one_cycle(10, 1.0, pct_start=0.05),
        r"pct_start.*total_steps > 1",
    ),
    "one_cycle-unknown-anneal": (
        lambda: S.one_cycle(100, 1.0, anneal="cosine"),
        r"anneal.*cos.*linear",
    ),
    "one_cycle_momentum-pct_start": (
        lambda: S.one_cycle_momentum(100, pct_start=1.2),
        r"pct_start.*\(0, 1\)",
    ),
    "one_cycle_momentum-unknown-anneal": (
        lambda: S.one_cycle_momentum(100, anneal="tanh"),
        r"anneal.*cos.*linear",
    ),
    "warmup-warmup_steps-negative": (lambda: S.warmup(S.constant(1.0), -1), r"warmup_steps.*>= 0"),
    "warmup-unknown-mode": (
        lambda: S.warmup(S.constant(1.0), 5, mode="quadratic"),
        r"mode.*linear.*exponential.*cosine",
    ),
    "warmup-exponential-init-0": (
        lambda: S.warmup(S.constant(1.0), 5, 0.0, "exponential"),
        r"init_value.*> 0",
    ),
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
    "snapshot-num_cycles-0": (lambda: S.snapshot_ensemble(1.0, 100, 0), r"num_cycles.*>= 1"),
    "snapshot-total_steps-0": (lambda: S.snapshot_ensemble(1.0, 0, 1), r"total_steps.*>= 1"),
    "snapshot-more-cycles-than-steps": (
        lambda: S.snapshot_ensemble(1.0, 5, 6),
        r"num_cycles.*\[1, total_steps\]",
    ),
    "snapshot_steps-num_cycles-0": (lambda: S.snapshot_steps(100, 0), r"num_cycles.*>= 1"),
    "tanh-total_steps-0": (lambda: S.tanh_decay(1.0, 0), r"total_steps.*>= 1"),
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
    "get-unknown-name": (lambda: S.get("cosine_annealing"), r"name must be one of \[.*'cosine'"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_naming_argument_and_range(name):
    build, pattern = ERRORS[name]
    with pytest.raises(ValueError, match=pattern):
        build()


# ------------------------------------------------------------------------------------------------
# Concrete magnitudes are validated when the schedule is built; traced ones are not.
# ------------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")

# The reproductions of issue 12: each was silently accepted (NaN, inf or negative LRs).
MAGNITUDE_ERRORS = {
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
    "sgdr-period_mult-nan": (
        lambda: S.sgdr(0.1, 10, period_mult=NAN),
        r"period_mult must be a finite number >= 1, got nan",
    ),
    "sgdr-period_mult-inf": (
        lambda: S.sgdr(0.1, 10, period_mult=INF),
        r"period_mult must be a finite number >= 1, got inf",
    ),
    "one_cycle-div_factor-0": (
        lambda: S.one_cycle(100, 0.1, div_factor=0),
        r"div_factor must be a finite number > 0, got 0",
    ),
    "warmup_cosine_decay-peak-negative": (
        lambda: S.warmup_cosine_decay(-0.1, 10, 100),
        r"peak_value must be a finite number >= 0, got -0.1",
    ),
    "warmup_cosine_decay-num_cycles-negative": (
        lambda: S.warmup_cosine_decay(0.1, 10, 100, num_cycles=-1),
        r"num_cycles must be a finite number > 0, got -1",
    ),
    "clip-min-above-max": (
        lambda: S.clip(S.cosine_decay(1.0, 10), min_value=0.5, max_value=0.1),
        r"min_value must be <= max_value, got min_value=0.5, max_value=0.1",
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
    "schedule-nan-step": (
        lambda: S.cosine_decay(0.1, 100)(float("nan")),
        r"step must be finite, got nan",
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
    "sgdr-peak_decay-0": (lambda: S.sgdr(1.0, 10, peak_decay=0.0), r"peak_decay .* > 0"),
    "cyclic-gamma-negative": (
        lambda: S.cyclic(0.1, 1.0, 5, mode="exp_range", gamma=-0.9),
        r"gamma must be a finite number > 0",
    ),
    "one_cycle-final_div_factor-nan": (
        lambda: S.one_cycle(100, 1.0, final_div_factor=NAN),
        r"final_div_factor must be a finite number > 0, got nan",
    ),
    "one_cycle_momentum-above-1": (
        lambda: S.one_cycle_momentum(100, base_momentum=1.5),
        r"base_momentum must be a finite number in \[0, 1\], got 1.5",
    ),
    "one_cycle-pct_start-nan": (
        lambda: S.one_cycle(100, 1.0, pct_start=NAN),
        r"pct_start must be a finite number in \(0, 1\), got nan",
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
    "tanh-lower_bound-nan": (
        lambda: S.tanh_decay(1.0, 100, lower_bound=NAN),
        r"lower_bound must be a finite number, got nan",
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
    "to_steps-fraction-nan": (
        lambda: S.to_steps(NAN, 100, "warmup_steps"),
        r"warmup_steps .* must be in \[0, 1\], got nan",
    ),
    "get-fraction-inf": (
        lambda: S.get("cosine", total_steps=100, init_value=1.0, decay_steps=INF),
        r"decay_steps .* must be in \[0, 1\], got inf",
    ),
}


@pytest.mark.parametrize("name", list(MAGNITUDE_ERRORS))
def test_bad_concrete_magnitude_raises_naming_argument(name):
    build, pattern = MAGNITUDE_ERRORS[name]
    with pytest.raises(ValueError, match=pattern):
        build()


_HYPER_IDS = [f"{f.__name__}-{n}-{i}" for i, (f, _, n, _) in enumerate(HYPER)]


@pytest.mark.parametrize(("factory", "fixed", "name", "values"), HYPER, ids=_HYPER_IDS)
@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_every_traced_argument_rejects_concrete_non_finite_values(
    factory, fixed, name, values, bad
):
    value = [bad, *values[0][1:]] if name == "values" else bad
    pattern = re.escape(name) + r"(\[0\])? must be a finite number"
    with pytest.raises(ValueError, match=pattern):
        factory(**fixed, **{name: value})


@pytest.mark.parametrize(("factory", "fixed", "name", "values"), HYPER, ids=_HYPER_IDS)
def test_every_traced_argument_rejects_a_concrete_vector(factory, fixed, name, values):
    # A vector outside vmap would silently make every LR a vector; vmap is the way.
    if name == "values":
        pattern = r"values must have len\(boundaries\) \+ 1"
    else:
        pattern = re.escape(name) + r" must be a scalar, got shape \(2,\).*jax\.vmap"
    with pytest.raises(ValueError, match=pattern):
        factory(**fixed, **{name: np.asarray(values[:2])})


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


PUBLIC_SCHEDULES = sorted(
    name
    for name in S.__all__
    if name != "get"
    and callable(getattr(S, name))
    and "Schedule" in str(inspect.signature(getattr(S, name)).return_annotation)
)


@pytest.mark.parametrize("name", PUBLIC_SCHEDULES)
def test_docstring_has_formula_example_and_reference(name):
    doc = inspect.getdoc(getattr(S, name)) or ""
    inline_equations = [m for m in re.findall(r":math:`([^`]*)`", doc) if "=" in m]
    assert ".. math::" in doc or inline_equations, f"{name}: no formula"
    assert "Examples:" in doc and ">>>" in doc, f"{name}: no example"
    assert "References:" in doc, f"{name}: no reference"


# ------------------------------------------------------------------------------------------------
# Composition, registry, durations.
# ------------------------------------------------------------------------------------------------


def test_join_equals_optax_join_schedules_when_valid():
    pieces = [S.linear(0.1, 1.0, 5), S.cosine_decay(1.0, 20, 0.1), S.constant(0.1)]
    steps = np.arange(0, 40)
    assert_matches(
        _lrs(S.join(pieces, [5, 25]), steps), _lrs(optax.join_schedules(pieces, [5, 25]), steps)
    )


def test_scale_clip_repeat_compose():
    inner = S.cyclic(0.0, 1.0, 5)
    steps = np.arange(0, 30)
    want = np.clip(0.5 * R.torch_cyclic(steps % 7, 0.0, 1.0, 5), 0.1, 0.4)
    got = _lrs(S.clip(S.scale(S.repeat(inner, 7), 0.5), 0.1, 0.4), steps)
    assert_matches(got, want)


# Keyword arguments for every registry name, durations given as fractions where allowed, and
# the equivalent direct call with the durations in steps.
TOTAL = 200
GET_KWARGS = {
    "constant": (dict(value=0.3), lambda: S.constant(0.3)),
    "linear": (
        dict(init_value=1.0, end_value=0.1, transition_steps=0.5, transition_begin=0.1),
        lambda: S.linear(1.0, 0.1, 100, 20),
    ),
    "step": (dict(init_value=1.0, step_size=0.25, gamma=0.5), lambda: S.step_decay(1.0, 50, 0.5)),
    "multistep": (
        dict(init_value=1.0, milestones=[0.5, 0.75]),
        lambda: S.multistep_decay(1.0, [100, 150]),
    ),
    "piecewise_constant": (
        dict(boundaries=[0.1, 0.6], values=[1.0, 0.3, 0.1]),
        lambda: S.piecewise_constant([20, 120], [1.0, 0.3, 0.1]),
    ),
    "exponential": (
        dict(init_value=1.0, decay_rate=0.5, decay_steps=0.1, staircase=True),
        lambda: S.exponential_decay(1.0, 0.5, 20, staircase=True),
    ),
    "inverse_time": (
        dict(init_value=1.0, decay_rate=0.5, decay_steps=0.05),
        lambda: S.inverse_time_decay(1.0, 0.5, 10),
    ),
    "invscaling": (dict(init_value=0.1, power_t=0.5), lambda: S.invscaling(0.1, 0.5)),
    "optimal": (dict(alpha=1e-3), lambda: S.optimal(1e-3)),
    "polynomial": (
        dict(init_value=1.0, end_value=0.0, decay_steps=1.0, power=2.0),
        lambda: S.polynomial_decay(1.0, 0.0, 200, 2.0),
    ),
    "cosine": (
        dict(init_value=1.0, decay_steps=0.8, end_value=0.1),
        lambda: S.cosine_decay(1.0, 160, 0.1),
    ),
    "sgdr": (dict(init_value=1.0, first_period=0.1, period_mult=2.0), lambda: S.sgdr(1.0, 20, 2.0)),
    "cyclic": (
        dict(base_value=0.1, max_value=1.0, step_size_up=0.1, step_size_down=0.15),
        lambda: S.cyclic(0.1, 1.0, 20, 30),
    ),
    "one_cycle": (dict(max_value=1.0, pct_start=0.25), lambda: S.one_cycle(200, 1.0, 0.25)),
    "one_cycle_momentum": (
        dict(base_momentum=0.8, pct_start=0.4, three_phase=True),
        lambda: S.one_cycle_momentum(200, 0.8, pct_start=0.4, three_phase=True),
    ),
    "warmup_linear_decay": (
        dict(peak_value=1.0, warmup_steps=0.1),
        lambda: S.warmup_linear_decay(1.0, 20, 200),
    ),
    "warmup_cosine_decay": (
        dict(peak_value=1.0, warmup_steps=0.05, end_value=0.1),
        lambda: S.warmup_cosine_decay(1.0, 10, 200, 0.1),
    ),
    "cosine_with_hard_restarts": (
        dict(peak_value=1.0, warmup_steps=0.1, num_cycles=3),
        lambda: S.cosine_with_hard_restarts(1.0, 20, 200, 3),
    ),
    "inverse_sqrt": (
        dict(peak_value=1.0, warmup_steps=0.1, timescale=0.25),
        lambda: S.inverse_sqrt(1.0, 20, 50),
    ),
    "wsd": (
        dict(peak_value=1.0, warmup_steps=0.05, decay_steps=0.2, decay_type="1-sqrt"),
        lambda: S.warmup_stable_decay(1.0, 200, 10, 40, "1-sqrt"),
    ),
    "snapshot_ensemble": (
        dict(init_value=0.1, num_cycles=4),
        lambda: S.snapshot_ensemble(0.1, 200, 4),
    ),
    "tanh": (dict(init_value=1.0, end_value=0.01), lambda: S.tanh_decay(1.0, 200, 0.01)),
}


def test_get_kwargs_table_covers_the_registry():
    assert set(GET_KWARGS) == set(S.SCHEDULES)
    assert S.SCHEDULES is lrjax.SCHEDULES


@pytest.mark.parametrize("name", sorted(GET_KWARGS))
def test_get_builds_every_registry_name_with_fractions(name):
    kwargs, direct = GET_KWARGS[name]
    steps = np.arange(0, TOTAL + 20)
    got = _lrs(lrjax.get(name, total_steps=TOTAL, **kwargs), steps)
    assert_matches(got, _lrs(direct(), steps))


def test_get_with_step_durations_needs_no_total():
    steps = np.arange(0, 60)
    got = _lrs(lrjax.get("cosine", init_value=1.0, decay_steps=40), steps)
    assert_matches(got, R.cosine_to_floor(steps, 1.0, 40, 0.0))


def test_get_fraction_without_total_steps_is_an_error():
    with pytest.raises(ValueError, match=r"decay_steps.*total_steps"):
        lrjax.get("cosine", init_value=1.0, decay_steps=0.5)


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


# ------------------------------------------------------------------------------------------------
# Hugging Face scheduler names in get(), against HF's own lambdas (schedules_reference.py).
# ------------------------------------------------------------------------------------------------

# transformers' SchedulerType values, all of which get() must know.
HF_SCHEDULER_TYPES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)


@dataclasses.dataclass(frozen=True)
class HFCase:
    id: str
    name: str
    kwargs: dict[str, Any]
    factor: Callable[[int], float]  # HF's lambda: the LR is learning_rate * factor(t)
    horizon: int
    held_from: int | None = None  # lrjax holds the floor from here (HF's cosine turns back up)


def _lr(kw):
    return kw["learning_rate"]


HF_CASES = [
    HFCase(
        "linear",
        "linear",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64),
        lambda t: R.hf_linear_with_warmup_lambda(t, num_warmup_steps=8, num_training_steps=64),
        90,
    ),
    HFCase(
        "linear-no-warmup-fraction",
        "linear",
        dict(learning_rate=0.25, num_warmup_steps=0.125, num_training_steps=64),
        lambda t: R.hf_linear_with_warmup_lambda(t, num_warmup_steps=8, num_training_steps=64),
        70,
    ),
    HFCase(
        "cosine",
        "cosine",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=8, num_training_steps=64, num_cycles=0.5
        ),
        90,
        held_from=64,
    ),
    HFCase(
        "cosine-1.5-cycles",
        "cosine",
        dict(learning_rate=1.0, num_warmup_steps=5, num_training_steps=45, num_cycles=1.5),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=5, num_training_steps=45, num_cycles=1.5
        ),
        60,
        held_from=45,
    ),
    HFCase(
        "cosine_with_restarts",
        "cosine_with_restarts",
        dict(learning_rate=0.5, num_warmup_steps=10, num_training_steps=100, num_cycles=3),
        lambda t: R.hf_hard_restarts_lambda(
            t, num_warmup_steps=10, num_training_steps=100, num_cycles=3
        ),
        120,
    ),
    HFCase(
        "cosine_with_restarts-default",
        "cosine_with_restarts",
        dict(learning_rate=0.5, num_warmup_steps=4, num_training_steps=40),
        lambda t: R.hf_hard_restarts_lambda(
            t, num_warmup_steps=4, num_training_steps=40, num_cycles=1
        ),
        50,
    ),
    HFCase(
        "polynomial",
        "polynomial",
        dict(
            learning_rate=0.5, num_warmup_steps=10, num_training_steps=74, lr_end=0.0625, power=2.0
        ),
        lambda t: R.hf_polynomial_lambda(
            t, num_warmup_steps=10, num_training_steps=74, lr_end=0.0625, power=2.0, lr_init=0.5
        ),
        90,
    ),
    HFCase(
        "polynomial-defaults",
        "polynomial",
        dict(learning_rate=1.0, num_warmup_steps=3, num_training_steps=30),
        lambda t: R.hf_polynomial_lambda(
            t, num_warmup_steps=3, num_training_steps=30, lr_end=f32(1e-7), power=1.0, lr_init=1.0
        ),
        40,
    ),
    HFCase("constant", "constant", dict(learning_rate=0.25), lambda t: 1.0, 10),
    HFCase(
        "constant-ignores-steps",
        "constant",
        dict(learning_rate=0.25, num_training_steps=5),
        lambda t: 1.0,
        10,
    ),
    HFCase(
        "constant_with_warmup",
        "constant_with_warmup",
        dict(learning_rate=0.5, num_warmup_steps=10, num_training_steps=50),
        lambda t: R.hf_constant_with_warmup_lambda(t, num_warmup_steps=10),
        60,
    ),
    HFCase(
        "inverse_sqrt",
        "inverse_sqrt",
        dict(learning_rate=0.5, num_warmup_steps=10),
        lambda t: R.hf_inverse_sqrt_lambda(t, num_warmup_steps=10),
        300,
    ),
    HFCase(
        "inverse_sqrt-timescale",
        "inverse_sqrt",
        dict(learning_rate=0.5, num_warmup_steps=16, timescale=100, num_training_steps=200),
        lambda t: R.hf_inverse_sqrt_lambda(t, num_warmup_steps=16, timescale=100),
        300,
    ),
    HFCase(
        "cosine_with_min_lr-min_lr",
        "cosine_with_min_lr",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64, min_lr=0.0625),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=8, num_training_steps=64, num_cycles=0.5, min_lr_rate=0.125
        ),
        80,
        held_from=64,
    ),
    HFCase(
        "cosine_with_min_lr-rate",
        "cosine_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=0, num_training_steps=50, min_lr_rate=0.25),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=0, num_training_steps=50, num_cycles=0.5, min_lr_rate=0.25
        ),
        60,
        held_from=50,
    ),
    HFCase(
        "cosine_warmup_with_min_lr",
        "cosine_warmup_with_min_lr",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64, min_lr_rate=0.125),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t, num_warmup_steps=8, num_training_steps=64, num_cycles=0.5, min_lr_rate=0.125
        ),
        80,
        held_from=63,
    ),
    HFCase(
        "cosine_warmup_with_min_lr-warmup_lr_rate",
        "cosine_warmup_with_min_lr",
        dict(
            learning_rate=1.0,
            num_warmup_steps=9,
            num_training_steps=41,
            min_lr=0.125,
            warmup_lr_rate=0.25,
        ),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t,
            num_warmup_steps=9,
            num_training_steps=41,
            num_cycles=0.5,
            min_lr_rate=0.125,
            warmup_lr_rate=0.25,
        ),
        50,
        held_from=40,
    ),
    HFCase(
        "cosine_warmup_with_min_lr-one-warmup-step",
        "cosine_warmup_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=1, num_training_steps=20, min_lr_rate=0.0),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t, num_warmup_steps=1, num_training_steps=20, num_cycles=0.5
        ),
        30,
        held_from=19,
    ),
    HFCase(
        "cosine_warmup_with_min_lr-no-warmup",
        "cosine_warmup_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=0, num_training_steps=20, min_lr_rate=0.5),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t, num_warmup_steps=0, num_training_steps=20, num_cycles=0.5, min_lr_rate=0.5
        ),
        30,
        held_from=19,
    ),
    HFCase(
        "warmup_stable_decay",
        "warmup_stable_decay",
        dict(learning_rate=0.5, num_warmup_steps=10, num_decay_steps=20, num_training_steps=100),
        lambda t: R.hf_wsd_lambda(t, num_warmup_steps=10, num_stable_steps=70, num_decay_steps=20),
        120,
    ),
    HFCase(
        "warmup_stable_decay-shapes-min_lr_ratio",
        "warmup_stable_decay",
        dict(
            learning_rate=1.0,
            num_warmup_steps=12,
            num_decay_steps=24,
            num_stable_steps=40,
            warmup_type="cosine",
            decay_type="1-sqrt",
            min_lr_ratio=0.125,
        ),
        lambda t: R.hf_wsd_lambda(
            t,
            num_warmup_steps=12,
            num_stable_steps=40,
            num_decay_steps=24,
            warmup_type="cosine",
            decay_type="1-sqrt",
            min_lr_ratio=0.125,
        ),
        90,
    ),
    HFCase(
        "warmup_stable_decay-1-sqrt-warmup",
        "warmup_stable_decay",
        dict(
            learning_rate=1.0,
            num_warmup_steps=16,
            num_decay_steps=8,
            num_training_steps=40,
            warmup_type="1-sqrt",
            decay_type="linear",
            min_lr_ratio=0.25,
        ),
        lambda t: R.hf_wsd_lambda(
            t,
            num_warmup_steps=16,
            num_stable_steps=16,
            num_decay_steps=8,
            warmup_type="1-sqrt",
            decay_type="linear",
            min_lr_ratio=0.25,
        ),
        50,
    ),
]


@pytest.mark.parametrize("hf", HF_CASES, ids=[c.id for c in HF_CASES])
def test_hf_names_give_hf_schedules(hf):
    steps = np.arange(hf.horizon + 1)
    got = _lrs(lrjax.get(hf.name, **hf.kwargs), steps)
    want = np.asarray([_lr(hf.kwargs) * hf.factor(int(t)) for t in steps])
    end = hf.horizon + 1 if hf.held_from is None else hf.held_from + 1
    assert_matches(got[:end], want[:end], scale=_lr(hf.kwargs))
    if hf.held_from is not None:  # past the end lrjax holds HF's value at the end
        np.testing.assert_array_equal(got[end:], np.full(got[end:].shape, got[end - 1]))


def test_hf_cases_cover_every_hf_scheduler_type():
    assert {c.name for c in HF_CASES} == set(HF_SCHEDULER_TYPES) - {"reduce_lr_on_plateau"}


@pytest.mark.parametrize("hf", HF_CASES, ids=[c.id for c in HF_CASES])
def test_hf_names_vmap_over_learning_rate(hf):
    kwargs = {k: v for k, v in hf.kwargs.items() if k != "learning_rate"}
    steps = jnp.arange(hf.horizon + 1)
    values = [_lr(hf.kwargs), _lr(hf.kwargs) * 0.75]

    def run(lr):
        return jax.vmap(lrjax.get(hf.name, learning_rate=lr, **kwargs))(steps)

    @jax.jit
    def batched_and_single(batch):
        # The single calls see Python floats at build time: the checked, untraced path.
        return jax.vmap(run)(batch), jnp.stack([run(v) for v in values])

    batched, singles = batched_and_single(jnp.asarray(values, jnp.float32))
    np.testing.assert_allclose(batched, singles, rtol=1e-6, atol=1e-7)


def test_get_total_steps_stands_in_for_num_training_steps():
    want = _lrs(
        lrjax.get("cosine", learning_rate=0.5, num_warmup_steps=8, num_training_steps=64),
        np.arange(80),
    )
    got = _lrs(
        lrjax.get("cosine", total_steps=64, learning_rate=0.5, num_warmup_steps=0.125),
        np.arange(80),
    )
    np.testing.assert_array_equal(got, want)


def test_lrjax_forms_of_shared_names_are_unchanged():
    # HF's names do not take over lrjax's own: lrjax's arguments still build lrjax's factory.
    steps = np.arange(120)
    pairs = [
        (
            lrjax.get("linear", init_value=1.0, end_value=0.5, transition_steps=10),
            S.linear(1.0, 0.5, 10),
        ),
        (lrjax.get("cosine", init_value=1.0, decay_steps=40), S.cosine_decay(1.0, 40)),
        (
            lrjax.get("polynomial", init_value=1.0, end_value=0.0, decay_steps=50, power=2.0),
            S.polynomial_decay(1.0, 0.0, 50, 2.0),
        ),
        (lrjax.get("constant", value=0.3), S.constant(0.3)),
        (lrjax.get("inverse_sqrt", peak_value=1.0, warmup_steps=10), S.inverse_sqrt(1.0, 10)),
        (
            lrjax.get(
                "warmup_stable_decay",
                total_steps=100,
                peak_value=1.0,
                warmup_steps=10,
                decay_steps=20,
            ),
            S.warmup_stable_decay(1.0, 100, 10, 20),
        ),
    ]
    for got, want in pairs:
        np.testing.assert_array_equal(_lrs(got, steps), _lrs(want, steps))


_HF = dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64)

GET_ERRORS = {
    "lrjax-form-missing-argument": (
        lambda: lrjax.get("cosine", total_steps=200, init_value=1e-2),
        r"missing argument\(s\) decay_steps.*'cosine' accepts Hugging Face's \(learning_rate, "
        r"num_warmup_steps, num_training_steps, num_cycles=0.5\) or lrjax cosine_decay's "
        r"\(init_value, decay_steps, end_value=0.0\)",
    ),
    "hf-form-missing-argument": (
        lambda: lrjax.get("linear", learning_rate=0.5, num_warmup_steps=8),
        r"missing argument\(s\) num_training_steps.*Hugging Face's \(learning_rate, "
        r"num_warmup_steps, num_training_steps\)",
    ),
    "hf-form-unknown-argument": (
        lambda: lrjax.get("cosine", **_HF, min_lr=0.1),
        r"unknown argument\(s\) min_lr",
    ),
    "lrjax-only-name-with-hf-arguments": (
        lambda: lrjax.get("wsd", **_HF),
        r"unknown argument\(s\) learning_rate, num_training_steps, num_warmup_steps.*"
        r"lrjax warmup_stable_decay's \(peak_value, total_steps",
    ),
    "hf-only-name-missing-learning_rate": (
        lambda: lrjax.get("constant_with_warmup", num_warmup_steps=5),
        r"missing argument\(s\) learning_rate",
    ),
    "reduce_lr_on_plateau": (
        lambda: lrjax.get("reduce_lr_on_plateau", mode="min", factor=0.1),
        r"not a schedule.*lrjax\.reduce_on_plateau",
    ),
    "unknown-name": (
        lambda: lrjax.get("cosine_annealing", **_HF),
        r"name must be one of \[.*'constant_with_warmup'.*'cosine_decay'",
    ),
    "total_steps-disagrees": (
        lambda: lrjax.get("cosine", total_steps=100, **_HF),
        r"total_steps=100 and num_training_steps=64 disagree",
    ),
    "learning_rate-nan": (
        lambda: lrjax.get("cosine", **{**_HF, "learning_rate": NAN}),
        r"learning_rate must be a finite number >= 0, got nan",
    ),
    "warmup-too-long": (
        lambda: lrjax.get("linear", **{**_HF, "num_warmup_steps": 64}),
        r"num_warmup_steps must be in \[0, num_training_steps\)",
    ),
    "min_lr-both": (
        lambda: lrjax.get("cosine_with_min_lr", **_HF, min_lr=0.1, min_lr_rate=0.1),
        r"exactly one of min_lr or min_lr_rate",
    ),
    "min_lr-neither": (
        lambda: lrjax.get("cosine_warmup_with_min_lr", **_HF),
        r"exactly one of min_lr or min_lr_rate",
    ),
    "min_lr_rate-above-1": (
        lambda: lrjax.get("cosine_with_min_lr", **_HF, min_lr_rate=1.5),
        r"min_lr_rate must be a finite number in \[0, 1\]",
    ),
    "polynomial-lr_end-not-below-lr": (
        lambda: lrjax.get("polynomial", **_HF, lr_end=0.5),
        r"lr_end must be < learning_rate",
    ),
    "restarts-num_cycles-float": (
        lambda: lrjax.get("cosine_with_restarts", **_HF, num_cycles=1.5),
        r"num_cycles must be an integer >= 1",
    ),
    "wsd-no-length": (
        lambda: lrjax.get(
            "warmup_stable_decay", learning_rate=0.5, num_warmup_steps=5, num_decay_steps=5
        ),
        r"num_training_steps or num_stable_steps must be given",
    ),
    "wsd-lengths-disagree": (
        lambda: lrjax.get(
            "warmup_stable_decay",
            learning_rate=0.5,
            num_warmup_steps=5,
            num_decay_steps=5,
            num_stable_steps=10,
            num_training_steps=30,
        ),
        r"num_training_steps=30 disagrees with .* = 20",
    ),
    "wsd-num_cycles": (
        lambda: lrjax.get("warmup_stable_decay", **_HF, num_decay_steps=8, num_cycles=1.0),
        r"num_cycles must be 0.5",
    ),
    "wsd-decay-too-long": (
        lambda: lrjax.get("warmup_stable_decay", **_HF, num_decay_steps=60),
        r"num_warmup_steps \+ num_decay_steps must be <= num_training_steps = 64",
    ),
    "wsd-decay-0": (
        lambda: lrjax.get("warmup_stable_decay", **_HF, num_decay_steps=0),
        r"num_decay_steps must be an integer >= 1",
    ),
}


@pytest.mark.parametrize("name", list(GET_ERRORS))
def test_get_errors_list_the_accepted_arguments(name):
    build, pattern = GET_ERRORS[name]
    with pytest.raises(ValueError, match=pattern):
        build()


def test_names_table_lists_every_name_and_matches_the_docs_file():
    table = S.names_table()
    for name in (*HF_SCHEDULER_TYPES, *S.SCHEDULES, *(f.__name__ for f in S.SCHEDULES.values())):
        assert f"| `{name}` |" in table, name
    path = pathlib.Path(__file__).resolve().parents[1] / "docs" / "schedule_names.md"
    assert path.read_text() == table, (
        "docs/schedule_names.md is stale; regenerate it from lrjax.schedules.names_table()"
    )


# ------------------------------------------------------------------------------------------------
# Inside optax.
# ------------------------------------------------------------------------------------------------


def test_inject_hyperparams_records_the_lr_of_each_update():
    schedule = S.warmup(S.cosine_decay(0.5, 8), 4)
    momentum = S.one_cycle_momentum(12)
    lr_cycle = S.one_cycle(12, 0.5)
    params = {"w": jnp.ones((3,), jnp.float32)}
    grads = {"w": jnp.asarray([1.0, -2.0, 0.5], jnp.float32)}
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    opt_cycled = optax.inject_hyperparams(optax.sgd)(learning_rate=lr_cycle, momentum=momentum)
    state, state_cycled = opt.init(params), opt_cycled.init(params)
    update, update_cycled = jax.jit(opt.update), jax.jit(opt_cycled.update)
    for t in range(14):
        updates, state = update(grads, state, params)
        _, state_cycled = update_cycled(grads, state_cycled, params)
        lr = float(schedule(t))
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(lr, rel=1e-6)
        np.testing.assert_allclose(updates["w"], -lr * grads["w"], rtol=1e-6)
        recorded = state_cycled.hyperparams
        assert float(recorded["learning_rate"]) == pytest.approx(float(lr_cycle(t)), rel=1e-6)
        assert float(recorded["momentum"]) == pytest.approx(float(momentum(t)), rel=1e-6)


def test_optax_sgd_with_schedule_steps_by_lr_times_grad():
    schedule = S.sgdr(0.2, 3, 2.0, 0.5, 0.01)
    opt = optax.sgd(schedule)
    params = jnp.asarray([1.0, 2.0], jnp.float32)
    grad = jnp.asarray([0.5, -1.0], jnp.float32)
    state = opt.init(params)
    step = jax.jit(opt.update)
    want = R.keras_cosine_decay_restarts(np.arange(12), f32(0.2), 3, 2.0, 0.5, f32(0.01) / f32(0.2))
    for t in range(12):
        updates, state = step(grad, state)
        np.testing.assert_allclose(updates, -want[t] * np.asarray(grad), rtol=1e-6)
        params = optax.apply_updates(params, updates)
    assert np.all(np.isfinite(params))
