"""The composition: :func:`train`, the engine's layers around the supervised step."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from lrjax import _checks, engine, feeds, loop, supervised
from lrjax.sweep import _parts
from lrjax.sweep._data import _feed, data_check
from lrjax.sweep._data_errors import _SameStepDivergence
from lrjax.sweep._members import _int32, _members, _split_trackers
from lrjax.sweep._options import Evaluation, Options
from lrjax.sweep._result import SweepResult, _result

Array = jax.Array


def _identity_kwargs(hparams: Mapping[str, Array]) -> Mapping[str, Array]:
    return dict(hparams)


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
        ``lrjax.SWA``, ``lrjax.EMA`` (an EMA may take ``[K]`` decays, its per-member setting).
      plateau: an :func:`lrjax.reduce_on_plateau` controller watching the evaluated ``"loss"``,
        or ``(controller, metric_name)``; it turns the controller's scale of the learning rate
        (:func:`lrjax.control`) and ``result.learning_rate`` records the scaled rate.
      divergence_factor: a member whose loss exceeds this multiple of ``|initial loss|`` is
        frozen and flagged, like one with a non-finite loss or state; None turns the ratio
        test off.
      pbt: an :class:`lrjax.PBT` hook: population-based training every ``pbt.ready`` steps,
        ranked on an evaluated metric (it runs after the evaluation; all members train in one
        group). It explores optimizer arguments (``learning_rate``, ``momentum``, ...) or
        hyperparameters of ``hparams`` (the peak a schedule is built from) through the
        controller; ``opt_hparams`` records the values each update used, the hook the lineage.
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
    options = _instance("options", Options() if options is None else options, Options)
    _instance("evaluation", evaluation, Evaluation)
    if not callable(optimizer):
        raise ValueError(f"optimizer must be an optax factory such as optax.sgd, got {optimizer!r}")
    if not callable(loss):
        raise ValueError(f"loss must be a function loss(outputs, targets), got {loss!r}")
    num_steps = _checks.check_int("num_steps", num_steps, 1)
    tracked, tracker_settings = _split_trackers(trackers, num_steps)
    feed, batch_size, example = _feed(data, batch_size, _int32("data_seeds", data_seeds))
    direct = optimizer_kwargs is None
    members = _members(
        hparams, seeds, data_seeds, batch_sizes, batch_size, tracker_settings, direct
    )
    model = supervised.as_model(model, example[0][:1])
    masked = not model.stateful
    task = supervised.Supervised(
        model, loss, optimizer, optimizer_kwargs or _identity_kwargs, masked
    )
    num_classes = task.check(*engine.abstract(example))
    if model.stateful and batch_sizes is not None and np.any(members.batch_size < batch_size):
        raise ValueError(
            "batch_sizes smaller than batch_size mask examples out of a batch, but this model "
            "has batch statistics, which would still see the masked examples; train each batch "
            "size in its own sweep"
        )
    chunk, evaluated = _evaluation(evaluation, options, num_steps, loss, task, example)
    plateau = _plateau(plateau, evaluated)
    if options.check_data:
        feed.set_check(data_check(num_classes))  # arrays on the device: checked here, once
        if evaluated is not None:
            where = lambda i: f"example {i[0]} of evaluation.data"  # noqa: E731
            feeds.raise_if_bad(data_check(num_classes), evaluated[1], 1, where)
    task.check_optimizer(members.hparams, num_steps)
    k = int(members.seed.shape[0])
    group = (
        options.group_for(options.devices_for(k)) if pbt is None else _pbt_group(pbt, options, k)
    )
    devices = options.devices_for(k)
    factor = None if divergence_factor is None else float(divergence_factor)
    if factor is not None:
        _checks.check_float("divergence_factor", factor, 0.0, open_min=True)
    rules = _parts.rules(task, members, plateau, pbt)
    program = _parts.program(
        task, tuple(rules.items()), tuple(tracked.items()), factor, tuple(devices)
    )
    settings = _parts.settings(
        task, members, num_steps, batch_size, chunk, group, factor, tuple(tracked.items()),
        plateau, pbt,
    )  # fmt: skip
    run = settings
    if options.checkpoint_dir is not None:
        run = {**settings, **_parts.identity(task, feed, example, evaluated, tracked, plateau, pbt,
                                            options.checkpoint_id)}  # fmt: skip
    run_hooks, run = _parts.hook_list(task, evaluated, plateau, pbt, options, run)
    if options.check_data:  # first: it stops the run before a checkpoint keeps the damage
        run_hooks.insert(0, _SameStepDivergence(task))
    fitted = loop.fit(
        program, members, feed, num_steps=num_steps, chunk_steps=chunk, hooks=run_hooks,
        group_size=group, memory_budget=options.memory_budget, vectorize=options.vectorize,
    )  # fmt: skip
    return _result(fitted, members, run, t_start, compiles_before)


def _instance(name: str, value: Any, kind: type) -> Any:
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{name} must be an lrjax.sweep.{kind.__name__}, got {value!r}")
    return value


def _evaluation(evaluation, options, num_steps, loss, task, example):
    """The steps per chunk, and ``(metrics, data, eval_params)`` of the evaluation (or None),
    checked against the model."""
    chunk = options.chunk_steps
    if evaluation is None:
        return num_steps if chunk is None else min(chunk, num_steps), None
    every = evaluation.chunk_steps(num_steps)
    if chunk is not None and evaluation.every is not None and chunk != every:
        raise ValueError(
            f"options.chunk_steps={chunk} and evaluation.every={every} disagree: evaluation "
            "runs between chunks; set one of them"
        )
    chunk = every if evaluation.every is not None else min(chunk or num_steps, num_steps)
    metrics = tuple((evaluation.metrics or {"loss": loss}).items())
    data = evaluation.data
    if [np.shape(a)[1:] for a in data] != [np.shape(a)[1:] for a in example]:
        raise ValueError(
            f"evaluation.data must match data's per-example shapes "
            f"{[np.shape(a)[1:] for a in example]}, got {[np.shape(a) for a in data]}"
        )
    task.check_metrics(metrics, *engine.abstract(data))
    return chunk, (metrics, data, evaluation.eval_params)


def _plateau(plateau, evaluated):
    """``(controller, metric)`` from ``plateau`` (a controller watches ``"loss"``), or None."""
    if plateau is None:
        return None
    from lrjax.plateau import ReduceOnPlateau

    pair = isinstance(plateau, tuple) and not isinstance(plateau, ReduceOnPlateau)
    controller, metric = plateau if pair else (plateau, "loss")
    if not isinstance(controller, ReduceOnPlateau):
        raise ValueError(f"plateau must come from lrjax.reduce_on_plateau, got {controller!r}")
    if evaluated is None:
        raise ValueError("plateau needs an evaluation: it watches an evaluation metric")
    if metric not in dict(evaluated[0]):
        raise ValueError(
            f"the plateau metric must be one of the metrics {[n for n, _ in evaluated[0]]}, "
            f"got {metric!r}"
        )
    return controller, metric


def _pbt_group(pbt: Any, options: Options, k: int) -> int:
    """The group size of a PBT sweep: every member in one group, where they can exchange."""
    from lrjax.pbt import PBT

    if not isinstance(pbt, PBT):
        raise ValueError(f"pbt must be an lrjax.PBT hook, got {pbt!r}")
    if options.memory_budget is not None or (
        options.group_size is not None and options.group_size < k
    ):
        raise ValueError(
            f"pbt exchanges members within one group, so all {k} members train at once; "
            "leave options.group_size and options.memory_budget unset"
        )
    return k
