"""Fine-tuning: warmup + decay on a pretrained model, layer-wise LR decay, frozen backbone.

A 4-layer MLP (40 → 100 → 100 → 100 → 5) is pretrained on MNIST-1D's digits 0-4 (saved to
results/finetune/pretrained.npz and read back), then fine-tuned on digits 5-9 (relabelled 0-4)
from only `per_class` training examples per digit, with a fresh head. One `sweep.train` run
holds every fine-tuning member: Hugging Face's warmup + linear and warmup + cosine recipes
(`lrjax.get("linear" | "cosine", num_warmup_steps=...)`) × warmup fraction × peak LR × layer
decay γ (`lrjax.discriminative`: the head gets the peak LR, block d gets
peak · γ^(3 − d)) plus a frozen backbone (its LR multiplier 0) × seeds. Training from scratch
(same model, same steps, same recipes and LRs) is a second run. AdamW throughout.

Command:
  make experiment CONFIG=finetune          # = python -m experiments.run --config finetune
  make experiment CONFIG=finetune QUICK=1  # 2 LRs, 2 decays, 1 seed, 40 steps

Expected runtime on a 2-core CPU: about 30 s (three compiled runs: pretraining, 200
fine-tuning members and 40 scratch members of 300 steps; quick: about 15 s, nearly all of it
compiling the three programs).

Expected result, in results/finetune/: acc_vs_lr.png (validation accuracy vs peak LR, one line
per LLRD factor, the frozen backbone and scratch dashed, one panel per recipe), table.md,
metrics.jsonl, summary.json, pretrained.npz. The pretrained MLP reaches ~0.69 test accuracy on
digits 0-4. On digits 5-9 fine-tuning beats training from scratch by ~7 points (0.57 vs 0.51)
and the frozen backbone by ~4; LLRD helps by ~2.5 points, best at the smallest γ of the grid
(0.25: the backbone wants far less LR than the head); warmup and linear vs cosine move test
accuracy by less than one point, which the verdicts call a tie.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "finetune"
    config.title = "Fine-tuning: warmup + decay, layer-wise LR decay, frozen backbone"
    config.runner = "experiments.finetune"
    config.quick = quick
    config.dataset = "mnist1d"
    config.hidden = [100, 100, 100]
    config.source_classes = [0, 1, 2, 3, 4]
    config.target_classes = [5, 6, 7, 8, 9]
    config.per_class = 60
    config.pretrain_steps = 150 if quick else 1500
    config.pretrain_lr = 3e-3
    config.recipes = ["linear", "cosine"]
    config.warmup_fractions = [0.0, 0.1]
    config.learning_rates = [1e-3, 1e-2] if quick else [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    config.layer_decays = [1.0, 0.5] if quick else [1.0, 0.75, 0.5, 0.25]
    config.weight_decay = 0.01
    config.seeds = [0] if quick else [0, 1]
    config.num_steps = 40 if quick else 300
    config.eval_every = 40 if quick else 100
    config.batch_size = 50
    config.dpi = 60 if quick else 100
    return config
