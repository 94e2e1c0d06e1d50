"""Experiment configs: one module per part of the study, run in the order of `PARTS`.

Each module `experiments/configs/<part>.py` defines `get_config(quick: bool = False) -> dict`,
a JSON-serializable dict with at least:

  part:   the part's name (its results go to `results/<part>/`);
  title:  the heading of its report section;
  runner: the module whose `run(config, out_dir) -> str` does the work, writes its files into
          `out_dir` and returns the body of its Markdown report section;
  quick:  whether this is the small smoke-test version.

Optionally `images: True` marks a part that trains on images: it uses MNIST from `data_dir`
when one is given without a dataset name (scikit-learn's digits otherwise).

Optionally `reads`: parts whose results this part reads (e.g. the range test compares its
suggestions with the schedule comparison's best LR); `make experiment` runs those first and
re-runs this part whenever one of them was re-run.

The docstring of each config states the command to run it, the expected runtime and the
expected result.
"""

from __future__ import annotations

import importlib
from typing import Any

# Default order of `make experiment`; later parts of the study are appended here.
PARTS: tuple[str, ...] = (
    "schedules",
    "range_test",
    "schedule_comparison",
    "optimizers",
    "batch_size",
    "snapshots",
    "plateau",
    "search",
    "range_test_bn",
    "snapshots_bn",
    "pbt",
    "finetune",
    "lr_free",
)


def get_config(
    name: str, *, quick: bool = False, dataset: str | None = None, data_dir: str | None = None
) -> dict[str, Any]:
    """Returns the resolved config of part `name` (full, or the quick smoke-test version).

    `dataset` (a name of `lrjax.data.DATASETS`) replaces the built-in MNIST-1D of every part
    that trains, with `data_dir` for the datasets read from IDX files (`mnist`,
    `fashion_mnist`); the gallery, which trains nothing, ignores both.
    """
    if name not in PARTS:
        raise ValueError(f"config must be one of {', '.join(PARTS)}; got {name!r}")
    config = importlib.import_module(f"{__name__}.{name}").get_config(quick=quick)
    for key in ("part", "title", "runner", "quick"):
        if key not in config:
            raise ValueError(f"config {name!r} lacks the required key {key!r}")
    if dataset is None and data_dir is not None and config.get("images"):
        dataset = "mnist"  # the image parts train on MNIST's IDX files when a folder is given
    if dataset is not None and "dataset" in config:
        config["dataset"] = dataset
        # The built-in dataset's own arguments (sizes of MNIST-1D) do not apply to another one.
        config["dataset_kwargs"] = {} if data_dir is None else {"data_dir": str(data_dir)}
    return config
