"""The core primitive: one member's training step, vectorized into one compiled program.

You write the step of ONE model, as you would for a single run,

    step(state, batch, member) -> (state, metrics)

where ``state`` is any pytree of arrays (params, ``batch_stats``, an optimizer state, an RNG
key, a Flax ``TrainState``, an ``nnx.split`` state) and ``member`` is that member's settings
(its learning rate, dropout rate, seed: a pytree of traced scalars). :func:`vectorize` turns it
into a program over K members: ``jax.vmap`` over the member axis, a loop over a chunk of steps,
the member axis sharded over devices with ``jax.sharding``, the state's buffers donated, one
compilation per shape. ``init(member) -> state`` is vectorized the same way. Where that one
program is slow (a convolution on a CPU), the same step runs member by member instead
(``execution``, chosen from the step's jaxpr and the backend; see :func:`vectorize`).

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
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "EXECUTIONS",
    "MEMBER_AXIS",
    "Vectorized",
    "abstract",
    "as_metrics",
    "bind_axes",
    "compile_log",
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
    "uses_convolution",
    "vectorize",
]

PyTree = Any
Array = jax.Array
Step = Callable[[PyTree, PyTree, PyTree], tuple[PyTree, Mapping[str, Array]]]
Init = Callable[[PyTree], PyTree]
MEMBER_AXIS = "members"
EXECUTIONS = ("auto", "scan", "steps", "members")
# A program that compiles for longer than this says so once, while it compiles (seconds).
COMPILE_NOTICE_SECONDS = 5.0
logger = logging.getLogger("lrjax")


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


_COMPILES: dict = {"seconds": 0.0, "count": 0, "log": []}


@functools.cache
def _listen_to_compiles() -> None:
    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            _COMPILES["seconds"] += duration
            _COMPILES["count"] += 1
            _COMPILES["log"].append((str(kwargs.get("fun_name", "?")), duration))

    jax.monitoring.register_event_duration_secs_listener(listener)


def compile_stats() -> tuple[float, int]:
    """Total XLA compile seconds and the number of compilations in this process so far."""
    _listen_to_compiles()
    return _COMPILES["seconds"], _COMPILES["count"]


def compile_log() -> list[tuple[str, float]]:
    """Every XLA compilation in this process so far (since lrjax started listening), as
    ``(name, seconds)``; the engine's own programs are named ``jit(lrjax_init)``,
    ``jit(lrjax_chunk)`` (``execution="scan"``), ``jit(lrjax_step)`` (``"steps"``),
    ``jit(lrjax_member_step)`` (``"members"``) and its helpers ``jit(lrjax_...)``."""
    _listen_to_compiles()
    return list(_COMPILES["log"])


def _named(fn: Callable, name: str) -> Callable:
    """``fn`` under ``name`` (what JAX calls the compiled program in logs and compile_log)."""

    @functools.wraps(fn)
    def named(*args, **kwargs):
        return fn(*args, **kwargs)

    named.__name__ = named.__qualname__ = name
    return named


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
    leaves = tuple((np.shape(a), _dtype(a)) for a in jax.tree.leaves(tree))
    return jax.tree.structure(tree), leaves


def _float_nan_like(abstract: PyTree) -> PyTree:
    def fill(a):
        if jnp.issubdtype(a.dtype, jnp.inexact):
            return jnp.full(a.shape, jnp.nan, a.dtype)
        return jnp.zeros(a.shape, a.dtype)

    return jax.tree.map(fill, abstract)


def _jaxprs(jaxpr) -> Iterator[Any]:
    """``jaxpr`` and every jaxpr nested in it (the bodies of jit, scan, cond, remat, ...)."""
    from jax.extend.core import jaxprs_in_params

    yield jaxpr
    for eqn in jaxpr.eqns:
        for inner in jaxprs_in_params(eqn.params):
            yield from _jaxprs(inner)


def uses_convolution(closed_jaxpr: Any) -> bool:
    """Whether a (closed) jaxpr holds a ``conv_general_dilated`` anywhere, nested ones included
    (``flax.linen.Conv``, ``nnx.Conv``, ``equinox.nn.Conv`` and their gradients all lower to
    it)."""
    jaxpr = getattr(closed_jaxpr, "jaxpr", closed_jaxpr)
    return any(
        eqn.primitive.name == "conv_general_dilated" for j in _jaxprs(jaxpr) for eqn in j.eqns
    )


class _CompileNotice:
    """Around the first call of a program (the one that compiles): says so once, on the
    ``lrjax`` logger, when it takes over :data:`COMPILE_NOTICE_SECONDS` (while it still runs,
    from a timer; a silent wait of minutes looks like a hang)."""

    def __init__(self, what: str):
        self.what = what
        self.said = False
        self.lock = threading.Lock()

    def notice(self) -> None:
        with self.lock:
            if self.said:
                return
            self.said = True
        logger.warning(
            "lrjax: compiling %s: over %.0f s so far (once; later chunks reuse it)",
            self.what,
            COMPILE_NOTICE_SECONDS,
        )

    def __call__(self, program: Callable, *args: Any) -> Any:
        timer = threading.Timer(COMPILE_NOTICE_SECONDS, self.notice)
        timer.daemon = True
        start = time.perf_counter()
        timer.start()
        try:
            return program(*args)
        finally:
            timer.cancel()
            if time.perf_counter() - start >= COMPILE_NOTICE_SECONDS:
                self.notice()


def _call(notice: _CompileNotice | None, program: Callable, *args: Any) -> Any:
    """``program(*args)``, under ``notice`` when this call may compile."""
    return program(*args) if notice is None else notice(program, *args)


def _index(tree: PyTree, t: Any) -> PyTree:
    """Entry ``t`` (traced) of the leading axis of every leaf."""
    return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, t, 0, keepdims=False), tree)


class _Plan(NamedTuple):
    """What one input signature of a chunk compiles to: the steps ``T``, the execution, and one
    member's metrics (abstract)."""

    steps: int
    execution: str
    metrics: PyTree


