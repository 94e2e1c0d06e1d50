"""Tests for lrjax.schedules._registry: every lrjax name of :func:`lrjax.get` with fractions
of the run, its errors, and the names table of docs/schedule_names.md.
"""

import pathlib

import numpy as np
import pytest
import schedules_reference as R
from schedules_hugging_face_test import HF_SCHEDULER_TYPES
from schedules_testing import INF, assert_matches, check_raises, lrs

import lrjax
from lrjax import schedules as S

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
    "timm_cosine": (
        dict(learning_rate=1.0, t_initial=0.25, warmup_t=0.05, cycle_limit=None, lr_min=0.01),
        lambda: S.timm_cosine(1.0, 50, 0.01, cycle_limit=None, warmup_t=10),
    ),
}


def test_get_kwargs_table_covers_the_registry():
    assert set(GET_KWARGS) == set(S.SCHEDULES)
    assert S.SCHEDULES is lrjax.SCHEDULES


@pytest.mark.parametrize("name", sorted(GET_KWARGS))
def test_get_builds_every_registry_name_with_fractions(name):
    kwargs, direct = GET_KWARGS[name]
    steps = np.arange(0, TOTAL + 20)
    got = lrs(lrjax.get(name, total_steps=TOTAL, **kwargs), steps)
    assert_matches(got, lrs(direct(), steps))


def test_get_with_step_durations_needs_no_total():
    steps = np.arange(0, 60)
    got = lrs(lrjax.get("cosine", init_value=1.0, decay_steps=40), steps)
    assert_matches(got, R.cosine_to_floor(steps, 1.0, 40, 0.0))


def test_get_fraction_without_total_steps_is_an_error():
    with pytest.raises(ValueError, match=r"decay_steps.*total_steps"):
        lrjax.get("cosine", init_value=1.0, decay_steps=0.5)


ERRORS = {
    "get-unknown-name": (lambda: S.get("cosine_annealing"), r"name must be one of \[.*'cosine'"),
    "get-fraction-inf": (
        lambda: S.get("cosine", total_steps=100, init_value=1.0, decay_steps=INF),
        r"decay_steps .* must be in \[0, 1\], got inf",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_naming_argument_and_range(name):
    check_raises(*ERRORS[name])


def test_names_table_lists_every_name_and_matches_the_docs_file():
    table = S.names_table()
    for name in (*HF_SCHEDULER_TYPES, *S.SCHEDULES, *(f.__name__ for f in S.SCHEDULES.values())):
        assert f"| `{name}` |" in table, name
    path = pathlib.Path(__file__).resolve().parents[1] / "docs" / "schedule_names.md"
    assert path.read_text() == table, (
        "docs/schedule_names.md is stale; regenerate it from lrjax.schedules.names_table()"
    )


def test_names_table_says_how_float_step_counts_are_read():
    table = S.names_table()
    assert "fraction (float in [0, 1]) of `total_steps`, rounded half up" in table
    assert "a float in [0, 1) is a ratio of `num_training_steps` rounded up (`math.ceil`)" in table
    assert "a whole float (`500.0`) is that many steps" in table
