"""The host loop: chunks of compiled steps, groups of members, padding, and hooks in between.

:func:`fit` drives a :class:`lrjax.engine.Vectorized` program over ``num_steps`` steps in chunks
of ``chunk_steps``. Members are split into groups that advance one after another on the same
batches. A group is sharded over the program's devices (and padded to a multiple of their
number) only when each device gets several members and the members run vectorized; otherwise
it runs on the first device alone, unpadded. Everything else between chunks is
a hook (:mod:`lrjax.hooks`): evaluation, reduce-on-plateau, checkpoints, the progress bar,
your callback. A hook is any object with some of these methods:

* ``on_start(loop)`` — once, before the first chunk (a checkpoint restores here);
* ``after_chunk(loop, group)`` — after each group's chunk (evaluate it, adjust its members);
* ``on_chunk_end(loop)`` — after all groups finished the chunk (save, draw, call back);
* ``state_dict()`` / ``load_state_dict(d)`` — what a checkpoint keeps of the hook.

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np, optax
  >>> import lrjax
  >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
  >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  >>> def init(member):
  ...     return {"w": jnp.zeros(3)}
  >>> def step(state, batch, member):
  ...     xb, yb = batch
  ...     loss, g = jax.value_and_grad(lambda w: jnp.mean((xb @ w - yb) ** 2))(state["w"])
  ...     return {"w": state["w"] - member["lr"] * g}, {"loss": loss}
  >>> program = lrjax.vectorize(step, init)
  >>> out = lrjax.fit(program, {"lr": np.array([0.01, 0.1, 0.3], np.float32)}, (x, y),
  ...                 num_steps=50, chunk_steps=20, batch_size=16)
  >>> out.metrics["loss"].shape, bool(out.metrics["loss"][2, -1] < out.metrics["loss"][0, -1])
  ((3, 50), True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from lrjax import _checks, engine, feeds

__all__ = ["FitResult", "Group", "Loop", "fit", "group_size_for_budget"]

PyTree = Any


@dataclasses.dataclass
class Group:
    """Members ``start .. start + size - 1`` (the last ``size - real`` are padding).

    ``members`` and ``state`` live on the devices (host arrays on the sequential path);
    ``members_host`` is the host copy of ``members``.
    """

    index: int
    start: int
    size: int
    real: int
    members: PyTree
    members_host: PyTree
    state: PyTree

    def set_members(self, loop: Loop, members_host: PyTree) -> None:
        """Replaces the group's member settings (e.g. a new learning-rate scale)."""
        self.members_host = members_host
        self.members = loop.put(members_host)


@dataclasses.dataclass
class Loop:
    """What hooks see: the program, the feed, the groups, the step reached, the metrics."""

    program: engine.Vectorized
    feed: feeds.Feed
    num_steps: int
    chunk_steps: int
    num_members: int
    groups: list[Group]
    hooks: Sequence[Any]
    vectorize: bool
    data: PyTree = None
    step: int = 0
    metrics: dict[str, np.ndarray] | None = None
    feed_position: int = 0
    last_chunk: int = 0  # steps done by the last chunk

    def put(self, tree: PyTree, member_axis: int | None = 0) -> PyTree:
        """Places host arrays like the program does (no-op shape on the sequential path)."""
        if not self.vectorize:
            return tree
        return self.program.put(tree, member_axis)

    def group_metrics(self, group: Group) -> dict[str, np.ndarray]:
        """The metrics of the group's real members so far, ``{name: [real, step]}``."""
        end = group.start + group.real
        return {name: v[group.start : end, : self.step] for name, v in (self.metrics or {}).items()}


class FitResult(NamedTuple):
    """What :func:`fit` returns, as host arrays of the real (unpadded) members.

    Attributes:
      state: the final stacked state ``[K, ...]``.
      metrics: ``{name: [K, num_steps, ...]}`` the step's metrics at every step.
      members: the final member settings (hooks may have changed them).
      loop: the :class:`Loop`, for hooks' results.
    """

    state: PyTree
    metrics: dict[str, np.ndarray]
    members: PyTree
    loop: Loop


