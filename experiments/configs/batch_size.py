"""Batch size × learning rate: a 2-D grid in one run, and the linear / square-root rules.

Command:
  make experiment CONFIG=batch_size          # = python -m experiments.run --config batch_size
  make experiment CONFIG=batch_size QUICK=1  # 3 batch sizes × 3 LRs × 1 seed, 80 steps

Expected runtime on a 2-core CPU: about 45 s (quick: about 6 s).

Expected result, in results/batch_size/: batch_size_lr.png (heatmap of validation accuracy
with the best LR of each batch size boxed; measured best LR vs the two rules), table.md,
metrics.jsonl, summary.json. Larger batches prefer larger LRs (fitted exponent between 0 and
1); with a fixed step budget the best LR grows more slowly than the linear rule predicts.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "batch_size"
    config.title = "Batch size × learning rate"
    config.runner = "experiments.batch_size"
    config.quick = quick
    config.dataset = "mnist1d"
    config.model = "mlp"
    config.batch_sizes = [32, 64, 128] if quick else [16, 32, 64, 128, 256]
    config.reference_batch_size = 64 if quick else 128
    config.learning_rates = (
        [0.03, 0.1, 0.3] if quick else [round(10.0 ** (e / 4), 6) for e in range(-10, 1)]
    )  # 10^-2.5 .. 1, a quarter decade apart
    config.seeds = [0] if quick else [0, 1]
    config.num_steps = 80 if quick else 600
    config.eval_every = 40 if quick else 100
    config.momentum = 0.9
    config.warmup_fraction = 0.1
    config.dpi = 60 if quick else 100
    return config
