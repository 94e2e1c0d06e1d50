"""Experiment configs: one module per part of the study, run in the order of `PARTS`.

Each module `experiments/configs/<part>.py` defines `get_config(quick: bool = False)`, returning
an `ml_collections.ConfigDict` (the convention of Flax's examples) with at least:

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

Any field can be overridden from the command line with its dotted name, as with
`ml_collections.config_flags`:

  make experiment CONFIG=plateau ARGS='--config.num_steps=200 --config.plateau.factor=0.5'
  python -m experiments.run --config experiments/configs/plateau.py --config.seeds=[0,1]

The value is read as the field's type (a Python literal for numbers and lists, the text itself
for strings); a key the config lacks, or a value of another type, is an error naming the key.
With several parts, an override applies to each part that has the key (an error if none has).
The part's runner gets the resolved config as plain data (`resolve`), which is also what its
`config.json` holds.
"""

from __future__ import annotations

import ast
import difflib
import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections

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
    "halving",
)

# Chosen by --config and --quick, not overridable field by field.
FIXED = ("part", "runner", "quick")


def config_dict(**fields: Any) -> ml_collections.ConfigDict:
    """An `ml_collections.ConfigDict` that keeps its fields in the order they were written.

    ml_collections sorts the keys of a ConfigDict, and of every dict nested in one, unless told
    otherwise; here the order is part of a result (a summary lists the plateau settings in the
    config's order, PBT draws its hyperparameters in the order of its search space), so a
    nested dict becomes an order-keeping ConfigDict too.

    Examples:
      >>> config = config_dict(num_steps=100, swa=dict(every=5, anneal_steps=10))
      >>> config.swa.every, list(config.swa)
      (5, ['every', 'anneal_steps'])
    """
    config = ml_collections.ConfigDict(sort_keys=False)
    for key, value in fields.items():
        config[key] = config_dict(**value) if isinstance(value, dict) else value
    return config


def load(
    name: str, *, quick: bool = False, dataset: str | None = None, data_dir: str | None = None
) -> ml_collections.ConfigDict:
    """The locked `ConfigDict` of part `name` (full, or the quick smoke-test version).

    `name` is a name of `PARTS` or the path of its file (`experiments/configs/<name>.py`).
    `dataset` (a name of `lrjax.data.DATASETS`) replaces the built-in MNIST-1D of every part
    that trains, with `data_dir` for the datasets read from IDX files (`mnist`,
    `fashion_mnist`); the gallery, which trains nothing, ignores both.
    """
    name = part_name(name)
    config = importlib.import_module(f"{__name__}.{name}").get_config(quick=quick)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ValueError(f"config {name!r}: get_config must return a ConfigDict")
    for key in ("part", "title", "runner", "quick"):
        if key not in config:
            raise ValueError(f"config {name!r} lacks the required key {key!r}")
    if dataset is None and data_dir is not None and config.get("images"):
        dataset = "mnist"  # the image parts train on MNIST's IDX files when a folder is given
    if dataset is not None and "dataset" in config:
        config.dataset = dataset
        # The built-in dataset's own arguments (sizes of MNIST-1D) do not apply to another one.
        config.dataset_kwargs = config_dict(
            **({} if data_dir is None else {"data_dir": str(data_dir)})
        )
    config.lock()
    return config


def part_name(name: str) -> str:
    """The part of `name`: a name of `PARTS`, or the path of a config file of this folder."""
    stem = name.removesuffix(".py").replace("\\", "/").rsplit("/", 1)[-1]
    if name.endswith(".py") and stem in PARTS:
        return stem
    if name not in PARTS:
        raise ValueError(f"config must be one of {', '.join(PARTS)}; got {name!r}")
    return name


def has(config: ml_collections.ConfigDict, key: str) -> bool:
    """Whether `config` has the dotted `key` (e.g. `plateau.factor`)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return False
        node = node[part]
    return True


def override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets the dotted field `key` of `config` to `text` read as the field's current type.

    Raises:
      ValueError: naming `key`, when the config lacks it (with the closest key), when it is a
        group of fields or one of `FIXED`, or when `text` is not a value of the field's type.
    """
    *path, leaf = key.split(".")
    if (path or [leaf])[0] in FIXED:
        raise ValueError(
            f"--config.{key}: {', '.join(FIXED)} are chosen by --config and --quick, not overridden"
        )
    if not has(config, key):
        raise ValueError(f"--config.{key}: {config.part} has no key {key!r}{_hint(key, [config])}")
    node: Any = config
    for part in path:
        node = node[part]
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        fields = ", ".join(f"{key}.{k}" for k in current)
        raise ValueError(f"--config.{key} is a group of settings; override its fields: {fields}")
    value = _read(key, current, text)
    try:
        node[leaf] = value
    except TypeError as e:
        raise ValueError(_type_error(key, current, text)) from e


def resolve(
    name: str,
    *,
    quick: bool = False,
    dataset: str | None = None,
    data_dir: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The resolved config of part `name` as plain data: what its runner gets and `config.json`
    holds. `overrides` maps dotted keys to their command-line text (see `override`); applied
    ones are recorded under `overrides`, so a run with them is never taken for the default."""
    (config,) = resolve_all([name], quick=quick, dataset=dataset, data_dir=data_dir,
                            overrides=overrides)  # fmt: skip
    return config


def resolve_all(
    names: Iterable[str],
    *,
    quick: bool = False,
    dataset: str | None = None,
    data_dir: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """`resolve` for several parts: each override applies to every part that has its key, and
    one that no part has is an error naming the key."""
    loaded = [load(n, quick=quick, dataset=dataset, data_dir=data_dir) for n in names]
    applied: list[dict[str, str]] = [{} for _ in loaded]
    for key, text in (overrides or {}).items():
        targets = [i for i, c in enumerate(loaded) if has(c, key)]
        if not targets and len(loaded) > 1:
            parts = ", ".join(c.part for c in loaded)
            raise ValueError(f"--config.{key}: no part of {parts} has key {key!r}"
                             f"{_hint(key, loaded)}")  # fmt: skip
        for i in targets or [0]:  # a single part without the key raises its own error
            override(loaded[i], key, text)
            applied[i][key] = text
    configs = []
    for config, done in zip(loaded, applied, strict=True):
        plain = config.to_dict()
        if done:
            plain["overrides"] = done
        configs.append(plain)
    return configs


def _keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every dotted key of `config`, groups and their fields."""
    keys = []
    for k, v in config.items():
        keys.append(prefix + k)
        if isinstance(v, ml_collections.ConfigDict):
            keys += _keys(v, f"{prefix}{k}.")
    return keys


def _hint(key: str, configs: Iterable[ml_collections.ConfigDict]) -> str:
    known = sorted({k for c in configs for k in _keys(c)})
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _read(key: str, current: Any, text: str) -> Any:
    """`text` as a value of `current`'s type: the text itself for a string, a Python literal
    otherwise (`200`, `0.5`, `[0, 1]`, `True`, `None`)."""
    if isinstance(current, str):
        return text
    if isinstance(current, bool):
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.strip().lower() not in words:
            raise ValueError(f"--config.{key}: {text!r} is not a bool (true or false)")
        return words[text.strip().lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ValueError(_type_error(key, current, text)) from None


def _type_error(key: str, current: Any, text: str) -> str:
    kind = type(current).__name__
    return f"--config.{key}: {text!r} is not of the field's type, {kind} (config: {current!r})"
