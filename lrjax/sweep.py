"""The vectorized engine: train a whole hyperparameter sweep as one compiled program.

K *members* (learning rates, schedule families, optimizer settings, seeds, batch sizes) share one
pytree of state with a leading member axis. One ``jax.jit`` program advances every member by a
chunk of steps: ``jax.vmap`` over members, ``jax.lax.scan`` over steps. The host only loops
between chunks, to evaluate, log, checkpoint and draw the progress bar. Nothing a member may vary
is a Python value inside the program, so a new sweep of the same shape never recompiles.

Per-member hyperparameters reach the optimizer through
``optax.inject_hyperparams(..., hyperparam_dtype=jnp.float32)``; the learning rate in the results
is read back from that state, so it is the value the update used.

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
  ...                   num_steps=20, batch_size=16, progress=False)
  >>> res.loss.shape, bool(res.loss[1, -1] < res.loss[0, -1])
  ((2, 20), True)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax import averaging

PyTree = Any
Array = jax.Array
MEMBER_AXIS = "members"
CPU_MEMBERS_PER_DEVICE = 4  # default group size per CPU device (see `train`'s group_size)

__all__ = [
    "Model",
    "SweepResult",
    "accuracy",
    "batch_indices",
    "schedule_family_switch",
    "train",
]


# -----------------------------------------------------------------------------------------------
# Models


class Model(NamedTuple):
    """A model as two pure functions.

    Attributes:
      init: ``init(key) -> params``, a pytree of arrays; ``key`` is a typed PRNG key.
      apply: ``apply(params, inputs) -> outputs`` for a batch of inputs.
    """

    init: Callable[[Array], PyTree]
    apply: Callable[[PyTree, Array], Array]

    @classmethod
    def from_linen(cls, module: Any, sample_input: Any) -> Model:
        """Wraps a ``flax.linen.Module``; ``sample_input`` is one batch used to build params.

        Only the ``params`` collection is trained; modules with mutable collections (batch
        statistics) are not supported.
        """
        sample = jnp.asarray(sample_input)

        def init(key):
            return module.init(key, sample)["params"]

        def apply(params, x):
            return module.apply({"params": params}, x)

        return cls(init, apply)

    @classmethod
    def from_nnx(cls, module_or_factory: Any) -> Model:
        """Wraps a ``flax.nnx`` model.

        Args:
          module_or_factory: either ``factory(rngs) -> nnx.Module`` (each member is initialized
            from its own seed), or an ``nnx.Module`` instance (every member starts from its
            parameters; per-member init seeds then have no effect on parameters).
        """
        from flax import nnx

        if isinstance(module_or_factory, nnx.Module):
            graphdef, params, rest = nnx.split(module_or_factory, nnx.Param, ...)
            pure = nnx.to_pure_dict(params)

            def init(key):
                del key
                return jax.tree.map(jnp.asarray, pure)

        else:
            factory = module_or_factory
            abstract = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
            graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
            if jax.tree.leaves(rest):
                raise ValueError(
                    "model: an nnx factory whose module holds state other than nnx.Param "
                    "(batch statistics, RNG streams) is not supported; pass an instance or a Model"
                )

            def init(key):
                _, member_params, _ = nnx.split(factory(nnx.Rngs(key)), nnx.Param, ...)
                return nnx.to_pure_dict(member_params)

        def apply(pure_params, x):
            state = jax.tree.map(lambda v: v, params)
            nnx.replace_by_pure_dict(state, pure_params)
            return nnx.merge(graphdef, state, rest)(x)

        return cls(init, apply)


@functools.lru_cache(maxsize=16)
def _linen_model(module: Any, shape: tuple[int, ...], dtype: str) -> Model:
    return Model.from_linen(module, np.zeros(shape, dtype))


def _as_model(model: Any, sample_input: Array) -> Model:
    if isinstance(model, Model):
        return model
    try:
        from flax import linen, nnx
    except ImportError:  # pragma: no cover - flax is a core dependency
        linen = nnx = None
    if linen is not None and isinstance(model, linen.Module):
        sample = np.asarray(sample_input)
        try:  # the same module gives the same Model, so its compiled programs are reused
            return _linen_model(model, sample.shape, sample.dtype.str)
        except TypeError:  # an unhashable module
            return Model.from_linen(model, sample)
    if nnx is not None and isinstance(model, nnx.Module):
        return Model.from_nnx(model)
    if isinstance(model, tuple) and len(model) == 2 and all(map(callable, model)):
        return Model(*model)
    raise ValueError(
        "model must be an lrjax.sweep.Model, a (init, apply) pair of functions, a "
        f"flax.linen.Module or a flax.nnx.Module, got {type(model).__name__}"
    )


def accuracy(logits: Array, labels: Array) -> Array:
    """Per-example top-1 accuracy (1.0 or 0.0) of ``logits[..., classes]`` against int labels."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


# -----------------------------------------------------------------------------------------------
# Schedule families and data order


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
    if not isinstance(index, jax.core.Tracer):
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


