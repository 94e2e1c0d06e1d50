"""Reduce-on-plateau (on validation loss) with a constant LR vs the best fixed schedule.

Command:
  make experiment CONFIG=plateau          # = python -m experiments.run --config plateau
  make experiment CONFIG=plateau QUICK=1  # 2 LRs, 1 seed, 150 steps
  make experiment CONFIG=plateau ARGS='--config.plateau.factor=0.5'  # any field, by its name

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

import ml_collections

from experiments.configs import config_dict


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "plateau"
    config.title = "Reduce-on-plateau vs the best fixed schedule"
    config.runner = "experiments.plateau"
    config.quick = quick
    config.reads = ["schedule_comparison"]
    config.compare_with = "schedule_comparison"
    config.fallback_family = "warmup_cosine"
    config.dataset = "mnist1d"
    config.model = "mlp"
    config.model_title = "MLP 40-100-100-10"
    # A quarter-decade grid holding part 3's half-decade MLP grid (0.01 ... 1.0).
    config.learning_rates = (
        [0.1, 0.5] if quick else [0.01, 0.0178, 0.0316, 0.0562, 0.1, 0.178, 0.316, 0.562, 1.0]
    )
    config.seeds = [0] if quick else [0, 1, 2]
    # As in part 3 (quick too), whose best family is only used for the same budget.
    config.num_steps = 150 if quick else 1000
    config.batch_size = 128
    config.momentum = 0.9
    config.eval_every = 15 if quick else 25  # the controller acts at each evaluation
    # PyTorch ReduceLROnPlateau semantics; patience and cooldown count evaluations.
    config.plateau = config_dict(
        mode="min",
        factor=0.2,
        patience=1 if quick else 3,  # quick: so that the short run does cut the LR
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=1e-5,
    )
    config.plateau_metric = "loss"  # validation cross-entropy
    config.tolerance = 0.01  # LR sensitivity: width of the LR range within 1 val point of best
    config.show_seed = 0  # the seed whose LR curves are drawn
    config.dpi = 60 if quick else 100
    return config