class Vectorized:
    """``step`` and ``init`` of one member, compiled over K members. Build with :func:`vectorize`.

    Methods:
      init(members) -> state: every member's initial state, stacked on a leading axis.
      run(state, members, xs, data=None, num_valid=None) -> (state, metrics): one chunk of
        ``T = len(xs)`` steps; ``metrics`` leaves are ``[K, T]``.
      dispatch(...) -> (state, collect): ``run`` without waiting for the metrics.
      run_sequential(...): the same, member by member and step by step with a jitted
        single-member step, synchronizing after every step (for debugging; results agree).
      execution_for(members, batch) -> str: the execution ``"auto"`` resolves to.
      on(devices) -> Vectorized: the same program over other devices.
    """

    def __init__(
        self,
        step: Step,
        init: Init | None,
        devices: Sequence[Any] | None,
        donate: bool,
        execution: str = "auto",
    ):
        if not callable(step):
            raise ValueError(f"step must be a function step(state, batch, member), got {step!r}")
        if init is not None and not callable(init):
            raise ValueError(f"init must be a function init(member) -> state, got {init!r}")
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
        if execution in ("steps", "members") and jax.process_count() > 1:
            raise ValueError(
                f"execution={execution!r} dispatches steps from one Python process; with "
                f"{jax.process_count()} processes use execution='scan' (or 'auto')"
            )
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
        self.execution = execution
        self._plans: dict = {}
        self._resolved: dict = {}
        self._started: set = set()
        self._siblings: dict = {}
        self._split: list = []  # see _keep_split
        self._init_checked: set = set()  # see init
        _listen_to_compiles()

    def on(self, devices: Sequence[Any]) -> Vectorized:
        """The same step, init and execution over ``devices`` (cached: its compiled programs
        are reused by every later call)."""
        devices = list(devices)
        if devices == self.devices:
            return self
        key = tuple(d.id for d in devices)
        if key not in self._siblings:
            self._siblings[key] = Vectorized(
                self.step, self.init_fn, devices, self.donate, self.execution
            )
        return self._siblings[key]

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
        if sharding is None:  # arrays on a device stay (jnp.asarray of one costs a dispatch)
            return jax.tree.map(lambda a: a if isinstance(a, jax.Array) else jnp.asarray(a), tree)

        def place(a):
            if isinstance(a, jax.Array):
                if a.sharding.is_equivalent_to(sharding, a.ndim):
                    return a
                if not a.is_fully_addressable or is_key(a):  # global arrays, PRNG keys
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

    # -- the execution ----------------------------------------------------------------------------

    def _resolve(self, closed_jaxpr: Any) -> str:
        """``auto``: one member at a time when the backend is a CPU and the step convolves
        (XLA's CPU backend runs a convolution inside a loop body many times slower than outside
        one, jax issue 12868, and vmap turns convolutions into grouped ones, slower still: a
        single model's convolution is the fastest there is); one scanned program otherwise."""
        if self.execution != "auto":
            return self.execution
        if jax.process_count() > 1 or self.devices[0].platform != "cpu":
            return "scan"
        return "members" if uses_convolution(closed_jaxpr) else "scan"

    def execution_for(self, members: PyTree, batch: PyTree) -> str:
        """The execution this program uses for ``members`` (stacked, or abstract) and one
        ``batch`` (the step's own input, after any ``batch_fn``): ``execution`` unless it is
        ``"auto"``, which traces one member's step (``init`` gives its state) and picks."""
        if self.execution != "auto":
            return self.execution
        if jax.process_count() > 1 or self.devices[0].platform != "cpu":
            return "scan"
        member = _abstract_slice(members)
        batch = abstract(batch)
        key = (_signature(member), _signature(batch))
        if key not in self._resolved:
            if self.init_fn is None:
                raise ValueError("execution_for needs an init; pass init= to lrjax.vectorize")
            state = jax.eval_shape(self.init_fn, member)
            self._resolved[key] = self._resolve(jax.make_jaxpr(self.step)(state, batch, member))
        return self._resolved[key]

    # -- init -----------------------------------------------------------------------------------

    @property
    def _init_per_member(self) -> bool:
        """Whether ``init`` runs member after member (ONE member's init, compiled once and
        called K times on the first device; the states then stacked and split over the
        devices): on CPUs. It compiles like the user's own init (8 members of ResNet basic
        blocks: 5.6 s for the first call against 10.2 s vmapped), runs in milliseconds either
        way (the CNN's 8 inits 0.76x the vmapped time, the ResNet blocks' 5x but 10 ms;
        ``docs/results/bench/measurements.md``), and a vmapped init of orthogonal initializers
        (``nn.LSTMCell``'s QRs) hung on its second call on this CPU, even on one device (jax
        0.10.2)."""
        return jax.process_count() == 1 and self.devices[0].platform == "cpu"

    @functools.cached_property
    def _init_program(self) -> Callable:
        """The compiled init over all members, vmapped, split over the devices."""
        sharded = self.sharding(0)
        kwargs = {} if sharded is None else {"in_shardings": sharded, "out_shardings": sharded}
        return jax.jit(_named(jax.vmap(self.init_fn), "lrjax_init"), **kwargs)

    def init(self, members: PyTree) -> PyTree:
        """Every member's initial state ``init(member)``, stacked along a leading member axis
        (on a CPU, member after member on the first device, then split over the devices)."""
        if self.init_fn is None:
            raise ValueError("this program has no init; pass init= to lrjax.vectorize")
        k = num_members(members)
        self._check_k(k)
        one = _abstract_slice(members)
        key = _signature(one)
        if key not in self._init_checked:  # once per member layout (fit inits every group)
            try:
                jax.eval_shape(self.init_fn, one)
            except Exception as e:
                raise ValueError(
                    f"init(member) failed for one member {_describe(one)}: {type(e).__name__}: {e}"
                ) from e
            self._init_checked.add(key)
        if not self._init_per_member:
            return self._init_program(self.put(members))
        if self.mesh is not None:
            members = jax.tree.map(lambda a: jax.device_put(a, self.devices[0]), members)
        states = [self._single_init(member_slice(members, i)) for i in range(k)]
        # Stacked on the host (a CPU's memory either way): a stacking program would compile
        # for every group size, longer than the step itself for a conv net's 8 members.
        return self.put(_stack(states), 0)

    # -- one chunk --------------------------------------------------------------------------------

    def _member_step(self, batch_fn, state, member, x, data):
        batch = x if batch_fn is None else batch_fn(data, x)
        out = self.step(state, batch, member)
        if not (isinstance(out, tuple) and len(out) == 2):
            got = f"a tuple of {len(out)}" if isinstance(out, tuple) else f"a {type(out).__name__}"
            raise ValueError(f"step must return (state, metrics), a pair, got {got}")
        return out[0], as_metrics(out[1])

    def _vstep(self, batch_fn, per_member: bool, k: int) -> Callable:
        """The step of ``k`` stacked members: vmapped, or for one member its own step on the
        member's slice, the program the user's own loop runs (a batch of one can be slower:
        30 scanned steps of the transformer took 1.04x the user's loop's time vmapped, 0.94x
        unbatched; the BiLSTM's were within noise; ``docs/results/bench/measurements.md``)."""
        if k > 1:
            member_step = functools.partial(self._member_step, batch_fn)
            return jax.vmap(member_step, in_axes=(0, 0, 0 if per_member else None, None))
        alone = self._alone(batch_fn)
        if not per_member:
            return alone
        return lambda state, members, x, data: alone(state, members, member_slice(x, 0), data)

    def _alone(self, batch_fn) -> Callable:
        """One member's step on its state and settings kept stacked (a leading axis of size 1),
        given its own batch input: the program of one member, with no batch of one."""

        def alone(state, member, x, data):
            out = self._member_step(
                batch_fn, member_slice(state, 0), member_slice(member, 0), x, data
            )
            return jax.tree.map(lambda a: a[None], out)

        return alone

    def _jit_kwargs(self, per_member: bool, *rest: Any) -> dict:
        """Donation and shardings of ``(state, members, xs, *rest, data)`` -> ``(state, metrics)``
        (``rest`` replicated scalars)."""
        kwargs = {"donate_argnums": (0,)} if self.donate else {}
        if self.mesh is not None:
            ms, rep = self.sharding(0), self.sharding(None)
            xs_sharding = self.sharding(1) if per_member else rep
            kwargs.update(
                in_shardings=(ms, ms, xs_sharding, *[rep for _ in rest], rep),
                out_shardings=(ms, ms),
            )
        return kwargs

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one program per feed layout, kept with self
    def _chunk_program(self, batch_fn, per_member: bool, metrics: Any) -> Callable:
        """``execution="scan"``: the chunk as one program, a loop of ``num_valid`` vmapped steps
        (a loop bound read at run time: a short last chunk reuses the program and its missing
        steps cost nothing)."""
        treedef, shapes = metrics

        def chunk(state, members, xs, num_valid, data):
            k, t = num_members(members), jax.tree.leaves(xs)[0].shape[0]
            vstep = self._vstep(batch_fn, per_member, k)
            logged = jax.tree.unflatten(
                treedef, [jnp.full((t, k, *s), jnp.nan, d) for s, d in shapes]
            )
            logged = jax.tree.map(
                lambda m: m if jnp.issubdtype(m.dtype, jnp.inexact) else jnp.zeros_like(m), logged
            )

            def body(i, carry):
                state, logged = carry
                state, metrics = vstep(state, members, _index(xs, i), data)
                logged = jax.tree.map(
                    lambda buf, m: jax.lax.dynamic_update_index_in_dim(buf, m, i, 0),
                    logged,
                    metrics,
                )
                return state, logged

            state, logged = jax.lax.fori_loop(0, num_valid, body, (state, logged))
            return state, jax.tree.map(lambda m: jnp.swapaxes(m, 0, 1), logged)

        return jax.jit(_named(chunk, "lrjax_chunk"), **self._jit_kwargs(per_member, "num_valid"))

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one program per feed layout, kept with self
    def _step_program(self, batch_fn, per_member: bool) -> Callable:
        """``execution="steps"``: one vmapped step, dispatched once per step from Python."""

        def one(state, members, xs, t, data):
            vstep = self._vstep(batch_fn, per_member, num_members(members))
            return vstep(state, members, _index(xs, t), data)

        return jax.jit(_named(one, "lrjax_step"), **self._jit_kwargs(per_member, "t"))

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one program per feed layout, kept with self
    def _member_program(self, batch_fn, per_member: bool) -> Callable:
        """``execution="members"``: ONE member's step (no vmap) on every device at once, each
        device its own member (the member's state and settings keep a leading axis, one entry
        per device), dispatched once per member of a device and step. Over several devices it
        is one program (``shard_map``), compiled once for all of them."""

        alone = self._alone(batch_fn)

        def one(state, member, xs, t, k, data):
            x = _index(xs, t)
            return alone(state, member, _index(x, k) if per_member else x, data)

        donate = (0,) if self.donate else ()
        if self.mesh is not None:
            lanes, rep = P(MEMBER_AXIS), P()
            xs_spec = P(None, MEMBER_AXIS) if per_member else rep
            one = jax.shard_map(
                one, mesh=self.mesh, in_specs=(lanes, lanes, xs_spec, rep, rep, rep),
                out_specs=(lanes, lanes), check_vma=False,
            )  # fmt: skip
        return jax.jit(_named(one, "lrjax_member_step"), donate_argnums=donate)

    @functools.cache  # noqa: B019 - one per member count, kept with self
    def _lanes_programs(self, per_lane: int) -> tuple[Callable, Callable]:
        """``(split, join)`` between a stacked tree ``[n * per_lane, ...]`` (device ``d`` holding
        rows ``d * per_lane ...``) and ``per_lane`` trees ``[n, ...]``, tree ``j`` the ``j``-th
        member of every device: each device splits and joins its own rows."""

        def split(tree):
            return [member_slice(tree, j, j + 1) for j in range(per_lane)]

        def join(*trees):
            return jax.tree.map(lambda *a: jnp.concatenate(a), *trees)

        if self.mesh is not None:
            lanes = P(MEMBER_AXIS)
            split = jax.shard_map(split, mesh=self.mesh, in_specs=lanes, out_specs=lanes)
            join = jax.shard_map(join, mesh=self.mesh, in_specs=lanes, out_specs=lanes)
        return jax.jit(_named(split, "lrjax_split")), jax.jit(_named(join, "lrjax_concat"))

    def _chunk_args(self, state, members, xs, data, num_valid, batch_fn, per_member):
        k = num_members(members)
        self._check_k(k)
        plan = self._plan(state, members, xs, data, batch_fn, per_member)
        num_valid = plan.steps if num_valid is None else int(num_valid)
        if not 0 <= num_valid <= plan.steps:
            raise ValueError(f"num_valid must be in [0, {plan.steps}], got {num_valid}")
        xs = self.put(xs, 1 if per_member else None)
        data = self.put(data, None)
        return plan, (state, self.put(members), xs, num_valid, data)

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
        """Advances every member by one chunk of ``T`` steps.

        How depends on the program's ``execution`` (see :func:`vectorize`): one compiled
        program for the chunk (``"scan"``), or a compiled step dispatched from Python per step
        (``"steps"``) or per member and step (``"members"``). All give the same results.

        Args:
          state: the stacked state ``[K, ...]`` (from :meth:`init` or an earlier run). Its
            buffers are donated: do not use the ``state`` you passed in afterwards.
          members: the stacked member settings ``[K, ...]``.
          xs: a pytree with a leading step axis ``T`` (then, with ``per_member_batches``, the
            member axis): the batches, or the inputs of ``batch_fn``.
          data: arrays constant over the chunk, passed to ``batch_fn`` (replicated).
          num_valid: run only the first ``num_valid`` steps (default all ``T``); the rest are
            skipped, their metrics ``nan``, so a short last chunk reuses the compiled program.
          batch_fn: ``batch_fn(data, x) -> batch``, run inside the program at every step on the
            step's scanned input ``x`` (e.g. gather a batch of device-resident arrays by
            indices). Default: ``x`` is the batch.
          per_member_batches: ``xs`` carries a member axis after the step axis, so each member
            gets its own batch. Default: one batch shared by all members (``in_axes=None``).

        Returns:
          ``(state, metrics)`` with each metric ``[K, T]``.
        """
        state, collect = self.dispatch(
            state, members, xs, data, num_valid,
            batch_fn=batch_fn, per_member_batches=per_member_batches,
        )  # fmt: skip
        return state, collect()

    def dispatch(
        self,
        state: PyTree,
        members: PyTree,
        xs: PyTree,
        data: PyTree = None,
        num_valid: int | None = None,
        *,
        batch_fn: Callable[[PyTree, PyTree], PyTree] | None = None,
        per_member_batches: bool = False,
    ) -> tuple[PyTree, Callable[[], dict[str, Array]]]:
        """:meth:`run` without waiting: returns ``(state, collect)`` once the chunk's work is
        queued on the devices, ``collect()`` its metrics (waiting for them where they are read
        back). The host may queue the next chunk from ``state`` before collecting this one's,
        so the devices never wait for it in between (:func:`lrjax.fit` does, without hooks).
        """
        per_member = bool(per_member_batches)
        plan, args = self._chunk_args(state, members, xs, data, num_valid, batch_fn, per_member)
        state, members, xs, num_valid, data = args
        key = (plan.execution, batch_fn, per_member, _signature(args))
        notice = None
        if key not in self._started:
            k = num_members(members)
            notice = _CompileNotice(f"the {plan.execution} program of {k} members")
            self._started.add(key)
        if plan.execution == "scan":
            program = self._chunk_program(batch_fn, per_member, _spec(plan.metrics))
            state, metrics = _call(notice, program, state, members, xs, np.int32(num_valid), data)
            return state, lambda: metrics
        run = self._run_steps if plan.execution == "steps" else self._run_members
        return run(plan, notice, state, members, xs, num_valid, data, batch_fn, per_member)

    @staticmethod
    def _skipped(plan: _Plan, *lead: int) -> dict:
        """Host metrics of skipped steps, axes ``lead``: ``nan`` (0 for integers). NumPy, so
        no shape of them compiles anything."""

        def fill(m):
            value = np.nan if jnp.issubdtype(m.dtype, jnp.inexact) else 0
            return np.full((*lead, *m.shape), value, m.dtype)

        return jax.tree.map(fill, plan.metrics)

    def _run_steps(self, plan, notice, state, members, xs, num_valid, data, batch_fn, per_member):
        program = self._step_program(batch_fn, per_member)
        k, logged = num_members(members), []
        for t in range(num_valid):
            state, metrics = _call(notice, program, state, members, xs, np.int32(t), data)
            notice = None
            logged.append(metrics)
        return state, lambda: _gather_steps(logged, self._skipped(plan, k, plan.steps - num_valid))

    def _run_members(self, plan, notice, state, members, xs, num_valid, data, batch_fn, per_member):
        """Members one at a time on each device, with a compiled step of one member: step ``t``
        of the ``j``-th member of every device at once; every step is dispatched before any
        result is read."""
        program = self._member_program(batch_fn, per_member)
        n = self.num_devices
        per_lane = num_members(members) // n
        split, join = self._lanes_programs(per_lane)
        states = self._take_split(state)
        if states is None:
            states = [state] if per_lane == 1 else _split_program(split, state)
        settings = [members] if per_lane == 1 else _split_program(split, members)
        logged = []
        for j in range(per_lane):
            lane_logs = []
            for t in range(num_valid):
                states[j], metrics = _call(
                    notice, program, states[j], settings[j], xs, np.int32(t), np.int32(j), data
                )
                notice = None
                lane_logs.append(metrics)
            logged.append(lane_logs)
        if per_lane == 1:  # the state IS the lane: nothing to keep
            state = states[0]
        else:
            state = join(*states)
            self._keep_split(state, states)

        def collect():
            skipped = self._skipped(plan, n, plan.steps - num_valid)
            lanes = [_gather_steps(lane_logs, skipped, axis=1) for lane_logs in logged]
            return jax.tree.map(
                lambda *a: np.stack(a, axis=1).reshape(n * per_lane, *a[0].shape[1:]), *lanes
            )

        return state, collect

    def _keep_split(self, state: PyTree, kept: list) -> None:
        """Keeps the members' own states behind the stacked ``state`` a chunk returned, while
        ``state`` lives, so that the next chunk from the same ``state`` starts from them instead
        of splitting it again: one copy of the state less per chunk (for the Flax MNIST CNN, 8
        members, about 14 ms against 200 ms for two steps). One entry per live state: the groups
        of a run each keep theirs (their states are then held twice, stacked and split)."""
        entry: list = []
        refs = [weakref.ref(a, lambda _: entry.clear()) for a in jax.tree.leaves(state)]
        entry += [refs, kept]
        self._split = [e for e in self._split if e] + [entry]

    def _take_split(self, state: PyTree) -> list | None:
        """The members' states :meth:`_keep_split` kept for exactly this ``state`` (the same
        arrays), once: they are donated to the chunk that takes them."""
        leaves = jax.tree.leaves(state)
        for entry in self._split:
            if entry and len(entry[0]) == len(leaves):
                if all(r() is a for r, a in zip(entry[0], leaves, strict=True)):
                    self._split = [e for e in self._split if e is not entry]
                    return entry[1]
        return None

    def compiled_bytes(
        self, state, members, xs, data=None, *, batch_fn=None, per_member_batches=False
    ) -> int | None:
        """Bytes one device holds while a chunk runs, by XLA's buffer assignment. The arguments
        may be abstract (``jax.ShapeDtypeStruct``)."""
        per_member = bool(per_member_batches)
        plan = self._plan(state, members, xs, data, batch_fn, per_member)
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        if plan.execution == "scan":
            program = self._chunk_program(batch_fn, per_member, _spec(plan.metrics))
            lowered = program.lower(state, members, xs, scalar, data)
        elif plan.execution == "steps":
            lowered = self._step_program(batch_fn, per_member).lower(
                state, members, xs, scalar, data
            )
        else:  # one member's step, beside the other members' states
            one = _abstract_slice(state), _abstract_slice(members)
            one = jax.tree.map(lambda a: jax.ShapeDtypeStruct((1, *a.shape), a.dtype), one)
            alone = self.on(self.devices[:1])  # one device's share: one member's step
            program = alone._member_program(batch_fn, per_member)
            lowered = program.lower(*one, xs, scalar, scalar, data)
        stats = lowered.compile().memory_analysis()
        if stats is None:  # not every backend reports it
            return None
        total = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
        total -= stats.alias_size_in_bytes
        if plan.execution == "members":
            k = num_members(members)
            state_bytes = sum(
                np.prod(np.shape(a)) * _dtype(a).itemsize for a in jax.tree.leaves(state)
            )
            total += int(state_bytes * (k - 1) / max(k, 1) / self.num_devices)
        return int(total)

    # -- the debugging path -----------------------------------------------------------------------

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one program per feed layout, kept with self
    def _single_step(self, batch_fn) -> Callable:
        return jax.jit(functools.partial(self._member_step, batch_fn))

    @functools.cached_property
    def _single_init(self) -> Callable:
        return jax.jit(_named(self.init_fn, "lrjax_init"))

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
        plan = self._plan(state, members, xs, data, batch_fn, per_member_batches)
        t = plan.steps
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
                        skipped = _float_nan_like(plan.metrics)
                    metrics = skipped
                member_logs.append(jax.tree.map(np.asarray, metrics))
            states.append(member_state)
            logs.append(jax.tree.map(lambda *steps: np.stack(steps), *member_logs))
        return _stack(states), _stack(logs)

    # -- input checks, once per shape ------------------------------------------------------------

    def _plan(self, state, members, xs, data, batch_fn, per_member) -> _Plan:
        """Checks shapes and the step's output structure on abstract values (one trace of the
        step per input signature, which also decides the execution)."""
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
        key = (*map(_signature, (state, members, xs, data)), batch_fn, bool(per_member))
        if key in self._plans:
            return self._plans[key]
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
            closed, out = jax.make_jaxpr(
                functools.partial(self._member_step, batch_fn), return_shape=True
            )(one_state, one_member, one_x, abstract_data)
        except jax.errors.UnexpectedTracerError as e:
            raise ValueError(f"step uses a value traced in init: {_TRACED} "
                             f"({type(e).__name__}: {str(e).splitlines()[0]})") from e  # fmt: skip
        except Exception as e:
            if isinstance(e, ValueError) and str(e).startswith(_OUTPUT_ERRORS):
                raise ValueError(str(e)) from None  # short: it says what the step returned
            batch = one_x if batch_fn is None else f"batch_fn(data, x) of x {one_x}"
            # A tracer of init's trace left in the state's static part fails the step in ways
            # that need not name it (an init compiled alone leaks no vmap tracer): say so.
            hint = ""
            if _holds_tracer(jax.tree.structure(one_state)):
                hint = f". The state's static part holds a value traced in init: if {_TRACED}"
            raise ValueError(
                f"step(state, batch, member) failed for one member, with batch {batch}: "
                f"{type(e).__name__}: {e}{hint}"
            ) from e
        new_state, metrics = out
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
        plan = _Plan(t, self._resolve(closed), metrics)
        self._plans[key] = plan
        return plan


