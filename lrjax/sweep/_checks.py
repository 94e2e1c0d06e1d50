"""Checks of a sweep's inputs before anything compiles."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks, feeds, supervised
from lrjax.supervised import Model
from lrjax.sweep._members import _member_data_seed
from lrjax.sweep._options import Evaluation, Options
from lrjax.trackers import SWA, Snapshots

# -----------------------------------------------------------------------------------------------
# Checks before anything compiles


def _check_model_and_loss(model: Model, loss: Callable, x: Any, y: Any) -> int | None:
    """Checks model and loss on abstract values; returns the number of classes ``C`` when the
    targets are class indices (integer targets ``[B]`` and outputs ``[B, C]``, ``C >= 2``)."""
    key = jax.random.key(0)
    try:
        params = jax.eval_shape(model.init, key)
        state = jax.eval_shape(model.init_state, key) if model.stateful else {}
    except Exception as e:
        raise ValueError(f"model.init(key) failed: {type(e).__name__}: {e}") from e
    try:
        out = jax.eval_shape(model.train_outputs, params, state, x, key)[0]
    except Exception as e:
        raise ValueError(
            f"model.apply failed on inputs of shape {x.shape} {x.dtype}: {type(e).__name__}: {e}"
        ) from e
    try:
        per_example = jax.eval_shape(loss, out, y)
    except Exception as e:
        raise ValueError(
            f"loss does not fit the model: model outputs {out.shape} {out.dtype}, targets "
            f"{y.shape} {y.dtype}; loss(outputs, targets) raised {type(e).__name__}: {e}"
        ) from e
    if getattr(per_example, "shape", None) != (y.shape[0],):
        raise ValueError(
            "loss must return one value per example, shape "
            f"({y.shape[0]},), for model outputs {out.shape} and targets {y.shape}; got "
            f"{getattr(per_example, 'shape', per_example)}"
        )
    classes = (
        np.issubdtype(y.dtype, np.integer)
        and jnp.issubdtype(out.dtype, jnp.floating)
        and out.shape[:-1] == y.shape
        and out.ndim == y.ndim + 1
        and out.shape[-1] >= 2
    )
    return int(out.shape[-1]) if classes else None


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


def _data_check(num_classes: int | None) -> feeds.Check:
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


def _check_metrics(model: Model, metrics: tuple, x: Any, y: Any) -> None:
    """Each evaluation metric on the model's (abstract) outputs for the evaluation data."""
    key = jax.random.key(0)
    params = jax.eval_shape(model.init, key)
    state = jax.eval_shape(model.init_state, key) if model.stateful else {}
    out = jax.eval_shape(model.eval_outputs, params, state, x)
    for name, fn in metrics:
        try:
            jax.eval_shape(fn, out, y)
        except Exception as e:
            raise ValueError(
                f"evaluation.metrics[{name!r}] does not fit the model: model outputs {out.shape} "
                f"{out.dtype}, targets {y.shape} {y.dtype}; it raised {type(e).__name__}: {e}"
            ) from e


def _check_trackers(tracked: Mapping[str, Any], num_steps: int) -> None:
    """Snapshots and SWA that would start after the last update would come back empty."""
    for name, tracker in tracked.items():
        if isinstance(tracker, Snapshots) and max(tracker.steps) > num_steps:
            raise ValueError(
                f"trackers[{name!r}] snapshot steps must be <= num_steps={num_steps} (a later "
                f"one is never taken), got {list(tracker.steps)}"
            )
        if isinstance(tracker, SWA) and tracker.start > num_steps:
            raise ValueError(
                f"trackers[{name!r}].start must be <= num_steps={num_steps} (the average would "
                f"hold nothing), got {tracker.start}"
            )


def _check_optimizer(
    task: supervised.Supervised, hparams: Mapping[str, np.ndarray], num_steps: int
) -> None:
    """Builds every member's optimizer eagerly, with concrete values, before compiling: catches
    bad family indices, and arguments outside their domain
    (:data:`lrjax._checks.OPTIMIZER_DOMAINS`); a schedule's values are checked at up to 257
    steps spread from the first to the last (both included), for all members at once under
    ``jax.vmap``. Runs without jit (``lax.switch`` picks its branch in Python), so checking
    fresh closures compiles nothing."""
    k = len(next(iter(hparams.values()))) if hparams else 1
    probes = np.unique(np.linspace(0, num_steps - 1, min(num_steps, 257)).round().astype(np.int32))
    scheduled = set()
    with jax.disable_jit():
        for i in range(k):
            member = {name: jnp.asarray(a[i]) for name, a in hparams.items()}
            kwargs = task.optimizer_kwargs(member)
            if not isinstance(kwargs, Mapping):
                raise ValueError(
                    f"optimizer_kwargs must return a mapping of keyword arguments, got {kwargs!r}"
                )
            kwargs = task.kwargs(member)
            if task.scaled and "learning_rate" not in kwargs:
                raise ValueError(
                    "plateau scales the learning rate, but the optimizer gets no learning_rate "
                    f"argument (optimizer_kwargs gave {sorted(kwargs)})"
                )
            try:
                optax.inject_hyperparams(task.optimizer, hyperparam_dtype=jnp.float32)(**kwargs)
            except TypeError as e:
                raise ValueError(f"optimizer does not accept optimizer_kwargs: {e}") from e
            # A factory that knows its own arguments' domains (lrjax.param_groups) checks them.
            check_arguments = getattr(task.optimizer, "check_arguments", None)
            if check_arguments is not None:
                check_arguments(f"member {i}'s ", kwargs)
            for name, value in kwargs.items():
                if isinstance(value, optax.schedules.StatefulSchedule):
                    continue  # its values depend on a state only the update sees
                if name in _checks.OPTIMIZER_DOMAINS and callable(value):
                    scheduled.add(name)
                else:
                    _checks.check_optimizer_argument(f"member {i}'s {name}", name, value)
        if scheduled:
            _check_schedules(task, hparams, sorted(scheduled), probes, num_steps)


