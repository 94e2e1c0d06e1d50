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

from typing import Any


def get_config(quick: bool = False) -> dict[str, Any]:
    """Returns the config; `quick` is the smoke-test size."""
    return {
        "part": "range_test",
        "title": "LR range test: classic and parallel",
        "runner": "experiments.range_test",
        "quick": quick,
        "reads": ["schedule_comparison"],
        "compare_with": "schedule_comparison",
        "dataset": "mnist1d",
        "model": "cnn1d",
        "model_title": "CNN1D (paper, 5,210 params)",
        "momentum": 0.9,
        "batch_size": 128,
        "seeds": [0] if quick else [0, 1, 2],
        "classic": {
            "start_lr": 1e-4,
            "end_lr": 10.0,
            "num_steps": 60 if quick else 300,
        },
        "parallel": {
            "log10_range": [-2.5, 0.5],
            "num_lrs": 5 if quick else 13,
            "num_steps": 40 if quick else 200,
        },
        "dpi": 60 if quick else 100,
    }
