"""A whole hyperparameter sweep of a supervised model in one call: the convenience on the engine.

:func:`train` is a composition of the engine's layers: the supervised step of one member
(:class:`lrjax.supervised.Supervised`: model with or without batch statistics and dropout, a
per-example loss, an optax optimizer whose hyperparameters are injected per member), wrapped in
trackers (:func:`lrjax.track`) and divergence freezing (:func:`lrjax.freeze_on_divergence`),
vectorized over K members (:func:`lrjax.vectorize`) and driven by the host loop
(:func:`lrjax.fit`) with its hooks (evaluation, reduce-on-plateau, checkpoints, progress).
Write your own step and use those pieces directly when this shape does not fit.

Examples:
  >>> import jax.numpy as jnp, numpy as np, optax
  >>> from lrjax import sweep
  >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
  >>> y = (x @ np.ones((4, 1), np.float32))
  >>> model = sweep.Model(
  ...     init=lambda key: {"w": jnp.zeros((4, 1))}, apply=lambda p, x: x @ p["w"])
  >>> mse = lambda out, y: jnp.mean((out - y) ** 2, axis=-1)
  >>> res = sweep.train(model, mse, (x, y), optimizer=optax.sgd,
  ...                   hparams={"learning_rate": jnp.array([0.01, 0.1])},
  ...                   num_steps=20, batch_size=16, options=sweep.Options(progress=False))
  >>> res.loss.shape, bool(res.loss[1, -1] < res.loss[0, -1])
  ((2, 20), True)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks, divergence, engine, feeds, hooks, loop, supervised
from lrjax._fingerprint import cache as _cache_by_fingerprint
from lrjax._fingerprint import data_digest, stable_digest
from lrjax.feeds import batch_indices
from lrjax.supervised import Model, accuracy
from lrjax.trackers import EMA, SWA, Snapshots, params_of, track

__all__ = [
    "Evaluation",
    "Model",
    "Options",
    "SweepResult",
    "accuracy",
    "batch_indices",
    "schedule_family_switch",
    "train",
]

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


# -----------------------------------------------------------------------------------------------
# Schedule families


def schedule_family_switch(index: Any, schedules: Sequence[optax.Schedule]) -> optax.Schedule:
    """Selects one of several schedules by an integer that may differ between members.

    ``schedule(step) = schedules[index](step)``, evaluated with ``jax.lax.switch``, so a
    comparison of cosine vs step vs one-cycle vs WSD runs as members of one program. Under
    ``vmap`` with per-member indices ``lax.switch`` evaluates every branch and selects, which is
    cheap for scalar schedules.

    Args:
      index: integer family index in ``[0, len(schedules))``; traced (vmappable). A concrete
        index out of range raises ``ValueError``; :func:`train` checks every member's index
        before compiling.
      schedules: the candidate ``optax.Schedule`` closures (typically built from the member's
        traced hyperparameters).

    Returns:
      An ``optax.Schedule``.

    Examples:
      >>> import optax
      >>> s = schedule_family_switch(1, [optax.constant_schedule(1.0),
      ...                                optax.linear_schedule(1.0, 0.0, 10)])
      >>> float(s(5))
      0.5
    """
    schedules = tuple(schedules)
    if not schedules:
        raise ValueError("schedules must hold at least one schedule, got none")
    if not _checks.is_traced(index):
        value = np.asarray(index)
        if value.shape != () or not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"index must be an integer scalar, got {value!r}")
        if not 0 <= int(value) < len(schedules):
            raise ValueError(
                f"schedule family index must be in [0, {len(schedules)}), got {int(value)}"
            )
    index = jnp.asarray(index).astype(jnp.int32)

    # Branches must agree on dtype: factories may return weakly typed or float64-free Python math.
    branches = [lambda step, f=f: jnp.asarray(f(step), jnp.float32) for f in schedules]

    def schedule(step):
        return jax.lax.switch(index, branches, jnp.asarray(step))

    return schedule


# -----------------------------------------------------------------------------------------------
# Results


def _get(tree: Any, name: str) -> Any:
    return tree[name] if isinstance(tree, Mapping) else getattr(tree, name)


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep recorded, as NumPy arrays with a leading member axis ``K``.

    Attributes:
      hparams: the per-member hyperparameters, each ``[K, ...]``.
      loss: training loss ``[K, T]`` of the batch at each step, before that step's update;
        ``nan`` after a member diverged.
      grad_norm: ``[K, T]`` global gradient norm at each step.
      opt_hparams: every injected float optimizer hyperparameter, ``{name: [K, T]}``, read
        from the optimizer state after each update, so it is the value that update used
        (``nan`` after divergence). ``learning_rate`` is a shortcut to its learning rate.
      eval_steps: ``[E]`` optimizer counts at which ``eval_metrics`` were taken.
      eval_metrics: ``{name: [K, E]}`` mean of each metric over the evaluation set.
      diverged: ``[K]`` bool; diverged_step: ``[K]`` the step whose loss or new state was
        non-finite or whose loss was above ``divergence_factor`` times the initial loss,
        ``-1`` if none.
      params: the final parameters, a pytree of ``[K, ...]`` arrays (frozen at divergence).
      opt_state: the final optimizer state, ``[K, ...]`` (e.g. for
        :func:`lrjax.lr_free.eval_params`).
      metadata: JSON-serializable run settings and timings.
      model_state: the final model state (batch statistics), ``[K, ...]``, or None.
      trackers: ``{name: state}`` of every tracker; ``snapshots``, ``swa_params``,
        ``swa_count`` and ``ema_params`` read the ones named ``"snapshots"``, ``"swa"`` and
        ``"ema"``. Trackers follow the parameters, or for a model with state (batch
        statistics) ``model.variables(params, model_state) = {"params": ..., **model_state}``:
        a snapshot keeps the statistics of its moment, an EMA averages them (as timm's
        ``ModelEmaV2`` does), and an SWA average needs them recomputed
        (:func:`lrjax.recompute_batch_stats`); evaluate any of them with ``model.predict``.
    """

    hparams: dict[str, np.ndarray]
    loss: np.ndarray
    grad_norm: np.ndarray
    opt_hparams: dict[str, np.ndarray]
    eval_steps: np.ndarray
    eval_metrics: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_step: np.ndarray
    params: PyTree
    metadata: dict[str, Any]
    model_state: PyTree = None
    trackers: dict[str, PyTree] = dataclasses.field(default_factory=dict)
    opt_state: PyTree = None

    @property
    def learning_rate(self) -> np.ndarray:
        """``[K, T]`` learning rate each update used (the optimizer must take ``learning_rate``)."""
        if "learning_rate" not in self.opt_hparams:
            raise ValueError(
                "the optimizer has no float learning_rate hyperparameter to read back; recorded "
                f"optimizer hyperparameters: {sorted(self.opt_hparams)}"
            )
        return self.opt_hparams["learning_rate"]

    @property
    def num_members(self) -> int:
        return int(self.loss.shape[0])

    @property
    def snapshots(self) -> PyTree:
        """``[K, M, ...]`` parameters after each snapshot step (the ``"snapshots"`` tracker)."""
        return self.trackers.get("snapshots")

    @property
    def swa_params(self) -> PyTree:
        """``[K, ...]`` the SWA average (the ``"swa"`` tracker)."""
        return None if "swa" not in self.trackers else _get(self.trackers["swa"], "mean")

    @property
    def swa_count(self) -> np.ndarray | None:
        """``[K]`` how many parameter sets the SWA average holds."""
        return None if "swa" not in self.trackers else _get(self.trackers["swa"], "count")

    @property
    def ema_params(self) -> PyTree:
        """``[K, ...]`` the exponential moving average (the ``"ema"`` tracker)."""
        return self.trackers.get("ema")

    def member_params(self, k: int) -> PyTree:
        """The final parameters of member ``k``."""
        return jax.tree.map(lambda a: a[k], self.params)

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``path``.npz (arrays) and ``path``.json (hyperparameters and metadata)."""
        path = os.fspath(path)
        arrays = {
            "loss": self.loss,
            "grad_norm": self.grad_norm,
            "eval_steps": self.eval_steps,
            "diverged": self.diverged,
            "diverged_step": self.diverged_step,
        }
        arrays.update({f"hparams/{k}": v for k, v in self.hparams.items()})
        arrays.update({f"opt_hparams/{k}": v for k, v in self.opt_hparams.items()})
        arrays.update({f"eval_metrics/{k}": v for k, v in self.eval_metrics.items()})
        meta = {
            "hparams": {k: np.asarray(v).tolist() for k, v in self.hparams.items()},
            "metadata": self.metadata,
        }
        trees = {"params": self.params, "model_state": self.model_state, "trackers": self.trackers}
        for name, tree in trees.items():
            if tree is None:
                continue
            tree = _plain(tree)
            leaves, treedef = jax.tree.flatten(tree)
            arrays.update({f"{name}/{i}": np.asarray(v) for i, v in enumerate(leaves)})
            structure = jax.tree.unflatten(treedef, list(range(len(leaves))))
            meta[f"{name}_structure"] = _jsonable_structure(structure)
        np.savez(path + ".npz", **arrays)
        with open(path + ".json", "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepResult:
        """Reads a result written by :meth:`save` (trees come back as nested dicts/lists)."""
        path = os.fspath(path)
        with open(path + ".json") as f:
            meta = json.load(f)
        with np.load(path + ".npz") as z:
            arrays = {k: z[k] for k in z.files}

        def group(prefix):
            n = len(prefix) + 1
            return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}

        trees = {
            name: _rebuild_structure(meta[f"{name}_structure"], group(name))
            for name in ("params", "model_state", "trackers")
            if f"{name}_structure" in meta
        }
        return cls(
            hparams=group("hparams"),
            loss=arrays["loss"],
            grad_norm=arrays["grad_norm"],
            opt_hparams=group("opt_hparams"),
            eval_steps=arrays["eval_steps"],
            eval_metrics=group("eval_metrics"),
            diverged=arrays["diverged"],
            diverged_step=arrays["diverged_step"],
            metadata=meta["metadata"],
            params=trees["params"],
            model_state=trees.get("model_state"),
            trackers=trees.get("trackers", {}),
        )


def _plain(tree: PyTree) -> PyTree:
    """NamedTuples as dicts, so a saved structure keeps its field names."""
    if hasattr(tree, "_asdict"):
        return {k: _plain(v) for k, v in tree._asdict().items()}
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_plain(v) for v in tree]
    return tree


def _jsonable_structure(tree):
    if isinstance(tree, Mapping):
        return {"__dict__": {str(k): _jsonable_structure(v) for k, v in tree.items()}}
    if isinstance(tree, list | tuple):
        return {"__list__": [_jsonable_structure(v) for v in tree]}
    return int(tree)


def _rebuild_structure(spec, leaves):
    if isinstance(spec, int):
        return leaves[str(spec)]
    if "__dict__" in spec:
        return {k: _rebuild_structure(v, leaves) for k, v in spec["__dict__"].items()}
    if "__list__" in spec:
        return [_rebuild_structure(v, leaves) for v in spec["__list__"]]
    raise ValueError(f"unreadable params structure in saved result: {spec!r}")


# -----------------------------------------------------------------------------------------------
# Members


_INT32_RANGE = (-(2**31), 2**31 - 1)


def _int32(name: str, value: Any) -> np.ndarray:
    """``value`` as int32, after checking it holds integers that int32 holds (a wider seed
    would wrap around, silently colliding with another: 2**32 is 0)."""
    lo, hi = _INT32_RANGE
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers in [{lo}, {hi}], got {value!r}")
    outside = (arr < lo) | (arr > hi)
    if outside.any():
        first = np.argwhere(outside)[0] if arr.ndim else ()
        where = f" at index {tuple(int(i) for i in first)}" if arr.ndim else ""
        raise ValueError(
            f"{name} must hold integers in [{lo}, {hi}] (int32), got {arr[tuple(first)]}{where}"
        )
    return arr.astype(np.int32)


def _hparam(name: str, value: Any, direct: bool) -> np.ndarray:
    """One per-member hyperparameter, checked and cast (see :func:`train`'s ``hparams``)."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        raise ValueError(
            f"{name} must hold numbers, got booleans; a per-member flag cannot change the "
            "program's structure (run one sweep per setting), and one read as a number can be "
            "given as 0/1 integers to an optimizer_kwargs that reads it"
        )
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(
            f"{name} must have a leading member axis of size K, got a scalar; use "
            "optimizer_kwargs for values shared by all members"
        )
    if direct and arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D [K] array, one scalar optimizer argument per member, got "
            f"shape {arr.shape}; write optimizer_kwargs to build arguments from [K, ...] values"
        )
    if np.issubdtype(arr.dtype, np.integer) and not direct:
        return _int32(name, arr)
    with np.errstate(over="ignore"):  # found just below, with the member it belongs to
        cast = arr.astype(np.float32)
    nan = np.isnan(cast)
    overflow = np.isfinite(arr) & ~np.isfinite(cast)
    if nan.any() or overflow.any():
        member = int(np.argwhere(nan | overflow)[0][0])
        raise ValueError(
            f"{name} must hold float32 numbers, got {arr[member].tolist()} for member {member}"
        )
    return cast


