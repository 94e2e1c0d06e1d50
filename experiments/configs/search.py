"""Search: grid, random and Bayesian (optuna TPE) search over (peak LR, warmup, weight decay).

Command:
  make experiment CONFIG=search          # = python -m experiments.run --config search
  make experiment CONFIG=search QUICK=1  # 2 rounds of 4 trials, 60 steps

Needs optuna (`pip install 'lrjax[experiments]'`); without it the part is skipped with a note.

Expected runtime on a 2-core CPU: about 45 s (quick: about 20 s, under load): 3 methods × 4
rounds, each round one 8-member `lrjax.fit` of 600 steps (`lrjax.search`), one compile for all.

Expected result, in results/search/: best_so_far.png, table.md, trials.jsonl, summary.json.
All three find AdamW settings around 0.65-0.7 validation accuracy; the best peak LR is 1e-2 to
2.5e-2; TPE's later rounds move there (median peak LR of a round 0.004, then 0.01-0.04).
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "search"
    config.title = "Hyperparameter search: grid, random, Bayesian"
    config.runner = "experiments.search"
    config.quick = quick
    config.dataset = "mnist1d"
    config.model = "mlp"
    config.methods = ["grid", "random", "tpe"]
    config.space = config_dict(lr=[1e-4, 1e-1], warmup=[0.0, 0.3], wd=[1e-5, 1e-1])
    # 4 × 2 × 4 = 32 points = rounds × batch of the full config.
    config.grid = config_dict(
        lr=[1e-4, 1e-3, 1e-2, 1e-1] if not quick else [1e-3, 1e-2],
        warmup=[0.0, 0.2],
        wd=[1e-5, 1e-3, 1e-2, 1e-1] if not quick else [1e-4, 1e-2],
    )
    config.batch = 4 if quick else 8
    config.rounds = 2 if quick else 4
    config.num_steps = 60 if quick else 600
    config.batch_size = 128
    config.init_seed = 0
    config.search_seed = 0
    config.dpi = 60 if quick else 100
    return config