_TRACED = (
    "a function stored in the state (e.g. a Flax TrainState's tx, or an nnx.Optimizer's "
    "transformation) closes over a member's traced hyperparameter. Keep per-member "
    "hyperparameters in the optimizer state (optax.inject_hyperparams) or build the "
    "transformation inside step from `member`."
)


def _holds_tracer(obj: Any, depth: int = 0) -> bool:
    """Whether the static part of a state (a treedef's node data: a TrainState's ``tx``, its
    closures and their cells) holds a tracer. Not an error by itself (``inject_hyperparams``
    keeps its traced initial value in a closure that ``update`` never reads): consulted only
    once the step has failed."""
    if isinstance(obj, jax.core.Tracer):
        return True
    if depth > 12:
        return False
    if isinstance(obj, jax.tree_util.PyTreeDef):
        data = obj.node_data()
        children = [*(data[1:] if data else ()), *obj.children()]
    elif isinstance(obj, tuple | list):
        children = obj
    elif isinstance(obj, dict):
        children = obj.values()
    elif isinstance(obj, functools.partial):
        children = (obj.func, *obj.args, *obj.keywords.values())
    elif callable(obj) and getattr(obj, "__closure__", None):
        children = [_cell_contents(c) for c in obj.__closure__]
    else:
        return False
    return any(_holds_tracer(c, depth + 1) for c in children)