def _mix32(x: Array) -> Array:
    """A bijection on uint32 with good avalanche (Wellons' "lowbias32" integer hash)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _permutation(seed: Array, epoch: Array, num_examples: int) -> Array:
    # Sorting hashed indices: distinct keys (the hash is a bijection), and far cheaper to compile
    # and run on CPU than jax.random.permutation's threefry rounds, for an order that only needs
    # to look random.
    salt = _mix32(_mix32(seed.astype(jnp.uint32)) ^ epoch.astype(jnp.uint32))
    keys = _mix32(jnp.arange(num_examples, dtype=jnp.uint32) ^ salt)
    return jnp.argsort(keys).astype(jnp.int32)


def batch_indices(seed: Any, step: Any, num_examples: int, batch_size: int) -> Array:
    """The example indices of the batch used at ``step`` (the order :func:`train` uses).

    Each epoch of ``num_examples // batch_size`` steps walks a fresh permutation drawn from
    ``(seed, epoch)``; the remainder of an epoch is dropped.

    Examples:
      >>> idx = batch_indices(0, 3, num_examples=10, batch_size=4)
      >>> idx.shape
      (4,)
    """
    steps_per_epoch = num_examples // batch_size
    step = jnp.asarray(step, jnp.int32)
    perm = _permutation(jnp.asarray(seed, jnp.int32), step // steps_per_epoch, num_examples)
    start = (step % steps_per_epoch) * batch_size
    return jax.lax.dynamic_slice_in_dim(perm, start, batch_size)


# -----------------------------------------------------------------------------------------------
# Results


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
      diverged: ``[K]`` bool; diverged_step: ``[K]`` the step whose loss, gradient or update
        was non-finite or above ``divergence_factor`` times the initial loss, ``-1`` if none.
      params: the final parameters, a pytree of ``[K, ...]`` arrays (frozen at divergence).
      metadata: JSON-serializable run settings and timings.
      snapshots: with ``snapshot_steps``, the parameters after each of those update counts,
        a pytree of ``[K, M, ...]`` arrays, captured inside the compiled loop.
      swa_params: with ``swa_start``, the SWA average of the parameters, ``[K, ...]``;
        swa_count: ``[K]`` how many parameter sets it averages.
      ema_params: with ``ema_decay``, the exponential moving average, ``[K, ...]``.
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
    snapshots: PyTree = None
    swa_params: PyTree = None
    swa_count: np.ndarray | None = None
    ema_params: PyTree = None

    @property
    def learning_rate(self) -> np.ndarray:
        """``[K, T]`` learning rate each update used (the optimizer must take ``learning_rate``)."""
        return self.opt_hparams["learning_rate"]

    @property
    def num_members(self) -> int:
        return int(self.loss.shape[0])

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
        if self.swa_count is not None:
            arrays["swa_count"] = self.swa_count
        meta = {
            "hparams": {k: np.asarray(v).tolist() for k, v in self.hparams.items()},
            "metadata": self.metadata,
        }
        for name in _PARAM_TREES:
            tree = getattr(self, name)
            if tree is None:
                continue
            leaves, treedef = jax.tree.flatten(tree)
            arrays.update({f"{name}/{i}": np.asarray(v) for i, v in enumerate(leaves)})
            structure = jax.tree.unflatten(treedef, list(range(len(leaves))))
            meta[f"{name}_structure"] = _jsonable_structure(structure)
        np.savez(path + ".npz", **arrays)
        with open(path + ".json", "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepResult:
        """Reads a result written by :meth:`save` (params come back as nested dicts/lists)."""
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
            for name in _PARAM_TREES
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
            swa_count=arrays.get("swa_count"),
            **trees,
        )


# Parameter-shaped pytrees of a result, saved leaf by leaf with their structure.
_PARAM_TREES = ("params", "snapshots", "swa_params", "ema_params")


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
# One member: init, step, eval. The engine vmaps these; the sequential path jits them directly.


class _Member(NamedTuple):
    """What differs between members, each leaf with a leading member axis when stacked."""

    hparams: dict[str, Array]
    seed: Array  # int32, initialization seed
    data_seed: Array  # int32, used only with per-member data order
    batch_size: Array  # int32, effective batch size <= the static max batch size
    ema_decay: Array  # float32, used only when the EMA is on


class _State(NamedTuple):
    params: PyTree
    opt_state: PyTree
    alive: Array  # bool
    diverged_step: Array  # int32, -1 while alive
    initial_loss: Array  # float32, nan before the first step
    extras: dict[str, Any]  # in-loop trackers: "snapshots", "swa", "ema", "plateau"


@dataclasses.dataclass(frozen=True)
class _Static:
    """Everything a compiled program depends on besides array shapes (the program cache key)."""

    model: Model
    loss: Callable[[Array, Array], Array]
    optimizer: Callable[..., optax.GradientTransformation]
    optimizer_kwargs: Callable[[Mapping[str, Array]], Mapping[str, Any]]
    metrics: tuple[tuple[str, Callable[[Array, Array], Array]], ...]
    batch_size: int
    chunk_steps: int
    shared_data_order: bool
    mesh: Mesh | None
    snapshot_steps: tuple[int, ...] = ()
    swa_start: int | None = None
    swa_every: int = 1
    ema: bool = False
    plateau: Any = None  # an lrjax.ReduceOnPlateau


def _make_tx(static: _Static, hparams: Mapping[str, Array]) -> optax.GradientTransformation:
    kwargs = static.optimizer_kwargs(hparams)
    return optax.inject_hyperparams(static.optimizer, hyperparam_dtype=jnp.float32)(**kwargs)


def _member_opt_init(static: _Static, params: PyTree, hparams: Mapping[str, Array]) -> PyTree:
    # optax's Adam-family bias correction computes `b1 ** count` with an int32 count, which strict
    # dtype promotion rejects; the optimizer call sites alone run under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        return _make_tx(static, hparams).init(params)


def _fresh_state(
    params: PyTree, opt_state: PyTree, extras: dict, k: int | None, put=jnp.asarray
) -> _State:
    shape = () if k is None else (k,)
    return _State(
        params=params,
        opt_state=opt_state,
        alive=put(np.ones(shape, bool)),
        diverged_step=put(np.full(shape, -1, np.int32)),
        initial_loss=put(np.full(shape, np.nan, np.float32)),
        extras=extras,
    )


def _member_extras_init(static: _Static, params: PyTree) -> dict[str, Any]:
    """One member's in-loop trackers, built from its initial parameters."""
    extras = {}
    if static.snapshot_steps:
        m = len(static.snapshot_steps)
        extras["snapshots"] = jax.tree.map(lambda p: jnp.zeros((m, *p.shape), p.dtype), params)
    if static.swa_start is not None:
        extras["swa"] = averaging.swa_init(params)
    if static.ema:
        extras["ema"] = params
    if static.plateau is not None:
        extras["plateau"] = static.plateau.init()
    return extras


def _member_extras_step(static, extras, params, member, step, num_steps):
    """Advances the trackers after the update at ``step``; ``params`` are the new parameters.

    ``step`` is shared by all members, so under ``vmap`` each ``lax.cond`` stays a real branch:
    a snapshot copies the parameters only at its own step, not at every step.
    """
    extras = dict(extras)
    n = step + 1  # updates done
    running = step < num_steps
    if static.snapshot_steps:
        hit = jnp.asarray(static.snapshot_steps, jnp.int32) == n
        slot = jnp.argmax(hit)

        def capture(snapshots):
            return jax.tree.map(lambda buf, p: buf.at[slot].set(p), snapshots, params)

        extras["snapshots"] = jax.lax.cond(
            running & jnp.any(hit), capture, lambda s: s, extras["snapshots"]
        )
    if static.swa_start is not None:
        extras["swa"] = jax.lax.cond(
            running,
            lambda a: averaging.swa_update(a, params, n, static.swa_start, static.swa_every),
            lambda a: a,
            extras["swa"],
        )
    if static.ema:
        extras["ema"] = jax.lax.cond(
            running,
            lambda e: averaging.ema_update(e, params, member.ema_decay),
            lambda e: e,
            extras["ema"],
        )
    return extras


