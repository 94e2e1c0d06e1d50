"""Hooks of the host loop (:func:`lrjax.fit`): what happens between compiled chunks.

* :class:`Evaluate` — a per-member evaluation function on held-out data, vmapped and compiled;
* :class:`PlateauHook` — reduce-on-plateau per member on an evaluated metric, applied as a
  learning-rate scale in the members' settings (so nothing recompiles);
* :class:`Checkpoint` — orbax checkpoints after every chunk, restored on a rerun;
* :class:`ProgressBar` — a tqdm bar with steps/s, members alive and the best loss;
* :class:`Callback` — your function, called after every chunk.

Each works with any step: they only see the state through the functions you give them (or
:func:`lrjax.engine.unwrap`).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from lrjax import engine
from lrjax._fingerprint import cache as _cache_by_fingerprint
from lrjax._fingerprint import stable_digest

__all__ = ["Callback", "Checkpoint", "Evaluate", "PlateauHook", "ProgressBar"]

PyTree = Any


class Evaluate:
    """Evaluates every member on ``data`` after step 0 and after every chunk.

    Args:
      fn: ``fn(state, member, data) -> {name: scalar}`` for ONE member (vmapped and compiled
        here; ``state`` is the member's full state, see :func:`lrjax.engine.unwrap`).
      data: the evaluation arrays, passed whole (replicated on every device).

    After the run, ``steps`` holds the step counts evaluated ``[E]`` and ``results`` the
    metrics ``{name: [K, E]}``; ``latest[g]`` the last evaluation of group ``g`` on device.
    """

    def __init__(self, fn: Callable[[PyTree, PyTree, PyTree], Mapping[str, Any]], data: PyTree):
        if not callable(fn):
            raise ValueError(f"fn must be a function fn(state, member, data), got {fn!r}")
        self.fn = fn
        self.data = data
        self.results: dict[str, np.ndarray] = {}
        self.steps = np.zeros((0,), np.int64)
        self.latest: dict[int, dict[str, jax.Array]] = {}
        self._program = None

    def _compiled(self, loop):
        if self._program is None or self._program[0] is not loop.program:
            mesh_program = loop.program if loop.vectorize else None
            fn = _evaluation_program(self.fn, mesh_program)
            self._program = (loop.program, fn, loop.put(self.data, None))
        return self._program[1], self._program[2]

    def on_start(self, loop) -> None:
        num_chunks = -(-loop.num_steps // loop.chunk_steps)
        steps = [0] + [min((c + 1) * loop.chunk_steps, loop.num_steps) for c in range(num_chunks)]
        self.steps = np.asarray(steps, np.int64)
        if loop.step == 0 or not self.results:
            self.results = {}
            for group in loop.groups:
                self._evaluate(loop, group, 0)

    def _evaluate(self, loop, group, index) -> None:
        fn, data = self._compiled(loop)
        metrics = fn(group.state, group.members, data)
        self.latest[group.index] = metrics
        for name, value in metrics.items():
            if name not in self.results:
                self.results[name] = np.full(
                    (loop.num_members, len(self.steps)), np.nan, np.float32
                )
            host = engine.to_host(value)[: group.real]
            self.results[name][group.start : group.start + group.real, index] = host

    def after_chunk(self, loop, group) -> None:
        self._evaluate(loop, group, int(np.searchsorted(self.steps, loop.step)))

    def state_dict(self) -> dict:
        return {"results": self.results}

    def load_state_dict(self, state: Mapping) -> None:
        self.results = {k: np.asarray(v) for k, v in state.get("results", {}).items()}


@functools.lru_cache(maxsize=32)
def _evaluation_program(fn: Callable, program: engine.Vectorized | None) -> Callable:
    """``fn`` vmapped over members and compiled, sharded like ``program``'s state; cached, so a
    new sweep with the same evaluation function reuses it."""
    vmapped = jax.vmap(fn, in_axes=(0, 0, None))
    if program is None or program.mesh is None:
        return jax.jit(vmapped)
    ms, rep = program.sharding(0), program.sharding(None)
    return jax.jit(vmapped, in_shardings=(ms, ms, rep), out_shardings=ms)


class PlateauHook:
    """Reduce-on-plateau per member, between chunks, as a scale of the learning rate.

    After each evaluation, member ``k``'s controller (:func:`lrjax.reduce_on_plateau`) sees
    its metric and its scheduled learning rate; the resulting scale is written into the
    members' settings at ``field`` (a dict key or NamedTuple field), which the step multiplies
    into its update. The settings are inputs of the compiled chunk, so nothing recompiles.

    Args:
      controller: from :func:`lrjax.reduce_on_plateau`.
      evaluate: the :class:`Evaluate` hook whose metric is watched (it must come earlier in
        the hook list).
      metric: the name of the watched metric.
      scheduled_lr: ``scheduled_lr(state) -> lr`` for one member: the learning rate of its last
        update before the scale (e.g. read from ``optax.inject_hyperparams`` state).
      field: where the scale lives in the members' settings.
    """

    def __init__(
        self,
        controller: Any,
        evaluate: Evaluate,
        metric: str,
        scheduled_lr: Callable[[PyTree], Any],
        field: str = "lr_scale",
    ):
        from lrjax.plateau import ReduceOnPlateau

        if not isinstance(controller, ReduceOnPlateau):
            raise ValueError(
                f"controller must come from lrjax.reduce_on_plateau, got {controller!r}"
            )
        if not isinstance(evaluate, Evaluate):
            raise ValueError(
                "evaluate must be the lrjax.hooks.Evaluate hook whose metric is watched"
            )
        self.controller = controller
        self.evaluate = evaluate
        self.metric = metric
        self.scheduled_lr = scheduled_lr
        self.field = field
        self.states: dict[int, PyTree] = {}
        self._update = _plateau_update(controller, scheduled_lr)

    def on_start(self, loop) -> None:
        for group in loop.groups:
            if group.index not in self.states:
                init = jax.vmap(lambda _: self.controller.init())(np.zeros(group.size))
                self.states[group.index] = jax.tree.map(np.asarray, init)

    def after_chunk(self, loop, group) -> None:
        metrics = self.evaluate.latest.get(group.index)
        if metrics is None or self.metric not in metrics:
            raise ValueError(
                f"the plateau metric {self.metric!r} is not among the evaluated metrics "
                f"{sorted(metrics or {})}"
            )
        watched = engine.to_host(metrics[self.metric])
        state = jax.tree.map(engine.to_host, group.state) if loop.vectorize else group.state
        new = self._update(self.states[group.index], watched, state)
        self.states[group.index] = jax.tree.map(np.asarray, new)
        group.set_members(loop, _replace(group.members_host, self.field, np.asarray(new.scale)))

    def state_dict(self) -> dict:
        return {"states": {str(g): dict(s._asdict()) for g, s in self.states.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        from lrjax.plateau import PlateauState

        self.states = {
            int(g): PlateauState(**{k: np.asarray(v) for k, v in s.items()})
            for g, s in state.get("states", {}).items()
        }


@_cache_by_fingerprint(maxsize=32)
def _plateau_update(controller: Any, scheduled_lr: Callable[[PyTree], Any]) -> Callable:
    """The controllers' update vmapped over members and compiled; cached on what it computes,
    so a new sweep with an equal controller reuses it."""

    def member_update(plateau_state, metric, state):
        return controller.update(plateau_state, metric, scheduled_lr(state))

    return jax.jit(jax.vmap(member_update))


def _replace(members: PyTree, field: str, value: Any) -> PyTree:
    if isinstance(members, Mapping):
        return {**members, field: value}
    if hasattr(members, "_replace"):
        return members._replace(**{field: value})
    raise ValueError(f"members must be a dict or a NamedTuple to hold {field!r}")


class Callback:
    """Calls ``fn(info)`` after every chunk, with ``info = {"step": int, "metrics": {name:
    [K] value at the last step}}``."""

    def __init__(self, fn: Callable[[dict[str, Any]], None]):
        if not callable(fn):
            raise ValueError(f"callback must be a function callback(info), got {fn!r}")
        self.fn = fn

    def on_chunk_end(self, loop) -> None:
        last = {name: v[:, loop.step - 1] for name, v in (loop.metrics or {}).items()}
        self.fn({"step": loop.step, "metrics": last})


class ProgressBar:
    """A tqdm progress bar: steps/s, members alive (finite ``loss``) and the best loss so far.

    Args:
      enabled: True, False, or None (on when stderr is a terminal).
      loss: the metric shown.
    """

    def __init__(self, enabled: bool | None = None, loss: str = "loss"):
        self.enabled = enabled
        self.loss = loss
        self.bar = None
        self.best = np.inf

    def on_start(self, loop) -> None:
        enabled = sys.stderr.isatty() if self.enabled is None else self.enabled
        if not enabled or jax.process_index() != 0:  # one bar per run, not one per host
            return
        try:
            from tqdm.auto import tqdm
        except ImportError as e:
            if self.enabled is None:  # the bar is a convenience: without tqdm, auto stays quiet
                return
            raise ImportError("progress bars need tqdm: pip install 'lrjax[experiments]'") from e
        self.bar = tqdm(total=loop.num_steps, initial=loop.step, unit="step", dynamic_ncols=True)

    def on_chunk_end(self, loop) -> None:
        if self.bar is None:
            return
        losses = (loop.metrics or {}).get(self.loss)
        if losses is not None:
            recent = losses[:, loop.step - loop.last_chunk : loop.step]
            if np.isfinite(recent).any():
                self.best = min(self.best, float(np.nanmin(recent)))
            alive = int(np.sum(np.isfinite(losses[:, loop.step - 1])))
            self.bar.set_postfix(alive=f"{alive}/{loop.num_members}", best_loss=f"{self.best:.4g}")
        self.bar.update(loop.last_chunk)

    def on_end(self, loop) -> None:
        del loop
        if self.bar is not None:
            self.bar.close()


# -----------------------------------------------------------------------------------------------
# Checkpoints


def _is_key(a: Any) -> bool:
    return isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def _indexed(leaves) -> dict[str, Any]:
    """A list as a dict of string indices: orbax restores lists of arrays stacked, in float64."""
    return {str(i): leaf for i, leaf in enumerate(leaves)}


def _unindexed(tree: Mapping[str, Any]) -> list:
    return [tree[str(i)] for i in range(len(tree))]


def _non_empty(tree: Mapping) -> dict:
    """Drops zero-size arrays (orbax cannot save them) and empty sub-dicts."""
    out = {}
    for name, value in tree.items():
        if isinstance(value, Mapping):
            value = _non_empty(value)
            if value:
                out[name] = value
        elif np.size(value):
            out[name] = np.asarray(value)
    return out


def _describe(name: str, value: Any) -> Any:
    """``value`` if it is JSON, else its stable digest (see :class:`Checkpoint`)."""
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):
        text = None
    if text is not None:
        return json.loads(text)
    digest, undescribed = stable_digest(value)
    if undescribed:
        raise ValueError(
            f"fingerprint[{name!r}] holds a {type(undescribed[0]).__name__} with no description "
            "that holds in a new process (no importable name, and its repr holds a memory "
            "address); pass a name for it instead"
        )
    return digest


class Checkpoint:
    """Saves the run with orbax after every chunk; a rerun with the same ``fingerprint``
    resumes from the last saved chunk, bit-exact.

    Saved: the step, every group's state and member settings, the metrics so far, each hook's
    ``state_dict()`` and the feed's position. Put it first in the hook list.

    Args:
      directory: where to save (created if needed).
      fingerprint: ``{name: value}``, what determines the run; a directory holding a different
        one is refused, naming the entries that changed. JSON values (numbers, strings, lists,
        dicts) are stored as they are; anything else (the step function, the data, an optax
        transformation) as a digest that holds in a new process: functions by their code,
        closure values and globals, arrays by their content (``lrjax._fingerprint``). A value
        with no such digest (an object whose ``repr`` holds a memory address) is refused:
        give a name for it instead.

    Examples:
      >>> import numpy as np
      >>> x = np.ones((4, 2))
      >>> hook = Checkpoint("/tmp/run", {"lr": 0.1, "data": x, "step": lambda s, b, m: s})
      >>> sorted(hook.fingerprint)
      ['data', 'lr', 'step']
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: Mapping[str, Any] | None = None):
        self.directory = os.path.abspath(os.fspath(directory))
        self.fingerprint = {k: _describe(k, v) for k, v in dict(fingerprint or {}).items()}
        self._manager = None
        self.restored_step: int | None = None  # the step a run resumed from, if it did

    def _open(self):
        import orbax.checkpoint as ocp

        os.makedirs(self.directory, exist_ok=True)
        meta = os.path.join(self.directory, "run.json")
        if os.path.exists(meta):
            with open(meta) as f:
                saved = json.load(f)
            if saved != self.fingerprint:
                keys = set(saved) | set(self.fingerprint)
                changed = ", ".join(
                    sorted(k for k in keys if saved.get(k) != self.fingerprint.get(k))
                )
                raise ValueError(
                    f"checkpoint_dir {self.directory} holds a different run: {changed} changed "
                    "since it was saved, so resuming would continue the old run's state; use a "
                    "new directory, or delete this one to start fresh"
                )
        elif jax.process_index() == 0:
            # Written whole or not at all: a run killed here leaves no half-written record.
            with open(meta + ".tmp", "w") as f:
                json.dump(self.fingerprint, f, indent=1, sort_keys=True)
            os.replace(meta + ".tmp", meta)
        options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
        self._manager = ocp.CheckpointManager(
            os.path.join(self.directory, "chunks"), options=options, item_names=("device", "host")
        )

    @staticmethod
    def _device_tree(loop) -> dict:
        def leaves(tree):
            return _indexed(
                jax.random.key_data(a) if _is_key(a) else a for a in jax.tree.leaves(tree)
            )

        return {f"group_{g.index}": leaves(g.state) for g in loop.groups}

    @staticmethod
    def _host_tree(loop) -> dict:
        tree = {
            "step": np.asarray(loop.step, np.int64),
            "feed": np.asarray(loop.feed_position, np.int64),
            "metrics": dict(loop.metrics or {}),
            "members": {
                f"group_{g.index}": _indexed(np.asarray(a) for a in jax.tree.leaves(g.members_host))
                for g in loop.groups
            },
            "hooks": {
                str(i): hook.state_dict()
                for i, hook in enumerate(loop.hooks)
                if hasattr(hook, "state_dict")
            },
        }
        return _non_empty(jax.tree.map(np.asarray, tree))

    def on_start(self, loop) -> None:
        import orbax.checkpoint as ocp

        self._open()
        step = self._manager.latest_step()
        if step is None:
            return
        target = {}
        for g in loop.groups:
            target[f"group_{g.index}"] = _indexed(
                jax.ShapeDtypeStruct(
                    jax.random.key_data(a).shape if _is_key(a) else np.shape(a),
                    jax.random.key_data(a).dtype if _is_key(a) else a.dtype,
                    sharding=getattr(a, "sharding", None) if loop.vectorize else None,
                )
                for a in jax.tree.leaves(g.state)
            )
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                device=ocp.args.StandardRestore(target), host=ocp.args.StandardRestore()
            ),
        )
        device, host = restored["device"], restored["host"]
        for g in loop.groups:
            old = jax.tree.leaves(g.state)
            new = [
                jax.random.wrap_key_data(v, impl=jax.random.key_impl(o)) if _is_key(o) else v
                for o, v in zip(old, _unindexed(device[f"group_{g.index}"]), strict=True)
            ]
            if not loop.vectorize:
                new = [np.asarray(v) for v in new]
            g.state = jax.tree.unflatten(jax.tree.structure(g.state), new)
            member_leaves = _unindexed(host["members"][f"group_{g.index}"])
            structure = jax.tree.structure(g.members_host)
            g.set_members(
                loop, jax.tree.unflatten(structure, [np.asarray(v) for v in member_leaves])
            )
        loop.step = self.restored_step = int(host["step"])
        loop.feed_position = int(host.get("feed", 0))
        loop.metrics = {k: np.asarray(v) for k, v in host.get("metrics", {}).items()} or None
        hook_states = host.get("hooks", {})
        for i, hook in enumerate(loop.hooks):
            if hasattr(hook, "load_state_dict"):
                hook.load_state_dict(hook_states.get(str(i), {}))

    def on_chunk_end(self, loop) -> None:
        import orbax.checkpoint as ocp

        self._manager.save(
            loop.step,
            args=ocp.args.Composite(
                device=ocp.args.StandardSave(self._device_tree(loop)),
                host=ocp.args.StandardSave(self._host_tree(loop)),
            ),
        )
        # The next chunk donates the state's buffers, so the save must finish reading them.
        self._manager.wait_until_finished()

    def on_end(self, loop) -> None:
        del loop
        if self._manager is not None:
            self._manager.close()
