"""Tests for the lrjax.schedules package as a whole: every factory's traced arguments are
vmapped by its module's contract, every public schedule documents its formula, and schedules
drop into optax unchanged. Each module's own tests are in tests/schedules_<module>_test.py.
"""

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import schedules_compose_test
import schedules_cycles_test
import schedules_decays_test
import schedules_recipes_test
import schedules_reference as R
from schedules_testing import f32

from lrjax import schedules as S

MODULES = (
    schedules_decays_test,
    schedules_cycles_test,
    schedules_compose_test,
    schedules_recipes_test,
)
HYPER = [row for module in MODULES for row in module.HYPER]

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
    "cosine_decay": {"init_value", "end_value", "exponent"},
    "sgdr": {"init_value", "peak_decay", "end_value", "k_decay"},
    "cyclic": {"base_value", "max_value", "gamma"},
    "one_cycle": {"max_value", "div_factor", "final_div_factor"},
    "one_cycle_momentum": {"base_momentum", "max_momentum"},
    "warmup": {"init_value"},
    "warmup_linear_decay": {"peak_value", "end_value", "init_value"},
    "warmup_cosine_decay": {"peak_value", "end_value", "init_value", "exponent"},
    "cosine_with_hard_restarts": {"peak_value", "end_value", "init_value"},
    "inverse_sqrt": {"peak_value", "init_value"},
    "warmup_stable_decay": {"peak_value", "end_value", "init_value"},
    "warmup_cosine_fraction": {"peak_value", "warmup_fraction"},
    # timm_cosine hands noise_pct and noise_std to lr_noise, whose rows vmap them (and the
    # noise draw compiles slowly: one pair of rows is enough).
    "timm_cosine": {"learning_rate", "lr_min", "cycle_decay", "warmup_lr_init", "k_decay"},
    "lr_noise": {"noise_pct", "noise_std"},  # and seed, an integer: schedules_compose_test
    "snapshot_ensemble": {"init_value"},
    "tanh_decay": {"init_value", "end_value", "lower_bound", "upper_bound"},
    "scale": {"factor"},
    "clip": {"min_value", "max_value"},
    "swa_schedule": {"swa_lr"},  # added after the API note: SWA's hand-over
}


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


def test_case_ids_are_unique_across_modules():
    ids = [case.id for module in MODULES for case in module.CASES]
    assert len(set(ids)) == len(ids)


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


# ------------------------------------------------------------------------------------------------
# Options that were taken silently: flags given as strings, schedules that are not callables.
# ------------------------------------------------------------------------------------------------

# A valid call of every factory that has a boolean option or takes a schedule.
MINIMAL = {
    "exponential_decay": lambda **kw: S.exponential_decay(1.0, 0.5, 10, **kw),
    "inverse_time_decay": lambda **kw: S.inverse_time_decay(1.0, 0.5, 10, **kw),
    "polynomial_decay": lambda **kw: S.polynomial_decay(1.0, 0.0, 10, **kw),
    "one_cycle": lambda **kw: S.one_cycle(100, 1.0, **kw),
    "one_cycle_momentum": lambda **kw: S.one_cycle_momentum(100, **kw),
    "timm_cosine": lambda **kw: S.timm_cosine(1.0, 10, **kw),
    "warmup": lambda **kw: S.warmup(**{"schedule": S.constant(1.0), "warmup_steps": 5, **kw}),
    "scale": lambda **kw: S.scale(**{"schedule": S.constant(1.0), "factor": 2.0, **kw}),
    "clip": lambda **kw: S.clip(**{"schedule": S.constant(1.0), "min_value": 0.1, **kw}),
    "repeat": lambda **kw: S.repeat(**{"schedule": S.constant(1.0), "period": 5, **kw}),
    "swa_schedule": lambda **kw: S.swa_schedule(
        **{"schedule": S.constant(1.0), "swa_start": 5, "swa_lr": 0.1, **kw}
    ),
    "lr_noise": lambda **kw: S.lr_noise(**{"schedule": S.constant(1.0), **kw}),
    "join": lambda **kw: S.join(**{"schedules": [S.constant(1.0)], "boundaries": [], **kw}),
    "schedule_family_switch": lambda **kw: S.schedule_family_switch(
        **{"index": 0, "schedules": [S.constant(1.0)], **kw}
    ),
    "multiply": lambda **kw: S.multiply(*kw.get("schedules", [S.constant(1.0)])),
}


def _public_factories():
    for name in S.__all__:
        factory = getattr(S, name)
        if callable(factory) and name not in ("get", "names_table", "to_steps", "snapshot_steps"):
            yield name, inspect.signature(factory).parameters


def test_every_flag_refuses_anything_but_a_bool():
    flags = {
        (name, param)
        for name, params in _public_factories()
        for param, spec in params.items()
        if isinstance(spec.default, bool)
    }
    assert {name for name, _ in flags} <= set(MINIMAL), flags
    for name, param in sorted(flags):
        MINIMAL[name]()  # the valid call builds
        for bad in ("no", "False", 1, None):
            with pytest.raises(ValueError, match=rf"{param} must be True or False, got"):
                MINIMAL[name](**{param: bad})


def test_every_schedule_argument_refuses_a_non_callable():
    takers = {
        (name, param)
        for name, params in _public_factories()
        for param in params
        if param in ("schedule", "schedules")
    }
    assert {name for name, _ in takers} == set(MINIMAL) - {
        "exponential_decay", "inverse_time_decay", "polynomial_decay", "one_cycle",
        "one_cycle_momentum", "timm_cosine",
    }  # fmt: skip
    for name, param in sorted(takers):
        MINIMAL[name]()
        bad = "not a schedule" if param == "schedule" else ["not a schedule"]
        with pytest.raises(ValueError, match=r"must be a schedule, a callable step"):
            MINIMAL[name](**{param: bad})