def _cell_contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell: a variable assigned after the closure was made
        return None


def _spec(metrics: PyTree) -> tuple:
    """A hashable description of abstract metrics (a static argument of a program)."""
    leaves, treedef = jax.tree.flatten(metrics)
    return treedef, tuple((tuple(a.shape), a.dtype) for a in leaves)


def _gather_steps(logged: list, skipped: PyTree, axis: int = 1) -> PyTree:
    """Per-step metrics (device arrays) as host arrays with a step axis at ``axis``, followed by
    the ``skipped`` steps' metrics; one transfer for all of them."""
    host = jax.device_get(logged)
    if not host:
        return skipped
    stacked = jax.tree.map(lambda *steps: np.stack(steps, axis=axis), *host)
    return jax.tree.map(lambda a, b: np.concatenate([a, b], axis=axis), stacked, skipped)


def _split_program(split: Callable, tree: PyTree) -> list:
    """``split(tree)`` (a module-level call, so that tests can count the splits)."""
    return list(split(tree))


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
    execution: str = "auto",
) -> Vectorized:
    """Turns one member's ``step`` (and ``init``) into one compiled program over K members.

    .. math:: (s^{(k)}_{t+1}, m^{(k)}_t) = \\mathrm{step}(s^{(k)}_t, b_t, h^{(k)}),
              \\qquad k = 1..K, \\; t = t_0..t_0 + T - 1

    evaluated as ``jax.jit(loop over t of vmap over k)``, with the member axis sharded over
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
      execution: how a chunk runs; every choice gives the same results (to float round-off)
        and compiles once per input shape:

        * ``"scan"``: the chunk is one program, a loop of the vmapped step. The fewest
          dispatches: the right choice on GPUs and TPUs, and on CPUs for steps without
          convolutions.
        * ``"steps"``: the vmapped step is one program, dispatched once per step from Python
          (no loop in the program: XLA's CPU backend runs a convolution inside a loop body
          many times slower than outside one, jax issue 12868).
        * ``"members"``: one member's step (no vmap) is the program, dispatched per member and
          step; over several devices one program runs a member on every device at once
          (``shard_map``, compiled once). Under vmap a convolution with
          per-member filters becomes a grouped convolution, which XLA's CPU backend runs 2-4x
          slower per member than K separate ones; this runs the user's own loop, without its
          synchronizations.
        * ``"auto"`` (default): ``"members"`` on a CPU when the step holds a convolution
          (:func:`uses_convolution`, read from the step's jaxpr), ``"scan"`` otherwise.

    Returns:
      A :class:`Vectorized` program with ``init``, ``run`` and ``run_sequential``.
    """
    if isinstance(axis_names, str):
        axis_names = (axis_names,)
    if callable(step):
        step = _bound(step, tuple(axis_names))
    if callable(init):
        init = _bound(init, tuple(axis_names))
    return Vectorized(step, init, devices, donate, execution)


def _bound(fn: Callable, names: tuple[str, ...]) -> Callable:
    """:func:`bind_axes`, once: a function bound already (a program's step, vectorized again)
    keeps its binding."""
    if not names or getattr(fn, "__lrjax_axes__", None) == names:
        return fn
    bound = bind_axes(fn, names)
    bound.__lrjax_axes__ = names
    bound.__wrapped__ = fn
    return bound