def _call(hooks, name, *args):
    for hook in hooks:
        method = getattr(hook, name, None)
        if method is not None:
            method(*args)


def group_size_for_budget(program, members, feed, chunk_steps: int, budget: int) -> int:
    """The largest group of members per device whose compiled chunk fits ``budget`` bytes.

    Memory is affine in the group size: XLA's buffer assignment is measured at 1 and 2 members
    (on one device) and extrapolated. Returns a multiple of the program's device count.
    """
    if isinstance(feed, feeds.IteratorFeed):
        raise ValueError(
            "memory_budget needs random-access data (arrays or batch_fn), not an iterator"
        )
    single = program.on(program.devices[:1])

    def bytes_for(size):
        some = engine.member_slice(members, 0, 1)
        host = engine.pad_members(some, size)
        members_spec = engine.abstract(host)
        state = jax.eval_shape(jax.vmap(program.init_fn), members_spec)
        xs = feed.chunk(0, chunk_steps, chunk_steps, host)
        data = feed.data(lambda t: t)
        return single.compiled_bytes(
            state, members_spec, engine.abstract(xs), engine.abstract(data),
            batch_fn=feed.batch_fn, per_member_batches=feed.per_member,
        )  # fmt: skip

    b1, b2 = bytes_for(1), bytes_for(2)
    if b1 is None or b2 is None:
        raise ValueError("memory_budget: this backend does not report the program's memory")
    per_member = max(b2 - b1, 1)
    base = b1 - per_member
    per_device = max(1, (budget - base) // per_member)
    return int(per_device * program.num_devices)


def _placed(
    program: engine.Vectorized, members: PyTree, feed: feeds.Feed, group: int
) -> engine.Vectorized:
    """``program``, or the same program on its first device alone: sharding members over
    devices only pays when each device gets several (with one member each, the devices' threads
    wait for each other, and a group not divisible by the devices would be padded with members
    that cost as much as real ones), and never for members run one at a time."""
    if program.num_devices == 1 or jax.process_count() > 1:
        return program
    if group <= program.num_devices or program.execution_for(members, feed.peek()) == "members":
        return program.on(program.devices[:1])
    return program


def fit(
    program: engine.Vectorized,
    members: PyTree,
    data: Any,
    *,
    num_steps: int,
    chunk_steps: int | None = None,
    batch_size: int | None = None,
    hooks: Sequence[Any] = (),
    group_size: int | None = None,
    memory_budget: int | None = None,
    vectorize: bool = True,
) -> FitResult:
    """Trains every member for ``num_steps`` steps: the host loop around a compiled program.

    Args:
      program: from :func:`lrjax.vectorize` (it needs an ``init``).
      members: the member settings, a pytree of ``[K, ...]`` arrays.
      data: a :class:`lrjax.feeds.Feed`, or what :func:`lrjax.feeds.as_feed` accepts: a pytree
        of arrays (shuffled minibatches of ``batch_size``, one order for all members), a
        function ``batch_fn(step)``, or an iterator of batches.
      num_steps: steps per member, ``>= 1``.
      chunk_steps: steps per compiled chunk (hooks run between chunks), in ``[1, num_steps]``;
        default ``num_steps``. Keep it fixed to reuse the compiled chunk when ``num_steps``
        changes (a short last chunk runs in the same program).
      batch_size: for array data.
      hooks: run between chunks, in order (see the module docstring); put a
        :class:`lrjax.hooks.Checkpoint` first so it restores before the others start.
      group_size: members trained at once (rounded up to a multiple of the device count when
        the group is sharded); groups run one after another on the same batches. Default: all
        members.
      memory_budget: bytes per device; the group size is the largest that fits, by XLA's own
        estimate of the compiled chunk.
      vectorize: False runs members one by one and step by step (no vmap, no scan): the
        debugging path, same results.

    Returns:
      A :class:`FitResult`.
    """
    if not isinstance(program, engine.Vectorized):
        raise ValueError(f"program must come from lrjax.vectorize, got {type(program).__name__}")
    if program.init_fn is None:
        raise ValueError("fit needs a program with an init: lrjax.vectorize(step, init)")
    num_steps = _checks.check_int("num_steps", num_steps, 1)
    chunk_steps = num_steps if chunk_steps is None else chunk_steps
    chunk_steps = min(_checks.check_int("chunk_steps", chunk_steps, 1), num_steps)
    members = jax.tree.map(np.asarray, members)
    k = engine.num_members(members)
    feed = feeds.as_feed(data, batch_size)
    if group_size is not None:
        group = _checks.check_int("group_size", group_size, 1)
    elif memory_budget is not None:
        budget = _checks.check_int("memory_budget", memory_budget, 1)
        group = group_size_for_budget(program, members, feed, chunk_steps, budget)
    else:
        group = k
    if vectorize:
        program = _placed(program, members, feed, min(group, k))
    devices = program.num_devices if vectorize else 1
    group = -(-min(group, k) // devices) * devices
    num_groups = -(-k // group)
    padded = engine.pad_members(members, num_groups * group)

    loop = Loop(program, feed, num_steps, chunk_steps, k, [], tuple(hooks), vectorize)
    # Data constant over the run (a feed's device-resident arrays) is replicated on every
    # device: the chunk program reads it whole, and N need not divide by the device count.
    loop.data = feed.data(lambda tree: loop.put(tree, None))
    for g in range(num_groups):
        host = engine.member_slice(padded, g * group, (g + 1) * group)
        if vectorize:
            state = program.init(host)
        else:
            state = program.init_sequential(host)
        real = min(group, k - g * group)
        loop.groups.append(Group(g, g * group, group, real, loop.put(host), host, state))
    _call(loop.hooks, "on_start", loop)
    feed.restore(loop.feed_position)

    run = program.run if vectorize else program.run_sequential
    layout = {"batch_fn": feed.batch_fn, "per_member_batches": feed.per_member}
    shared = None
    while loop.step < num_steps:
        valid = min(chunk_steps, num_steps - loop.step)
        if shared is None and not feed.per_member:
            shared = feed.chunk(loop.step, chunk_steps, valid, None)
        outputs = []
        for group in loop.groups:
            xs = shared
            if feed.per_member:
                xs = feed.chunk(loop.step, chunk_steps, valid, group.members_host)
            group.state, metrics = run(group.state, group.members, xs, loop.data, valid, **layout)
            outputs.append(metrics)
        loop.feed_position = feed.position()
        # While the devices work on this chunk, the host prepares the next one.
        shared = None
        following = min(chunk_steps, num_steps - loop.step - valid)
        if following > 0 and not feed.per_member:
            shared = feed.chunk(loop.step + valid, chunk_steps, following, None)
        for group, metrics in zip(loop.groups, outputs, strict=True):
            _store(loop, group, metrics, valid)
        loop.step += valid
        loop.last_chunk = valid
        for group in loop.groups:
            _call(loop.hooks, "after_chunk", loop, group)
        _call(loop.hooks, "on_chunk_end", loop)
    _call(loop.hooks, "on_end", loop)

    def real(tree):
        parts = [engine.member_slice(tree(gr), 0, gr.real) for gr in loop.groups]
        return jax.tree.map(lambda *p: engine.concatenate([engine.to_host(a) for a in p]), *parts)

    return FitResult(
        state=real(lambda gr: gr.state),
        metrics=loop.metrics or {},
        members=real(lambda gr: gr.members_host),
        loop=loop,
    )


def _store(loop: Loop, group: Group, metrics: dict, valid: int) -> None:
    if loop.metrics is None:
        loop.metrics = {}
        for name, value in metrics.items():
            shape = (loop.num_members, loop.num_steps, *np.shape(value)[2:])
            fill = np.nan if np.issubdtype(value.dtype, np.inexact) else 0
            loop.metrics[name] = np.full(shape, fill, value.dtype)
    for name, value in metrics.items():
        host = engine.to_host(value)
        loop.metrics[name][
            group.start : group.start + group.real, loop.step : loop.step + valid
        ] = host[: group.real, :valid]
