"""LR range tests on the MNIST-1D CNN: the classic test over 3 seeds and the parallel test.

Command:
  make experiment CONFIG=range_test          # = python -m experiments.run --config range_test
  make experiment CONFIG=range_test QUICK=1  # 1 seed, 60-step ramp, 5 LRs × 40 steps

Expected runtime on a 2-core CPU: about 25 s (quick: about 6 s).

Expected result, in results/range_test/: range_tests.png (classic curve with its four
suggestions marked; parallel validation loss vs LR with its minimum marked), classic.csv and
parallel_metrics.jsonl (per-step records), table.md and summary.json. The classic test's loss
falls from about 1e-2 and blows up near LR 1; its `steepest`/`valley` suggestions land within
about half a decade of the best constant LR of part 3, the parallel test's minimum (a short
budget) near or below it. `make experiment` runs this part after schedule_comparison, whose
summary.json it reads (its `reads` key), so the comparison table is filled in.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import config_dict


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
    """Returns the config; `quick` is the smoke-test size."""
    config = config_dict()
    config.part = "range_test"
    config.title = "LR range test: classic and parallel"
    config.runner = "experiments.range_test"
    config.quick = quick
    config.reads = ["schedule_comparison"]
    config.compare_with = "schedule_comparison"
    config.dataset = "mnist1d"
    config.model = "cnn1d"
    config.model_title = "CNN1D (paper, 5,210 params)"
    config.momentum = 0.9
    config.batch_size = 128
    config.seeds = [0] if quick else [0, 1, 2]
    config.classic = config_dict(start_lr=1e-4, end_lr=10.0, num_steps=60 if quick else 300)
    config.parallel = config_dict(
        log10_range=[-2.5, 0.5], num_lrs=5 if quick else 13, num_steps=40 if quick else 200
    )
    config.dpi = 60 if quick else 100
    return config
