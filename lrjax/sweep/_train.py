"""The composition: :func:`train`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from lrjax import _checks, divergence, engine, feeds, hooks, loop, supervised
from lrjax._fingerprint import cache as _cache_by_fingerprint
from lrjax._fingerprint import data_digest, stable_digest
from lrjax.sweep._checks import (
    _check_metrics,
    _check_model_and_loss,
    _check_optimizer,
    _check_trackers,
    _chunk_and_evaluation,
    _data_check,
    _devices,
    _feed,
    _pbt_group,
)
from lrjax.sweep._data_errors import _SameStepDivergence
from lrjax.sweep._members import _int32, _members, _split_trackers
from lrjax.sweep._options import CPU_MEMBERS_PER_DEVICE, Evaluation, Options
from lrjax.sweep._result import SweepResult, _result
from lrjax.trackers import params_of, track

PyTree = Any
Array = jax.Array

# -----------------------------------------------------------------------------------------------
# The composition


def _identity_kwargs(hparams: Mapping[str, Array]) -> Mapping[str, Array]:
    return dict(hparams)


def _model_variables(state: supervised.State) -> PyTree:
    """What the trackers of a model with state follow: ``{"params": ..., **model_state}``."""
    return {"params": state.params, **state.model_state}


def _finite_part(state: PyTree) -> PyTree:
    """What divergence freezing checks besides the loss: the new parameters and model state
    (a non-finite gradient or update shows there; the optimizer state need not be scanned)."""
    inner = engine.unwrap(state)
    return inner.params, inner.model_state


def _scheduled_lr(state: PyTree) -> Array:
    return engine.unwrap(state).opt_state.hyperparams["learning_rate"]


@_cache_by_fingerprint(maxsize=32)
def _program(task, tracked, factor, devices) -> engine.Vectorized:
    """The compiled program of a sweep, cached on everything it depends on besides shapes: a
    fingerprint of the functions (code, closure values, globals; see ``lrjax._fingerprint``),
    so a call with equal closures built afresh reuses the compiled program."""
    select = _model_variables if task.model.stateful else params_of
    step, init = track(task.step, task.init, dict(tracked), select=select)
    step, init = divergence.freeze_on_divergence(step, init, factor=factor, finite=_finite_part)
    return engine.vectorize(step, init, devices=list(devices))


@_cache_by_fingerprint(maxsize=32)
def _evaluation_fn(task: supervised.Supervised, metrics: tuple, eval_params=None) -> Callable:
    def evaluate(state, member, data):
        del member
        inner = engine.unwrap(state)
        if eval_params is not None:
            with jax.numpy_dtype_promotion("standard"):  # optimizer code, as in the step
                inner = inner._replace(params=eval_params(inner.opt_state, inner.params))
        return task.evaluate(inner, data, metrics)

    return evaluate


def _fingerprint(task, members, num_steps, batch_size, chunk, group, factor, tracked, plateau):
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
        "ema_decay": members.ema_decay.tolist(),
        "divergence_factor": factor,
        "optimizer": getattr(task.optimizer, "__name__", type(task.optimizer).__name__),
        "trackers": {name: repr(t) for name, t in tracked},
        "plateau": plateau,
    }


def _identity(task, feed, example, eval_hook, tracked, plateau, pbt, options) -> dict:
    """What the trajectory depends on beyond the settings, as digests that hold in a new
    process (see ``Options.checkpoint_dir``); a part without one needs ``checkpoint_id``."""
    if options.checkpoint_id is not None and not (
        isinstance(options.checkpoint_id, str) and options.checkpoint_id
    ):
        raise ValueError(
            f"options.checkpoint_id must be a non-empty string, got {options.checkpoint_id!r}"
        )
    parts = {
        "model": task.model,
        "loss": task.loss,
        "optimizer": task.optimizer,
        "optimizer_kwargs": task.optimizer_kwargs,
        "metrics": None if eval_hook is None else eval_hook[0],
        "eval_params": None if eval_hook is None else eval_hook[2],
        "trackers": dict(tracked),
        "plateau_controller": None if plateau is None else plateau[0],
        "pbt": pbt,
        "data_function": feed.fn if isinstance(feed, feeds.FunctionFeed) else None,
    }
    identity = {"masked": task.masked, "checkpoint_id": options.checkpoint_id}
    undescribed = {}
    for name, part in parts.items():
        digest, unknown = stable_digest(part)
        identity[name] = digest if not unknown else "named by checkpoint_id"
        if unknown:
            undescribed[name] = type(unknown[0]).__name__
    if undescribed and options.checkpoint_id is None:
        listed = ", ".join(f"{name} (a {kind})" for name, kind in undescribed.items())
        raise ValueError(
            f"options.checkpoint_dir needs a description of the run that holds in a new process, "
            f"but {listed} has none (no importable name, and its repr holds a memory address); "
            "pass options.checkpoint_id='<a name for this run>' and change it whenever that "
            "object changes"
        )
    # A batch function or an iterator: its first batch is all that can be read without
    # consuming it (the function itself is digested above).
    arrays = feed.arrays if isinstance(feed, feeds.ArrayFeed) else example
    identity["data"] = data_digest(arrays)
    identity["eval_data"] = None if eval_hook is None else data_digest(eval_hook[1])
    return identity


def train(
    model: Any,
    loss: Callable[[Array, Array], Array],
    data: Any,
    *,
    optimizer: Callable[..., optax.GradientTransformation],
    hparams: Mapping[str, Any],
    num_steps: int,
    batch_size: int | None = None,
    optimizer_kwargs: Callable[[Mapping[str, Array]], Mapping[str, Any]] | None = None,
    seeds: Any = 0,
    data_seeds: Any = 0,
    batch_sizes: Any = None,
    evaluation: Evaluation | None = None,
    trackers: Mapping[str, Any] | None = None,
    plateau: Any = None,
    divergence_factor: float | None = 100.0,
    pbt: Any = None,
    options: Options | None = None,
) -> SweepResult:
    """Trains K members of a hyperparameter sweep of a supervised model in one compiled program.

    Args:
      model: a :class:`Model`, an ``(init, apply)`` pair, a ``flax.linen.Module`` (built on the
        first batch; with ``batch_stats`` and dropout) or a ``flax.nnx`` module or
        ``Model.from_nnx(factory)`` (with ``BatchNorm`` and ``Dropout``).
      loss: ``loss(outputs, targets) -> [batch]`` per-example losses, e.g.
        ``optax.softmax_cross_entropy_with_integer_labels``.
      data: ``(inputs, targets)`` arrays (shuffled minibatches of ``batch_size``; a
        ``numpy.memmap`` is read batch by batch), a function ``batch_fn(step) -> (x, y)``, or an
        iterator of ``(x, y)`` batches (see :mod:`lrjax.feeds`).
      optimizer: an optax factory such as ``optax.sgd``, wrapped in
        ``optax.inject_hyperparams(optimizer, hyperparam_dtype=jnp.float32)``.
      hparams: ``{name: [K, ...] array}``, the per-member hyperparameters (traced: new values
        never recompile), real numbers (booleans and NaN are refused). Without
        ``optimizer_kwargs`` each is one optimizer argument per member: a 1-D ``[K]`` array,
        float32 even when given as integers (``[1, 2]`` is the learning rates 1.0 and 2.0).
        With ``optimizer_kwargs``, ``[K, ...]`` arrays: floats become float32, integers int32
        (a schedule family index, say).
      num_steps: updates per member, ``>= 1``.
      batch_size: the (largest) batch size, in ``[1, N]``, for array data.
      optimizer_kwargs: ``fn(member_hparams) -> {kwarg: value}``, the optimizer's keyword
        arguments for one member: numbers, traced scalars or schedules built from them
        (:func:`schedule_family_switch` picks the family per member). Default: the member's
        hyperparameters themselves. Every member's arguments are built before compiling, and
        those with a known domain checked (``learning_rate >= 0``, a schedule at up to 257
        steps; ``b1``, ``b2``, ``b3``, ``momentum``, ``decay``, ``rho`` in ``[0, 1)``; ``eps``,
        ``eps_root``, ``weight_decay >= 0``); an integer given for one of them is cast to
        float32. An optimizer factory with a ``check_arguments(where, kwargs)`` attribute
        (:func:`lrjax.discriminative`) checks its own arguments there too.
      seeds: initialization (and dropout) seed, an int shared by all members or ``[K]`` ints,
        each in int32's range ``[-2**31, 2**31 - 1]`` (a wider one would wrap onto another).
      data_seeds: data-order seed; an int means every member sees the same batch at each step,
        ``[K]`` ints give each member its own order (array data); int32, like ``seeds``.
      batch_sizes: ``[K]`` ints in ``[1, batch_size]``: member ``k`` trains on the first
        ``batch_sizes[k]`` examples of each batch (masked; the gradient equals training with
        that batch). Not for models with batch statistics.
      evaluation: an :class:`Evaluation` (held-out data, chunk length, metrics).
      trackers: ``{name: tracker}`` followed inside the compiled loop: ``lrjax.Snapshots``,
        ``lrjax.SWA``, ``lrjax.EMA`` (an EMA may take ``[K]`` decays).
      plateau: an :func:`lrjax.reduce_on_plateau` controller watching the evaluated ``"loss"``,
        or ``(controller, metric_name)``; its scale multiplies the scheduled learning rate and
        ``result.learning_rate`` records the product.
      divergence_factor: a member whose loss exceeds this multiple of ``|initial loss|`` is
        frozen and flagged, like one with a non-finite loss or state; None turns the ratio
        test off.
      pbt: an :class:`lrjax.PBT` hook: population-based training every ``pbt.ready`` steps,
        ranked on an evaluated metric (it runs after the evaluation; all members train in one
        group). ``opt_hparams`` then records the explored values each update used, and the
        hook itself the lineage.
      options: :class:`Options` (devices, groups, checkpoints, progress, callback, debug path,
        data checks).

    Returns:
      A :class:`SweepResult`.

    Raises:
      ValueError: for inputs out of range, naming the argument; for bad data (a non-finite
        value, a label outside the model's classes), naming the example (and the step, for a
        batch function or an iterator); when every member's loss or gradient turns non-finite
        at the same step, naming the step (see ``Options.check_data``).
    """
    t_start, compiles_before = time.perf_counter(), engine.compile_stats()
    options = options or Options()
    if not callable(optimizer):
        raise ValueError(f"optimizer must be an optax factory such as optax.sgd, got {optimizer!r}")
    if not callable(loss):
        raise ValueError(f"loss must be a function loss(outputs, targets), got {loss!r}")
    num_steps = _checks.check_int("num_steps", num_steps, 1)
    if options.callback is not None and not callable(options.callback):
        raise ValueError(
            f"options.callback must be a function callback(info), got {options.callback!r}"
        )
    seeds, data_seeds = _int32("seeds", seeds), _int32("data_seeds", data_seeds)
    tracked, ema_decay = _split_trackers(trackers)
    _check_trackers(tracked, num_steps)
    feed, batch_size, example = _feed(data, batch_size, data_seeds)
    direct = optimizer_kwargs is None
    members = _members(hparams, seeds, data_seeds, batch_sizes, batch_size, ema_decay, direct)
    model = supervised.as_model(model, example[0][:1])
    num_classes = _check_model_and_loss(model, loss, *engine.abstract(example))
    if model.stateful and batch_sizes is not None and np.any(members.batch_size < batch_size):
        raise ValueError(
            "batch_sizes smaller than batch_size mask examples out of a batch, but this model "
            "has batch statistics, which would still see the masked examples; train each batch "
            "size in its own sweep"
        )
    chunk, eval_hook, plateau = _chunk_and_evaluation(evaluation, options, num_steps, plateau, loss)
    if eval_hook is not None:
        shapes = [np.shape(a)[1:] for a in eval_hook[1]]
        if shapes != [np.shape(a)[1:] for a in example]:
            raise ValueError(
                f"evaluation.data must match data's per-example shapes "
                f"{[np.shape(a)[1:] for a in example]}, got {[np.shape(a) for a in eval_hook[1]]}"
            )
        _check_metrics(model, eval_hook[0], *engine.abstract(eval_hook[1]))
    if options.check_data:
        check = _data_check(num_classes)
        feed.set_check(check)  # arrays on the device: checked here, once
        if eval_hook is not None:
            where = lambda i: f"example {i[0]} of evaluation.data"  # noqa: E731
            feeds.raise_if_bad(check, eval_hook[1], 1, where)
    task = supervised.Supervised(
        model, loss, optimizer, optimizer_kwargs or _identity_kwargs,
        masked=not model.stateful, scaled=plateau is not None,
    )  # fmt: skip
    _check_optimizer(task, members.hparams, num_steps)
    devices = _devices(options, members)
    factor = None if divergence_factor is None else float(divergence_factor)
    if factor is not None:
        _checks.check_float("divergence_factor", factor, 0.0, open_min=True)
    program = _program(task, tuple(tracked.items()), factor, tuple(devices))
    group = options.group_size
    if group is None and options.memory_budget is None:
        cpu = all(d.platform == "cpu" for d in devices)
        group = CPU_MEMBERS_PER_DEVICE * len(devices) if cpu else None
    if pbt is not None:
        group = _pbt_group(pbt, options, members.seed.shape[0])
    fingerprint = _fingerprint(
        task, members, num_steps, batch_size, chunk, group, factor, tuple(tracked.items()),
        None if plateau is None else plateau[1],
    )  # fmt: skip
    if pbt is not None:
        fingerprint["pbt"] = repr(pbt)
    if options.checkpoint_dir is not None:
        identity = _identity(task, feed, example, eval_hook, tracked, plateau, pbt, options)
        fingerprint.update(identity)
    run_hooks = _hooks(task, eval_hook, plateau, options, fingerprint, pbt)
    if options.check_data:  # first: it stops the run before a checkpoint keeps the damage
        run_hooks.insert(0, _SameStepDivergence(task))
    fitted = loop.fit(
        program, members, feed, num_steps=num_steps, chunk_steps=chunk, hooks=run_hooks,
        group_size=group, memory_budget=options.memory_budget, vectorize=options.vectorize,
    )  # fmt: skip
    return _result(fitted, members, fingerprint, t_start, compiles_before)


def _hooks(task, eval_hook, plateau, options, fingerprint, pbt=None) -> list:
    run_hooks = []
    if options.checkpoint_dir is not None:
        run_hooks.append(hooks.Checkpoint(options.checkpoint_dir, fingerprint))
    evaluate = None
    if eval_hook is not None:
        metrics, eval_data, eval_params = eval_hook
        evaluate = hooks.Evaluate(_evaluation_fn(task, metrics, eval_params), eval_data)
        run_hooks.append(evaluate)
    if plateau is not None:
        controller, metric = plateau
        run_hooks.append(hooks.PlateauHook(controller, evaluate, metric, _scheduled_lr))
    if pbt is not None:
        run_hooks.append(pbt)
    run_hooks.append(hooks.ProgressBar(options.progress))
    if options.callback is not None:
        callback = options.callback

        def report(info):
            loss = info["metrics"]["loss"]
            callback({"step": info["step"], "loss": loss, "alive": np.isfinite(loss)})

        run_hooks.append(hooks.Callback(report))
    return run_hooks
