"""The sweep's training data: its feed, one batch to check and build with, and the data check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from lrjax import feeds
from lrjax.sweep._members import _member_data_seed


def _feed(data: Any, batch_size: int | None, data_seeds: Any):
    """The feed of ``data``, the (largest) batch size, and one batch (read once: a user's
    batch function may load it from disk)."""
    shared = np.ndim(data_seeds) == 0
    seed = int(data_seeds) if shared else _member_data_seed
    feed = feeds.as_feed(data, batch_size, seed)
    example = _example_batch(feed)
    if isinstance(feed, feeds.ArrayFeed):
        return feed, feed.batch_size, example
    if not shared:
        raise ValueError("per-member data_seeds need array data (the order of an iterator or "
                         "a batch function is its own)")  # fmt: skip
    size = int(np.shape(example[1])[0])
    if batch_size is not None and batch_size != size:
        raise ValueError(f"batch_size={batch_size} differs from the batches' size {size}")
    return feed, size, example


def _example_batch(feed: feeds.Feed) -> tuple[Any, Any]:
    """One batch of the feed, without consuming it (for checks and for building the model)."""
    batch = feed.peek()
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        got = (
            f"a dict with keys {sorted(batch)} (pass its arrays as a pair: (data['x'], data['y']))"
            if isinstance(batch, dict)
            else f"batches shaped {jax.tree.map(np.shape, batch)}"
        )
        raise ValueError(
            "each batch must be an (inputs, targets) pair: data must be an (x, y) pair of "
            "arrays, a function batch_fn(step) -> (x, y) or an iterator of (x, y) batches; got "
            f"{got}"
        )
    return tuple(np.asarray(a) for a in batch)


def _first_bad(a: Any, lead: int, is_bad: Callable[[np.ndarray], np.ndarray]):
    """``(index, value)`` of the first element of ``a`` where ``is_bad``: its position along the
    first ``lead`` axes and the value; None if there is none. Reads ``a`` in blocks of rows, so
    a memory map is never loaded whole."""
    per_row = max(1, int(np.prod(np.shape(a)[1:], dtype=np.int64)))
    rows = max(1, (1 << 22) // per_row)
    for start in range(0, np.shape(a)[0], rows):
        block = np.asarray(a[start : start + rows])
        mask = is_bad(block)
        if not mask.any():
            continue
        first = tuple(np.argwhere(mask.reshape(*block.shape[:lead], -1).any(-1))[0])
        value = block[first].reshape(-1)[np.argmax(mask[first].reshape(-1))]
        return (start + first[0], *first[1:]), value.item()
    return None


def data_check(num_classes: int | None) -> feeds.Check:
    """The check of the data (a :data:`lrjax.feeds.Check`): float inputs and targets finite,
    class-index targets in ``[0, num_classes)``."""

    def check(batch, lead):
        x, y = batch
        found = []
        for part, tree in (("inputs", x), ("targets", y)):
            for leaf in jax.tree.leaves(tree):
                if np.issubdtype(leaf.dtype, np.inexact):
                    hit = _first_bad(leaf, lead, lambda b: ~np.isfinite(b))
                    if hit is not None:
                        found.append((hit[0], f"the {part} hold {hit[1]}, a non-finite value"))
        if num_classes is not None:
            hit = _first_bad(y, lead, lambda b: (b < 0) | (b >= num_classes))
            if hit is not None:
                found.append((
                    hit[0],
                    f"the targets hold the label {hit[1]}, outside [0, {num_classes}): the "
                    f"model has {num_classes} outputs per example, so integer targets are "
                    "class indices (if yours are not, pass "
                    "options=sweep.Options(check_data=False))",
                ))  # fmt: skip
        return min(found, key=lambda f: f[0]) if found else None

    return check