def _check_schedules(task, hparams, names, probes, num_steps) -> None:
    """Every member's schedules at the probe steps, in one vmapped (eager) evaluation."""

    def values(member):
        kwargs = task.kwargs(member)
        return {name: jax.vmap(kwargs[name])(jnp.asarray(probes)) for name in names}

    try:
        probed = jax.vmap(values)({name: jnp.asarray(a) for name, a in hparams.items()})
    except Exception as e:  # the user's schedule; say whose, then re-raise
        raise ValueError(
            f"the {', '.join(names)} schedules failed on steps 0..{num_steps - 1} under "
            f"jax.vmap: {type(e).__name__}: {e}"
        ) from e
    for name in names:
        got = np.asarray(probed[name])
        if got.shape[1:] != probes.shape:
            raise ValueError(
                f"the {name} schedule must return a scalar per step, got shape {got.shape[2:]}"
            )
        bad = np.argwhere(~_checks.in_optimizer_domain(name, got))
        if bad.size:
            i, j = bad[0]
            _checks.check_optimizer_argument(
                f"member {i}'s {name} schedule at step {probes[j]}", name, got[i, j]
            )


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
        raise ValueError(
            f"each batch must be an (inputs, targets) pair, got {jax.tree.map(np.shape, batch)}"
        )
    return tuple(np.asarray(a) for a in batch)


def _chunk_and_evaluation(evaluation, options, num_steps, plateau, loss):
    chunk = options.chunk_steps
    eval_hook = None
    if evaluation is not None:
        if not isinstance(evaluation, Evaluation):
            raise ValueError(f"evaluation must be an lrjax.sweep.Evaluation, got {evaluation!r}")
        if evaluation.every is not None:
            every = _checks.check_int("evaluation.every", evaluation.every, 1)
            if chunk is not None and chunk != every:
                raise ValueError(
                    f"options.chunk_steps={chunk} and evaluation.every={every} disagree: "
                    "evaluation runs between chunks; set one of them"
                )
            chunk = every
        metrics = tuple((evaluation.metrics or {"loss": loss}).items())
        eval_data = evaluation.data
        if not isinstance(eval_data, tuple | list) or len(eval_data) != 2:
            raise ValueError("evaluation.data must be an (inputs, targets) pair of arrays")
        eval_data = tuple(feeds.canonical(a) for a in eval_data)
        if len(eval_data[0]) != len(eval_data[1]):
            raise ValueError(
                f"evaluation.data inputs and targets must share a leading size, got "
                f"{eval_data[0].shape} and {eval_data[1].shape}"
            )
        if len(eval_data[0]) < 1:
            raise ValueError("evaluation.data must hold at least one example, got none")
        for name, fn in metrics:
            if not callable(fn):
                raise ValueError(
                    f"evaluation.metrics[{name!r}] must be a function fn(outputs, targets), got "
                    f"{fn!r}"
                )
        if evaluation.eval_params is not None and not callable(evaluation.eval_params):
            raise ValueError(
                "evaluation.eval_params must be a function fn(opt_state, params) -> params, got "
                f"{evaluation.eval_params!r}"
            )
        eval_hook = (metrics, eval_data, evaluation.eval_params)
    chunk = (
        num_steps if chunk is None else min(_checks.check_int("chunk_steps", chunk, 1), num_steps)
    )
    if plateau is not None:
        from lrjax.plateau import ReduceOnPlateau

        pair = isinstance(plateau, tuple) and not isinstance(plateau, ReduceOnPlateau)
        controller, metric = plateau if pair else (plateau, "loss")
        if not isinstance(controller, ReduceOnPlateau):
            raise ValueError(f"plateau must come from lrjax.reduce_on_plateau, got {controller!r}")
        if eval_hook is None:
            raise ValueError("plateau needs an evaluation: it watches an evaluation metric")
        if metric not in dict(eval_hook[0]):
            raise ValueError(
                f"the plateau metric must be one of the metrics {[n for n, _ in eval_hook[0]]}, "
                f"got {metric!r}"
            )
        plateau = (controller, metric)
    return chunk, eval_hook, plateau


def _devices(options: Options, members: supervised.Member) -> list:
    devices = list(jax.devices() if options.devices is None else options.devices)
    if not devices:
        raise ValueError("options.devices must hold at least one device, got none")
    for i, device in enumerate(devices):
        if not isinstance(device, jax.Device):
            raise ValueError(
                f"options.devices must hold jax devices (from jax.devices()), got {device!r} at "
                f"index {i}"
            )
    k = members.seed.shape[0]
    if jax.process_count() == 1 and len(devices) > k:
        devices = devices[:k]  # padding members to idle devices would only waste their cores
    return devices


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
    return int(k)
