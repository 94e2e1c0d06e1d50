"""What every test of lrjax.schedules shares: the tolerance, the case table and the contract.

The references live in ``schedules_reference.py`` and never import lrjax. Values are compared
with ``rtol=1e-6`` plus an absolute term of four float32 ulps of the schedule's largest value
(see ``assert_matches``); step ``t`` is the optax count, the LR used by the update at count
``t``. Traced magnitudes reach the references rounded to float32, as lrjax receives them.

Each ``tests/schedules_<module>_test.py`` lists its schedules as :class:`Case` rows (the lrjax
schedule, its float64 peer reference, a dense grid and the edges) and its traceable arguments as
``HYPER`` rows, and runs :class:`ScheduleContract` over them: values against the reference
under ``jit(vmap)`` and in plain calls, one compilation across steps, giant and negative steps,
non-finite steps, and ``vmap`` over every traceable argument.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import schedules_reference as R

GIANT_PY = 2**31 + 5
INT32_MAX = int(jnp.iinfo(jnp.int32).max)
NAN, INF = float("nan"), float("inf")


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


def lrs(schedule, steps) -> np.ndarray:
    """``schedule`` at every step, from one jitted, vmapped call on int32 steps."""
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32)))


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


def warmed(t, p, inner):
    """The reference of ``lrjax.warmup`` with the case's ``warmup_steps``, ``init_value``,
    ``mode`` in front of ``inner``."""
    return R.warmup(t, inner, p["warmup_steps"], p["init_value"], p["mode"])


@dataclasses.dataclass
class Compiled:
    """One case's schedule and its compiled forms, shared by the tests of that case."""

    schedule: optax.Schedule
    over_steps: Callable[[jax.Array], jax.Array]  # jit(vmap(schedule))
    scalar: Callable[[jax.Array], jax.Array]  # jit(schedule), counting its traces
    traces: list[int]


_COMPILED: dict[str, Compiled] = {}


def compiled(case: Case) -> Compiled:
    """The case's schedule and its jitted forms, built once per case id for all its tests."""
    if case.id not in _COMPILED:
        schedule = case.schedule()
        traces = [0]

        def traced(step):
            traces[0] += 1
            return schedule(step)

        _COMPILED[case.id] = Compiled(
            schedule, jax.jit(jax.vmap(schedule)), jax.jit(traced), traces
        )
    return _COMPILED[case.id]


_HYPER_STEPS = jnp.asarray(np.r_[0:40, 100, 1000], jnp.int32)


def hyper_id(row) -> str:
    factory, _, name, _ = row
    return f"{factory.__name__}-{name}"


