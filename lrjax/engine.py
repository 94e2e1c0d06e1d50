"""The core primitive: one member's training step, vectorized into one compiled program.

You write the step of ONE model, as you would for a single run,

    step(state, batch, member) -> (state, metrics)

where ``state`` is any pytree of arrays (params, ``batch_stats``, an optimizer state, an RNG
key, a Flax ``TrainState``, an ``nnx.split`` state) and ``member`` is that member's settings
(its learning rate, dropout rate, seed: a pytree of traced scalars). :func:`vectorize` turns it
into a program over K members: ``jax.vmap`` over the member axis, ``jax.lax.scan`` over a chunk
of steps, the member axis sharded over devices with ``jax.sharding``, the state's buffers
donated, one compilation per shape. ``init(member) -> state`` is vectorized the same way.

All members see the same batch at each step, unless the batches carry a member axis
(``per_member_batches=True``). The scanned input of each step is either the batch itself or,
with ``batch_fn``, whatever ``batch_fn(data, x)`` needs to build it inside the program (e.g.
the indices of a batch of arrays that stay on the device).

Features are layers around this primitive, not inside it: :func:`lrjax.freeze_on_divergence`
and :func:`lrjax.track` wrap ``(step, init)``; :func:`lrjax.fit` is the host loop (groups,
padding, evaluation, checkpoints, progress) between chunks.

Examples:
  >>> import jax, jax.numpy as jnp, numpy as np, optax
  >>> from lrjax import engine
  >>> x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
  >>> y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  >>> def init(member):
  ...     params = jnp.zeros(3)
  ...     return params, optax.sgd(member["lr"]).init(params)
  >>> def step(state, batch, member):
  ...     params, opt_state = state
  ...     xb, yb = batch
  ...     loss, grads = jax.value_and_grad(lambda p: jnp.mean((xb @ p - yb) ** 2))(params)
  ...     updates, opt_state = optax.sgd(member["lr"]).update(grads, opt_state)
  ...     return (optax.apply_updates(params, updates), opt_state), {"loss": loss}
  >>> program = engine.vectorize(step, init)
  >>> members = {"lr": np.array([0.01, 0.1], np.float32)}
  >>> state = program.init(members)
  >>> batches = (np.stack([x] * 20), np.stack([y] * 20))  # 20 steps, full batch
  >>> state, metrics = program.run(state, members, batches)
  >>> metrics["loss"].shape, bool(metrics["loss"][1, -1] < metrics["loss"][0, -1])
  ((2, 20), True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "MEMBER_AXIS",
    "Vectorized",
    "abstract",
    "as_metrics",
    "bind_axes",
    "compile_stats",
    "concatenate",
    "is_key",
    "member_slice",
    "num_members",
    "pad_members",
    "step_key",
    "to_host",
    "unused_members",
    "unwrap",
    "vectorize",
]

PyTree = Any
Array = jax.Array
Step = Callable[[PyTree, PyTree, PyTree], tuple[PyTree, Mapping[str, Array]]]
Init = Callable[[PyTree], PyTree]
MEMBER_AXIS = "members"


def step_key(seed: Any, step: Any) -> Array:
    """The RNG key of one member at one step: ``fold_in(key(seed), step)``.

    It depends only on the member's own seed and step count, never on K, the member's
    position in a group or the number of devices, so a member draws the same dropout masks
    whatever sweep it is part of.

    Examples:
      >>> a, b = step_key(3, 7), step_key(3, 7)
      >>> bool((jax.random.key_data(a) == jax.random.key_data(b)).all())
      True
    """
    return jax.random.fold_in(jax.random.key(seed), jnp.asarray(step, jnp.int32))


def unwrap(state: PyTree) -> PyTree:
    """The user's own state inside the layers' wrappers (:func:`lrjax.freeze_on_divergence`,
    :func:`lrjax.track`): each wrapper keeps the state it wraps in ``.state``."""
    while getattr(type(state), "is_lrjax_wrapper", False):
        state = state.state
    return state


def as_metrics(metrics: Any) -> dict[str, Array]:
    """A step's metrics as a flat dict ``{name: array}``.

    A dict of arrays is kept as it is; any other pytree of arrays (a Flax ``struct`` dataclass,
    a NamedTuple, an ``nnx.MultiMetric``'s ``compute()`` output, a nested dict) is flattened,
    each leaf named by its path (``"loss"``, ``"train/accuracy"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> as_metrics({"loss": 1.0, "acc": {"top1": 0.5}})
      {'acc/top1': 0.5, 'loss': 1.0}
    """
    if isinstance(metrics, dict) and all(not isinstance(v, Mapping | tuple | list)
                                         for v in metrics.values()):  # fmt: skip
        return metrics
    leaves = jax.tree_util.tree_leaves_with_path(metrics)
    if not leaves or any(not path for path, _ in leaves):
        raise ValueError(
            "a step's metrics must be a dict (or another pytree: a flax struct, a NamedTuple) of "
            f"named arrays, got a {type(metrics).__name__}"
        )
    return {"/".join(str(_key_name(k)) for k in path): leaf for path, leaf in leaves}


def _key_name(key: Any) -> Any:
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return getattr(key, attribute)
    return key


def bind_axes(fn: Callable, names: Sequence[str]) -> Callable:
    """``fn`` with each collective axis name of ``names`` bound over a size-1 axis.

    A step written for ``pmap`` data parallelism reduces over a named batch axis (Flax's
    ImageNet example: ``lax.pmean(grads, axis_name='batch')``, ``nn.BatchNorm(axis_name='batch')``).
    One member trains on the whole batch, so that axis has one entry and every collective over it
    is the identity: the step runs unchanged. The axes are bound only for a function that names
    one (its first trace fails with an unbound axis name); any other runs as it is.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> bind_axes(lambda x: jax.lax.pmean(x, "batch"), ["batch"])(jnp.float32(3.0))
      Array(3., dtype=float32)
    """
    names = tuple(names)
    if not names:
        return fn
    needed: list[bool] = []  # decided at the first trace: the structure of fn is static

    def bound(*args):
        if not needed:
            try:
                out = fn(*args)
            except NameError as e:
                if "unbound axis name" not in str(e):
                    raise
                needed.append(True)
            else:
                needed.append(False)
                return out
        if not needed[0]:
            return fn(*args)
        call = lambda: fn(*args)  # noqa: E731 - every argument is unmapped
        for name in names:
            call = jax.vmap(call, in_axes=(), out_axes=None, axis_size=1, axis_name=name)
        return call()

    return bound


_OUTPUT_ERRORS = ("step must return", "a step's metrics")


def _reads(jaxpr) -> set:
    """The variables the outputs of a jaxpr depend on (a backward liveness pass: an equation
    whose results nobody reads does not count, unless it has side effects)."""
    from jax.extend.core import Literal

    live = {v for v in jaxpr.outvars if not isinstance(v, Literal)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            live.update(v for v in eqn.invars if not isinstance(v, Literal))
    return live


def unused_members(fn: Callable, member: PyTree, *args: Any) -> list[str]:
    """The floating-point settings of ``member`` that ``fn(member, *args)`` never reads.

    A per-member hyperparameter that neither ``init`` nor ``step`` reads is a silent bug: every
    member trains the same way. It happens when a value is baked into a static structure, e.g.
    an ``nnx.Optimizer`` built with ``optax.sgd(member["lr"])`` (its transformation lives in the
    static graph, taken from one template member); keep such values in the optimizer state
    with ``optax.inject_hyperparams``.

    Args:
      fn: ``fn(member, *args)``.
      member: one member's settings (concrete or abstract).
      *args: the other arguments (concrete or abstract).

    Returns:
      ``members[...]`` paths of the float leaves ``fn`` does not read.
    """
    closed = jax.make_jaxpr(fn)(member, *args)
    leaves = jax.tree_util.tree_leaves_with_path(member)
    invars = closed.jaxpr.invars[: len(leaves)]
    used = _reads(closed.jaxpr)
    return [
        "members" + jax.tree_util.keystr(path)
        for (path, leaf), var in zip(leaves, invars, strict=True)
        if jnp.issubdtype(_dtype(leaf), jnp.floating) and var not in used
    ]


def num_members(members: PyTree) -> int:
    """The size K of the leading member axis shared by every leaf of ``members``."""
    leaves = jax.tree_util.tree_leaves_with_path(members)
    if not leaves:
        raise ValueError("members must hold at least one array with a leading member axis")
    sizes = {}
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(
                f"members{jax.tree_util.keystr(path)} is a scalar; every leaf of members needs "
                "a leading member axis of size K (use np.full(K, value) for a shared value)"
            )
        sizes[jax.tree_util.keystr(path)] = shape[0]
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"members{p}: {s}" for p, s in sizes.items())
        raise ValueError(f"every leaf of members must share one leading size K, got {listing}")
    k = next(iter(sizes.values()))
    if k < 1:
        raise ValueError("members must hold at least one member, got K=0")
    return k


def member_slice(tree: PyTree, start: int, stop: int | None = None) -> PyTree:
    """Members ``start:stop`` of a stacked pytree (member ``start`` alone if ``stop`` is None)."""
    if stop is None:
        return jax.tree.map(lambda a: a[start], tree)
    return jax.tree.map(lambda a: a[start:stop], tree)


def pad_members(tree: PyTree, size: int) -> PyTree:
    """Pads the member axis to ``size`` by repeating member 0 (padding is dropped by callers)."""

    def pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[:1], size - a.shape[0], axis=0)])

    return jax.tree.map(pad, tree)


def is_key(x: Any) -> bool:
    """Whether ``x`` is an array of typed PRNG keys (which NumPy cannot hold)."""
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_host(x: Array) -> np.ndarray:
    """A device array as NumPy, gathered from every process of a multi-host run. Typed PRNG
    keys stay JAX key arrays (of gathered key data)."""
    if is_key(x):
        return jax.random.wrap_key_data(
            to_host(jax.random.key_data(x)), impl=jax.random.key_impl(x)
        )
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def concatenate(parts: Sequence[Any]) -> Any:
    """Concatenates host arrays (or key arrays) along the member axis."""
    if is_key(parts[0]):
        return jnp.concatenate(parts)
    return np.concatenate([np.asarray(p) for p in parts])


_COMPILES = {"seconds": 0.0, "count": 0}


@functools.cache
def _listen_to_compiles() -> None:
    def listener(event: str, duration: float, **kwargs) -> None:
        del kwargs
        if event == "/jax/core/compile/backend_compile_duration":
            _COMPILES["seconds"] += duration
            _COMPILES["count"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)


def compile_stats() -> tuple[float, int]:
    """Total XLA compile seconds and the number of compilations in this process so far."""
    _listen_to_compiles()
    return _COMPILES["seconds"], _COMPILES["count"]


def _path_name(prefix: str, path) -> str:
    return prefix + jax.tree_util.keystr(path)


def _describe(tree: PyTree) -> str:
    shapes = jax.tree.map(lambda a: f"{tuple(np.shape(a))} {_dtype(a)}", tree)
    return str(shapes)


def _dtype(a: Any) -> np.dtype:
    dtype = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
    return jax.dtypes.canonicalize_dtype(dtype, allow_extended_dtype=True)


def abstract(tree: PyTree) -> PyTree:
    """``tree`` as ``jax.ShapeDtypeStruct`` leaves, in the dtypes JAX will use (for
    ``jax.eval_shape`` and ahead-of-time lowering)."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), _dtype(a)), tree)


def _abstract_slice(tree: PyTree, drop: int = 1) -> PyTree:
    """``tree`` without its ``drop`` leading axes (one member's, or one step's, slice), as
    abstract values."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a)[drop:], _dtype(a)), tree)


def _signature(tree: PyTree) -> tuple:
    """What a compiled program depends on in ``tree``: its structure, shapes and dtypes."""
    leaves = tuple((np.shape(a), str(_dtype(a))) for a in jax.tree.leaves(tree))
    return jax.tree.structure(tree), leaves


def _float_nan_like(abstract: PyTree) -> PyTree:
    def fill(a):
        if jnp.issubdtype(a.dtype, jnp.inexact):
            return jnp.full(a.shape, jnp.nan, a.dtype)
        return jnp.zeros(a.shape, a.dtype)

    return jax.tree.map(fill, abstract)


class Vectorized:
    """``step`` and ``init`` of one member, compiled over K members. Build with :func:`vectorize`.

    Methods:
      init(members) -> state: every member's initial state, stacked on a leading axis.
      run(state, members, xs, data=None, num_valid=None) -> (state, metrics): one chunk of
        ``T = len(xs)`` steps in one compiled program; ``metrics`` leaves are ``[K, T]``.
      run_sequential(...): the same, member by member and step by step with a jitted
        single-member step: no vmap, no scan (for debugging; results agree).
    """

    def __init__(
        self,
        step: Step,
        init: Init | None,
        devices: Sequence[Any] | None,
        donate: bool,
    ):
        if not callable(step):
            raise ValueError(f"step must be a function step(state, batch, member), got {step!r}")
        if init is not None and not callable(init):
            raise ValueError(f"init must be a function init(member) -> state, got {init!r}")
        self.step = step
        self.init_fn = init
        devices = list(jax.devices() if devices is None else devices)
        if not devices:
            raise ValueError("devices must hold at least one device, got none")
        self.devices = devices
        self.mesh = None
        if len(devices) > 1 or jax.process_count() > 1:
            self.mesh = Mesh(np.asarray(devices), (MEMBER_AXIS,))
        self.donate = donate
        self._checked: set = set()
        _listen_to_compiles()

    # -- shardings ------------------------------------------------------------------------------

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    def sharding(self, member_axis: int | None) -> Any:
        """The sharding of an array whose axis ``member_axis`` is the member axis (None: none)."""
        if self.mesh is None:
            return None
        if member_axis is None:
            return NamedSharding(self.mesh, P())
        return NamedSharding(self.mesh, P(*([None] * member_axis), MEMBER_AXIS))

    def put(self, tree: PyTree, member_axis: int | None = 0) -> PyTree:
        """Places host arrays on the devices: split along ``member_axis``, or replicated."""
        sharding = self.sharding(member_axis)
        if sharding is None:
            return jax.tree.map(jnp.asarray, tree)

        def place(a):
            if isinstance(a, jax.Array):
                if a.sharding.is_equivalent_to(sharding, a.ndim):
                    return a
                if not a.is_fully_addressable:  # a global array of a multi-host run
                    return jax.device_put(a, sharding)
            a = np.asarray(a)
            return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

        return jax.tree.map(place, tree)

    def _check_k(self, k: int) -> None:
        if k % self.num_devices:
            raise ValueError(
                f"the number of members K={k} must be a multiple of the {self.num_devices} "
                "devices the member axis is split over; pad members (lrjax.engine.pad_members, "
                "or let lrjax.fit do it) or pass fewer devices"
            )

    # -- init -----------------------------------------------------------------------------------

    @functools.cached_property
    def _init_program(self) -> Callable:
        sharded = self.sharding(0)
        kwargs = {} if sharded is None else {"in_shardings": sharded, "out_shardings": sharded}
        return jax.jit(jax.vmap(self.init_fn), **kwargs)

    def init(self, members: PyTree) -> PyTree:
        """Every member's initial state ``init(member)``, stacked along a leading member axis."""
        if self.init_fn is None:
            raise ValueError("this program has no init; pass init= to lrjax.vectorize")
        k = num_members(members)
        self._check_k(k)
        one = _abstract_slice(members)
        try:
            jax.eval_shape(self.init_fn, one)
        except Exception as e:
            raise ValueError(
                f"init(member) failed for one member {_describe(one)}: {type(e).__name__}: {e}"
            ) from e
        return self._init_program(self.put(members))

    # -- one chunk --------------------------------------------------------------------------------

    def _member_step(self, batch_fn, state, member, x, data):
        batch = x if batch_fn is None else batch_fn(data, x)
        out = self.step(state, batch, member)
        if not (isinstance(out, tuple) and len(out) == 2):
            got = f"a tuple of {len(out)}" if isinstance(out, tuple) else f"a {type(out).__name__}"
            raise ValueError(f"step must return (state, metrics), a pair, got {got}")
        return out[0], as_metrics(out[1])

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one program per feed layout, kept with self
    def _chunk_program(self, batch_fn, per_member: bool) -> Callable:
        member_step = functools.partial(self._member_step, batch_fn)
        vstep = jax.vmap(member_step, in_axes=(0, 0, 0 if per_member else None, None))

        def chunk(state, members, xs, data, num_valid):
            first = member_slice(xs, 0)
            nan_metrics = _float_nan_like(jax.eval_shape(vstep, state, members, first, data)[1])

            def body(carry, x):
                state, t = carry
                # The predicate is shared by all members, so this is a real branch: steps past
                # the end of a partial last chunk cost nothing and leave the state untouched.
                state, metrics = jax.lax.cond(
                    t < num_valid,
                    lambda s: vstep(s, members, x, data),
                    lambda s: (s, nan_metrics),
                    state,
                )
                return (state, t + 1), metrics

            (state, _), metrics = jax.lax.scan(body, (state, jnp.int32(0)), xs)
            return state, jax.tree.map(lambda m: jnp.swapaxes(m, 0, 1), metrics)

        kwargs = {"donate_argnums": (0,)} if self.donate else {}
        if self.mesh is not None:
            ms, rep = self.sharding(0), self.sharding(None)
            xs_sharding = self.sharding(1) if per_member else rep
            kwargs.update(
                in_shardings=(ms, ms, xs_sharding, rep, rep),
                out_shardings=(ms, ms),
            )
        return jax.jit(chunk, **kwargs)

    def _chunk_args(self, state, members, xs, data, num_valid, batch_fn, per_member):
        k = num_members(members)
        self._check_k(k)
        t = self._check_inputs(state, members, xs, data, batch_fn, per_member)
        num_valid = t if num_valid is None else int(num_valid)
        if not 0 <= num_valid <= t:
            raise ValueError(f"num_valid must be in [0, {t}], got {num_valid}")
        xs = self.put(xs, 1 if per_member else None)
        data = self.put(data, None)
        return state, self.put(members), xs, data, self.put(np.int32(num_valid), None)

    def run(
        self,
        state: PyTree,
        members: PyTree,
        xs: PyTree,
        data: PyTree = None,
        num_valid: int | None = None,
        *,
        batch_fn: Callable[[PyTree, PyTree], PyTree] | None = None,
        per_member_batches: bool = False,
    ) -> tuple[PyTree, dict[str, Array]]:
        """Advances every member by one chunk of ``T`` steps in one compiled program.

        Args:
          state: the stacked state ``[K, ...]`` (from :meth:`init` or an earlier run). Its
            buffers are donated: do not use the ``state`` you passed in afterwards.
          members: the stacked member settings ``[K, ...]``.
          xs: a pytree with a leading step axis ``T`` (then, with ``per_member_batches``, the
            member axis): the batches, or the inputs of ``batch_fn``.
          data: arrays constant over the chunk, passed to ``batch_fn`` (replicated).
          num_valid: run only the first ``num_valid`` steps (default all ``T``); the rest are
            skipped inside the program, their metrics ``nan``, so a short last chunk reuses the
            compiled program.
          batch_fn: ``batch_fn(data, x) -> batch``, run inside the program at every step on the
            step's scanned input ``x`` (e.g. gather a batch of device-resident arrays by
            indices). Default: ``x`` is the batch.
          per_member_batches: ``xs`` carries a member axis after the step axis, so each member
            gets its own batch. Default: one batch shared by all members (``in_axes=None``).

        Returns:
          ``(state, metrics)`` with each metric ``[K, T]``.
        """
        args = self._chunk_args(state, members, xs, data, num_valid, batch_fn, per_member_batches)
        return self._chunk_program(batch_fn, bool(per_member_batches))(*args)

    def compiled_bytes(
        self, state, members, xs, data=None, *, batch_fn=None, per_member_batches=False
    ) -> int | None:
        """Bytes one device holds while a chunk runs, by XLA's buffer assignment. The arguments
        may be abstract (``jax.ShapeDtypeStruct``)."""
        program = self._chunk_program(batch_fn, bool(per_member_batches))
        num_valid = jax.ShapeDtypeStruct((), jnp.int32)
        stats = program.lower(state, members, xs, data, num_valid).compile().memory_analysis()
        if stats is None:  # not every backend reports it
            return None
        total = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
        return int(total - stats.alias_size_in_bytes)

    # -- the debugging path -----------------------------------------------------------------------

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one program per feed layout, kept with self
    def _single_step(self, batch_fn) -> Callable:
        return jax.jit(functools.partial(self._member_step, batch_fn))

    @functools.cached_property
    def _single_init(self) -> Callable:
        return jax.jit(self.init_fn)

    def init_sequential(self, members: PyTree) -> PyTree:
        """:meth:`init` member by member, without vmap (host arrays)."""
        k = num_members(members)
        return _stack([self._single_init(member_slice(members, i)) for i in range(k)])

    def run_sequential(
        self,
        state,
        members,
        xs,
        data=None,
        num_valid=None,
        *,
        batch_fn=None,
        per_member_batches=False,
    ):
        """:meth:`run` without vmap or scan: a Python loop over members and steps."""
        k = num_members(members)
        t = self._check_inputs(state, members, xs, data, batch_fn, per_member_batches)
        single_step = self._single_step(batch_fn)
        num_valid = t if num_valid is None else int(num_valid)
        states, logs, skipped = [], [], None
        for i in range(k):
            member, member_state = member_slice(members, i), member_slice(state, i)
            member_logs = []
            for s in range(t):
                x = member_slice(xs, s)
                if per_member_batches:
                    x = member_slice(x, i)
                if s < num_valid:
                    member_state, metrics = single_step(member_state, member, x, data)
                else:  # the same nan metrics for every skipped step: shapes do not change
                    if skipped is None:
                        out = jax.eval_shape(single_step, member_state, member, x, data)
                        skipped = _float_nan_like(out[1])
                    metrics = skipped
                member_logs.append(jax.tree.map(np.asarray, metrics))
            states.append(member_state)
            logs.append(jax.tree.map(lambda *steps: np.stack(steps), *member_logs))
        return _stack(states), _stack(logs)

    # -- input checks, once per shape ------------------------------------------------------------

    def _check_inputs(self, state, members, xs, data, batch_fn, per_member) -> int:
        """Checks shapes and the step's output structure on abstract values; returns ``T``."""
        k = num_members(members)
        xs_leaves = jax.tree_util.tree_leaves_with_path(xs)
        if not xs_leaves:
            raise ValueError("xs must hold at least one array with a leading step axis")
        lengths = {
            _path_name("xs", p): np.shape(a)[0] if np.ndim(a) else None for p, a in xs_leaves
        }
        if None in lengths.values() or len(set(lengths.values())) != 1:
            raise ValueError(
                f"every leaf of xs needs the same leading step axis T, got lengths {lengths}"
            )
        t = next(iter(lengths.values()))
        if t < 1:
            raise ValueError("xs must hold at least one step, got T=0")
        key = (*map(_signature, (state, members, xs, data)), batch_fn, per_member)
        if key in self._checked:
            return t
        for path, leaf in jax.tree_util.tree_leaves_with_path(state):
            shape = np.shape(leaf)
            if not shape or shape[0] != k:
                raise ValueError(
                    f"state{jax.tree_util.keystr(path)} has shape {shape}, but every leaf of the "
                    f"state needs the leading member axis of size K={k} (build the state with "
                    "program.init(members), or stack K single-member states)"
                )
        if per_member:
            for path, leaf in xs_leaves:
                shape = np.shape(leaf)
                if len(shape) < 2 or shape[1] != k:
                    raise ValueError(
                        f"{_path_name('xs', path)} has shape {shape}; with per_member_batches "
                        f"it needs axes [T, K={k}, ...]"
                    )

        one_state, one_member = _abstract_slice(state), _abstract_slice(members)
        one_x = _abstract_slice(xs, 2 if per_member else 1)
        abstract_data = abstract(data)
        try:
            out = jax.eval_shape(
                functools.partial(self._member_step, batch_fn),
                one_state,
                one_member,
                one_x,
                abstract_data,
            )
        except jax.errors.UnexpectedTracerError as e:
            raise ValueError(
                "step uses a value traced in init: a function stored in the state (e.g. a Flax "
                "TrainState's tx, or an nnx.Optimizer's transformation) closes over a member's "
                "traced hyperparameter. Keep per-member hyperparameters in the optimizer state "
                "(optax.inject_hyperparams) or build the transformation inside step from "
                f"`member`. ({type(e).__name__}: {str(e).splitlines()[0]})"
            ) from e
        except Exception as e:
            if isinstance(e, ValueError) and str(e).startswith(_OUTPUT_ERRORS):
                raise ValueError(str(e)) from None  # short: it says what the step returned
            batch = one_x if batch_fn is None else f"batch_fn(data, x) of x {one_x}"
            raise ValueError(
                f"step(state, batch, member) failed for one member, with batch {batch}: "
                f"{type(e).__name__}: {e}"
            ) from e
        new_state, _ = out
        if jax.tree.structure(new_state) != jax.tree.structure(one_state):
            raise ValueError(
                "step must return a state with the structure of its input state; got\n"
                f"  {jax.tree.structure(new_state)}\nfor input\n  {jax.tree.structure(one_state)}"
            )
        for (path, new), old in zip(
            jax.tree_util.tree_leaves_with_path(new_state), jax.tree.leaves(one_state), strict=True
        ):
            if new.shape != old.shape or new.dtype != old.dtype:
                raise ValueError(
                    f"step changed state{jax.tree_util.keystr(path)} from {old.shape} {old.dtype} "
                    f"to {new.shape} {new.dtype}; a step must keep every shape and dtype"
                )
        self._checked.add(key)
        return t


def _stack(trees: Sequence[PyTree]) -> PyTree:
    def stack(*leaves):
        if is_key(leaves[0]):
            return jnp.stack(leaves)
        return np.stack([np.asarray(v) for v in leaves])

    return jax.tree.map(stack, *trees)


def vectorize(
    step: Step,
    init: Init | None = None,
    *,
    devices: Sequence[Any] | None = None,
    donate: bool = True,
    axis_names: Sequence[str] = ("batch",),
) -> Vectorized:
    """Turns one member's ``step`` (and ``init``) into one compiled program over K members.

    .. math:: (s^{(k)}_{t+1}, m^{(k)}_t) = \\mathrm{step}(s^{(k)}_t, b_t, h^{(k)}),
              \\qquad k = 1..K, \\; t = t_0..t_0 + T - 1

    evaluated as ``jax.jit(scan over t of vmap over k)``, with the member axis sharded over
    ``devices``: state :math:`s`, batch :math:`b`, member settings :math:`h`, metrics :math:`m`.

    Args:
      step: ``step(state, batch, member) -> (state, metrics)`` for ONE member: ``state`` any
        pytree of arrays, ``member`` that member's settings (traced, so new values never
        recompile), ``metrics`` a dict of arrays. The returned state must keep the structure,
        shapes and dtypes of the input state.
      init: ``init(member) -> state`` for one member (optional: you may build the stacked
        state yourself).
      devices: devices to split the member axis over (default: all); K must be a multiple of
        their number (:func:`lrjax.fit` pads).
      donate: donate the state's buffers to each chunk (halves peak memory).
      axis_names: collective axis names the step (and init) may reduce over, each bound over a
        size-1 axis (:func:`bind_axes`): a ``pmap``-style step that averages over a named batch
        axis (``lax.pmean(grads, 'batch')``, ``nn.BatchNorm(axis_name='batch')``, as in Flax's
        ImageNet example) runs unchanged, each member's batch being the whole batch.

    Returns:
      A :class:`Vectorized` program with ``init``, ``run`` and ``run_sequential``.
    """
    if isinstance(axis_names, str):
        axis_names = (axis_names,)
    if callable(step):
        step = _bound(step, tuple(axis_names))
    if callable(init):
        init = _bound(init, tuple(axis_names))
    return Vectorized(step, init, devices, donate)


def _bound(fn: Callable, names: tuple[str, ...]) -> Callable:
    """:func:`bind_axes`, once: a function bound already (a program's step, vectorized again)
    keeps its binding."""
    if not names or getattr(fn, "__lrjax_axes__", None) == names:
        return fn
    bound = bind_axes(fn, names)
    bound.__lrjax_axes__ = names
    bound.__wrapped__ = fn
    return bound