def _members(
    hparams, seeds, data_seeds, batch_sizes, batch_size, ema_decay, direct
) -> supervised.Member:
    """Checks the per-member settings and stacks them into one :class:`Member` of ``[K]``.

    ``ema_decay`` is None or ``(label, decays)``; ``direct``: the hyperparameters are the
    optimizer's arguments themselves (no ``optimizer_kwargs``).
    """
    if not isinstance(hparams, Mapping):
        raise ValueError(f"hparams must be a mapping of name -> [K] array, got {type(hparams)}")
    named = {f"hparams[{k!r}]": _hparam(f"hparams[{k!r}]", v, direct) for k, v in hparams.items()}
    named["seeds"] = _int32("seeds", seeds)
    named["data_seeds"] = _int32("data_seeds", data_seeds)
    if batch_sizes is not None:
        named["batch_sizes"] = _int32("batch_sizes", batch_sizes)
    ema_label = "ema_decay"
    if ema_decay is not None:
        ema_label, decays = ema_decay
        named[ema_label] = np.asarray(decays, np.float32)
    for name in ("seeds", "data_seeds", "batch_sizes", ema_label):
        if name in named and named[name].ndim > 1:
            raise ValueError(
                f"{name} must be a scalar or a [K] array, got shape {named[name].shape}"
            )
    leading = {name: a.shape[0] for name, a in named.items() if a.ndim}
    if len(set(leading.values())) > 1:
        listing = ", ".join(f"{n}: {s}" for n, s in leading.items())
        raise ValueError(f"per-member arrays must share one leading size K, got {listing}")
    k = next(iter(leading.values()), 1)
    if k < 1:
        raise ValueError(f"the number of members K must be >= 1, got {k} (from {list(leading)})")

    def full(name, default, dtype):
        return np.broadcast_to(named.get(name, np.asarray(default, dtype)), (k,)).astype(dtype)

    sizes = full("batch_sizes", batch_size, np.int32)
    if sizes.min() < 1 or sizes.max() > batch_size:
        raise ValueError(
            f"batch_sizes must be in [1, batch_size={batch_size}], got values in "
            f"[{sizes.min()}, {sizes.max()}]"
        )
    decay = full(ema_label, 0.0, np.float32)
    if np.any(~(decay >= 0) | ~(decay <= 1)):
        raise ValueError(f"{ema_label} must be in [0, 1], got {ema_decay!r}")
    return supervised.Member(
        hparams={name: named[f"hparams[{name!r}]"] for name in hparams},
        seed=full("seeds", 0, np.int32),
        data_seed=full("data_seeds", 0, np.int32),
        batch_size=sizes,
        ema_decay=decay,
        lr_scale=np.ones((k,), np.float32),
    )


