"""Schedule gallery: every family of `lrjax.schedules`, evaluated on one step grid and plotted.

Command:
  make experiment CONFIG=schedules             # = python -m experiments.run --config schedules
  make experiment CONFIG=schedules QUICK=1     # T = 200; what the smoke test runs

Expected runtime on a 2-core CPU: about 12 s (quick: about 11 s), mostly one XLA compile per
schedule; re-running without --force skips it.

Expected result, in results/schedules/: one PNG per family (01_constant.png ... 17_by_name.png),
overview.png with the 17 families in a grid, values.csv (every schedule at every step 0..T),
table.md (values at steps 0, 1, W, T/4, T/2, 3T/4, T-1, T), config.json and report.md. With
T = 1000, W = 100 and peak 1.0 the curves match their formulas by eye: warmups reach 1.0 at
step W, cosine decays end at 0 (or their floor) at step T, WSD holds 1.0 until 0.8 T, one-cycle
peaks at 0.3 T and ends near 4e-6, SGDR restarts at 200, 400, ... and the snapshot schedule
restarts at each marked snapshot step.

A schedule is a JSON spec `{"fn": NAME, "args": {...}}` calling `lrjax.schedules.NAME(**args)`;
an argument that is itself a spec is built first, so composition (warmup, join, scale, ...) is
just nesting. Each family lists `schedules` (id, legend label, spec), optional `secondary`
curves for a twin axis (one-cycle momentum), optional `marks` (a spec returning steps to mark)
and an optional `zoom` step range shown in an inset.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from experiments.configs import config_dict


def S(fn: str, **args: Any) -> dict[str, Any]:
    """A schedule spec: `lrjax.schedules.<fn>(**args)`."""
    return {"fn": fn, "args": args}


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the gallery config; `quick` shrinks the grid to T = 200 steps and lowers the dpi."""
    T = 200 if quick else 1000  # common total steps
    W = T // 10  # common warmup steps
    peak = 1.0

    def entry(id_: str, label: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"id": id_, "label": label, "spec": spec}

    def family(title, file, schedules, *, log_y=False, **extra) -> dict[str, Any]:
        return {"title": title, "file": file, "log_y": log_y, "schedules": schedules, **extra}

    cos = S("cosine_decay", init_value=peak, decay_steps=T - W)  # decay after a W-step warmup
    families = [
        family(
            "1. Constant",
            "01_constant.png",
            [
                entry("constant", "constant(1.0)", S("constant", value=peak)),
                entry("constant_0.3", "constant(0.3)", S("constant", value=0.3)),
            ],
        ),
        family(
            "2. Linear",
            "02_linear.png",
            [
                entry(
                    "linear",
                    "1.0 → 0 over T",
                    S("linear", init_value=peak, end_value=0.0, transition_steps=T),
                ),
                entry(
                    "linear_begin",
                    "0.1 → 1.0 over [T/4, 3T/4]",
                    S(
                        "linear",
                        init_value=0.1,
                        end_value=peak,
                        transition_steps=T // 2,
                        transition_begin=T // 4,
                    ),
                ),
                # torch LinearLR(start_factor=1/3, end_factor=1, total_iters=W) on a base LR of 1.0.
                entry(
                    "linear_torch",
                    "torch LinearLR(1/3 → 1, W)",
                    S("linear", init_value=peak / 3, end_value=peak, transition_steps=W),
                ),
            ],
        ),
        family(
            "3. Step decay",
            "03_step_decay.png",
            [
                entry(
                    "step_decay",
                    "step (every 0.3T, ×0.5)",
                    S("step_decay", init_value=peak, step_size=3 * T // 10, gamma=0.5),
                ),
                entry(
                    "multistep_decay",
                    "multistep (T/2, 3T/4; ×0.1)",
                    S(
                        "multistep_decay",
                        init_value=peak,
                        milestones=[T // 2, 3 * T // 4],
                        gamma=0.1,
                    ),
                ),
                entry(
                    "piecewise_constant",
                    "piecewise (1, .5, .1, .01)",
                    S(
                        "piecewise_constant",
                        boundaries=[T // 4, T // 2, 3 * T // 4],
                        values=[peak, 0.5, 0.1, 0.01],
                    ),
                ),
            ],
            log_y=True,
        ),
        family(
            "4. Exponential decay",
            "04_exponential.png",
            [
                entry(
                    "exponential",
                    "continuous, 0.01 at T",
                    S("exponential_decay", init_value=peak, decay_rate=0.01, decay_steps=T),
                ),
                entry(
                    "exponential_staircase",
                    "staircase, ×0.4 per T/5",
                    S(
                        "exponential_decay",
                        init_value=peak,
                        decay_rate=0.4,
                        decay_steps=T // 5,
                        staircase=True,
                    ),
                ),
                entry(
                    "exponential_floor",
                    "floor 0.05",
                    S(
                        "exponential_decay",
                        init_value=peak,
                        decay_rate=0.001,
                        decay_steps=T,
                        end_value=0.05,
                    ),
                ),
                entry(
                    "exponential_begin",
                    "begins at W",
                    S(
                        "exponential_decay",
                        init_value=peak,
                        decay_rate=0.01,
                        decay_steps=T,
                        transition_begin=W,
                    ),
                ),
            ],
            log_y=True,
        ),
        family(
            "5. Inverse time & scikit-learn",
            "05_inverse_time.png",
            [
                entry(
                    "inverse_time",
                    "inverse time (k=1 per T/10)",
                    S("inverse_time_decay", init_value=peak, decay_rate=1.0, decay_steps=T // 10),
                ),
                entry(
                    "inverse_time_staircase",
                    "inverse time, staircase",
                    S(
                        "inverse_time_decay",
                        init_value=peak,
                        decay_rate=1.0,
                        decay_steps=T // 10,
                        staircase=True,
                    ),
                ),
                entry(
                    "invscaling_0.25",
                    "sklearn invscaling (power 0.25)",
                    S("invscaling", init_value=peak, power_t=0.25),
                ),
                entry(
                    "invscaling_0.5",
                    "sklearn invscaling (power 0.5)",
                    S("invscaling", init_value=peak, power_t=0.5),
                ),
                # sklearn's heuristic t0 gives lr(0) = alpha**-0.25, so alpha = 1 starts at the
                # common peak 1.0: lr = 1 / (1 + t).
                entry("optimal", "sklearn optimal (alpha=1)", S("optimal", alpha=1.0)),
            ],
            log_y=True,
        ),
        family(
            "6. Polynomial decay",
            "06_polynomial.png",
            [
                entry(
                    "polynomial_1",
                    "power 1",
                    S("polynomial_decay", init_value=peak, end_value=0.0, decay_steps=T),
                ),
                entry(
                    "polynomial_2",
                    "power 2",
                    S("polynomial_decay", init_value=peak, end_value=0.0, decay_steps=T, power=2.0),
                ),
                entry(
                    "polynomial_0.5",
                    "power 0.5, end 0.1",
                    S("polynomial_decay", init_value=peak, end_value=0.1, decay_steps=T, power=0.5),
                ),
                entry(
                    "polynomial_cycle",
                    "power 2, cycle every 0.3T",
                    S(
                        "polynomial_decay",
                        init_value=peak,
                        end_value=0.1,
                        decay_steps=3 * T // 10,
                        power=2.0,
                        cycle=True,
                    ),
                ),
            ],
        ),
        family(
            "7. Cosine annealing",
            "07_cosine.png",
            [
                entry("cosine", "to 0 at T", S("cosine_decay", init_value=peak, decay_steps=T)),
                entry(
                    "cosine_floor",
                    "to 0.1 at T",
                    S("cosine_decay", init_value=peak, decay_steps=T, end_value=0.1),
                ),
                entry(
                    "cosine_short",
                    "to 0 at 3T/4, then flat",
                    S("cosine_decay", init_value=peak, decay_steps=3 * T // 4),
                ),
            ],
        ),
        family(
            "8. SGDR (warm restarts)",
            "08_sgdr.png",
            [
                entry("sgdr", "period T/5", S("sgdr", init_value=peak, first_period=T // 5)),
                entry(
                    "sgdr_mult2",
                    "period T/15, ×2",
                    S("sgdr", init_value=peak, first_period=T // 15, period_mult=2.0),
                ),
                entry(
                    "sgdr_decay",
                    "T/10, ×1.5, peak ×0.7, floor 0.05",
                    S(
                        "sgdr",
                        init_value=peak,
                        first_period=T // 10,
                        period_mult=1.5,
                        peak_decay=0.7,
                        end_value=0.05,
                    ),
                ),
            ],
        ),
        family(
            "9. Cyclical (CLR)",
            "09_cyclic.png",
            [
                entry(
                    "cyclic_triangular",
                    "triangular",
                    S("cyclic", base_value=0.1, max_value=peak, step_size_up=T // 10),
                ),
                entry(
                    "cyclic_triangular2",
                    "triangular2",
                    S(
                        "cyclic",
                        base_value=0.1,
                        max_value=peak,
                        step_size_up=T // 10,
                        mode="triangular2",
                    ),
                ),
                entry(
                    "cyclic_exp_range",
                    "exp_range (γ^T = 0.1)",
                    S(
                        "cyclic",
                        base_value=0.1,
                        max_value=peak,
                        step_size_up=T // 10,
                        mode="exp_range",
                        gamma=0.1 ** (1 / T),
                    ),
                ),
                entry(
                    "cyclic_asymmetric",
                    "triangular, up T/20, down 3T/20",
                    S(
                        "cyclic",
                        base_value=0.1,
                        max_value=peak,
                        step_size_up=T // 20,
                        step_size_down=3 * T // 20,
                    ),
                ),
            ],
        ),
        family(
            "10. One-cycle",
            "10_one_cycle.png",
            [
                entry("one_cycle", "cos", S("one_cycle", total_steps=T, max_value=peak)),
                entry(
                    "one_cycle_linear",
                    "linear",
                    S("one_cycle", total_steps=T, max_value=peak, anneal="linear"),
                ),
                entry(
                    "one_cycle_three_phase",
                    "three-phase",
                    S("one_cycle", total_steps=T, max_value=peak, three_phase=True),
                ),
            ],
            log_y=True,
            secondary=[
                entry(
                    "one_cycle_momentum", "momentum (cos)", S("one_cycle_momentum", total_steps=T)
                ),
                entry(
                    "one_cycle_momentum_three_phase",
                    "momentum (three-phase)",
                    S("one_cycle_momentum", total_steps=T, three_phase=True),
                ),
            ],
        ),
        family(
            "11. Warmup combinator",
            "11_warmup.png",
            [
                entry(
                    "warmup_linear",
                    "linear from 0",
                    S("warmup", schedule=cos, warmup_steps=W, mode="linear"),
                ),
                entry(
                    "warmup_exponential",
                    "exponential from 0.01",
                    S("warmup", schedule=cos, warmup_steps=W, init_value=0.01, mode="exponential"),
                ),
                entry(
                    "warmup_cosine",
                    "cosine from 0",
                    S("warmup", schedule=cos, warmup_steps=W, mode="cosine"),
                ),
            ],
            zoom=[0, 2 * W],
        ),
        family(
            "12. Transformer recipes",
            "12_transformer.png",
            [
                entry(
                    "warmup_linear_decay",
                    "warmup + linear (HF linear)",
                    S("warmup_linear_decay", peak_value=peak, warmup_steps=W, total_steps=T),
                ),
                entry(
                    "warmup_cosine_decay",
                    "warmup + cosine (HF cosine)",
                    S("warmup_cosine_decay", peak_value=peak, warmup_steps=W, total_steps=T),
                ),
                entry(
                    "warmup_cosine_min_lr",
                    "warmup + cosine, min 0.1",
                    S(
                        "warmup_cosine_decay",
                        peak_value=peak,
                        warmup_steps=W,
                        total_steps=T,
                        end_value=0.1,
                    ),
                ),
                entry(
                    "cosine_hard_restarts",
                    "hard restarts (3 cycles)",
                    S(
                        "cosine_with_hard_restarts",
                        peak_value=peak,
                        warmup_steps=W,
                        total_steps=T,
                        num_cycles=3,
                    ),
                ),
                entry(
                    "inverse_sqrt",
                    "inverse sqrt",
                    S("inverse_sqrt", peak_value=peak, warmup_steps=W),
                ),
            ],
        ),
        family(
            "13. Warmup-stable-decay",
            "13_wsd.png",
            [
                *[
                    entry(
                        f"wsd_{kind}",
                        f"{kind} cooldown, 0.2T",
                        S(
                            "warmup_stable_decay",
                            peak_value=peak,
                            total_steps=T,
                            warmup_steps=W,
                            decay_steps=0.2,
                            decay_type=kind,
                        ),
                    )
                    for kind in ("linear", "cosine", "1-sqrt")
                ],
                entry(
                    "wsd_linear_steps",
                    "linear cooldown, T/10 steps",
                    S(
                        "warmup_stable_decay",
                        peak_value=peak,
                        total_steps=T,
                        warmup_steps=W,
                        decay_steps=T // 10,
                        end_value=0.1,
                    ),
                ),
            ],
        ),
        family(
            "14. Snapshot ensemble",
            "14_snapshot.png",
            [
                entry(
                    "snapshot_ensemble",
                    "M = 5 cycles",
                    S("snapshot_ensemble", init_value=peak, total_steps=T, num_cycles=5),
                ),
            ],
            marks={"label": "snapshot", "spec": S("snapshot_steps", total_steps=T, num_cycles=5)},
        ),
        family(
            "15. Tanh decay",
            "15_tanh.png",
            [
                entry(
                    "tanh", "timm defaults (-7, 3)", S("tanh_decay", init_value=peak, total_steps=T)
                ),
                entry(
                    "tanh_symmetric",
                    "bounds (-3, 3), end 0.1",
                    S(
                        "tanh_decay",
                        init_value=peak,
                        total_steps=T,
                        end_value=0.1,
                        lower_bound=-3.0,
                        upper_bound=3.0,
                    ),
                ),
            ],
        ),
        family(
            "16. Composition",
            "16_composition.png",
            [
                entry(
                    "join",
                    "join: ramp, hold, cosine",
                    S(
                        "join",
                        schedules=[
                            S("linear", init_value=0.0, end_value=peak, transition_steps=W),
                            S("constant", value=peak),
                            S("cosine_decay", init_value=peak, decay_steps=T // 2),
                        ],
                        boundaries=[W, T // 2],
                    ),
                ),
                entry(
                    "scale",
                    "scale(cosine, 0.5)",
                    S(
                        "scale",
                        schedule=S("cosine_decay", init_value=peak, decay_steps=T),
                        factor=0.5,
                    ),
                ),
                entry(
                    "clip",
                    "clip(cosine, 0.2, 0.8)",
                    S(
                        "clip",
                        schedule=S("cosine_decay", init_value=peak, decay_steps=T),
                        min_value=0.2,
                        max_value=0.8,
                    ),
                ),
                entry(
                    "repeat",
                    "repeat(linear 1 → 0.1, T/4)",
                    S(
                        "repeat",
                        schedule=S(
                            "linear", init_value=peak, end_value=0.1, transition_steps=T // 4
                        ),
                        period=T // 4,
                    ),
                ),
            ],
        ),
        family(
            "17. By name, durations as fractions",
            "17_by_name.png",
            [
                entry(
                    "get_cosine",
                    'get("cosine", decay_steps=.8)',
                    S("get", name="cosine", total_steps=T, init_value=peak, decay_steps=0.8),
                ),
                entry(
                    "get_multistep",
                    'get("multistep", milestones=[.3, .6])',
                    S(
                        "get",
                        name="multistep",
                        total_steps=T,
                        init_value=peak,
                        milestones=[0.3, 0.6],
                        gamma=0.3,
                    ),
                ),
                entry(
                    "get_warmup_cosine",
                    'get("warmup_cosine_decay", warmup=.1)',
                    S(
                        "get",
                        name="warmup_cosine_decay",
                        total_steps=T,
                        peak_value=peak,
                        warmup_steps=0.1,
                    ),
                ),
                entry(
                    "get_wsd",
                    'get("wsd", warmup=.05, decay=.3)',
                    S(
                        "get",
                        name="wsd",
                        total_steps=T,
                        peak_value=peak,
                        warmup_steps=0.05,
                        decay_steps=0.3,
                        decay_type="1-sqrt",
                    ),
                ),
            ],
        ),
    ]
    config = config_dict()
    config.part = "schedules"
    config.title = "Schedule gallery"
    config.runner = "experiments.gallery"
    config.quick = quick
    config.total_steps = T
    config.warmup_steps = W
    config.peak_value = peak
    # (column name, step) of the values table.
    config.table_steps = [
        ["0", 0],
        ["1", 1],
        ["W", W],
        ["T/4", T // 4],
        ["T/2", T // 2],
        ["3T/4", 3 * T // 4],
        ["T-1", T - 1],
        ["T", T],
    ]
    config.ncols = 4
    config.dpi = 60 if quick else 110
    config.families = families  # a list: its specs stay plain dicts
    return config
