"""Data feeds: where each chunk's batches come from.

The host loop (:func:`lrjax.fit`) asks a feed for the scanned inputs of one chunk of steps,
``feed.chunk(step, length, valid, members)``; the compiled program turns each step's input into
the batch with ``feed.batch_fn`` (or takes it as the batch). Four feeds cover the usual cases:

* :class:`ArrayFeed` on the device — arrays that fit in memory are placed on the device once;
  each chunk only sends the ``[T, B]`` example indices and the batch is gathered inside the
  program. Each epoch walks a fresh permutation of ``(seed, epoch)`` (:func:`batch_indices`),
  shared by all members or, with per-member seeds, one order per member.
* :class:`ArrayFeed` on the host — the same batches gathered on the host, for arrays that
  should not be copied whole to every device (a ``numpy.memmap`` is read batch by batch).
* :class:`FunctionFeed` — ``batch_fn(step) -> batch`` on the host (grain / tf.data style random
  access, e.g. ``lambda step: dataset[step]``); re-derivable, so resuming needs no state.
* :class:`IteratorFeed` — any Python iterator of batches; its position (batches consumed) is
  checkpointed, and a resumed run skips that many batches of a fresh iterator.

Host feeds stack ``T`` batches into one ``[T, ...]`` array per leaf; the loop asks for the next
chunk while the device runs the current one, so loading overlaps training.

A feed can check its data (:meth:`Feed.set_check`, what :func:`lrjax.sweep.train` does for
non-finite values and labels out of range): arrays on the device are checked once, whole, when
the check is set; host feeds check each chunk's batches as they are stacked, before they reach
the device. Either way the cost is proportional to the data, and the error names the example
(and the step).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _checks

__all__ = [
    "ArrayFeed",
    "Check",
    "Feed",
    "FunctionFeed",
    "IteratorFeed",
    "as_feed",
    "batch_indices",
    "batch_indices_np",
    "canonical",
    "raise_if_bad",
]

PyTree = Any
# check(arrays, lead) -> None, or (index, problem): the position along the first `lead` axes of
# the first bad example of `arrays` (a pytree), and what is wrong with it.
Check = Callable[[PyTree, int], "tuple[tuple[int, ...], str] | None"]


# -----------------------------------------------------------------------------------------------
# The data order: a hashed permutation per (seed, epoch), on device (jnp) and host (NumPy).


def _mix32(x):
    """A bijection on uint32 with good avalanche (Wellons' "lowbias32" integer hash)."""
    x = x ^ (x >> 16)
    x = x * x.dtype.type(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * x.dtype.type(0x846CA68B)
    return x ^ (x >> 16)


def _permutation(seed, epoch, num_examples: int):
    # Sorting hashed indices: distinct keys (the hash is a bijection), and far cheaper to compile
    # and run on CPU than jax.random.permutation's threefry rounds, for an order that only needs
    # to look random.
    salt = _mix32(
        _mix32(jnp.asarray(seed).astype(jnp.uint32)) ^ jnp.asarray(epoch).astype(jnp.uint32)
    )
    keys = _mix32(jnp.arange(num_examples, dtype=jnp.uint32) ^ salt)
    return jnp.argsort(keys).astype(jnp.int32)


def _permutation_np(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    # The same hash in NumPy uint32 arithmetic (wrapping, like XLA's); distinct keys make the
    # sort order unique, so host and device orders agree exactly.
    with np.errstate(over="ignore"):
        salt = _mix32(_mix32(np.array([seed], np.int64).astype(np.uint32)) ^ np.uint32(epoch))
        keys = _mix32(np.arange(num_examples, dtype=np.uint32) ^ salt)
    return np.argsort(keys, kind="stable").astype(np.int32)


def batch_indices(seed: Any, step: Any, num_examples: int, batch_size: int) -> jax.Array:
    """The example indices of the batch used at ``step``.

    Each epoch of ``num_examples // batch_size`` steps walks a fresh permutation drawn from
    ``(seed, epoch)``; the remainder of an epoch is dropped.

    Examples:
      >>> idx = batch_indices(0, 3, num_examples=10, batch_size=4)
      >>> idx.shape
      (4,)
    """
    steps_per_epoch = num_examples // batch_size
    step = jnp.asarray(step, jnp.int32)
    perm = _permutation(jnp.asarray(seed, jnp.int32), step // steps_per_epoch, num_examples)
    start = (step % steps_per_epoch) * batch_size
    return jax.lax.dynamic_slice_in_dim(perm, start, batch_size)


def batch_indices_np(
    seed: int, step0: int, length: int, num_examples: int, batch_size: int
) -> np.ndarray:
    """:func:`batch_indices` of steps ``step0 .. step0 + length - 1`` on the host, ``[T, B]``."""
    steps_per_epoch = num_examples // batch_size
    rows, perms = [], {}
    for step in range(step0, step0 + length):
        epoch = step // steps_per_epoch
        if epoch not in perms:
            perms[epoch] = _permutation_np(seed, epoch, num_examples)
        start = (step % steps_per_epoch) * batch_size
        rows.append(perms[epoch][start : start + batch_size])
    return np.stack(rows)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _chunk_indices(seed, step0, length: int, num_examples: int, batch_size: int) -> jax.Array:
    """``[T, B]`` indices of ``length`` steps from ``step0``: one permutation per epoch touched."""
    steps_per_epoch = num_examples // batch_size
    steps = step0 + jnp.arange(length, dtype=jnp.int32)
    first = step0 // steps_per_epoch
    # T consecutive steps touch at most T // steps_per_epoch + 2 epochs.
    num_epochs = min(length // steps_per_epoch + 2, length)
    epochs = first + jnp.arange(num_epochs, dtype=jnp.int32)
    perms = jax.vmap(lambda e: _permutation(seed, e, num_examples))(epochs)
    rows = steps // steps_per_epoch - first
    cols = (steps % steps_per_epoch) * batch_size
    return perms[rows[:, None], cols[:, None] + jnp.arange(batch_size, dtype=jnp.int32)[None, :]]


# -----------------------------------------------------------------------------------------------
# Feeds


class Feed:
    """The interface of a feed.

    Attributes:
      batch_fn: ``batch_fn(data, x) -> batch`` run inside the program, or None (``x`` is the
        batch).
      per_member: whether each member gets its own batch (the inputs carry a member axis).
    """

    batch_fn: Callable | None = None
    per_member: bool = False
    check: Check | None = None

    def set_check(self, check: Check | None) -> None:
        """Checks the data before it is used: ``check(arrays, lead)`` returns None, or
        ``(index, problem)`` for the first bad example (its position along the first ``lead``
        axes of ``arrays``), which the feed raises as a ``ValueError`` naming that example.
        Host feeds call it on every chunk, with ``lead=2`` (``[T, B, ...]``: step, example)."""
        self.check = check

    def data(self, put: Callable[[PyTree], PyTree]) -> PyTree:
        """Arrays constant over the run, placed (replicated) with ``put``; None by default."""
        del put
        return None

    def chunk(self, step: int, length: int, valid: int, members: PyTree) -> PyTree:
        """The scanned inputs of steps ``step .. step + length - 1``, ``[length, ...]``; only
        the first ``valid`` are used (the rest may repeat the last)."""
        raise NotImplementedError

    def peek(self) -> PyTree:
        """One batch, without moving the feed (for checks and for building a model)."""
        raise NotImplementedError

    def position(self) -> int:
        """What a checkpoint must remember to resume the feed (default: nothing)."""
        return 0

    def restore(self, position: int) -> None:
        """Resumes the feed at a checkpointed ``position``."""
        del position


def canonical(a: Any) -> Any:
    """An array in the dtype JAX will use (float64 becomes float32 unless x64 is enabled)."""
    if isinstance(a, np.memmap):
        return a
    a = np.asarray(a)
    return a.astype(jax.dtypes.canonicalize_dtype(a.dtype), copy=False)


def raise_if_bad(check: Check | None, arrays: PyTree, lead: int, where: Callable) -> None:
    """Runs ``check(arrays, lead)`` and raises its finding as a ``ValueError``, naming the bad
    example with ``where(index) -> str``."""
    found = None if check is None else check(arrays, lead)
    if found is not None:
        index, problem = found
        raise ValueError(f"bad data at {where(tuple(int(i) for i in index))}: {problem}")


def _gather(arrays: PyTree, indices: np.ndarray) -> PyTree:
    flat = indices.reshape(-1)

    def take(a):
        # Sorted reads are sequential on disk for a memmap; put the rows back in batch order.
        order = np.argsort(flat, kind="stable")
        rows = np.empty((flat.size, *a.shape[1:]), jax.dtypes.canonicalize_dtype(a.dtype))
        rows[order] = np.asarray(a[flat[order]])
        return rows.reshape(*indices.shape, *a.shape[1:])

    return jax.tree.map(take, arrays)


class ArrayFeed(Feed):
    """Shuffled minibatches of in-memory (or memory-mapped) arrays.

    Args:
      arrays: a pytree of arrays with a shared leading size ``N`` (e.g. ``(x, y)``).
      batch_size: examples per step, in ``[1, N]``.
      seed: the data-order seed: an int shared by all members (every member sees the same
        batch), or ``seed(members) -> [G]`` ints giving each member of a group its own order.
      on_device: place the arrays on the device once and gather batches inside the program
        (default), or gather them on the host each chunk (default for a ``numpy.memmap``).
    """

    def __init__(
        self,
        arrays: PyTree,
        batch_size: int,
        seed: int | Callable[[PyTree], Any] = 0,
        on_device: bool | None = None,
    ):
        leaves = jax.tree.leaves(arrays)
        if not leaves:
            raise ValueError("data must hold at least one array")
        arrays = jax.tree.map(canonical, arrays)
        sizes = [np.shape(a)[0] if np.ndim(a) else None for a in jax.tree.leaves(arrays)]
        if None in sizes or len(set(sizes)) != 1:
            shapes = jax.tree.map(np.shape, arrays)
            raise ValueError(f"data arrays must share a leading size N, got shapes {shapes}")
        self.arrays = arrays
        self.num_examples = sizes[0]
        self.batch_size = _checks.check_int("batch_size", batch_size, 1, self.num_examples)
        if not callable(seed):
            seed = _checks.check_int("data seed", seed, -(2**31), 2**31 - 1)
        self.seed = seed
        self.per_member = callable(seed)
        if on_device is None:
            on_device = not any(isinstance(a, np.memmap) for a in jax.tree.leaves(arrays))
        self.on_device = bool(on_device)
        self.batch_fn = _take if self.on_device else None

    def set_check(self, check):
        """On the device, the arrays are checked now, whole (once per run: ``O(N)``); on the host,
        every chunk's gathered batches are."""
        self.check = check
        if self.on_device:
            raise_if_bad(check, self.arrays, 1, lambda i: f"example {i[0]} of the data")

    def data(self, put):
        if not self.on_device:
            return None
        return put(self.arrays)

    def peek(self):
        return jax.tree.map(lambda a: np.asarray(a[: self.batch_size]), self.arrays)

    def _seeds(self, members) -> np.ndarray:
        return np.asarray(self.seed(members), np.int32).reshape(-1)

    def chunk(self, step, length, valid, members):
        n, b = self.num_examples, self.batch_size
        if self.on_device:
            if not self.per_member:
                # Indices only: the batch is gathered inside the program from `data`.
                return _chunk_indices(jnp.int32(self.seed), jnp.int32(step), length, n, b)
            seeds = jnp.asarray(self._seeds(members))
            per_member = jax.vmap(_chunk_indices, (0, None, None, None, None))
            return jnp.swapaxes(per_member(seeds, jnp.int32(step), length, n, b), 0, 1)
        if not self.per_member:
            table = batch_indices_np(self.seed, step, length, n, b)
        else:
            table = np.stack(
                [batch_indices_np(int(s), step, length, n, b) for s in self._seeds(members)],
                axis=1,
            )
        batches = _gather(self.arrays, table)

        def where(i):
            return f"example {table[i]} of the data (in the batch of step {step + i[0]})"

        raise_if_bad(self.check, jax.tree.map(lambda a: a[:valid], batches), table.ndim, where)
        return batches


def _take(data: PyTree, indices: jax.Array) -> PyTree:
    return jax.tree.map(lambda a: a[indices], data)


def _stack_batches(batches: list, first_step: int, length: int, check: Check | None) -> PyTree:
    reference = jax.tree.structure(batches[0])
    shapes = [np.shape(a) for a in jax.tree.leaves(batches[0])]
    for i, batch in enumerate(batches[1:], start=1):
        if (
            jax.tree.structure(batch) != reference
            or [np.shape(a) for a in jax.tree.leaves(batch)] != shapes
        ):
            raise ValueError(
                f"the batch of step {first_step + i} has shapes {jax.tree.map(np.shape, batch)}, "
                f"but the batch of step {first_step} had {jax.tree.map(np.shape, batches[0])}; "
                "every batch must have the same structure and shapes (drop the last partial "
                "batch of an epoch)"
            )
    valid = len(batches)
    batches = batches + [batches[-1]] * (length - valid)
    stacked = jax.tree.map(lambda *leaves: np.stack([canonical(a) for a in leaves]), *batches)

    def where(i):
        return f"example {i[1]} of the batch of step {first_step + i[0]}"

    raise_if_bad(check, jax.tree.map(lambda a: a[:valid], stacked), 2, where)
    return stacked


class FunctionFeed(Feed):
    """Batches from ``batch_fn(step) -> batch``, called on the host for each step.

    A deterministic function of the step (grain's ``MapDataset``, a seeded sampler, a memmap
    read) resumes exactly from a checkpoint with nothing to store.
    """

    def __init__(self, batch_fn: Callable[[int], PyTree]):
        if not callable(batch_fn):
            raise ValueError(f"batch_fn must be a function batch_fn(step), got {batch_fn!r}")
        self.fn = batch_fn

    def peek(self):
        return self.fn(0)

    def chunk(self, step, length, valid, members):
        del members
        batches = [self.fn(s) for s in range(step, step + valid)]
        return _stack_batches(batches, step, length, self.check)


class IteratorFeed(Feed):
    """Batches from a Python iterator (a generator, a ``tf.data`` or grain iterator, ...).

    Its position (batches consumed) is saved in checkpoints; a resumed run is given a fresh
    iterator that yields the same sequence, and skips the batches already used.
    """

    def __init__(self, iterator: Iterator):
        self.iterator = iter(iterator)
        self.consumed = 0
        self._peeked: list = []

    def peek(self):
        if not self._peeked:
            try:
                self._peeked.append(next(self.iterator))
            except StopIteration:
                raise ValueError("the data iterator is empty") from None
        return self._peeked[0]

    def _next(self, needed: int):
        try:
            batch = self._peeked.pop() if self._peeked else next(self.iterator)
        except StopIteration:
            raise ValueError(
                f"the data iterator ran dry after {self.consumed} batches; the run needs "
                f"{needed} (one batch per step): give a longer or repeating iterator"
            ) from None
        self.consumed += 1
        return batch

    def chunk(self, step, length, valid, members):
        del members
        if step != self.consumed:
            raise ValueError(
                f"the data iterator is at batch {self.consumed}, but step {step} was asked for"
            )
        batches = [self._next(step + valid) for _ in range(valid)]
        return _stack_batches(batches, step, length, self.check)

    def position(self) -> int:
        return self.consumed

    def restore(self, position: int) -> None:
        while self.consumed < position:
            self._next(position)


def _is_array(a: Any) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype")


def as_feed(
    data: Any, batch_size: int | None = None, seed: int | Callable = 0, on_device=None
) -> Feed:
    """A :class:`Feed` from what a user passes as ``data``.

    * a :class:`Feed` — itself;
    * a tuple or dict of arrays (``(x, y)``) — :class:`ArrayFeed` with ``batch_size`` and
      ``seed``;
    * a function ``batch_fn(step)`` — :class:`FunctionFeed`;
    * an iterator, or another iterable (a list of batches) — :class:`IteratorFeed`.
    """
    if isinstance(data, Feed):
        return data
    if hasattr(data, "__next__"):
        return IteratorFeed(data)
    if callable(data):
        return FunctionFeed(data)
    if _is_array(data):
        raise ValueError(
            "data must be an (inputs, targets) pair (or another tuple or dict) of arrays, a "
            "function batch_fn(step), or an iterator of batches; got one array of shape "
            f"{data.shape}"
        )
    if isinstance(data, tuple | Mapping):
        leaves = jax.tree.leaves(data)
        if leaves and all(map(_is_array, leaves)):
            if batch_size is None:
                raise ValueError("batch_size is needed to draw batches from arrays")
            return ArrayFeed(data, batch_size, seed, on_device)
    if hasattr(data, "__iter__") and not isinstance(data, tuple | Mapping):
        return IteratorFeed(data)
    raise ValueError(
        "data must be a pytree of arrays, a function batch_fn(step), or an iterator of batches; "
        f"got {type(data).__name__}"
    )
