"""Learning-rate-free and schedule-free optimizers vs a tuned schedule, each knob on a log grid.

Command:
  make experiment CONFIG=lr_free          # = python -m experiments.run --config lr_free
  make experiment CONFIG=lr_free QUICK=1  # MLP, 3 methods × 3 knob values, 1 seed, 60 steps

Expected runtime on a 2-core CPU: about 40 s (47 s measured with the machine shared, 41 s of
CPU; one compiled run per model, every method × knob × seed and the tuned baseline as members
of it: 135 members on the MLP, 84 on the CNN, about 8 s of compiling each; quick: about 6 s).

Expected result, in results/lr_free/: acc_vs_knob.png (one panel per model: validation accuracy
vs the knob relative to its default, one line with seed band per method, the tuned schedule's
best as a horizontal line and band), table_<model>.md, metrics_<model>.jsonl, summary.json.
At this short budget (T = 150 steps, batch 128) the tuned SGD + momentum schedule (cosine on
the MLP, about 0.57 validation accuracy; WSD on the CNN, about 0.75) beats every method's
default on the MLP; on the CNN Prodigy and D-Adapt AdamW at their defaults beat it by 5-8
points ("needs no tuning here"); schedule-free AdamW's default LR 0.0025 is about 10x too small
here (it reaches or beats the tuned schedule at 0.025); DoG and DoWG lag far behind at any knob
value. The verdict per method is "needs no tuning here" only where its default knob is within
one validation point of the tuned best (mean over seeds). The schedule comparison's best family
(its `reads` key) is the baseline's schedule, its peak LR re-tuned at this part's budget;
without that summary warmup + cosine is used.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict
from lrjax.lr_free import METHODS


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    # Quick: one of each kind (schedule-free, D-adaptation, distance over gradients).
    methods = ["schedule_free_sgd", "prodigy", "dog"] if quick else list(METHODS)
    config = config_dict()
    config.part = "lr_free"
    config.title = "Learning-rate-free and schedule-free optimizers vs a tuned schedule"
    config.runner = "experiments.lr_free"
    config.quick = quick
    config.reads = ["schedule_comparison"]
    config.compare_with = "schedule_comparison"
    config.fallback_family = "warmup_cosine"
    config.dataset = "mnist1d"
    config.models = ["mlp"] if quick else ["mlp", "cnn1d"]
    config.model_titles = config_dict(mlp="MLP 40-100-100-10", cnn1d="CNN1D (paper, 5,210 params)")
    config.methods = methods
    # Each knob at its default times these factors (a log grid of decades around it); the
    # CNN costs about twice the MLP per member, so it gets the inner three.
    config.knob_factors = config_dict(
        mlp=[0.1, 1.0, 10.0] if quick else [0.01, 0.1, 1.0, 10.0, 100.0],
        cnn1d=[0.1, 1.0, 10.0],
    )
    # The baseline: SGD + momentum with the comparison's best schedule, peak LR re-tuned.
    config.baseline_momentum = 0.9
    config.baseline_peak_lrs = config_dict(
        mlp=[0.1, 0.5] if quick else [0.01, 0.0316, 0.1, 0.316, 1.0],
        cnn1d=[0.0316, 0.1, 0.316, 1.0],
    )
    config.seeds = [0] if quick else [0, 1, 2]
    config.num_steps = 60 if quick else 150
    config.eval_every = 30 if quick else 75
    config.batch_size = 128
    config.tolerance = 0.01  # one validation point: the verdict's and the sensitivity's margin
    config.dpi = 60 if quick else 100
    return config