def _all_finite(tree: PyTree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _member_step(static, state, member, x, y, step, num_steps, divergence_factor):
    """One update of one member on the first ``member.batch_size`` examples of ``x``."""
    tx = _make_tx(static, member.hparams)
    mask = jnp.arange(x.shape[0]) < member.batch_size
    count = member.batch_size.astype(jnp.float32)

    def objective(params):
        per_example = static.loss(static.model.apply(params, x), y)
        return jnp.sum(jnp.where(mask, per_example, jnp.zeros_like(per_example))) / count

    loss, grads = jax.value_and_grad(objective)(state.params)
    with jax.numpy_dtype_promotion("standard"):  # see _member_opt_init
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
    lr_scale = None
    if static.plateau is not None:
        # Every optax optimizer applies its learning rate as the last factor of the update, so
        # scaling the update scales the learning rate the plateau controller reduced.
        lr_scale = state.extras["plateau"].scale
        updates = jax.tree.map(lambda u: u * lr_scale.astype(u.dtype), updates)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)

    initial = jnp.where(jnp.isnan(state.initial_loss), loss, state.initial_loss)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _all_finite(updates)
    bad = ~finite | (loss > divergence_factor * jnp.abs(initial))
    active = state.alive & (step < num_steps)
    ok = active & ~bad

    def keep(new, old):
        return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)

    new_state = _State(
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        alive=state.alive & ~(active & bad),
        diverged_step=jnp.where(active & bad, step, state.diverged_step),
        initial_loss=jnp.where(active, initial, state.initial_loss),
        extras=state.extras,
    )
    if static.snapshot_steps or static.swa_start is not None or static.ema:
        extras = _member_extras_step(
            static, state.extras, new_state.params, member, step, num_steps
        )
        new_state = new_state._replace(extras=extras)
    nan = jnp.array(jnp.nan, jnp.float32)
    logs = {"loss": jnp.where(active, loss, nan), "grad_norm": jnp.where(active, grad_norm, nan)}
    for name, value in opt_state.hyperparams.items():
        if jnp.issubdtype(value.dtype, jnp.floating) and value.shape == ():
            value = value.astype(jnp.float32)
            if name == "learning_rate" and lr_scale is not None:
                value = value * lr_scale  # the LR the update actually used
            logs[f"opt_hparams/{name}"] = jnp.where(active, value, nan)
    return new_state, logs


def _member_plateau_update(static: _Static, state: _State, metric: Array) -> _State:
    """Runs one member's plateau controller on an evaluation metric, inside a compiled program."""
    scheduled_lr = state.opt_state.hyperparams["learning_rate"]  # the last update's, unscaled
    plateau = static.plateau.update(state.extras["plateau"], metric, scheduled_lr)
    return state._replace(extras={**state.extras, "plateau": plateau})


def _member_eval(model, metrics, params, x, y):
    out = model.apply(params, x)
    return {name: jnp.mean(fn(out, y).astype(jnp.float32)) for name, fn in metrics}


# -----------------------------------------------------------------------------------------------
# Compiled programs, cached across calls so a new sweep of the same shape reuses them.


class _Shardings(NamedTuple):
    members: Any  # leading member axis split over devices
    replicated: Any
    logs: Any  # [steps, members]


def _shardings(mesh: Mesh | None) -> _Shardings:
    if mesh is None:
        return _Shardings(None, None, None)
    return _Shardings(
        NamedSharding(mesh, P(MEMBER_AXIS)),
        NamedSharding(mesh, P()),
        NamedSharding(mesh, P(None, MEMBER_AXIS)),
    )


def _jit(fun, mesh, in_shardings, out_shardings, **kwargs):
    if mesh is None:
        return jax.jit(fun, **kwargs)
    return jax.jit(fun, in_shardings=in_shardings, out_shardings=out_shardings, **kwargs)


# Each program is cached on exactly what it depends on, so e.g. new metrics reuse the step.


@functools.lru_cache(maxsize=32)
def _init_program(model: Model, mesh: Mesh | None) -> Callable:
    sh = _shardings(mesh)

    def init(seeds):
        return jax.vmap(lambda seed: model.init(jax.random.key(seed)))(seeds)

    return _jit(init, mesh, (sh.members,), sh.members)


@functools.lru_cache(maxsize=32)
def _opt_init_program(static: _Static) -> Callable:
    sh = _shardings(static.mesh)

    def init(params, hparams):
        return jax.vmap(functools.partial(_member_opt_init, static))(params, hparams)

    return _jit(init, static.mesh, (sh.members, sh.members), sh.members)


@functools.lru_cache(maxsize=32)
def _extras_init_program(static: _Static) -> Callable:
    sh = _shardings(static.mesh)
    init = jax.vmap(functools.partial(_member_extras_init, static))
    return _jit(init, static.mesh, (sh.members,), sh.members)


@functools.lru_cache(maxsize=32)
def _plateau_program(static: _Static) -> Callable:
    sh = _shardings(static.mesh)
    update = jax.vmap(functools.partial(_member_plateau_update, static))
    return _jit(update, static.mesh, (sh.members, sh.members), sh.members, donate_argnums=(0,))


@functools.lru_cache(maxsize=32)
def _eval_program(model: Model, metrics: tuple, mesh: Mesh | None) -> Callable:
    sh = _shardings(mesh)

    def evaluate(params, x, y):
        return jax.vmap(functools.partial(_member_eval, model, metrics), (0, None, None))(
            params, x, y
        )

    return _jit(evaluate, mesh, (sh.members, sh.replicated, sh.replicated), sh.members)


