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

import ml_collections

from experiments.configs import config_dict
from experiments.study import FAMILIES


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "schedule_comparison"
    config.title = "Schedule comparison (one vectorized run per model)"
    config.runner = "experiments.schedule_comparison"
    config.quick = quick
    config.dataset = "mnist1d"
    config.models = ["mlp"] if quick else ["mlp", "cnn1d"]
    config.model_titles = config_dict(mlp="MLP 40-100-100-10", cnn1d="CNN1D (paper, 5,210 params)")
    config.families = list(FAMILIES)
    # Half-decade grids around where SGD + momentum 0.9 trains each model.
    config.peak_lrs = config_dict(
        mlp=[0.1, 0.5] if quick else [0.01, 0.0316, 0.1, 0.316, 1.0],
        cnn1d=[0.1, 0.5] if quick else [0.0316, 0.1, 0.316, 1.0],
    )
    config.seeds = [0] if quick else [0, 1, 2]
    config.num_steps = 150 if quick else 1000
    config.eval_every = 15 if quick else 50
    config.batch_size = 128
    config.momentum = 0.9
    # Validation accuracy whose first crossing is reported ("steps to target").
    config.target_accuracy = config_dict(mlp=0.5 if quick else 0.6, cnn1d=0.85)
    config.smooth = 5 if quick else 25
    config.dpi = 60 if quick else 100
    return config
