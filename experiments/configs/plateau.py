"""Reduce-on-plateau (on validation loss) with a constant LR vs the best fixed schedule.

Command:
  make experiment CONFIG=plateau          # = python -m experiments.run --config plateau
  make experiment CONFIG=plateau QUICK=1  # 2 LRs, 1 seed, 150 steps

Expected runtime on a 2-core CPU: about 30 s (quick: about 6 s): one 27-member run with the
plateau controller (9 initial LRs × 3 seeds) and one 54-member run of the fixed schedules (part
3's best family and plain constant × the same LRs and seeds), two compiles.

Expected result, in results/plateau/: plateau.png (LR actually used over steps for one seed,
showing the cuts; final validation accuracy vs initial LR for plateau, the fixed schedule and
constant), table.md, metrics_plateau.jsonl, metrics_fixed.jsonl, summary.json. On the MNIST-1D
MLP the validation loss bottoms out within a few hundred steps (it overfits), so the controller
cuts the LR about 7 times from 0.316 down to min_lr; plateau reaches about 0.68 test accuracy,
tied (within a point) with the best fixed schedule (SGDR from part 3, or warmup + cosine) and
3-4 points above the plain constant LR, and degrades less at too-large LRs. `make experiment`
runs this part after schedule_comparison, whose summary.json names the fixed schedule to compare
with (its `reads` key); without it (or for a different step budget) warmup + cosine is used.
"""

from __future__ import annotations

from typing import Any


def get_config(quick: bool = False) -> dict[str, Any]:
    """Returns the config; `quick` is the smoke-test size."""
    return {
        "part": "plateau",
        "title": "Reduce-on-plateau vs the best fixed schedule",
        "runner": "experiments.plateau",
        "quick": quick,
        "reads": ["schedule_comparison"],
        "compare_with": "schedule_comparison",
        "fallback_family": "warmup_cosine",
        "dataset": "mnist1d",
        "model": "mlp",
        "model_title": "MLP 40-100-100-10",
        # A quarter-decade grid holding part 3's half-decade MLP grid (0.01 ... 1.0).
        "learning_rates": (
            [0.1, 0.5] if quick else [0.01, 0.0178, 0.0316, 0.0562, 0.1, 0.178, 0.316, 0.562, 1.0]
        ),
        "seeds": [0] if quick else [0, 1, 2],
        # As in part 3 (quick too), whose best family is only used for the same budget.
        "num_steps": 150 if quick else 1000,
        "batch_size": 128,
        "momentum": 0.9,
        "eval_every": 15 if quick else 25,  # the controller acts at each evaluation
        # PyTorch ReduceLROnPlateau semantics; patience and cooldown count evaluations.
        "plateau": {
            "mode": "min",
            "factor": 0.2,
            "patience": 1 if quick else 3,  # quick: so that the short run does cut the LR
            "threshold": 1e-4,
            "threshold_mode": "rel",
            "cooldown": 0,
            "min_lr": 1e-5,
        },
        "plateau_metric": "loss",  # validation cross-entropy
        "tolerance": 0.01,  # LR sensitivity: width of the LR range within 1 val point of best
        "show_seed": 0,  # the seed whose LR curves are drawn
        "dpi": 60 if quick else 100,
    }