class ScheduleContract:
    """The checks every schedule passes, over a module's ``CASES`` and ``HYPER`` tables.

    ``CASES`` holds :class:`Case` rows; ``HYPER`` holds ``(factory, fixed kwargs, traced
    kwarg, values)`` rows, one per traceable argument of each factory.
    """

    CASES: tuple[Case, ...] = ()
    HYPER: tuple[tuple[Callable[..., optax.Schedule], dict, str, list], ...] = ()

    def pytest_generate_tests(self, metafunc):
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", self.CASES, ids=[c.id for c in self.CASES])
        if "hyper" in metafunc.fixturenames:
            ids = [f"{hyper_id(row)}-{i}" for i, row in enumerate(self.HYPER)]
            metafunc.parametrize("hyper", self.HYPER, ids=ids)

    # Values against the references: vmap over steps (jitted), plain calls, jit. ------------

    def test_vmap_over_steps_matches_reference(self, case):
        grid = case.grid()
        want = case.reference(grid)
        got = compiled(case).over_steps(jnp.asarray(grid, jnp.int32))
        assert got.shape == grid.shape
        assert_matches(got, want)

    def test_plain_calls_at_edges_match_reference(self, case):
        # Un-jitted scalar calls, the way optax calls a schedule: Python ints, int32, float32.
        schedule = compiled(case).schedule
        scale = float(np.max(np.abs(case.reference(case.grid()))))
        for edge in sorted({0, *case.edges}):
            want = case.reference(edge)
            for step in (edge, np.int32(edge), jnp.asarray(edge, jnp.float32)):
                value = schedule(step)
                assert jnp.shape(value) == (), (edge, step)
                assert_matches(value, want, scale)

    def test_jit_compiles_once_across_100_steps(self, case):
        fns = compiled(case)
        stride = max(1, (case.horizon + 20) // 100)
        steps = np.arange(100, dtype=np.int64) * stride
        got = np.array([fns.scalar(jnp.asarray(s, jnp.int32)) for s in steps], dtype=np.float32)
        assert fns.traces[0] == 1
        assert fns.scalar._cache_size() == 1
        scale = float(np.max(np.abs(case.reference(case.grid()))))
        assert_matches(got, case.reference(steps), scale)

    def test_giant_step_is_finite(self, case):
        fns = compiled(case)
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

    def test_negative_steps_count_as_zero(self, case):
        # Python's % would wrap a negative step into the period (repeat at -5 gave f(20)).
        schedule = compiled(case).schedule
        want = np.asarray(schedule(0))
        for step in (-5, np.int32(-5), jnp.asarray(-5, jnp.int32), jnp.asarray(-5.0, jnp.float32)):
            np.testing.assert_array_equal(np.asarray(schedule(step)), want, err_msg=repr(step))

    def test_concrete_non_finite_step_is_rejected(self, case):
        schedule = compiled(case).schedule
        for step in (float("nan"), float("inf"), np.float32("-inf"), jnp.asarray([0.0, np.nan])):
            with pytest.raises(ValueError, match=r"step must be finite"):
                schedule(step)
        # A traced step cannot be inspected: under jit it goes through unchecked, as before.
        assert jax.jit(schedule)(jnp.asarray(np.nan, jnp.float32)).shape == ()

    # vmap over every traceable hyperparameter. --------------------------------------------

    def test_vmap_over_hyperparameter(self, hyper):
        factory, fixed, name, values = hyper

        def run(value):
            return jax.vmap(factory(**fixed, **{name: value}))(_HYPER_STEPS)

        @jax.jit
        def batched_and_single(batch):
            # The single calls see the Python values at build time: the untraced path.
            return jax.vmap(run)(batch), jnp.stack([run(v) for v in values])

        batched, singles = batched_and_single(jnp.asarray(values, jnp.float32))
        assert batched.shape == (len(values), _HYPER_STEPS.shape[0])
        assert np.all(np.isfinite(batched))
        for row, one in zip(batched, singles, strict=True):
            np.testing.assert_allclose(row, one, rtol=1e-6, atol=1e-7 * float(np.max(np.abs(one))))

    @pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
    def test_every_traced_argument_rejects_concrete_non_finite_values(self, hyper, bad):
        factory, fixed, name, values = hyper
        value = [bad, *values[0][1:]] if name == "values" else bad
        pattern = re.escape(name) + r"(\[0\])? must be a finite number"
        with pytest.raises(ValueError, match=pattern):
            factory(**fixed, **{name: value})

    def test_every_traced_argument_rejects_a_concrete_vector(self, hyper):
        # A vector outside vmap would silently make every LR a vector; vmap is the way.
        factory, fixed, name, values = hyper
        if name == "values":
            pattern = r"values must have len\(boundaries\) \+ 1"
        else:
            pattern = re.escape(name) + r" must be a scalar, got shape \(2,\).*jax\.vmap"
        with pytest.raises(ValueError, match=pattern):
            factory(**fixed, **{name: np.asarray(values[:2])})


# Shape properties, shared by the modules' tables of warmups, decays and joins. --------------


def check_monotone_warmup(make, peak_step, peak) -> None:
    values = lrs(make(), np.arange(peak_step + 1))
    assert np.all(np.diff(values) >= 0), values
    assert values[0] < values[-1]


def check_peak_reached_at_boundary(make, peak_step, peak) -> None:
    schedule = make()
    assert float(schedule(peak_step)) == pytest.approx(f32(peak), rel=1e-6)
    assert float(schedule(peak_step - 1)) < f32(peak)
    values = lrs(schedule, np.arange(3 * peak_step + 200))
    assert np.max(values) <= f32(peak) * (1 + 1e-6)  # never overshoots


def check_non_increasing(make, start, stop) -> None:
    values = lrs(make(), np.arange(start, stop + 1))
    assert np.all(np.diff(values) <= 2**-22 * np.max(np.abs(values))), values
    assert values[-1] < values[0]


def check_continuous(make, joins) -> None:
    schedule = make()
    for b in joins:
        f = lrs(schedule, np.arange(b - 2, b + 2)).astype(np.float64)
        jump = abs(f[2] - f[1])
        neighbour_slope = max(abs(f[1] - f[0]), abs(f[3] - f[2]))
        tol = 1e-6 * np.max(np.abs(f))
        assert jump <= neighbour_slope * (1 + 1e-5) + tol, (b, f)


def check_raises(build, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        build()