def _member_ema_decay(member: supervised.Member) -> Array:
    return member.ema_decay


def _member_data_seed(members: supervised.Member) -> Array:
    return members.data_seed


def _split_trackers(trackers: Mapping[str, Any] | None):
    """The trackers, with an EMA of per-member decays turned into one reading ``member``, and
    those decays as ``(label, [K] decays)`` (None without one)."""
    out, ema_decay = {}, None
    for name, tracker in (trackers or {}).items():
        if isinstance(tracker, EMA) and isinstance(tracker.decay, tuple):
            if ema_decay is not None:
                raise ValueError(
                    f"at most one EMA tracker may take per-member decays, got {ema_decay[0]} "
                    f"and trackers[{name!r}].decay"
                )
            ema_decay = (f"trackers[{name!r}].decay", np.asarray(tracker.decay, np.float32))
            tracker = EMA(_member_ema_decay)
        out[name] = tracker
    return out, ema_decay


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
    # Always 257 probes (repeats allowed): eager ops of one shape compile once for every num_steps.
    probes = np.linspace(0, num_steps - 1, 257).round().astype(np.int32)
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


class _SameStepDivergence:
    """Stops the run with an error when every member diverged at the same step with a
    non-finite loss or gradient (at step 0, before any update, for a single member too).

    Members with different hyperparameters do not blow up on the same batch by chance; a batch
    the model or the loss cannot handle (a log of zero, an overflow) does that to all of them.
    The error names the step and, where the batch can be read again (arrays, a batch
    function), the examples whose loss is non-finite with the parameters the step started from
    (those a diverged member keeps).
    """

    def __init__(self, task: supervised.Supervised):
        self.task = task

    def on_chunk_end(self, fit_loop: loop.Loop) -> None:
        steps = np.concatenate([
            np.asarray(engine.to_host(g.state.diverged_step))[: g.real] for g in fit_loop.groups
        ])  # fmt: skip
        if (steps < 0).any() or (steps != steps[0]).any():
            return
        t, k = int(steps[0]), fit_loop.num_members
        if k < 2 and t > 0:
            return  # one member's divergence may be its learning rate's doing
        metrics = fit_loop.metrics
        bad = ~np.isfinite(metrics["loss"][:, t]) | ~np.isfinite(metrics["grad_norm"][:, t])
        if not bad.all():
            return
        when = "at the first step, before any update" if t == 0 else f"all {k} members at once"
        raise ValueError(
            f"every member's training loss or gradient was non-finite at step {t} ({when}, so "
            f"not because of their hyperparameters): the batch of step {t} likely holds data the "
            f"model or the loss cannot handle; {self._examples(fit_loop, t)}. Pass "
            "options=sweep.Options(check_data=False) to get the diverged result back instead"
        )

    def _examples(self, fit_loop: loop.Loop, t: int) -> str:
        """Which examples of the batch of step ``t`` give a non-finite loss (member 0)."""
        feed, group = fit_loop.feed, fit_loop.groups[0]
        if isinstance(feed, feeds.ArrayFeed):
            seed = feed.seed
            if feed.per_member:
                seed = int(np.asarray(feed.seed(group.members_host)).reshape(-1)[0])
            rows = feeds.batch_indices_np(seed, t, 1, feed.num_examples, feed.batch_size)[0]
            x, y = (np.asarray(a[rows]) for a in feed.arrays)
            name = lambda i: f"example {rows[i]} of the data"  # noqa: E731
        elif isinstance(feed, feeds.FunctionFeed):
            x, y = feed.fn(t)
            name = lambda i: f"example {i} of that batch"  # noqa: E731
        else:
            return "an iterator's batches cannot be read again to find the examples"
        inner = engine.unwrap(engine.member_slice(group.state, 0))
        outputs = self.task.model.eval_outputs(inner.params, inner.model_state, jnp.asarray(x))
        finite = np.isfinite(np.asarray(self.task.loss(outputs, jnp.asarray(y))))
        if finite.all():
            return (
                "every example's loss is finite in evaluation mode with the parameters the step "
                "started from, so a training-mode layer (batch statistics, dropout) may be the "
                "cause"
            )
        if not finite.any():
            return "every example of that batch gives a non-finite loss"
        listed = [name(int(i)) for i in np.flatnonzero(~finite)[:5]]
        return f"a non-finite loss comes from {', '.join(listed)}"


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