@functools.lru_cache(maxsize=32)
def _chunk_program(static: _Static) -> Callable:
    batch = static.batch_size
    sh = _shardings(static.mesh)

    def chunk(step0, state, members, data_seed, data, num_steps, divergence_factor):
        x, y = data
        n = x.shape[0]
        steps_per_epoch = n // batch
        step_fn = functools.partial(_member_step, static)
        if static.shared_data_order:

            def new_perm(epoch):
                return _permutation(data_seed, epoch, n)

        else:

            def new_perm(epoch):
                return jax.vmap(_permutation, (0, None, None))(members.data_seed, epoch, n)

        def body(carry, _):
            step, state, perm = carry
            epoch, i = step // steps_per_epoch, step % steps_per_epoch
            # A new permutation only at epoch boundaries; the predicate is shared by all members,
            # so under vmap this stays a real branch instead of computing both sides.
            perm = jax.lax.cond(i == 0, lambda: new_perm(epoch), lambda: perm)
            if static.shared_data_order:
                idx = jax.lax.dynamic_slice_in_dim(perm, i * batch, batch)
                in_axes = (0, 0, None, None, None, None, None)
            else:
                idx = jax.vmap(lambda p: jax.lax.dynamic_slice_in_dim(p, i * batch, batch))(perm)
                in_axes = (0, 0, 0, 0, None, None, None)
            xb, yb = x[idx], y[idx]
            state, logs = jax.vmap(step_fn, in_axes)(
                state, members, xb, yb, step, num_steps, divergence_factor
            )
            return (step + 1, state, perm), logs

        perm0 = new_perm(step0 // steps_per_epoch)
        (step, state, _), logs = jax.lax.scan(
            body, (step0, state, perm0), None, length=static.chunk_steps
        )
        return step, state, logs

    rep = sh.replicated
    in_shardings = (rep, sh.members, sh.members, rep, rep, rep, rep)
    out_shardings = (rep, sh.members, sh.logs)
    return _jit(chunk, static.mesh, in_shardings, out_shardings, donate_argnums=(1,))


# -----------------------------------------------------------------------------------------------
# Input checking


def _canonical(a: Any) -> np.ndarray:
    """A host array in the dtype JAX will use (float64 becomes float32 unless x64 is enabled)."""
    a = np.asarray(a)
    return a.astype(jax.dtypes.canonicalize_dtype(a.dtype), copy=False)


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a Python int, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {'in ' if high is not None else ''}{bound}, got {value}")
    return value


def _per_member(name: str, value: Any, dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if dtype is not None:
        if np.issubdtype(dtype, np.integer) and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
        return arr.astype(dtype)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int32)
    return arr


def _num_members(named: Mapping[str, np.ndarray]) -> int:
    sizes = {name: (a.shape[0] if a.ndim else None) for name, a in named.items()}
    leading = {name: s for name, s in sizes.items() if s is not None}
    scalars = [name for name, s in sizes.items() if s is None and name.startswith("hparams")]
    if scalars:
        raise ValueError(
            f"{scalars[0]} must have a leading member axis of size K, got a scalar; use "
            "optimizer_kwargs for values shared by all members"
        )
    if len(set(leading.values())) > 1:
        listing = ", ".join(f"{n}: {s}" for n, s in leading.items())
        raise ValueError(f"per-member arrays must share one leading size K, got {listing}")
    k = next(iter(leading.values()), 1)
    if k < 1:
        raise ValueError(f"the number of members K must be >= 1, got {k} (from {list(leading)})")
    return k


def _check_model_and_loss(model: Model, loss: Callable, x: Array, y: Array, batch: int) -> None:
    key = jax.random.key(0)
    try:
        params = jax.eval_shape(model.init, key)
    except Exception as e:
        raise ValueError(f"model.init(key) failed: {type(e).__name__}: {e}") from e
    xb = jax.ShapeDtypeStruct((batch, *x.shape[1:]), x.dtype)
    yb = jax.ShapeDtypeStruct((batch, *y.shape[1:]), y.dtype)
    try:
        out = jax.eval_shape(model.apply, params, xb)
    except Exception as e:
        raise ValueError(
            f"model.apply failed on inputs of shape {xb.shape} {xb.dtype}: {type(e).__name__}: {e}"
        ) from e
    try:
        per_example = jax.eval_shape(loss, out, yb)
    except Exception as e:
        raise ValueError(
            f"loss does not fit the model: model outputs {out.shape} {out.dtype}, targets "
            f"{yb.shape} {yb.dtype}; loss(outputs, targets) raised {type(e).__name__}: {e}"
        ) from e
    if getattr(per_example, "shape", None) != (batch,):
        raise ValueError(
            "loss must return one value per example, shape "
            f"({batch},), for model outputs {out.shape} and targets {yb.shape}; got "
            f"{getattr(per_example, 'shape', per_example)}"
        )


def _check_optimizer_kwargs(static: _Static, hparams: Mapping[str, np.ndarray], k: int) -> None:
    """Builds every member's optimizer eagerly: catches bad family indices before compiling."""
    for i in range(k):
        member = {name: jnp.asarray(a[i]) for name, a in hparams.items()}
        kwargs = static.optimizer_kwargs(member)
        if not isinstance(kwargs, Mapping):
            raise ValueError(
                f"optimizer_kwargs must return a mapping of keyword arguments, got {kwargs!r}"
            )
        try:
            optax.inject_hyperparams(static.optimizer, hyperparam_dtype=jnp.float32)(**kwargs)
        except TypeError as e:
            raise ValueError(f"optimizer does not accept optimizer_kwargs: {e}") from e


# -----------------------------------------------------------------------------------------------
# Host-side helpers


def _to_host(x: Array) -> np.ndarray:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _put(x: Any, sharding: Any) -> Array:
    """Places a host array on ``sharding``; every process passes the same full value."""
    if sharding is None:
        return jnp.asarray(x)
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


_COMPILE_SECONDS = [0.0, 0]  # total backend compile time and count in this process


@functools.cache
def _listen_to_compiles() -> None:
    def listener(event: str, duration: float, **kwargs) -> None:
        del kwargs
        if event == "/jax/core/compile/backend_compile_duration":
            _COMPILE_SECONDS[0] += duration
            _COMPILE_SECONDS[1] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)


def _progress_bar(enabled: bool | None, total: int):
    auto = enabled is None
    if auto:
        enabled = sys.stderr.isatty()
    if not enabled or jax.process_index() != 0:  # one bar per sweep, not one per host
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as e:
        if auto:  # the bar is a convenience: without tqdm, auto mode stays quiet
            return None
        raise ImportError("progress=True needs tqdm: pip install 'lrjax[experiments]'") from e
    return tqdm(total=total, unit="step", desc="sweep", dynamic_ncols=True)


# -----------------------------------------------------------------------------------------------
# The entry point


