"""Snapshot ensembles and SWA on a CNN with BatchNorm and dropout, on real images.

The snapshots part (`experiments/snapshots.py`) again, on :class:`lrjax.models.ResNet`
(BatchNorm, dropout 0.1) and scikit-learn's 8×8 digits (or MNIST when `DATA_DIR` holds its IDX
files). Snapshots keep their batch statistics; SWA's are recomputed with
`lrjax.recompute_batch_stats`, and the table also scores SWA with the averaged statistics.

Command:
  make experiment CONFIG=snapshots_bn          # = python -m experiments.run --config snapshots_bn
  make experiment CONFIG=snapshots_bn QUICK=1  # 2 peak LRs, 1 seed, 3 cycles of 40 steps

Expected runtime on a 2-core CPU: about 3 minutes (quick: about 45 s): 27 members of 600 steps
and 45 independent members of 150 steps.

Expected result, in results/snapshots_bn/: the same files as the snapshots part. On digits
every method lands near 0.98 test accuracy (360 test images: one image is 0.3 points), so the
methods are within the noise of each other on accuracy; recomputing SWA's statistics matters.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict, snapshots


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = snapshots.get_config(quick)
    config.part = "snapshots_bn"
    config.title = "Snapshot ensembles and SWA on a CNN with BatchNorm (recomputed statistics)"
    config.dataset = "digits"
    config.model = "resnet"
    config.model_title = (
        "ResNet, one stage of 4 channels (smoke test)"
        if quick
        else "ResNet (BatchNorm, dropout 0.1; 7,298 params)"
    )
    config.peak_lrs = [0.05, 0.2] if quick else [0.05, 0.1, 0.2]
    config.num_steps = 120 if quick else 600
    config.num_cycles = 3 if quick else 4
    config.batch_size = 64
    config.eval_every = 40 if quick else 150
    config.swa.anneal_steps = 10 if quick else 30
    config.swa.every = 5 if quick else 10
    config.images = True
    # The smoke test compiles a one-stage ResNet: the compile is most of its time.
    config.resnet = config_dict(**({"features": [4]} if quick else {}))
    return config
