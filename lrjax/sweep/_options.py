"""The sweep's options, grouped: what to evaluate (:class:`Evaluation`) and how the sweep runs
(:class:`Options`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

PyTree = Any
Array = jax.Array

CPU_MEMBERS_PER_DEVICE = 4  # default group size per CPU device (see Options.group_size)


# -----------------------------------------------------------------------------------------------
# Options, grouped


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What to evaluate, and how often.

    Attributes:
      data: ``(inputs, targets)`` evaluated whole after step 0 and after every chunk.
      every: steps per chunk (so between evaluations), in ``[1, num_steps]``; default
        ``num_steps``.
      metrics: ``{name: fn(outputs, targets) -> [n]}`` per-example metrics, averaged; default
        ``{"loss": loss}``.
      eval_params: ``fn(opt_state, params) -> params``, the parameters to evaluate for one
        member, for an optimizer that trains at one point and should be scored at another
        (schedule-free: :func:`lrjax.lr_free.eval_params`); default the trained parameters.
    """

    data: Any
    every: int | None = None
    metrics: Mapping[str, Callable[[Array, Array], Array]] | None = None
    eval_params: Callable[[PyTree, PyTree], PyTree] | None = None


@dataclasses.dataclass(frozen=True)
class Options:
    """How the sweep runs (none of these change its results).

    Attributes:
      devices: devices to split the member axis over; default all (``jax.devices()``), at most
        K of them on one host. On CPU, start Python with
        ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` so every core is a device.
      group_size: train at most this many members at once (rounded up to a multiple of the
        device count); default all members on accelerators, ``CPU_MEMBERS_PER_DEVICE`` per
        device on CPU, where larger vmapped groups fall out of cache.
      memory_budget: bytes per device; the group size is the largest that fits, by the
        compiled program's own memory estimate.
      chunk_steps: steps per compiled chunk when there is no evaluation (checkpoints, progress
        and callbacks run between chunks); default ``num_steps``.
      checkpoint_dir: save with orbax after every chunk and resume from it: a rerun with the
        same arguments, in this process or a new one, continues where an interrupted one
        stopped. "The same" is checked, so a changed run is never resumed from another's
        state: the directory records the settings, a content hash of the data and of
        ``evaluation.data``, and digests of the model, loss, optimizer, ``optimizer_kwargs``,
        metrics, trackers and plateau controller (functions by their code, closure values and
        globals; ``functools.partial`` by its function and arguments), and a rerun that
        differs in any of them is refused with an error naming what changed. For an iterator
        only its first batch is hashed.
      checkpoint_id: a name for the run, stored with the checkpoint and compared on resume;
        required when something the run depends on has no description that holds in a new
        process (an object whose ``repr`` holds a memory address and that has no importable
        name): it then stands in for that object, and changing the object without changing
        the name is on you.
      progress: a tqdm bar (steps/s, members alive, best loss); default on when stderr is a
        terminal.
      callback: ``callback({"step", "loss", "alive"})`` on the host after every chunk.
      vectorize: False trains members one by one with a jitted single-member step in a Python
        loop (no vmap, no scan): the debugging path, same results.
      check_data: check the data before it trains (default): every float input and target
        finite, and integer targets of a classifier (targets ``[B]``, outputs ``[B, C]``,
        ``C >= 2``) in ``[0, C)``; arrays once, whole, before compiling (``O(N)``), batch
        functions and iterators chunk by chunk on the host; and stop with an error naming the
        step when every member's loss or gradient turns non-finite at the same step (a batch
        does that, hyperparameters do not). False skips all of this, for data whose
        non-finite values the model handles itself or integer targets that are not classes.
    """

    devices: Sequence[Any] | None = None
    group_size: int | None = None
    memory_budget: int | None = None
    chunk_steps: int | None = None
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_id: str | None = None
    progress: bool | None = None
    callback: Callable[[dict[str, Any]], None] | None = None
    vectorize: bool = True
    check_data: bool = True
