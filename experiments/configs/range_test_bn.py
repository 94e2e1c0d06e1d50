"""LR range tests on a CNN with BatchNorm and dropout, on real images: classic and parallel.

The range-test part (`experiments/range_test.py`) again, on :class:`lrjax.models.ResNet` and
scikit-learn's 8×8 digits (or MNIST when `DATA_DIR` holds its IDX files): the batch statistics
are model state of every run, dropout draws from each run's step key.

Command:
  make experiment CONFIG=range_test_bn          # = python -m experiments.run --config range_test_bn
  make experiment CONFIG=range_test_bn QUICK=1

Expected runtime on a 2-core CPU: about a minute (quick: about 20 s).

Expected result, in results/range_test_bn/: range_tests.png, classic.csv,
parallel_metrics.jsonl, table.md and summary.json, as for the range-test part (no comparison
with the schedule comparison, which trains other models).
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict, range_test


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = range_test.get_config(quick)
    del config["reads"], config["compare_with"]
    config.part = "range_test_bn"
    config.title = "LR range test on a CNN with BatchNorm: classic and parallel"
    config.dataset = "digits"
    config.model = "resnet"
    config.model_title = (
        "ResNet, one stage of 4 channels (smoke test)"
        if quick
        else "ResNet (BatchNorm, dropout 0.1; 7,298 params)"
    )
    config.batch_size = 64
    config.classic.num_steps = 60 if quick else 200
    config.parallel.num_lrs = 5 if quick else 9
    config.parallel.num_steps = 40 if quick else 150
    config.images = True
    # The smoke test compiles a one-stage ResNet: the compile is most of its time.
    config.resnet = config_dict(**({"features": [4]} if quick else {}))
    return config