def _result(fitted, members, fingerprint, t_start, compiles_before) -> SweepResult:
    final = fitted.state  # Guarded(Tracked(State))
    tracked = final.state
    metrics = dict(fitted.metrics)
    evaluate = next((h for h in fitted.loop.hooks if isinstance(h, hooks.Evaluate)), None)
    compile_seconds, num_compiles = engine.compile_stats()
    metadata = dict(fingerprint)
    metadata.update(
        devices=fitted.loop.program.num_devices,
        num_groups=len(fitted.loop.groups),
        process_count=jax.process_count(),
        vectorize=fitted.loop.vectorize,
        compile_seconds=compile_seconds - compiles_before[0],
        num_compiles=num_compiles - compiles_before[1],
        program_bytes=_program_bytes(fitted.loop),
        wall_seconds=time.perf_counter() - t_start,
    )
    return SweepResult(
        hparams={k: np.asarray(v) for k, v in members.hparams.items()},
        loss=metrics.pop("loss"),
        grad_norm=metrics.pop("grad_norm"),
        opt_hparams={name.split("/", 1)[1]: v for name, v in metrics.items()},
        eval_steps=evaluate.steps if evaluate else np.zeros((0,), np.int64),
        eval_metrics=dict(evaluate.results) if evaluate else {},
        diverged=~np.asarray(final.alive),
        diverged_step=np.asarray(final.diverged_step),
        params=tracked.state.params,
        metadata=metadata,
        model_state=tracked.state.model_state
        if jax.tree.leaves(tracked.state.model_state)
        else None,
        trackers=dict(tracked.trackers),
        opt_state=tracked.state.opt_state,
    )


def _program_bytes(fit_loop: loop.Loop) -> int | None:
    """Bytes one device holds while a chunk runs (XLA's estimate), for the first group."""
    if not fit_loop.vectorize:
        return None
    group, feed = fit_loop.groups[0], fit_loop.feed
    if isinstance(feed, feeds.IteratorFeed | feeds.FunctionFeed):
        return None  # measuring would draw batches
    xs = feed.chunk(0, fit_loop.chunk_steps, fit_loop.chunk_steps, group.members_host)
    spec = engine.abstract
    return fit_loop.program.compiled_bytes(
        spec(group.state), spec(group.members), spec(xs), spec(fit_loop.data),
        batch_fn=feed.batch_fn, per_member_batches=feed.per_member,
    )  # fmt: skip
