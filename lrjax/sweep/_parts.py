"""The pieces :func:`train` composes: the controller's rules, the compiled program, the
evaluation function, the run's description, and the hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from lrjax import controller, divergence, engine, feeds, hooks, supervised
from lrjax._fingerprint import cache as _cache_by_fingerprint
from lrjax._fingerprint import data_digest
from lrjax.trackers import track

PyTree = Any


def rules(task: supervised.Supervised, members: supervised.Member, plateau, pbt) -> dict:
    """The controller's rules: every scheduled optimizer argument (computed before each step
    from the member's own settings), the learning rate under reduce-on-plateau, and whatever
    PBT explores (an optimizer argument, or a hyperparameter of ``hparams``), each kept as it is
    until a host-side controller turns its knob."""
    template = {name: np.asarray(a[0]) for name, a in members.hparams.items()}
    found: dict[str, Any] = dict(task.controls(template))
    kwargs = _kwarg_names(task, template)
    if plateau is not None:
        if "learning_rate" not in kwargs:
            raise ValueError(
                "plateau scales the learning rate, but the optimizer gets no learning_rate "
                f"argument (optimizer_kwargs gave {sorted(kwargs)})"
            )
        found.setdefault("learning_rate", None)
    for name in pbt.names if pbt is not None else ():
        if name not in kwargs and name not in members.hparams:
            raise ValueError(
                f"pbt.space[{name!r}] is neither an optimizer argument {sorted(kwargs)} nor a "
                f"hyperparameter of hparams {sorted(members.hparams)}"
            )
        found.setdefault(name, None)
    return found


def _kwarg_names(task: supervised.Supervised, hparams: Mapping[str, Any]) -> list[str]:
    names: list[str] = []

    def probe(h):
        names.extend(task.kwargs(h))
        return np.zeros(())

    jax.eval_shape(probe, hparams)
    return names


def _finite_part(state: PyTree) -> PyTree:
    """What divergence freezing checks besides the loss: the new parameters and model state
    (a non-finite gradient or update shows there; the optimizer state need not be scanned)."""
    inner = engine.unwrap(state)
    return inner.params, inner.model_state


@_cache_by_fingerprint(maxsize=32)
def program(task, rules, tracked, factor, devices) -> engine.Vectorized:
    """The compiled program of a sweep, cached on everything it depends on besides shapes: a
    fingerprint of the functions (code, closure values, globals; see ``lrjax._fingerprint``),
    so a call with equal closures built afresh reuses the compiled program. The layers, inner
    to outer: the supervised step, the controller, the trackers, divergence freezing."""
    step, init = task.step, task.init
    if rules:
        step, init = controller.control(step, init, dict(rules), log=None)
    step, init = track(step, init, dict(tracked))
    step, init = divergence.freeze_on_divergence(step, init, factor=factor, finite=_finite_part)
    return engine.vectorize(step, init, devices=list(devices))


@_cache_by_fingerprint(maxsize=32)
def evaluation_fn(task: supervised.Supervised, metrics: tuple, eval_params=None) -> Callable:
    """One member's evaluation: each metric's mean on the evaluation data, evaluation mode."""

    def evaluate(state, member, data):
        del member
        inner = engine.unwrap(state)
        if eval_params is not None:
            with jax.numpy_dtype_promotion("standard"):  # optimizer code, as in the step
                inner = inner._replace(params=eval_params(inner.opt_state, inner.params))
        return task.evaluate(inner, data, metrics)

    return evaluate


def settings(task, members, num_steps, batch_size, chunk, group, factor, tracked, plateau, pbt):
    """The run's settings, as JSON (the result's metadata, and part of a checkpoint's record)."""
    return {
        "num_members": int(members.seed.shape[0]),
        "num_steps": num_steps,
        "batch_size": batch_size,
        "chunk_steps": chunk,
        "group_size": group,
        "hparams": {name: a.tolist() for name, a in members.hparams.items()},
        "seeds": members.seed.tolist(),
        "data_seeds": members.data_seed.tolist(),
        "batch_sizes": members.batch_size.tolist(),
        "tracker_settings": jax.tree.map(lambda a: a.tolist(), members.trackers),
        "divergence_factor": factor,
        "optimizer": getattr(task.optimizer, "__name__", type(task.optimizer).__name__),
        "trackers": {name: repr(t) for name, t in tracked},
        "plateau": None if plateau is None else plateau[1],
        "pbt": None if pbt is None else repr(pbt),
    }


def identity(task, feed, example, evaluation, tracked, plateau, pbt, checkpoint_id) -> dict:
    """What the trajectory depends on beyond the settings, for the checkpoint to describe once
    (:func:`lrjax._fingerprint.describe_run`): functions and objects as they are, the data as
    content digests. A batch function or an iterator: its first batch is all that can be read
    without consuming it (the function itself is described with the rest)."""
    arrays = feed.arrays if isinstance(feed, feeds.ArrayFeed) else example
    return {
        "masked": task.masked,
        "checkpoint_id": checkpoint_id,
        "model": task.model,
        "loss": task.loss,
        "optimizer": task.optimizer,
        "optimizer_kwargs": task.optimizer_kwargs,
        "metrics": None if evaluation is None else evaluation[0],
        "eval_params": None if evaluation is None else evaluation[2],
        "trackers": dict(tracked),
        "plateau_controller": None if plateau is None else plateau[0],
        "pbt_hook": pbt,
        "data_function": feed.fn if isinstance(feed, feeds.FunctionFeed) else None,
        "data": data_digest(arrays),
        "eval_data": None if evaluation is None else data_digest(evaluation[1]),
    }


def hook_list(task, evaluation, plateau, pbt, options, run) -> tuple[list, dict]:
    """The hooks, in order: the checkpoint (restores first), the evaluation, reduce-on-plateau
    and PBT (both read the evaluation), the user's hooks, the progress bar, the user's
    callback; and the run's
    description (described once, by the checkpoint, when there is one)."""
    run_hooks = []
    if options.checkpoint_dir is not None:
        checkpoint = hooks.Checkpoint(options.checkpoint_dir, run, options.checkpoint_policy)
        run_hooks.append(checkpoint)
        run = checkpoint.fingerprint
    if evaluation is not None:
        metrics, eval_data, eval_params = evaluation
        run_hooks.append(hooks.Evaluate(evaluation_fn(task, metrics, eval_params), eval_data))
    if plateau is not None:
        run_hooks.append(hooks.PlateauHook(plateau[0], plateau[1]))
    if pbt is not None:
        run_hooks.append(pbt)
    run_hooks.extend(options.hooks)
    run_hooks.append(hooks.ProgressBar(options.progress))
    if options.callback is not None:
        callback = options.callback

        def report(info):
            loss = info["metrics"]["loss"]
            callback({"step": info["step"], "loss": loss, "alive": np.isfinite(loss)})

        run_hooks.append(hooks.Callback(report))
    return run_hooks, run
