"""Snapshot ensembles vs a single model, SWA, EMA and an independent ensemble, at equal steps.

Command:
  make experiment CONFIG=snapshots          # = python -m experiments.run --config snapshots
  make experiment CONFIG=snapshots QUICK=1  # 2 peak LRs, 1 seed, 3 cycles of 40 steps

Expected runtime on a 2-core CPU: about 55 s (quick, MLP: about 9 s): one 36-member run of T
steps (snapshot, cosine and SWA schedules × 4 peak LRs × 3 seeds; snapshots, SWA average and EMA
tracked on every member) and one 60-member run of T/M steps (the independent ensembles), two
compiles.

Expected result, in results/snapshots/: ensemble_size.png (test accuracy and NLL vs the number
m of snapshots, baselines as horizontal lines), schedules.png (LRs used with the snapshot steps;
validation accuracy during training), table.md, metrics.jsonl, metrics_independent.jsonl,
evaluations.jsonl, summary.json. On the MNIST-1D CNN at T = 1000: the 5-snapshot ensemble
reaches about 0.95 test accuracy and NLL about 0.18, against about 0.94 and 0.25 for the single
cosine model; SWA and EMA land on the single model (within its seed spread); the independent
ensemble of 5 models × 200 steps is far behind (about 0.87: each model is undertrained).
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "snapshots"
    config.title = "Snapshot ensembles vs single model, SWA, EMA and independent ensembles"
    config.runner = "experiments.snapshots"
    config.quick = quick
    config.dataset = "mnist1d"
    # The CNN, the model snapshot ensembles were made for; the quick version uses the MLP,
    # which compiles and trains several times faster.
    config.model = "mlp" if quick else "cnn1d"
    config.model_title = "MLP 40-100-100-10" if quick else "CNN1D (paper, 5,210 params)"
    # Quarter decades around part 3's best peak LRs of the CNN (0.1-0.316).
    config.peak_lrs = [0.1, 0.316] if quick else [0.1, 0.178, 0.316, 0.562]
    config.seeds = [0] if quick else [0, 1, 2]
    config.num_steps = 120 if quick else 1000  # T, the budget of every method
    config.num_cycles = 3 if quick else 5  # M snapshots; also M independent models of T/M steps
    config.batch_size = 128
    config.momentum = 0.9
    config.eval_every = 40 if quick else 50
    config.swa = config_dict(
        start_fraction=0.75,  # cosine over T until 0.75 T, then SWALR
        # SWA LR = half the peak, the ratio of Izmailov et al.'s PreResNet runs (0.05 / 0.1);
        # on the MLP, factors 0.1-1.0 were within a point of each other on validation.
        lr_factor=0.5,
        anneal_steps=10 if quick else 50,
        every=5 if quick else 10,  # average every c updates
    )
    config.ema_decay = 0.99
    config.dpi = 60 if quick else 100
    return config
