"""Optimizers: LR sensitivity of 8 optax optimizers, constant LR vs warmup + cosine.

Command:
  make experiment CONFIG=optimizers          # = python -m experiments.run --config optimizers
  make experiment CONFIG=optimizers QUICK=1  # SGD and Adam, 3 LRs, 1 seed, 100 steps

Expected runtime on a 2-core CPU: about 1.5 minutes (one ~8 s run per optimizer; quick: ~8 s).

Expected result, in results/optimizers/: val_acc_vs_lr.png (one panel per schedule, a line
with seed band per optimizer), sensitivity.png (the LR range within 1 point of each best),
table.md, metrics.jsonl, summary.json. The adaptive methods (Adam, AdamW, RMSProp) peak near LR
1e-3..1e-2, SGD-family near 0.1..1 (plain SGD needs the largest LR); AdaGrad and AdaDelta
need LRs of order 0.1..10. No optimizer keeps within 1 point of its best over more than about
a decade.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from experiments.configs import config_dict


def _opt(name: str, fn: str, **kwargs: Any) -> dict[str, Any]:
    static = {k: kwargs.pop(k) for k in ("nesterov",) if k in kwargs}
    return {"name": name, "fn": fn, "kwargs": kwargs, "static": static}


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    optimizers = [
        _opt("SGD", "sgd"),
        _opt("Momentum", "sgd", momentum=0.9),
        _opt("Nesterov", "sgd", momentum=0.9, nesterov=True),
        _opt("Adam", "adam"),
        _opt("AdamW", "adamw", weight_decay=1e-4),
        _opt("RMSProp", "rmsprop"),
        _opt("AdaGrad", "adagrad"),
        _opt("AdaDelta", "adadelta"),
    ]
    if quick:
        optimizers = [optimizers[0], optimizers[3]]
    # A common grid, half a decade apart, wide enough for both SGD and the adaptive methods.
    full_grid = [round(10.0**e, 6) for e in [x / 2 for x in range(-8, 3)]]  # 1e-4 .. 10
    config = config_dict()
    config.part = "optimizers"
    config.title = "Optimizers: LR sensitivity, constant vs schedule"
    config.runner = "experiments.optimizers"
    config.quick = quick
    config.dataset = "mnist1d"
    config.model = "mlp"
    config.optimizers = optimizers  # a list: its entries stay plain dicts
    config.schedules = ["constant", "warmup_cosine"]
    config.schedule_labels = config_dict(constant="constant", warmup_cosine="warmup 10% + cosine")
    config.warmup_fraction = 0.1
    config.learning_rates = [1e-3, 1e-2, 1e-1] if quick else full_grid
    config.seeds = [0] if quick else [0, 1]
    config.num_steps = 100 if quick else 600
    config.eval_every = 50 if quick else 100
    config.batch_size = 128
    config.tolerance = 0.01
    config.dpi = 60 if quick else 100
    return config
