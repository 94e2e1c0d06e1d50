"""Tests for lrjax.schedules._cycles (SGDR, cyclical, one-cycle, snapshot ensembles) against
float64 references of PyTorch, Keras and Huang et al. (tests/schedules_reference.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
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
    check_non_increasing,
    check_peak_reached_at_boundary,
    check_raises,
    lrs,
)

from lrjax import schedules as S

CASES = [
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
    Case(
        "sgdr/torch-T_mult-4",
        lambda p: S.sgdr(p["init_value"], 3, 4.0, end_value=p["end_value"]),
        lambda t, p: R.torch_cosine_warm_restarts(t, p["init_value"], 3, 4, p["end_value"]),
        dict(init_value=0.5, end_value=0.05),
        horizon=260,  # restarts at 3, 15, 63, 255
        edges=(2, 3, 4, 14, 15, 16, 62, 63, 64, 254, 255, 256),
    ),
    Case(
        "sgdr/timm-cycle_limit-k_decay-fractional",
        lambda p: S.sgdr(p["init_value"], 8, 1.5, p["peak_decay"], p["end_value"], 3, p["k_decay"]),
        lambda t, p: R.sgdr_exact(
            t,
            p["init_value"],
            8,
            1.5,
            p["peak_decay"],
            p["end_value"],
            k_decay=p["k_decay"],
            cycle_limit=3,
        ),
        dict(init_value=1.0, peak_decay=0.5, end_value=0.1, k_decay=2.0),
        horizon=60,  # cycles start at 0, 8, 20, 38 (the fourth is held at end_value)
        edges=(7, 8, 9, 19, 20, 21, 37, 38, 39, 1000),
        constant_tail=True,
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
]

HYPER = [
    (S.sgdr, dict(first_period=5, period_mult=2.0, peak_decay=0.5), "init_value", [1.0, 0.1]),
    (S.sgdr, dict(init_value=1.0, first_period=5, period_mult=1.5), "peak_decay", [1.0, 0.5, 0.9]),
    (S.sgdr, dict(init_value=1.0, first_period=5), "end_value", [0.0, 0.1]),
    (
        S.sgdr,
        dict(init_value=1.0, first_period=5, period_mult=2.0, cycle_limit=2),
        "k_decay",
        [1.0, 0.5, 3.0],
    ),
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
    (S.snapshot_ensemble, dict(total_steps=30, num_cycles=3), "init_value", [1.0, 0.2]),
]


class TestContract(ScheduleContract):
    CASES = tuple(CASES)
    HYPER = tuple(HYPER)


# ------------------------------------------------------------------------------------------------
# Shape properties.
# ------------------------------------------------------------------------------------------------

WARMUPS = {
    "one_cycle": (lambda: S.one_cycle(100, 1.0, 0.3), 29, 1.0),
    "one_cycle-three-phase": (lambda: S.one_cycle(100, 1.0, 0.2, three_phase=True), 19, 1.0),
    "cyclic": (lambda: S.cyclic(0.1, 1.0, 12, 4), 12, 1.0),
}


@pytest.mark.parametrize("name", list(WARMUPS))
def test_monotone_warmup(name):
    check_monotone_warmup(*WARMUPS[name])


@pytest.mark.parametrize("name", list(WARMUPS))
def test_peak_reached_at_boundary(name):
    check_peak_reached_at_boundary(*WARMUPS[name])


DECAYS = {
    "sgdr-within-first-period": (lambda: S.sgdr(1.0, 25, 2.0), 0, 24),
    "one_cycle-after-peak": (lambda: S.one_cycle(100, 1.0, 0.3), 29, 120),
    "snapshot-within-cycle": (lambda: S.snapshot_ensemble(1.0, 90, 3), 0, 29),
}


@pytest.mark.parametrize("name", list(DECAYS))
def test_non_increasing_decay(name):
    check_non_increasing(*DECAYS[name])


JOINS = {
    "one_cycle": (lambda: S.one_cycle(100, 1.0, 0.3), [29, 30, 99]),
    "one_cycle-three-phase": (lambda: S.one_cycle(100, 1.0, 0.2, three_phase=True), [19, 38, 99]),
    "one_cycle_momentum": (lambda: S.one_cycle_momentum(100), [29, 30]),
}


@pytest.mark.parametrize("name", list(JOINS))
def test_continuity_across_joins(name):
    check_continuous(*JOINS[name])


# ------------------------------------------------------------------------------------------------
# Bad input: each documented error names the argument and its allowed range.
# ------------------------------------------------------------------------------------------------

ERRORS = {
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
    "snapshot-num_cycles-0": (lambda: S.snapshot_ensemble(1.0, 100, 0), r"num_cycles.*>= 1"),
    "snapshot-total_steps-0": (lambda: S.snapshot_ensemble(1.0, 0, 1), r"total_steps.*>= 1"),
    "snapshot-more-cycles-than-steps": (
        lambda: S.snapshot_ensemble(1.0, 5, 6),
        r"num_cycles.*\[1, total_steps\]",
    ),
    "snapshot_steps-num_cycles-0": (lambda: S.snapshot_steps(100, 0), r"num_cycles.*>= 1"),
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
    "sgdr-cycle_limit-0": (lambda: S.sgdr(1.0, 10, cycle_limit=0), r"cycle_limit.*>= 1"),
    "sgdr-k_decay-0": (
        lambda: S.sgdr(1.0, 10, k_decay=0.0),
        r"k_decay must be a finite number > 0",
    ),
    "sgdr-too-many-cycles": (
        lambda: S.sgdr(1.0, 1, period_mult=1.001),
        r"period_mult=1.001 with first_period=1 starts more than 4096 cycles.*period_mult=1",
    ),
    # Strings for flags were taken as True (issue 19, item 6).
    "one_cycle-three_phase-string": (
        lambda: S.one_cycle(100, 1.0, three_phase="no"),
        r"three_phase must be True or False, got 'no'",
    ),
    "one_cycle_momentum-three_phase-string": (
        lambda: S.one_cycle_momentum(100, three_phase="False"),
        r"three_phase must be True or False, got 'False'",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_raises_naming_argument_and_range(name):
    check_raises(*ERRORS[name])


# ------------------------------------------------------------------------------------------------
# Peer checks and restart values.
# ------------------------------------------------------------------------------------------------


def test_snapshot_steps_are_cycle_ends():
    for total, cycles in ((300, 3), (100, 3), (10, 10), (7, 1), (1000, 6)):
        assert S.snapshot_steps(total, cycles) == R.huang_snapshot_steps(total, cycles)
    schedule = S.snapshot_ensemble(1.0, 100, 3)
    for end in S.snapshot_steps(100, 3)[:-1]:  # the next update starts a new cycle at lr0
        assert float(schedule(end)) == pytest.approx(1.0, rel=1e-6)


def test_sgdr_restarts_to_decayed_peak():
    init, end, decay = 1.0, 0.1, 0.5
    for mult, restarts in ((1.0, [10, 20, 30]), (2.0, [10, 30, 70]), (3, [10, 40, 130])):
        assert [int(s) for s in R.sgdr_restart_steps(10, mult, 3)] == restarts
        schedule = S.sgdr(init, 10, mult, decay, end)
        for i, s in enumerate(restarts, start=1):
            assert float(schedule(s)) == pytest.approx(end + (init - end) * decay**i, rel=1e-6)
            assert float(schedule(s - 1)) < end + 0.05 * (init - end) * decay ** (i - 1)


def test_cyclic_restarts_at_base_and_triangular2_halves():
    schedule = S.cyclic(0.1, 1.1, 6, 4, "triangular2")
    for k in range(4):
        assert float(schedule(10 * k)) == pytest.approx(0.1, rel=1e-6)
        assert float(schedule(10 * k + 6)) == pytest.approx(0.1 + 1.0 / 2**k, rel=1e-6)


def test_snapshot_ensemble_returns_to_peak():
    snap = S.snapshot_ensemble(0.2, 300, 3)
    for s in (0, 100, 200):
        assert float(snap(s)) == pytest.approx(0.2, rel=1e-6)
        if s:
            assert float(snap(s - 1)) < 0.2 * 1e-3


# ------------------------------------------------------------------------------------------------
# SGDR restarts exactly, under jit, for integer and fractional period multipliers.
# ------------------------------------------------------------------------------------------------

INT32_MAX = 2**31 - 1


@pytest.mark.parametrize("mult", [1, 2, 3, 4, 5, 6, 7, 8, 1.5, 1.25, 2.5, 1.1])
def test_sgdr_every_restart_under_jit_matches_exact_restarts(mult):
    # Every restart step below 2**31 (for T_mult = 1 the first and last 64), the steps around
    # it, small steps and the last int32 steps, in one jitted vmap, against float64 with the
    # restarts located exactly. A float32 logarithm gave the floor at PyTorch's restart steps
    # 50, 210, 850, 3410, ... of T_0=10, T_mult=4.
    restarts = R.exact_restart_steps(10, mult, INT32_MAX) if mult != 1 else []
    if mult == 1:
        restarts = [
            10 * k for k in (*range(1, 65), *range(INT32_MAX // 10 - 63, INT32_MAX // 10 + 1))
        ]
    near = np.asarray(restarts, np.int64)[:, None] + np.asarray([-1, 0, 1])
    steps = np.unique(np.r_[near.ravel(), 0:40, INT32_MAX - 1, INT32_MAX])
    steps = steps[(steps >= 0) & (steps <= INT32_MAX)]
    schedule = S.sgdr(1.0, 10, float(mult), end_value=0.125)
    got = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32)))
    assert_matches(got, R.sgdr_exact(steps, 1.0, 10, float(mult), end_value=0.125), scale=1.0)
    at_restart = got[np.isin(steps, restarts)]
    if float(mult).is_integer():  # integer restart steps: exactly the peak
        np.testing.assert_array_equal(at_restart, np.ones_like(at_restart))
    else:
        assert np.all(at_restart > 0.9), at_restart


def test_sgdr_matches_pytorch_restart_steps_and_replay():
    # PyTorch's CosineAnnealingWarmRestarts(T_0=10, T_mult=4) restarts at 10, 50, 210, 850,
    # 3410; and its T_cur bookkeeping, replayed, for T_mult 1..8 up to step 4000.
    assert R.exact_restart_steps(10, 4, 4000) == [10, 50, 210, 850, 3410]
    steps = np.arange(4001)
    for mult in range(1, 9):
        got = lrs(S.sgdr(0.5, 10, float(mult), end_value=0.01), steps)
        assert_matches(got, R.torch_cosine_warm_restarts(steps, 0.5, 10, mult, 0.01), scale=0.5)
    schedule = S.sgdr(1.0, 10, 4.0)
    for restart in (10, 50, 210, 850, 3410):
        for step in (restart, np.int64(restart), jnp.asarray(restart, jnp.int32)):
            assert float(schedule(step)) == 1.0, (restart, step)
        assert float(jax.jit(schedule)(jnp.asarray(restart, jnp.int32))) == 1.0


def test_sgdr_fractional_restarts_at_host_int64_steps_beyond_int32():
    # Host integers locate the cycle in int64 on the host: restarts up to 2**62 are exact.
    restarts = np.asarray(R.exact_restart_steps(7, 1.5, 2**62), np.int64)[-6:]
    steps = np.r_[restarts - 1, restarts]
    schedule = S.sgdr(1.0, 7, 1.5, 0.9, 0.125)
    want = R.sgdr_exact(steps, 1.0, 7, 1.5, 0.9, 0.125)
    assert_matches(np.asarray(schedule(steps)), want, scale=1.0)
    assert_matches(np.asarray([schedule(int(s)) for s in steps], np.float32), want, scale=1.0)
