"""The per-member settings of a sweep, checked and stacked into one ``Member`` of ``[K]``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from lrjax import supervised
from lrjax.trackers import EMA

Array = jax.Array

# -----------------------------------------------------------------------------------------------
# Members


_INT32_RANGE = (-(2**31), 2**31 - 1)


def _int32(name: str, value: Any) -> np.ndarray:
    """``value`` as int32, after checking it holds integers that int32 holds (a wider seed
    would wrap around, silently colliding with another: 2**32 is 0)."""
    lo, hi = _INT32_RANGE
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers in [{lo}, {hi}], got {value!r}")
    outside = (arr < lo) | (arr > hi)
    if outside.any():
        first = np.argwhere(outside)[0] if arr.ndim else ()
        where = f" at index {tuple(int(i) for i in first)}" if arr.ndim else ""
        raise ValueError(
            f"{name} must hold integers in [{lo}, {hi}] (int32), got {arr[tuple(first)]}{where}"
        )
    return arr.astype(np.int32)


def _hparam(name: str, value: Any, direct: bool) -> np.ndarray:
    """One per-member hyperparameter, checked and cast (see :func:`train`'s ``hparams``)."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        raise ValueError(
            f"{name} must hold numbers, got booleans; a per-member flag cannot change the "
            "program's structure (run one sweep per setting), and one read as a number can be "
            "given as 0/1 integers to an optimizer_kwargs that reads it"
        )
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(
            f"{name} must have a leading member axis of size K, got a scalar; use "
            "optimizer_kwargs for values shared by all members"
        )
    if direct and arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D [K] array, one scalar optimizer argument per member, got "
            f"shape {arr.shape}; write optimizer_kwargs to build arguments from [K, ...] values"
        )
    if np.issubdtype(arr.dtype, np.integer) and not direct:
        return _int32(name, arr)
    with np.errstate(over="ignore"):  # found just below, with the member it belongs to
        cast = arr.astype(np.float32)
    nan = np.isnan(cast)
    overflow = np.isfinite(arr) & ~np.isfinite(cast)
    if nan.any() or overflow.any():
        member = int(np.argwhere(nan | overflow)[0][0])
        raise ValueError(
            f"{name} must hold float32 numbers, got {arr[member].tolist()} for member {member}"
        )
    return cast


def _members(
    hparams, seeds, data_seeds, batch_sizes, batch_size, tracker_settings, direct
) -> supervised.Member:
    """Checks the per-member settings and stacks them into one :class:`Member` of ``[K]``.

    ``tracker_settings``: ``{tracker: {setting: [K] values}}`` (see :func:`_split_trackers`);
    ``direct``: the hyperparameters are the optimizer's arguments themselves (no
    ``optimizer_kwargs``).
    """
    if not isinstance(hparams, Mapping):
        raise ValueError(f"hparams must be a mapping of name -> [K] array, got {type(hparams)}")
    named = {f"hparams[{k!r}]": _hparam(f"hparams[{k!r}]", v, direct) for k, v in hparams.items()}
    named["seeds"] = _int32("seeds", seeds)
    named["data_seeds"] = _int32("data_seeds", data_seeds)
    if batch_sizes is not None:
        named["batch_sizes"] = _int32("batch_sizes", batch_sizes)
    for tracker, settings in tracker_settings.items():
        for setting, values in settings.items():
            named[f"trackers[{tracker!r}].{setting}"] = np.asarray(values, np.float32)
    for name, value in named.items():
        if not name.startswith("hparams[") and value.ndim > 1:
            raise ValueError(f"{name} must be a scalar or a [K] array, got shape {value.shape}")
    leading = {name: a.shape[0] for name, a in named.items() if a.ndim}
    if len(set(leading.values())) > 1:
        listing = ", ".join(f"{n}: {s}" for n, s in leading.items())
        raise ValueError(f"per-member arrays must share one leading size K, got {listing}")
    k = next(iter(leading.values()), 1)
    if k < 1:
        raise ValueError(f"the number of members K must be >= 1, got {k} (from {list(leading)})")

    def full(name, default, dtype):
        return np.broadcast_to(named.get(name, np.asarray(default, dtype)), (k,)).astype(dtype)

    sizes = full("batch_sizes", batch_size, np.int32)
    if sizes.min() < 1 or sizes.max() > batch_size:
        raise ValueError(
            f"batch_sizes must be in [1, batch_size={batch_size}], got values in "
            f"[{sizes.min()}, {sizes.max()}]"
        )
    return supervised.Member(
        hparams={name: named[f"hparams[{name!r}]"] for name in hparams},
        seed=full("seeds", 0, np.int32),
        data_seed=full("data_seeds", 0, np.int32),
        batch_size=sizes,
        trackers={
            tracker: {s: full(f"trackers[{tracker!r}].{s}", 0.0, np.float32) for s in settings}
            for tracker, settings in tracker_settings.items()
        },
    )


@dataclasses.dataclass(frozen=True)
class TrackerSetting:
    """A tracker's per-member setting, read from the member: ``member.trackers[tracker][name]``
    (a frozen dataclass, so equal settings share compiled programs)."""

    tracker: str
    name: str

    def __call__(self, member: supervised.Member) -> Array:
        return member.trackers[self.tracker][self.name]


def _member_data_seed(members: supervised.Member) -> Array:
    return members.data_seed


def _split_trackers(trackers: Mapping[str, Any] | None, num_steps: int):
    """The trackers (each checked against ``num_steps``), an EMA of per-member decays turned
    into one reading its member's own, and those decays ``{tracker: {"decay": [K]}}``."""
    if trackers is not None and not isinstance(trackers, Mapping):
        raise ValueError(f"trackers must be a dict {{name: tracker}}, got {trackers!r}")
    out, settings = {}, {}
    for name, tracker in (trackers or {}).items():
        check = getattr(tracker, "check", None)
        if check is not None:
            check(f"trackers[{name!r}]", num_steps)
        if isinstance(tracker, EMA) and isinstance(tracker.decay, tuple):
            settings[name] = {"decay": np.asarray(tracker.decay, np.float32)}
            tracker = EMA(TrackerSetting(name, "decay"))
        out[name] = tracker
    return out, settings
