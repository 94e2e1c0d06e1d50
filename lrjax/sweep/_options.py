"""The sweep's options, grouped: what to evaluate (:class:`Evaluation`) and how the sweep runs
(:class:`Options`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from lrjax import _checks, feeds, hooks, loop

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

    def __post_init__(self):
        data = self.data
        if not isinstance(data, tuple | list) or len(data) != 2:
            raise ValueError("evaluation.data must be an (inputs, targets) pair of arrays")
        data = tuple(feeds.canonical(a) for a in data)
        if len(data[0]) != len(data[1]):
            raise ValueError(
                f"evaluation.data inputs and targets must share a leading size, got "
                f"{data[0].shape} and {data[1].shape}"
            )
        if len(data[0]) < 1:
            raise ValueError("evaluation.data must hold at least one example, got none")
        object.__setattr__(self, "data", data)
        if self.every is not None:
            _checks.check_int("evaluation.every", self.every, 1)
        if self.metrics is not None:
            if not isinstance(self.metrics, Mapping) or not self.metrics:
                raise ValueError(
                    f"evaluation.metrics must be a non-empty dict {{name: fn(outputs, targets)}}, "
                    f"got {self.metrics!r}"
                )
            for name, fn in self.metrics.items():
                if not callable(fn):
                    raise ValueError(
                        f"evaluation.metrics[{name!r}] must be a function fn(outputs, targets), "
                        f"got {fn!r}"
                    )
        if self.eval_params is not None and not callable(self.eval_params):
            raise ValueError(
                "evaluation.eval_params must be a function fn(opt_state, params) -> params, got "
                f"{self.eval_params!r}"
            )

    def chunk_steps(self, num_steps: int) -> int:
        """Steps between evaluations for a run of ``num_steps``: ``every`` (at most the run;
        an ``every`` beyond it is refused rather than shortened), or the whole run."""
        if self.every is None:
            return num_steps
        if self.every > num_steps:
            raise ValueError(
                f"evaluation.every must be in [1, num_steps={num_steps}] (an evaluation after "
                f"the run never happens), got {self.every}"
            )
        return self.every


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
      checkpoint_policy: when to save and what to keep (an :class:`lrjax.hooks.CheckpointPolicy`:
        save interval, the newest n and the best k saves, asynchronous saves); default: after
        every chunk, asynchronously, keeping the newest.
      hooks: more host-loop hooks, run after the sweep's own (evaluation, plateau, PBT) each
        chunk: e.g. a metric writer (:class:`lrjax.writers.Writer`).
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
    checkpoint_policy: Any = None
    hooks: Sequence[Any] = ()
    progress: bool | None = None
    callback: Callable[[dict[str, Any]], None] | None = None
    vectorize: bool = True
    check_data: bool = True

    def __post_init__(self):
        if self.devices is not None:
            devices = list(self.devices)
            if not devices:
                raise ValueError("options.devices must hold at least one device, got none")
            for i, device in enumerate(devices):
                if not isinstance(device, jax.Device):
                    raise ValueError(
                        f"options.devices must hold jax devices (from jax.devices()), got "
                        f"{device!r} at index {i}"
                    )
        for name in ("group_size", "memory_budget", "chunk_steps"):
            if getattr(self, name) is not None:
                _checks.check_int(f"options.{name}", getattr(self, name), 1)
        if self.checkpoint_dir is not None:
            try:
                path = os.fspath(self.checkpoint_dir)
            except TypeError:
                raise ValueError(
                    f"options.checkpoint_dir must be a path, got {self.checkpoint_dir!r}"
                ) from None
            if os.path.exists(path) and not os.path.isdir(path):
                raise ValueError(
                    f"options.checkpoint_dir must be a directory (new, or holding a checkpoint), "
                    f"but {os.path.abspath(path)} is a file"
                )
        if self.checkpoint_id is not None and not (
            isinstance(self.checkpoint_id, str) and self.checkpoint_id
        ):
            raise ValueError(
                f"options.checkpoint_id must be a non-empty string, got {self.checkpoint_id!r}"
            )
        if self.checkpoint_policy is not None and not isinstance(
            self.checkpoint_policy, hooks.CheckpointPolicy
        ):
            raise ValueError(
                "options.checkpoint_policy must be an lrjax.hooks.CheckpointPolicy, got "
                f"{self.checkpoint_policy!r}"
            )
        object.__setattr__(self, "hooks", loop.check_hooks(self.hooks))
        if self.progress is not None:
            _checks.check_bool("options.progress", self.progress)
        if self.callback is not None and not callable(self.callback):
            raise ValueError(
                f"options.callback must be a function callback(info), got {self.callback!r}"
            )
        _checks.check_bool("options.vectorize", self.vectorize)
        _checks.check_bool("options.check_data", self.check_data)

    def devices_for(self, k: int) -> list:
        """The devices to split ``k`` members over: the given ones (or all), at most ``k`` on
        one host (padding members to idle devices would only waste their cores)."""
        devices = list(jax.devices() if self.devices is None else self.devices)
        if jax.process_count() == 1 and len(devices) > k:
            devices = devices[:k]
        return devices

    def group_for(self, devices: Sequence[Any]) -> int | None:
        """The group size: ``group_size``; else all members on accelerators and
        :data:`CPU_MEMBERS_PER_DEVICE` per device on CPU (None: all, or ``memory_budget``)."""
        if self.group_size is not None or self.memory_budget is not None:
            return self.group_size
        if all(d.platform == "cpu" for d in devices):
            return CPU_MEMBERS_PER_DEVICE * len(devices)
        return None
