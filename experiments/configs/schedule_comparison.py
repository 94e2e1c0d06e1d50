"""Schedule comparison: 12 families × a log grid of peak LRs × 3 seeds, one run per model.

Command:
  make experiment CONFIG=schedule_comparison          # = python -m experiments.run --config ...
  make experiment CONFIG=schedule_comparison QUICK=1  # MLP only, 2 LRs, 1 seed, 150 steps

Expected runtime on a 2-core CPU: about 3.5 minutes (MLP ~1 min for 180 members, CNN ~2.5 min
for 144 members; quick: ~10 s), mostly training; one compile per model.

Expected result, in results/schedule_comparison/: per model, val_acc_vs_lr_<model>.png (12
lines with seed bands), loss_curves_<model>.png, lr_used_<model>.png, table_<model>.md,
metrics_<model>.jsonl; summary.json. On MNIST-1D, SGD + momentum 0.9, T = 1000: the MLP
reaches about 0.6-0.7 test accuracy and the CNN about 0.9; schedules that anneal to ~0 (cosine,
warmup + cosine, one-cycle, WSD, polynomial) beat constant and slow decays (inverse-time) by
several points; the best peak LR differs by family (decaying families tolerate larger peaks).
"""

from __future__ import annotations

from typing import Any

from experiments.study import FAMILIES


def get_config(quick: bool = False) -> dict[str, Any]:
    """Returns the config; `quick` is the smoke-test size."""
    return {
        "part": "schedule_comparison",
        "title": "Schedule comparison (one vectorized run per model)",
        "runner": "experiments.schedule_comparison",
        "quick": quick,
        "dataset": "mnist1d",
        "models": ["mlp"] if quick else ["mlp", "cnn1d"],
        "model_titles": {"mlp": "MLP 40-100-100-10", "cnn1d": "CNN1D (paper, 5,210 params)"},
        "families": list(FAMILIES),
        # Half-decade grids around where SGD + momentum 0.9 trains each model.
        "peak_lrs": {
            "mlp": [0.1, 0.5] if quick else [0.01, 0.0316, 0.1, 0.316, 1.0],
            "cnn1d": [0.1, 0.5] if quick else [0.0316, 0.1, 0.316, 1.0],
        },
        "seeds": [0] if quick else [0, 1, 2],
        "num_steps": 150 if quick else 1000,
        "eval_every": 15 if quick else 50,
        "batch_size": 128,
        "momentum": 0.9,
        # Validation accuracy whose first crossing is reported ("steps to target").
        "target_accuracy": {"mlp": 0.5 if quick else 0.6, "cnn1d": 0.85},
        "smooth": 5 if quick else 25,
        "dpi": 60 if quick else 100,
    }