def train(
    model: Any,
    loss: Callable[[Array, Array], Array],
    data: tuple[Any, Any],
    *,
    optimizer: Callable[..., optax.GradientTransformation],
    hparams: Mapping[str, Any],
    num_steps: int,
    batch_size: int,
    optimizer_kwargs: Callable[[Mapping[str, Array]], Mapping[str, Any]] | None = None,
    batch_sizes: Any = None,
    seeds: Any = 0,
    data_seeds: Any = 0,
    eval_data: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    metrics: Mapping[str, Callable[[Array, Array], Array]] | None = None,
    divergence_factor: float | None = 100.0,
    devices: Sequence[Any] | None = None,
    group_size: int | None = None,
    memory_budget: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    vectorize: bool = True,
    snapshot_steps: Sequence[int] = (),
    swa_start: int | None = None,
    swa_every: int = 1,
    ema_decay: Any = None,
    plateau: Any = None,
    plateau_metric: str = "loss",
) -> SweepResult:
    """Trains K members of a hyperparameter sweep in one compiled program.

    Every member trains the same model on the same data with its own hyperparameters. The step
    loop is a ``lax.scan`` of ``eval_every`` steps inside one ``jax.jit`` program that is
    ``vmap``-ped over members and sharded over ``devices`` along the member axis; the host runs
    between chunks to evaluate, checkpoint, call ``callback`` and draw the progress bar.

    Args:
      model: a :class:`Model`, an ``(init, apply)`` pair, a ``flax.linen.Module`` (initialized on
        ``data[0][:1]``) or a ``flax.nnx.Module`` (see :meth:`Model.from_nnx`).
      loss: ``loss(outputs, targets) -> [batch]`` per-example losses, e.g.
        ``optax.softmax_cross_entropy_with_integer_labels``.
      data: ``(inputs, targets)`` arrays with the same leading size ``N >= batch_size``.
      optimizer: an optax factory such as ``optax.sgd`` or ``optax.adamw``; it is wrapped in
        ``optax.inject_hyperparams(optimizer, hyperparam_dtype=jnp.float32)``.
      hparams: ``{name: [K, ...] array}``, the per-member hyperparameters (traced: new values
        never recompile). Float arrays become float32, integer arrays int32.
      num_steps: updates per member, ``>= 1``.
      batch_size: the (maximum) batch size, in ``[1, N]``.
      optimizer_kwargs: ``fn(member_hparams) -> {kwarg: value}``, the keyword arguments of
        ``optimizer`` for one member, where values may be numbers, traced scalars or
        ``optax.Schedule`` closures built from the member's hyperparameters (use
        :func:`schedule_family_switch` to pick the schedule family per member). Default: the
        member's hyperparameters themselves.
      batch_sizes: ``[K]`` ints in ``[1, batch_size]``: member ``k`` trains on the first
        ``batch_sizes[k]`` examples of each batch (masked; the gradient equals training with
        that batch). Default: all members use ``batch_size``.
      seeds: initialization seed, an int shared by all members or ``[K]`` ints.
      data_seeds: data-order seed; an int means every member sees the same batch at each step,
        ``[K]`` ints give each member its own order.
      eval_data: optional ``(inputs, targets)`` evaluated (whole) after step 0 and every
        ``eval_every`` steps.
      eval_every: steps per compiled chunk, in ``[1, num_steps]``; default ``num_steps``.
      metrics: ``{name: fn(outputs, targets) -> [n]}`` per-example evaluation metrics, averaged;
        default ``{"loss": loss}``.
      divergence_factor: a member whose loss exceeds this multiple of ``|initial loss|`` is
        frozen and flagged, like one with a non-finite loss, gradient or update; ``None`` turns
        the ratio test off (non-finite values still freeze).
      devices: devices to shard the member axis over; default all devices (``jax.devices()``),
        at most K of them on one host. K is padded to a multiple of their number; padding is
        dropped from the results. On CPU, start Python with
        ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` so every core is a device:
        XLA otherwise runs these small per-member ops on one core.
      group_size: train at most this many members at once (rounded up to a multiple of the
        device count); groups run one after another and give the same results as one group.
        Default: all members at once on accelerators; ``CPU_MEMBERS_PER_DEVICE`` per device on
        CPU, where larger vmapped groups fall out of cache.
      memory_budget: bytes; when given, the group size is the largest that fits this budget by
        the compiled program's own memory estimate.
      checkpoint_dir: save state with orbax after every chunk and resume from it: a rerun with
        the same arguments continues where an interrupted one stopped.
      progress: draw a tqdm progress bar (steps/s, members alive, best loss); default on only
        when stderr is a terminal.
      callback: called on the host after each chunk with ``{"group", "step", "loss", "alive"}``.
      snapshot_steps: strictly increasing update counts in ``[1, num_steps]``; the parameters
        after each are captured inside the compiled loop into ``result.snapshots``
        ``[K, M, ...]`` (snapshot ensembles: :func:`lrjax.snapshot_steps`).
      swa_start: if given, ``result.swa_params`` is the equal average of the parameters after
        ``n`` updates for every ``n >= swa_start`` with ``(n - swa_start) % swa_every == 0``
        (:func:`lrjax.swa_update`), kept inside the compiled loop; use
        :func:`lrjax.swa_schedule` for the SWA learning rate.
      swa_every: SWA sampling period in updates, ``>= 1``.
      ema_decay: if given (a float or ``[K]`` values in ``[0, 1]``, traced), ``result.ema_params``
        is an exponential moving average of the parameters from their initial values.
      plateau: an :func:`lrjax.reduce_on_plateau` controller, run independently per member in a
        compiled program after each evaluation (``eval_data`` needed) on ``plateau_metric``;
        its scale multiplies the member's scheduled learning rate, and ``result.learning_rate``
        records the product, the LR the updates used.
      plateau_metric: name of the evaluation metric the plateau controller watches.
      vectorize: ``False`` trains members one by one with a jitted single-member step in a
        Python loop (no vmap, no scan): the debugging path, same results.

    Returns:
      A :class:`SweepResult`.

    Raises:
      ValueError: for inputs out of range, naming the argument.
    """
    t_start = time.perf_counter()
    _listen_to_compiles()
    compile_before = tuple(_COMPILE_SECONDS)

    # 1. Check and normalize the inputs; all checks run before anything compiles.
    if not callable(optimizer):
        raise ValueError(f"optimizer must be an optax factory such as optax.sgd, got {optimizer!r}")
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise ValueError("data must be an (inputs, targets) pair of arrays")
    x, y = _canonical(data[0]), _canonical(data[1])
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"data inputs and targets must share a leading size N, got {x.shape} and {y.shape}"
        )
    n = x.shape[0]
    num_steps = _check_int("num_steps", num_steps, 1)
    batch_size = _check_int("batch_size", batch_size, 1, n)
    eval_every = num_steps if eval_every is None else _check_int("eval_every", eval_every, 1)
    eval_every = min(eval_every, num_steps)
    if divergence_factor is not None and not divergence_factor > 0:
        raise ValueError(f"divergence_factor must be > 0 or None, got {divergence_factor}")
    if not isinstance(hparams, Mapping):
        raise ValueError(f"hparams must be a mapping of name -> [K] array, got {type(hparams)}")
    snapshot_steps = tuple(snapshot_steps)
    for i, n_updates in enumerate(snapshot_steps):
        _check_int(f"snapshot_steps[{i}]", n_updates, 1, num_steps)
    if any(b <= a for a, b in itertools.pairwise(snapshot_steps)):
        raise ValueError(f"snapshot_steps must be strictly increasing, got {list(snapshot_steps)}")
    snapshot_steps = tuple(int(n_updates) for n_updates in snapshot_steps)
    if swa_start is not None:
        swa_start = _check_int("swa_start", swa_start, 1, num_steps)
    swa_every = _check_int("swa_every", swa_every, 1)
    if plateau is not None:
        from lrjax.plateau import ReduceOnPlateau

        if not isinstance(plateau, ReduceOnPlateau):
            raise ValueError(f"plateau must come from lrjax.reduce_on_plateau, got {plateau!r}")
        if eval_data is None:
            raise ValueError("plateau needs eval_data: it watches an evaluation metric")

    named = {f"hparams[{k!r}]": _per_member(f"hparams[{k!r}]", v, None) for k, v in hparams.items()}
    named["seeds"] = _per_member("seeds", seeds, np.int32)
    named["data_seeds"] = _per_member("data_seeds", data_seeds, np.int32)
    if batch_sizes is not None:
        named["batch_sizes"] = _per_member("batch_sizes", batch_sizes, np.int32)
    k = _num_members(named)
    hp = {name: named[f"hparams[{name!r}]"] for name in hparams}
    shared_data_order = named["data_seeds"].ndim == 0
    data_seed = named["data_seeds"] if shared_data_order else np.int32(0)
    for name in ("seeds", "data_seeds", "batch_sizes"):
        if name in named and named[name].ndim > 1:
            raise ValueError(f"{name} must be an int or a [K] array, got shape {named[name].shape}")
    bs = named.get("batch_sizes", np.full((k,), batch_size, np.int32))
    if bs.ndim == 0:
        bs = np.full((k,), bs, np.int32)
    if bs.min() < 1 or bs.max() > batch_size:
        raise ValueError(
            f"batch_sizes must be in [1, batch_size={batch_size}], got values in "
            f"[{bs.min()}, {bs.max()}]"
        )
    ema = np.zeros((k,), np.float32)
    if ema_decay is not None:
        ema = np.broadcast_to(_per_member("ema_decay", ema_decay, np.float32), (k,)).copy()
        if np.any(~(ema >= 0) | ~(ema <= 1)):
            raise ValueError(f"ema_decay must be in [0, 1], got {ema_decay!r}")
    members = _Member(
        hparams=hp,
        seed=np.broadcast_to(named["seeds"], (k,)).astype(np.int32),
        data_seed=np.broadcast_to(named["data_seeds"], (k,)).astype(np.int32),
        batch_size=bs,
        ema_decay=ema,
    )

    if not callable(loss):
        raise ValueError(f"loss must be a function loss(outputs, targets), got {loss!r}")
    model = _as_model(model, x[:1])
    _check_model_and_loss(model, loss, x, y, batch_size)
    metric_items = tuple((metrics or {"loss": loss}).items())
    if plateau is not None and plateau_metric not in dict(metric_items):
        raise ValueError(
            f"plateau_metric must be one of the metrics {[n for n, _ in metric_items]}, "
            f"got {plateau_metric!r}"
        )
    if eval_data is not None:
        if not isinstance(eval_data, tuple | list) or len(eval_data) != 2:
            raise ValueError("eval_data must be an (inputs, targets) pair of arrays")
        xe, ye = _canonical(eval_data[0]), _canonical(eval_data[1])
        if xe.shape[1:] != x.shape[1:] or ye.shape[1:] != y.shape[1:] or len(xe) != len(ye):
            raise ValueError(
                f"eval_data must match data's per-example shapes {x.shape[1:]} and "
                f"{y.shape[1:]}, got {xe.shape} and {ye.shape}"
            )

    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must hold at least one device, got none")
    if jax.process_count() == 1 and len(devices) > k:
        devices = devices[:k]  # padding members to idle devices would only waste their cores
    mesh = None
    if len(devices) > 1 or jax.process_count() > 1:
        mesh = Mesh(np.asarray(devices), (MEMBER_AXIS,))
    static = _Static(
        model=model,
        loss=loss,
        optimizer=optimizer,
        optimizer_kwargs=optimizer_kwargs or _identity_kwargs,
        metrics=metric_items,
        batch_size=batch_size,
        chunk_steps=eval_every,
        shared_data_order=shared_data_order,
        mesh=mesh,
        snapshot_steps=snapshot_steps,
        swa_start=swa_start,
        swa_every=swa_every,
        ema=ema_decay is not None,
        plateau=plateau,
    )
    _check_optimizer_kwargs(static, hp, k)

    # 2. Split members into equally sized groups (padded), each a multiple of the device count.
    num_devices = len(devices)
    if group_size is not None:
        group = _check_int("group_size", group_size, 1)
    elif memory_budget is not None:
        budget = _check_int("memory_budget", memory_budget, 1)
        group = _group_for_budget(static, members, x, y, budget, num_devices)
    elif all(d.platform == "cpu" for d in devices):
        # On CPU a vmapped step over many members falls out of cache: measured by `make bench`
        # (MLP 40-256-256-10), 4 members per device keep model-steps/s flat as K grows, where
        # one group of K=128 loses 15-20%. Groups give the same results as one group.
        group = CPU_MEMBERS_PER_DEVICE * num_devices
    else:
        group = k
    group = min(group, k)
    group = -(-group // num_devices) * num_devices
    num_groups = -(-k // group)
    padded = num_groups * group
    members = jax.tree.map(lambda a: np.concatenate([a, np.repeat(a[:1], padded - k, 0)]), members)

    num_chunks = -(-num_steps // eval_every)
    eval_steps = np.array([0] + [min((c + 1) * eval_every, num_steps) for c in range(num_chunks)])
    fingerprint = {
        "num_members": k,
        "num_steps": num_steps,
        "batch_size": batch_size,
        "eval_every": eval_every,
        "group_size": group,
        "hparams": {name: a.tolist() for name, a in hp.items()},
        "seeds": members.seed[:k].tolist(),
        "data_seeds": named["data_seeds"].tolist(),
        "batch_sizes": bs.tolist(),
        "divergence_factor": divergence_factor,
        "optimizer": getattr(optimizer, "__name__", repr(optimizer)),
        "snapshot_steps": list(snapshot_steps),
        "swa_start": swa_start,
        "swa_every": swa_every,
        "ema_decay": None if ema_decay is None else ema.tolist(),
        "plateau": None if plateau is None else plateau_metric,
    }
    run = _Run(
        static=static,
        x=x,
        y=y,
        eval_data=None if eval_data is None else (xe, ye),
        num_steps=num_steps,
        eval_steps=eval_steps,
        data_seed=data_seed,
        divergence_factor=np.float32(np.inf if divergence_factor is None else divergence_factor),
        checkpoint=None if checkpoint_dir is None else _Checkpoint(checkpoint_dir, fingerprint),
        bar=_progress_bar(progress, num_steps * num_groups),
        callback=callback,
        num_members=k,
        group_size=group,
        num_groups=num_groups,
        plateau_metric=plateau_metric,
    )

    # 3. Train group after group.
    outputs = []
    try:
        for g in range(num_groups):
            group_members = jax.tree.map(lambda a, g=g: a[g * group : (g + 1) * group], members)
            runner = run.group_vectorized if vectorize else run.group_sequential
            outputs.append(runner(g, group_members))
    finally:
        if run.bar is not None:
            run.bar.close()

    # 4. Stack the groups and drop the padding.
    def cat(*parts):
        return np.concatenate(parts)[:k]

    logs = jax.tree.map(cat, *[o[0] for o in outputs])
    evals = jax.tree.map(cat, *[o[1] for o in outputs])
    final = jax.tree.map(cat, *[o[2] for o in outputs])
    compile_seconds = _COMPILE_SECONDS[0] - compile_before[0]
    metadata = dict(fingerprint)
    metadata.update(
        devices=num_devices,
        num_groups=num_groups,
        process_count=jax.process_count(),
        vectorize=vectorize,
        compile_seconds=compile_seconds,
        program_bytes=run.program_bytes,
        num_compiles=_COMPILE_SECONDS[1] - compile_before[1],
        wall_seconds=time.perf_counter() - t_start,
    )
    return SweepResult(
        hparams=hp,
        loss=logs.pop("loss"),
        grad_norm=logs.pop("grad_norm"),
        opt_hparams={name.split("/", 1)[1]: v for name, v in logs.items()},
        eval_steps=eval_steps if eval_data is not None else np.zeros((0,), np.int64),
        eval_metrics=evals,
        diverged=~final.alive,
        diverged_step=final.diverged_step,
        params=final.params,
        metadata=metadata,
        snapshots=final.extras.get("snapshots"),
        swa_params=final.extras["swa"].mean if "swa" in final.extras else None,
        swa_count=final.extras["swa"].count if "swa" in final.extras else None,
        ema_params=final.extras.get("ema"),
    )


def _init_state(static: _Static, members: _Member, size: int, put: Callable) -> _State:
    params = _init_program(static.model, static.mesh)(members.seed)
    opt_state = _opt_init_program(static)(params, members.hparams)
    extras = _extras_init_program(static)(params)
    return _fresh_state(params, opt_state, extras, size, put)


def _program_bytes(program: Callable, args: tuple) -> int | None:
    """Bytes one device holds while ``program`` runs, by XLA's own buffer assignment."""
    # Lowering again hits the compilation cache once the program has run (or is about to).
    stats = program.lower(*args).compile().memory_analysis()
    if stats is None:  # not every backend reports it
        return None
    total = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    return int(total - stats.alias_size_in_bytes)


def _identity_kwargs(hparams: Mapping[str, Array]) -> Mapping[str, Array]:
    return dict(hparams)


def _group_for_budget(static, members, x, y, budget, num_devices) -> int:
    """Largest group whose compiled chunk fits ``budget`` bytes per device, by XLA's estimate."""

    def bytes_for(size):
        one = jax.tree.map(lambda a: jax.ShapeDtypeStruct((size, *a.shape[1:]), a.dtype), members)
        single = dataclasses.replace(static, mesh=None)
        state = jax.eval_shape(lambda m: _init_state(single, m, size, jnp.asarray), one)
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        data = (jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(y.shape, y.dtype))
        compiled = (
            _chunk_program(single)
            .lower(scalar, state, one, scalar, data, scalar, jax.ShapeDtypeStruct((), jnp.float32))
            .compile()
        )
        m = compiled.memory_analysis()
        fixed = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
        return fixed - m.alias_size_in_bytes

    # Memory is affine in the group size: measure at 1 and 2 members per device, extrapolate.
    b1, b2 = bytes_for(1), bytes_for(2)
    per_member = max(b2 - b1, 1)
    base = b1 - per_member
    per_device = max(1, (budget - base) // per_member)
    return int(per_device * num_devices)


# -----------------------------------------------------------------------------------------------
# Running one group of members


@functools.lru_cache(maxsize=32)
def _sequential_programs(static: _Static):
    def init(member):
        params = static.model.init(jax.random.key(member.seed))
        opt_state = _member_opt_init(static, params, member.hparams)
        return _fresh_state(params, opt_state, _member_extras_init(static, params), None)

    init = jax.jit(init)
    step = jax.jit(functools.partial(_member_step, static))
    plateau = jax.jit(functools.partial(_member_plateau_update, static))
    evaluate = jax.jit(functools.partial(_member_eval, static.model, static.metrics))
    indices = jax.jit(batch_indices, static_argnums=(2, 3))
    return init, step, evaluate, indices, plateau


@dataclasses.dataclass
class _Run:
    static: _Static
    x: np.ndarray
    y: np.ndarray
    eval_data: tuple[np.ndarray, np.ndarray] | None
    num_steps: int
    eval_steps: np.ndarray
    data_seed: np.ndarray
    divergence_factor: np.float32
    checkpoint: _Checkpoint | None
    bar: Any
    callback: Callable[[dict[str, Any]], None] | None
    num_members: int
    group_size: int
    num_groups: int
    plateau_metric: str = "loss"
    best_loss: float = math.inf
    program_bytes: int | None = None

    def _empty_logs(self, names, size):
        return {name: np.full((size, self.num_steps), np.nan, np.float32) for name in names}

    def _empty_evals(self, size):
        shape = (size, len(self.eval_steps) if self.eval_data is not None else 0)
        return {name: np.full(shape, np.nan, np.float32) for name, _ in self.static.metrics}

    def _after_chunk(self, g, step, done, logs, alive):
        real = min(self.group_size, self.num_members - g * self.group_size)
        recent = logs["loss"][:real, step - done : step]
        if np.isfinite(recent).any():
            self.best_loss = min(self.best_loss, float(np.nanmin(recent)))
        if self.bar is not None:
            self.bar.update(done)
            self.bar.set_postfix(
                group=f"{g + 1}/{self.num_groups}",
                alive=f"{int(np.sum(alive[:real]))}/{real}",
                best_loss=f"{self.best_loss:.4g}",
            )
        if self.callback is not None:
            self.callback(
                {"group": g, "step": step, "loss": logs["loss"][:, step - 1], "alive": alive}
            )

    def group_vectorized(self, g, members):
        static = dataclasses.replace(self.static, metrics=())  # the step does not use metrics
        sh = _shardings(static.mesh)
        ms, rep = sh.members, sh.replicated
        chunk = _chunk_program(static)
        evaluate = _eval_program(self.static.model, self.static.metrics, static.mesh)
        size = members.seed.shape[0]
        dev_members = jax.tree.map(lambda a: _put(a, ms), members)
        data = (_put(self.x, rep), _put(self.y, rep))
        num_steps = _put(np.int32(self.num_steps), rep)
        factor = _put(self.divergence_factor, rep)
        data_seed = _put(self.data_seed, rep)
        state = _init_state(static, dev_members, size, lambda a: _put(a, ms))
        abstract = chunk.eval_shape(
            num_steps, state, dev_members, data_seed, data, num_steps, factor
        )
        logs = self._empty_logs(abstract[2].keys(), size)
        evals = self._empty_evals(size)
        step = 0
        if self.checkpoint is not None:
            restored = self.checkpoint.restore(g, state, logs, evals)
            if restored is not None:
                step, state, logs, evals = restored
        if self.eval_data is not None:
            eval_x, eval_y = (_put(a, rep) for a in self.eval_data)
            if step == 0:
                self._evaluate(evaluate, state.params, eval_x, eval_y, evals, 0)
        while step < self.num_steps:
            args = (
                _put(np.int32(step), rep),
                state,
                dev_members,
                data_seed,
                data,
                num_steps,
                factor,
            )
            if self.program_bytes is None:
                self.program_bytes = _program_bytes(chunk, args)
            _, state, chunk_logs = chunk(*args)
            done = min(self.static.chunk_steps, self.num_steps - step)
            for name, value in chunk_logs.items():
                logs[name][:, step : step + done] = _to_host(value)[:done].T
            step += done
            if self.eval_data is not None:
                index = int(np.searchsorted(self.eval_steps, step))
                metrics = self._evaluate(evaluate, state.params, eval_x, eval_y, evals, index)
                if static.plateau is not None:
                    metric = metrics[self.plateau_metric]
                    state = _plateau_program(static)(state, metric)
            if self.checkpoint is not None:
                self.checkpoint.save(g, step, state, logs, evals)
            self._after_chunk(g, step, done, logs, _to_host(state.alive))
        final = _State(
            params=jax.tree.map(_to_host, state.params),
            opt_state=None,
            alive=_to_host(state.alive),
            diverged_step=_to_host(state.diverged_step),
            initial_loss=None,
            extras=jax.tree.map(_to_host, state.extras),
        )
        return logs, evals, final

    @staticmethod
    def _evaluate(evaluate, params, x, y, evals, index):
        metrics = evaluate(params, x, y)
        for name, value in metrics.items():
            evals[name][:, index] = _to_host(value)
        return metrics

    def group_sequential(self, g, members):
        init, step_fn, evaluate, indices, plateau = _sequential_programs(self.static)
        size = members.seed.shape[0]
        n, batch = self.x.shape[0], self.static.batch_size
        x, y = jnp.asarray(self.x), jnp.asarray(self.y)
        num_steps, factor = jnp.int32(self.num_steps), jnp.asarray(self.divergence_factor)
        per_member = []
        for i in range(size):
            member = jax.tree.map(lambda a, i=i: jnp.asarray(a[i]), members)
            seed = self.data_seed if self.static.shared_data_order else member.data_seed
            state = init(member)
            member_logs, member_evals = [], []
            if self.eval_data is not None:
                member_evals.append(evaluate(state.params, *self.eval_data))
            for step in range(self.num_steps):
                idx = indices(seed, step, n, batch)
                state, step_logs = step_fn(
                    state, member, x[idx], y[idx], jnp.int32(step), num_steps, factor
                )
                member_logs.append(step_logs)
                if self.eval_data is not None and step + 1 in self.eval_steps[1:]:
                    member_evals.append(evaluate(state.params, *self.eval_data))
                    if self.static.plateau is not None:
                        state = plateau(state, member_evals[-1][self.plateau_metric])
            per_member.append((member_logs, member_evals, state))
        logs = {
            name: np.stack([np.stack([_to_host(s[name]) for s in m[0]]) for m in per_member])
            for name in per_member[0][0][0]
        }
        evals = self._empty_evals(size)
        for name in evals:
            for i, m in enumerate(per_member):
                evals[name][i, :] = [float(e[name]) for e in m[1]]
        states = [m[2] for m in per_member]

        def stack(*leaves):
            return np.stack([_to_host(v) for v in leaves])

        final = _State(
            params=jax.tree.map(stack, *[s.params for s in states]),
            opt_state=None,
            alive=np.array([bool(s.alive) for s in states]),
            diverged_step=np.array([int(s.diverged_step) for s in states], np.int32),
            initial_loss=None,
            extras=jax.tree.map(stack, *[s.extras for s in states]),
        )
        self._after_chunk(g, self.num_steps, self.num_steps, logs, final.alive)
        return logs, evals, final


# -----------------------------------------------------------------------------------------------
# Checkpoints (orbax): one manager per group, the latest chunk kept.


class _Checkpoint:
    def __init__(self, directory: str | os.PathLike, fingerprint: dict[str, Any]):
        self.directory = os.path.abspath(os.fspath(directory))
        os.makedirs(self.directory, exist_ok=True)
        meta = os.path.join(self.directory, "sweep.json")
        fingerprint = json.loads(json.dumps(fingerprint))
        if os.path.exists(meta):
            with open(meta) as f:
                saved = json.load(f)
            if saved != fingerprint:
                diff = sorted(k for k in fingerprint if saved.get(k) != fingerprint[k])
                raise ValueError(
                    f"checkpoint_dir {self.directory} holds a different sweep (differs in {diff}); "
                    "use a new directory"
                )
        elif jax.process_index() == 0:
            with open(meta, "w") as f:
                json.dump(fingerprint, f, indent=1, sort_keys=True)
        self._managers = {}

    def _manager(self, g: int):
        import orbax.checkpoint as ocp

        if g not in self._managers:
            options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
            self._managers[g] = ocp.CheckpointManager(
                os.path.join(self.directory, f"group_{g}"), options=options
            )
        return self._managers[g]

    def save(self, g, step, state, logs, evals):
        import orbax.checkpoint as ocp

        tree = {"state": jax.tree.leaves(state), "logs": logs, "evals": evals}
        manager = self._manager(g)
        manager.save(step, args=ocp.args.StandardSave(tree))
        # The next chunk donates these buffers, so the save must finish reading them first.
        manager.wait_until_finished()

    def restore(self, g, state, logs, evals):
        import orbax.checkpoint as ocp

        manager = self._manager(g)
        step = manager.latest_step()
        if step is None:
            return None
        leaves, treedef = jax.tree.flatten(state)
        target = {
            "state": [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding) for a in leaves],
            "logs": logs,
            "evals": evals,
        }
        restored = manager.restore(step, args=ocp.args.StandardRestore(target))
        state = jax.tree.unflatten(treedef, restored["state"])
        logs = {k: np.asarray(v) for k, v in restored["logs"].items()}
        evals = {k: np.asarray(v) for k, v in restored["evals"].items()}
        return int(step), state, logs, evals
