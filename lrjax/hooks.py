"""Hooks of the host loop (:func:`lrjax.fit`): what happens between compiled chunks.

* :class:`Evaluate` — a per-member evaluation function on held-out data, vmapped and compiled;
  it records into the loop (:meth:`lrjax.loop.Loop.record_evaluation`), where every other hook
  reads it;
* :class:`PlateauHook` — reduce-on-plateau per member on an evaluated metric, turning the
  controller's scale of the learning rate (:func:`lrjax.control`; nothing recompiles);
* :class:`Checkpoint` — orbax checkpoints between chunks, restored on a rerun; hook states
  are kept by hook name; :class:`CheckpointPolicy` says when to save (an interval,
  asynchronously) and what to keep (the newest n, the best k by an evaluation metric);
* :class:`ProgressBar` — a tqdm bar with steps/s, members alive and the best loss;
* :class:`Callback` — your function, called after every chunk.

Hooks share data through the loop (its metrics, evaluations and the controller's knobs), never
through each other. Each works with any step: they only see the state through the functions you
give them (or :func:`lrjax.engine.unwrap`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from lrjax import _checks, engine
from lrjax._fingerprint import cache as _cache_by_fingerprint
from lrjax._fingerprint import describe_run

__all__ = ["Callback", "Checkpoint", "CheckpointPolicy", "Evaluate", "PlateauHook", "ProgressBar"]

PyTree = Any


class Evaluate:
    """Evaluates every member on ``data`` at step 0 and after every chunk, into the loop.

    Args:
      fn: ``fn(state, member, data) -> {name: scalar}`` for ONE member (vmapped and compiled
        here; ``state`` is the member's full state, see :func:`lrjax.engine.unwrap`; collectives
        over a named ``'batch'`` axis are bound, as in the step).
      data: the evaluation arrays, passed whole (replicated on every device).

    The results live on the loop, for every hook and for you: ``loop.eval_steps`` ``[E]`` and
    ``loop.evaluations`` ``{name: [K, E]}`` (also ``fit(...).loop``).
    """

    name = "evaluate"

    def __init__(self, fn: Callable[[PyTree, PyTree, PyTree], Mapping[str, Any]], data: PyTree):
        if not callable(fn):
            raise ValueError(f"fn must be a function fn(state, member, data), got {fn!r}")
        self.fn = fn
        self.data = data
        self._program = None

    def _compiled(self, loop):
        if self._program is None or self._program[0] is not loop.program:
            mesh_program = loop.program if loop.vectorize else None
            fn = _evaluation_program(self.fn, mesh_program)
            self._program = (loop.program, fn, loop.put(self.data, None))
        return self._program[1], self._program[2]

    def on_start(self, loop) -> None:
        if loop.step == 0:  # a resumed run has its evaluations back from the checkpoint
            for group in loop.groups:
                self.after_chunk(loop, group)

    def after_chunk(self, loop, group) -> None:
        fn, data = self._compiled(loop)
        loop.record_evaluation(group, engine.as_metrics(fn(group.state, group.members, data)))


@functools.lru_cache(maxsize=32)
def _evaluation_program(fn: Callable, program: engine.Vectorized | None) -> Callable:
    """``fn`` vmapped over members and compiled, sharded like ``program``'s state; cached, so a
    new sweep with the same evaluation function reuses it."""
    vmapped = jax.vmap(engine.bind_axes(fn, ("batch",)), in_axes=(0, 0, None))
    if program is None or program.mesh is None:
        return jax.jit(vmapped)
    ms, rep = program.sharding(0), program.sharding(None)
    return jax.jit(vmapped, in_shardings=(ms, ms, rep), out_shardings=ms)


class PlateauHook:
    """Reduce-on-plateau per member, between chunks, as the controller's scale of a
    hyperparameter.

    After each evaluation, member ``k``'s controller (:func:`lrjax.reduce_on_plateau`) sees its
    latest evaluated ``metric`` (from the loop) and the value its rule gave the hyperparameter at
    the last step (the knob's ``value``, before the scale); the new scale is written with
    :meth:`lrjax.loop.Loop.set_control`, so the next chunk trains with ``scale * rule`` and
    nothing recompiles. The step must be wrapped with :func:`lrjax.control` over
    ``hyperparameter``.

    Args:
      controller: from :func:`lrjax.reduce_on_plateau`.
      metric: the name of the watched evaluation metric (an :class:`Evaluate` hook earlier in
        the list records it).
      hyperparameter: the controlled hyperparameter it scales.
    """

    name = "plateau"

    def __init__(self, controller: Any, metric: str, hyperparameter: str = "learning_rate"):
        from lrjax.plateau import ReduceOnPlateau

        if not isinstance(controller, ReduceOnPlateau):
            raise ValueError(
                f"controller must come from lrjax.reduce_on_plateau, got {controller!r}"
            )
        if not isinstance(metric, str):
            raise ValueError(f"metric must be the name of an evaluation metric, got {metric!r}")
        self.controller = controller
        self.metric = metric
        self.hyperparameter = hyperparameter
        self.states: dict[int, PyTree] = {}
        self._update = _plateau_update(controller)

    def on_start(self, loop) -> None:
        for group in loop.groups:
            if group.index not in self.states:
                init = jax.vmap(lambda _: self.controller.init())(np.zeros(group.size))
                self.states[group.index] = jax.tree.map(np.asarray, init)

    def after_chunk(self, loop, group) -> None:
        metrics = loop.evaluation(group)
        if self.metric not in metrics:
            raise ValueError(
                f"the plateau metric {self.metric!r} is not among the evaluated metrics "
                f"{sorted(metrics)} (an Evaluate hook before the plateau hook records them)"
            )
        knob = loop.control(group)[self.hyperparameter]
        new = self._update(self.states[group.index], metrics[self.metric], knob.value)
        self.states[group.index] = jax.tree.map(np.asarray, new)
        loop.set_control(group, self.hyperparameter, scale=np.asarray(new.scale))

    def on_repack(self, loop, group, slots) -> None:
        """Slices the group's controllers like its members (successive halving,
        :meth:`lrjax.loop.Loop.repack`)."""
        del loop
        if group.index not in self.states:
            return
        if not group.real:
            del self.states[group.index]
        else:
            self.states[group.index] = jax.tree.map(
                lambda a: np.asarray(a)[slots], self.states[group.index]
            )

    def state_dict(self) -> dict:
        return {"states": {str(g): dict(s._asdict()) for g, s in self.states.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        from lrjax.plateau import PlateauState

        self.states = {
            int(g): PlateauState(**{k: np.asarray(v) for k, v in s.items()})
            for g, s in state.get("states", {}).items()
        }


@_cache_by_fingerprint(maxsize=32)
def _plateau_update(controller: Any) -> Callable:
    """The controllers' update vmapped over members and compiled; cached on what it computes,
    so a new sweep with an equal controller reuses it."""
    return jax.jit(jax.vmap(controller.update))


class Callback:
    """Calls ``fn(info)`` after every chunk, with ``info = {"step": int, "metrics": {name:
    [K] value at the last step}}``."""

    def __init__(self, fn: Callable[[dict[str, Any]], None]):
        if not callable(fn):
            raise ValueError(f"callback must be a function callback(info), got {fn!r}")
        self.fn = fn
        self.name = "callback"

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
        if enabled is not None and not isinstance(enabled, bool | np.bool_):
            raise ValueError(f"progress must be True, False or None, got {enabled!r}")
        self.enabled = enabled
        self.loss = loss
        self.name = "progress"
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


CHECKPOINT_FORMAT = 2  # 2: hook states by hook name, evaluations kept by the loop

_OPEN_MANAGERS: dict[str, Any] = {}  # directory -> the manager a run in this process left open


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """When :class:`Checkpoint` saves and which saves it keeps: orbax's ``CheckpointManager``
    policies (``FixedIntervalPolicy``, ``LatestN``, ``BestN``, asynchronous saves).

    Attributes:
      save_interval_steps: save at the chunk ends whose step is a multiple of this (a multiple
        of ``chunk_steps``: saves happen between chunks); None saves after every chunk. The
        last step is always saved, so a finished run reruns without training.
      keep_last: the newest saves kept, ``>= 1`` (a rerun resumes from the newest).
      keep_best: also keep this many best saves by ``best_metric`` (0: none).
      best_metric: the evaluation metric (``loop.evaluations``) that ranks saves. A save's score
        is its best member's value at that step (the lowest for ``best_mode="min"``); a save
        without an evaluation at its step has no score and is kept only among the newest.
      best_mode: ``"min"`` or ``"max"``.
      asynchronous: write in the background while the next chunk trains (orbax copies the
        arrays to host memory before ``save`` returns, so the next chunk may donate them).

    Examples:
      >>> CheckpointPolicy(keep_last=2, keep_best=3, best_metric="loss").keep_best
      3
    """

    save_interval_steps: int | None = None
    keep_last: int = 1
    keep_best: int = 0
    best_metric: str | None = None
    best_mode: str = "min"
    asynchronous: bool = True

    def __post_init__(self):
        if self.save_interval_steps is not None:
            _checks.check_int("save_interval_steps", self.save_interval_steps, 1)
        _checks.check_int("keep_last", self.keep_last, 1)
        _checks.check_int("keep_best", self.keep_best, 0)
        if self.best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {self.best_mode!r}")
        if self.keep_best and not (isinstance(self.best_metric, str) and self.best_metric):
            raise ValueError(
                f"keep_best={self.keep_best} needs best_metric, the name of an evaluation "
                f"metric, got {self.best_metric!r}"
            )
        _checks.check_bool("asynchronous", self.asynchronous)

    def score(self, loop) -> dict[str, float] | None:
        """The save's metrics for orbax: ``{best_metric: its best member's value}`` at this
        step, or None (no evaluation at this step, or every member's is NaN)."""
        if not self.keep_best or not len(loop.eval_steps) or loop.eval_steps[-1] != loop.step:
            return None
        if self.best_metric not in loop.evaluations:
            raise ValueError(
                f"best_metric {self.best_metric!r} is not among the evaluated metrics "
                f"{sorted(loop.evaluations)}"
            )
        column = loop.evaluations[self.best_metric][:, -1]
        if not np.isfinite(column).any():
            return None
        best = np.nanmin(column) if self.best_mode == "min" else np.nanmax(column)
        return {self.best_metric: float(best)}

    def manager_options(self, ocp) -> Any:
        """orbax's ``CheckpointManagerOptions`` for this policy."""
        policies = ocp.checkpoint_managers
        keep = [policies.LatestN(n=self.keep_last)]
        if self.keep_best:
            metric = self.best_metric
            keep.append(policies.BestN(
                get_metric_fn=lambda metrics: metrics[metric], n=self.keep_best,
                reverse=self.best_mode == "min", keep_checkpoints_without_metrics=False,
            ))  # fmt: skip
        return ocp.CheckpointManagerOptions(
            save_decision_policy=policies.FixedIntervalPolicy(self.save_interval_steps or 1),
            preservation_policy=policies.AnyPreservationPolicy(keep),
            enable_async_checkpointing=self.asynchronous,
            cleanup_tmp_directories=True,  # a save a kill interrupted
            create=True,
        )


class Checkpoint:
    """Saves the run with orbax between chunks; a rerun with the same ``fingerprint`` resumes
    from the newest save, bit-exact.

    Saved: the step, every group's state (the controller's knobs included) and member settings,
    the loop's records (metrics, evaluations), each hook's ``state_dict()`` under the hook's
    name (so a hook list in another order resumes the same), and the feed's position. Put it
    first in the hook list. A directory written by an earlier lrjax (hook states by position)
    is refused, never misread. When to save and what to keep is ``policy``: by default after
    every chunk, asynchronously, keeping the newest save; a rerun after a kill (even during an
    asynchronous save) resumes from the newest complete one.

    Args:
      directory: where to save (created if needed; an existing file there is refused). Saves
        are orbax steps under ``directory/chunks``.
      fingerprint: ``{name: value}``, what determines the run; a directory holding a different
        one is refused, naming the entries that changed. JSON values (numbers, strings, lists,
        dicts) are stored as they are; anything else (the step function, the data, an optax
        transformation) as a digest that holds in a new process
        (:func:`lrjax._fingerprint.describe_run`). A value with no such digest (an object whose
        ``repr`` holds a memory address) is refused unless the fingerprint names the run with a
        ``"checkpoint_id"`` entry.
      policy: a :class:`CheckpointPolicy` (save interval, keep the newest n and the best k,
        asynchronous saves).

    Examples:
      >>> import numpy as np
      >>> x = np.ones((4, 2))
      >>> hook = Checkpoint("/tmp/run", {"lr": 0.1, "data": x, "step": lambda s, b, m: s})
      >>> sorted(hook.fingerprint)
      ['data', 'lr', 'step']
    """

    name = "checkpoint"

    def __init__(
        self,
        directory: str | os.PathLike,
        fingerprint: Mapping[str, Any] | None = None,
        policy: CheckpointPolicy | None = None,
    ):
        try:
            directory = os.fspath(directory)
        except TypeError:
            raise ValueError(
                f"checkpoint_dir must be a path (a str or os.PathLike), got {directory!r}"
            ) from None
        self.directory = os.path.abspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(
                f"checkpoint_dir must be a directory (new or holding a checkpoint), but "
                f"{self.directory} is a file"
            )
        if policy is not None and not isinstance(policy, CheckpointPolicy):
            raise ValueError(f"policy must be an lrjax.hooks.CheckpointPolicy, got {policy!r}")
        self.policy = policy or CheckpointPolicy()
        self.fingerprint = describe_run(dict(fingerprint or {}), run_id_key="checkpoint_id")
        self._manager = None
        self.restored_step: int | None = None  # the step a run resumed from, if it did

    def _open(self):
        import orbax.checkpoint as ocp

        # A run in this process that stopped with an exception never reached on_end: its last
        # asynchronous save finishes before this run reads the directory.
        leftover = _OPEN_MANAGERS.pop(self.directory, None)
        if leftover is not None:
            leftover.close()
        os.makedirs(self.directory, exist_ok=True)
        meta = os.path.join(self.directory, "run.json")
        record = {"checkpoint_format": CHECKPOINT_FORMAT, "run": self.fingerprint}
        if os.path.exists(meta):
            with open(meta) as f:
                saved = json.load(f)
            if saved.get("checkpoint_format") != CHECKPOINT_FORMAT:
                raise ValueError(
                    f"checkpoint_dir {self.directory} was written by an earlier version of lrjax "
                    f"(checkpoint format {saved.get('checkpoint_format', 1)}, this one reads "
                    f"{CHECKPOINT_FORMAT}: hook states by name), so resuming could give a hook "
                    "another hook's state; use a new directory, or delete this one to start fresh"
                )
            saved = saved["run"]
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
                json.dump(record, f, indent=1, sort_keys=True)
            os.replace(meta + ".tmp", meta)
        self._manager = ocp.CheckpointManager(
            os.path.join(self.directory, "chunks"),
            options=self.policy.manager_options(ocp),
            item_names=("device", "host"),
        )
        _OPEN_MANAGERS[self.directory] = self._manager

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
            "format": np.asarray(CHECKPOINT_FORMAT, np.int64),
            "step": np.asarray(loop.step, np.int64),
            "feed": np.asarray(loop.feed_position, np.int64),
            "metrics": dict(loop.metrics or {}),
            "eval_steps": np.asarray(loop.eval_steps, np.int64),
            "evaluations": dict(loop.evaluations),
            "members": {
                f"group_{g.index}": _indexed(np.asarray(a) for a in jax.tree.leaves(g.members_host))
                for g in loop.groups
            },
            "hooks": loop.hook_states(),
            "member_steps": np.asarray(loop.member_steps, np.int64),
            "layout": {f"group_{g.index}": np.asarray(g.rows, np.int64) for g in loop.groups},
            "stopped": {
                f"stopped_{j}": {
                    "rows": np.asarray(st.rows, np.int64),
                    "step": np.asarray(st.step, np.int64),
                    "state": _indexed(
                        np.asarray(jax.random.key_data(a) if _is_key(a) else a)
                        for a in jax.tree.leaves(st.state)
                    ),
                    "members": _indexed(np.asarray(a) for a in jax.tree.leaves(st.members)),
                }
                for j, st in enumerate(loop.stopped)
            },
        }
        # Copies: an asynchronous save writes them while the loop updates its records.
        return _non_empty(jax.tree.map(np.array, tree))

    def on_start(self, loop) -> None:
        import orbax.checkpoint as ocp

        interval = self.policy.save_interval_steps
        if interval is not None and interval % loop.chunk_steps:
            raise ValueError(
                f"save_interval_steps must be a multiple of chunk_steps={loop.chunk_steps} "
                f"(saves happen between chunks), got {interval}"
            )
        self._open()
        step = self._manager.latest_step()
        if step is None:
            return
        # The host records first: they say which members each group still trains (a hook such
        # as successive halving may have re-packed them), hence the shapes of the states.
        host = self._manager.restore(
            step, args=ocp.args.Composite(host=ocp.args.StandardRestore())
        )["host"]
        if "layout" in host:
            loop.set_layout(
                {int(k.split("_")[1]): v for k, v in host["layout"].items()},
                [self._stopped(loop, st) for _, st in sorted(
                    host.get("stopped", {}).items(), key=lambda kv: int(kv[0].split("_")[1])
                )],
            )  # fmt: skip
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
        device = self._manager.restore(
            step, args=ocp.args.Composite(device=ocp.args.StandardRestore(target))
        )["device"]
        if int(host.get("format", 1)) != CHECKPOINT_FORMAT:  # pragma: no cover - run.json first
            raise ValueError(f"checkpoint_dir {self.directory} holds an older checkpoint format")
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
        loop.member_steps = int(host.get("member_steps", loop.step * loop.num_members))
        loop.feed_position = int(host.get("feed", 0))
        loop.metrics = {k: np.asarray(v) for k, v in host.get("metrics", {}).items()} or None
        loop.eval_steps = np.asarray(host.get("eval_steps", np.zeros((0,))), np.int64)
        loop.evaluations = {k: np.asarray(v) for k, v in host.get("evaluations", {}).items()}
        loop.load_hook_states(host.get("hooks", {}))

    @staticmethod
    def _stopped(loop, saved: Mapping) -> Any:
        """A :class:`lrjax.loop.Stopped` from its saved host arrays (keys re-wrapped like the
        running groups' states)."""
        from lrjax.loop import Stopped

        like = loop.groups[0].state
        leaves = [
            jax.random.wrap_key_data(v, impl=jax.random.key_impl(o))
            if _is_key(o)
            else np.asarray(v)
            for o, v in zip(jax.tree.leaves(like), _unindexed(saved["state"]), strict=True)
        ]
        members = [np.asarray(v) for v in _unindexed(saved["members"])]
        return Stopped(
            np.asarray(saved["rows"], np.int64),
            int(saved["step"]),
            jax.tree.unflatten(jax.tree.structure(like), leaves),
            jax.tree.unflatten(jax.tree.structure(loop.groups[0].members_host), members),
        )

    def on_chunk_end(self, loop) -> None:
        import orbax.checkpoint as ocp

        # orbax's save decision (the interval) and preservation (newest n, best k) policies;
        # the last step is always saved. An asynchronous save returns once the arrays are in
        # host memory, so the next chunk may donate the state's buffers.
        self._manager.save(
            loop.step,
            args=ocp.args.Composite(
                device=ocp.args.StandardSave(self._device_tree(loop)),
                host=ocp.args.StandardSave(self._host_tree(loop)),
            ),
            metrics=self.policy.score(loop),
            force=loop.step >= loop.num_steps,
        )

    def on_end(self, loop) -> None:
        del loop
        if self._manager is not None:
            self._manager.close()  # waits for the last asynchronous save
            _OPEN_MANAGERS.pop(self.directory, None)
