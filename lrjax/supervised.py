"""Supervised training of one member, as a step for :func:`lrjax.vectorize`.

:class:`Model` holds a model as pure functions, with or without state (batch statistics) and
randomness (dropout): plain ``(init, apply)`` pairs, ``flax.linen`` modules (mutable
collections, ``rngs``) and ``flax.nnx`` modules (``BatchNorm``, ``Dropout``, through
``nnx.split``/``nnx.merge`` inside the step). :class:`Supervised` is the step researchers write
for a classifier or regressor: forward in training mode, a per-example loss, the gradient, an
optax update with the member's hyperparameters injected into the optimizer state. It is what
:func:`lrjax.sweep.train` and the range tests vectorize.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks, engine

__all__ = ["Member", "Model", "State", "Supervised", "accuracy"]

PyTree = Any
Array = jax.Array


def accuracy(logits: Array, labels: Array) -> Array:
    """Per-example top-1 accuracy (1.0 or 0.0) of ``logits[..., classes]`` against int labels."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


# -----------------------------------------------------------------------------------------------
# Models


class Model(NamedTuple):
    """A model as pure functions.

    Stateless (two functions, as before): ``init(key) -> params`` and
    ``apply(params, x) -> outputs``.

    With state or randomness (batch statistics, dropout), two more:
    ``init_state(key) -> state`` and ``apply_train(params, state, x, key) -> (outputs, state)``
    (training mode: batch statistics from the batch, dropout drawn from ``key``), and ``apply``
    takes the state: ``apply(params, state, x) -> outputs`` (evaluation mode: running
    statistics, no dropout).

    Build one from Flax with :meth:`from_linen` or :meth:`from_nnx`.
    """

    init: Callable[[Array], PyTree]
    apply: Callable[..., Array]
    init_state: Callable[[Array], PyTree] | None = None
    apply_train: Callable[..., tuple[Array, PyTree]] | None = None

    @property
    def stateful(self) -> bool:
        return self.init_state is not None

    def train_outputs(self, params, state, x, key) -> tuple[Array, PyTree]:
        """Outputs in training mode and the updated model state."""
        if not self.stateful:
            return self.apply(params, x), state
        return self.apply_train(params, state, x, key)

    def eval_outputs(self, params, state, x) -> Array:
        """Outputs in evaluation mode."""
        return self.apply(params, state, x) if self.stateful else self.apply(params, x)

    def variables(self, params, state) -> PyTree:
        """Everything evaluation needs, in one pytree: ``params`` for a stateless model,
        ``{"params": params, **state}`` (linen's layout) for a model with state."""
        return {"params": params, **state} if self.stateful else params

    def predict(self, variables, x) -> Array:
        """Outputs in evaluation mode from :meth:`variables` (e.g. a snapshot or an average).

        Examples:
          >>> import jax.numpy as jnp
          >>> m = Model(lambda key: jnp.ones(2), lambda p, x: x @ p)
          >>> m.predict(m.variables(jnp.ones(2), {}), jnp.ones((3, 2))).tolist()
          [2.0, 2.0, 2.0]
        """
        if not self.stateful:
            return self.apply(variables, x)
        state = {k: v for k, v in variables.items() if k != "params"}
        return self.apply(variables["params"], state, x)

    @classmethod
    def from_linen(
        cls,
        module: Any,
        sample_input: Any,
        *,
        train_kwargs: Mapping[str, Any] | None = None,
        eval_kwargs: Mapping[str, Any] | None = None,
        rng_collections: Sequence[str] = ("dropout",),
    ) -> Model:
        """Wraps a ``flax.linen.Module``; ``sample_input`` is a batch used to build variables.

        Trained: the ``params`` collection. Every other collection (``batch_stats``) is model
        state, updated in training mode (``mutable``). Training and evaluation mode are chosen
        by keyword arguments of the module's ``__call__``: by default ``train=True/False`` if
        it takes ``train``, else ``deterministic=False/True`` if it takes ``deterministic``.
        Each step draws ``rngs`` for ``rng_collections`` from the member's step key.
        """
        sample = jnp.asarray(sample_input)
        default_train, default_eval = _linen_mode_kwargs(module)
        train_kwargs = dict(default_train if train_kwargs is None else train_kwargs)
        eval_kwargs = dict(default_eval if eval_kwargs is None else eval_kwargs)
        rng_collections = tuple(rng_collections)

        def rngs(key):
            streams = {c: jax.random.fold_in(key, i + 1) for i, c in enumerate(rng_collections)}
            return {"params": key, **streams}

        def variables(key):
            return dict(module.init(rngs(key), sample, **eval_kwargs))

        collections = [c for c in jax.eval_shape(variables, jax.random.key(0)) if c != "params"]
        if not collections and not train_kwargs:

            def init(key):
                return variables(key)["params"]

            def apply(params, x):
                return module.apply({"params": params}, x)

            return cls(init, apply)

        def init_params(key):
            return variables(key)["params"]

        def init_state(key):
            return {c: v for c, v in variables(key).items() if c != "params"}

        def apply_train(params, state, x, key):
            streams = {c: jax.random.fold_in(key, i) for i, c in enumerate(rng_collections)}
            bound = {"params": params, **state}
            if not state:
                return module.apply(bound, x, rngs=streams, **train_kwargs), state
            out, updates = module.apply(bound, x, rngs=streams, mutable=list(state), **train_kwargs)
            return out, {**state, **updates}

        def apply_eval(params, state, x):
            return module.apply({"params": params, **state}, x, **eval_kwargs)

        return cls(init_params, apply_eval, init_state, apply_train)

    @classmethod
    def from_nnx(cls, module_or_factory: Any) -> Model:
        """Wraps a ``flax.nnx`` model.

        Args:
          module_or_factory: ``factory(rngs) -> nnx.Module`` (each member is initialized from
            its own seed), or an ``nnx.Module`` (every member starts from its variables;
            per-member seeds then only change dropout).

        ``nnx.Param`` variables are trained; the model state is ``{"batch_stats": ...}``
        (``nnx.BatchStat``) and ``{"other": ...}`` (every other variable); RNG streams are not
        kept but drawn afresh from the member's step key at every step (so dropout depends only
        on the member's seed and step). Training mode is ``nnx.view(..., deterministic=False,
        use_running_average=False)``, evaluation mode the opposite. A module whose ``__call__``
        takes ``rngs`` (the Flax MNIST tutorial's ``model(x, rngs=rngs)``) gets an
        ``nnx.Rngs`` of the member's step key in training mode.
        """
        from flax import nnx

        if isinstance(module_or_factory, nnx.Module):
            module = module_or_factory
            factory = None
        else:
            factory = module_or_factory
            if not callable(factory):
                raise ValueError(
                    f"model must be an nnx.Module or a factory(rngs), got {module_or_factory!r}"
                )
            module = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
        filters = (nnx.Param, nnx.RngState, nnx.BatchStat, ...)
        graphdef, params, rngs, stats, rest = nnx.split(module, *filters)
        templates = {"batch_stats": stats, "other": rest}

        def parts(key):
            live = module if factory is None else factory(nnx.Rngs(key))
            _, p, _, b, r = nnx.split(live, *filters)
            pure = {"batch_stats": nnx.to_pure_dict(b), "other": nnx.to_pure_dict(r)}
            return nnx.to_pure_dict(p), pure

        def init(key):
            return jax.tree.map(jnp.asarray, parts(key)[0])

        def fill(template, pure):
            state = jax.tree.map(lambda v: v, template)
            nnx.replace_by_pure_dict(state, pure)
            return state

        def rng_values(key):
            abstract = nnx.to_pure_dict(rngs)
            flat, treedef = jax.tree.flatten(abstract)

            def value(i, a):
                if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
                    return jax.random.fold_in(key, i)
                return jnp.zeros(a.shape, a.dtype)

            return jax.tree.unflatten(treedef, [value(i, a) for i, a in enumerate(flat)])

        takes_rngs = "rngs" in _parameters(type(module).__call__)

        def call(live, x, key):
            return live(x, rngs=nnx.Rngs(key)) if takes_rngs else live(x)

        if not jax.tree.leaves((rngs, stats, rest)) and not takes_rngs:

            def apply(pure_params, x):
                return nnx.merge(graphdef, fill(params, pure_params), rngs, stats, rest)(x)

            return _determined_by(factory, cls(init, apply))

        view = functools.partial(nnx.view, raise_if_not_found=False)
        train_graph = nnx.graphdef(view(module, deterministic=False, use_running_average=False))
        eval_graph = nnx.graphdef(view(module, deterministic=True, use_running_average=True))

        def init_state(key):
            return jax.tree.map(jnp.asarray, parts(key)[1])

        def merged(graph, pure_params, pure_state, key):
            return nnx.merge(
                graph,
                fill(params, pure_params),
                fill(rngs, rng_values(key)),
                *(fill(templates[name], pure_state[name]) for name in ("batch_stats", "other")),
            )

        def apply_train(pure_params, pure_state, x, key):
            live = merged(train_graph, pure_params, pure_state, key)
            out = call(live, x, jax.random.fold_in(key, len(jax.tree.leaves(rngs))))
            _, _, _, new_stats, new_rest = nnx.split(live, *filters)
            return out, {
                "batch_stats": nnx.to_pure_dict(new_stats),
                "other": nnx.to_pure_dict(new_rest),
            }

        def apply_eval(pure_params, pure_state, x):
            key = jax.random.key(0)
            return call(merged(eval_graph, pure_params, pure_state, key), x, key)

        return _determined_by(factory, cls(init, apply_eval, init_state, apply_train))


def _determined_by(factory: Any, model: Model) -> Model:
    """``model`` with its functions marked as fixed by the nnx ``factory`` (None: an instance,
    whose variables they close over), so a model built afresh from the same factory shares the
    compiled programs of an earlier one (see ``lrjax._fingerprint``)."""
    if factory is not None:
        for field, fn in zip(model._fields, model, strict=True):
            if fn is not None:
                fn.__lrjax_fingerprint__ = ("Model.from_nnx", field, factory)
    return model


def _parameters(fn: Any) -> Mapping[str, Any]:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return {}


def _linen_mode_kwargs(module: Any) -> tuple[dict, dict]:
    try:
        names = inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return {}, {}
    if "train" in names:
        return {"train": True}, {"train": False}
    if "deterministic" in names:
        return {"deterministic": False}, {"deterministic": True}
    return {}, {}


@functools.lru_cache(maxsize=16)
def _cached_linen(module: Any, shape: tuple[int, ...], dtype: str) -> Model:
    return Model.from_linen(module, np.zeros(shape, dtype))


def as_model(model: Any, sample_input: Any) -> Model:
    """A :class:`Model` from a Model, an ``(init, apply)`` pair, or a Flax module or factory.

    ``sample_input`` (a batch of inputs) initializes linen modules. The same hashable linen
    module gives the same Model, so compiled programs are reused.
    """
    if isinstance(model, Model):
        return model
    from flax import linen, nnx

    if isinstance(model, linen.Module):
        sample = np.asarray(sample_input)
        try:
            return _cached_linen(model, sample.shape, sample.dtype.str)
        except TypeError:  # an unhashable module
            return Model.from_linen(model, sample)
    if isinstance(model, nnx.Module):
        return Model.from_nnx(model)
    if isinstance(model, tuple) and len(model) == 2 and all(map(callable, model)):
        return Model(*model)
    raise ValueError(
        "model must be an lrjax.Model, an (init, apply) pair of functions, a flax.linen.Module "
        f"or a flax.nnx.Module (or lrjax.Model.from_nnx(factory)), got {type(model).__name__}"
    )


# -----------------------------------------------------------------------------------------------
# The supervised step


class Member(NamedTuple):
    """What differs between members of a supervised sweep (stacked: a leading axis K): only
    what the user gave per member.

    Attributes:
      hparams: ``{name: value}`` the optimizer's hyperparameters (and anything
        ``optimizer_kwargs`` reads), float32 or int32.
      seed: int32, initialization seed; dropout keys are ``step_key(seed, step)``.
      data_seed: int32, the member's data order (when members do not share one).
      batch_size: int32, the member's batch size (masked inside the largest batch).
      trackers: ``{tracker name: {setting: value}}`` per-member settings of the trackers (an
        EMA's decays), empty without any.
    """

    hparams: dict[str, Array]
    seed: Array
    data_seed: Array
    batch_size: Array
    trackers: dict[str, dict[str, Array]] = {}  # noqa: RUF012 - never mutated


class State(NamedTuple):
    """One member's training state: parameters, model state (batch statistics), the optax
    state, and the number of updates done."""

    params: PyTree
    model_state: PyTree
    opt_state: PyTree
    step: Array


@dataclasses.dataclass(frozen=True)
class Scheduled:
    """The controller's rule for a scheduled optimizer argument of :class:`Supervised`:
    ``rule(member) = task.kwargs(member.hparams)[name]`` (a schedule of the step)."""

    task: Supervised
    name: str

    def __call__(self, member: Member) -> Any:
        return self.task.kwargs(member.hparams)[self.name]


@dataclasses.dataclass(frozen=True)
class Supervised:
    """The supervised step of one member: forward, per-example loss, gradient, optax update.

    Attributes:
      model: a :class:`Model`.
      loss: ``loss(outputs, targets) -> [batch]`` per-example losses.
      optimizer: an optax factory, wrapped in ``optax.inject_hyperparams(optimizer,
        hyperparam_dtype=jnp.float32)`` so its numeric hyperparameters live in its state.
      optimizer_kwargs: ``fn(member.hparams) -> {kwarg: value}`` (values may be traced scalars
        or schedules built from them).
      masked: train member ``k`` on the first ``member.batch_size`` examples of each batch.

    ``init(member)`` and ``step(state, batch, member)`` are ready for :func:`lrjax.vectorize`;
    ``batch = (inputs, targets)``. Like a Flax ``TrainState`` step, the update reads every
    hyperparameter from the optimizer state: a scheduled argument (a function of the step) is
    set there before each step by the controller, so wrap the pair as
    ``lrjax.control(task.step, task.init, task.controls(hparams))`` (:func:`lrjax.sweep.train`
    does); alone, a schedule stays at its step-0 value.
    """

    model: Model
    loss: Callable[[Array, Array], Array]
    optimizer: Callable[..., optax.GradientTransformation]
    optimizer_kwargs: Callable[[Mapping[str, Array]], Mapping[str, Any]]
    masked: bool = False

    def kwargs(self, hparams: Mapping[str, Array]) -> dict[str, Any]:
        """The optimizer's keyword arguments for one member. An integer given for an argument
        with a real domain (``learning_rate``, ``b1``, ``momentum``, ...; see
        ``lrjax._checks.OPTIMIZER_DOMAINS``) is cast to float32, so it is injected, and recorded,
        as the float hyperparameter it is."""
        kwargs = dict(self.optimizer_kwargs(hparams))
        for name, value in kwargs.items():
            if name in _checks.OPTIMIZER_DOMAINS and _is_integer(value):
                kwargs[name] = jnp.asarray(value, jnp.float32)
        return kwargs

    def scheduled(self, hparams: Mapping[str, Any]) -> tuple[str, ...]:
        """The arguments ``optimizer_kwargs`` gives as schedules (functions of the step) for a
        member with these ``hparams`` (concrete or abstract)."""
        found: list[str] = []

        def probe(h):
            found.extend(name for name, value in self.kwargs(h).items() if _is_schedule(value))
            return jnp.zeros(())

        jax.eval_shape(probe, hparams)
        return tuple(sorted(found))

    def controls(self, hparams: Mapping[str, Any]) -> dict[str, Scheduled]:
        """The controller's rules: one :class:`Scheduled` per scheduled argument."""
        return {name: Scheduled(self, name) for name in self.scheduled(hparams)}

    def transformation(self, hparams: Mapping[str, Array]) -> optax.GradientTransformation:
        """The injected optimizer; a scheduled argument enters as the number 0, a placeholder
        the controller overwrites before every update."""
        kwargs = {
            name: jnp.zeros((), jnp.float32) if _is_schedule(value) else value
            for name, value in self.kwargs(hparams).items()
        }
        return optax.inject_hyperparams(self.optimizer, hyperparam_dtype=jnp.float32)(**kwargs)

    def init(self, member: Member) -> State:
        key = jax.random.key(member.seed)
        params = self.model.init(key)
        model_state = self.model.init_state(key) if self.model.stateful else {}
        # optax's Adam-family bias correction computes `b1 ** count` with an int32 count, which
        # strict dtype promotion rejects; the optimizer call sites run under standard promotion.
        with jax.numpy_dtype_promotion("standard"):
            opt_state = self.transformation(member.hparams).init(params)
        return State(params, model_state, opt_state, jnp.zeros((), jnp.int32))

    def step(self, state: State, batch: tuple[Array, Array], member: Member):
        x, y = batch
        key = engine.step_key(member.seed, state.step)
        if self.masked:
            mask = jnp.arange(jnp.shape(y)[0]) < member.batch_size
            # Masked inputs are zeroed before the forward pass, so a NaN or inf in an example
            # outside this member's batch cannot reach its loss or gradient (0 * nan = nan).
            x = jax.tree.map(lambda a: jnp.where(_expand(mask, a), a, jnp.zeros_like(a)), x)

        def objective(params):
            outputs, model_state = self.model.train_outputs(params, state.model_state, x, key)
            per_example = self.loss(outputs, y)
            if self.masked:
                zero = jnp.zeros_like(per_example)
                total = jnp.sum(jnp.where(mask, per_example, zero))
                return total / member.batch_size.astype(per_example.dtype), model_state
            return jnp.mean(per_example), model_state

        (loss, model_state), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        with jax.numpy_dtype_promotion("standard"):  # see init
            tx = self.transformation(member.hparams)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = State(
            params=optax.apply_updates(state.params, updates),
            model_state=model_state,
            opt_state=opt_state,
            step=state.step + 1,
        )
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        for name, value in opt_state.hyperparams.items():
            if jnp.issubdtype(value.dtype, jnp.floating) and value.shape == ():
                metrics[f"opt_hparams/{name}"] = value.astype(jnp.float32)  # as the update used it
        return new_state, metrics

    def check(self, x: Any, y: Any) -> int | None:
        """Checks the model and the loss on abstract values of a batch ``(x, y)``; returns the
        number of classes ``C`` when the targets are class indices (integer targets ``[B]`` and
        outputs ``[B, C]``, ``C >= 2``)."""
        model, loss = self.model, self.loss
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
                f"model.apply failed on inputs of shape {x.shape} {x.dtype}: "
                f"{type(e).__name__}: {e}"
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

    def check_metrics(self, metrics: tuple, x: Any, y: Any) -> None:
        """Each evaluation metric on the model's (abstract) outputs for the evaluation data."""
        model = self.model
        key = jax.random.key(0)
        params = jax.eval_shape(model.init, key)
        state = jax.eval_shape(model.init_state, key) if model.stateful else {}
        out = jax.eval_shape(model.eval_outputs, params, state, x)
        for name, fn in metrics:
            try:
                jax.eval_shape(fn, out, y)
            except Exception as e:
                raise ValueError(
                    f"evaluation.metrics[{name!r}] does not fit the model: model outputs "
                    f"{out.shape} {out.dtype}, targets {y.shape} {y.dtype}; it raised "
                    f"{type(e).__name__}: {e}"
                ) from e

    def check_optimizer(self, hparams: Mapping[str, np.ndarray], num_steps: int) -> None:
        """Builds every member's optimizer eagerly, with concrete values, before compiling: catches
        bad family indices, and arguments outside their domain
        (:data:`lrjax._checks.OPTIMIZER_DOMAINS`); a schedule's values are checked at 257
        steps spread from the first to the last (both included), for all members at once under
        ``jax.vmap``. Runs without jit (``lax.switch`` picks its branch in Python), so checking
        fresh closures compiles nothing."""
        task = self
        k = len(next(iter(hparams.values()))) if hparams else 1
        # Always 257 probes (repeats allowed): eager ops of one shape compile once for every
        # num_steps, so a new num_steps compiles nothing.
        probes = np.linspace(0, num_steps - 1, 257).round().astype(np.int32)
        scheduled = set()
        with jax.disable_jit():
            for i in range(k):
                member = {name: jnp.asarray(a[i]) for name, a in hparams.items()}
                kwargs = task.optimizer_kwargs(member)
                if not isinstance(kwargs, Mapping):
                    raise ValueError(
                        "optimizer_kwargs must return a mapping of keyword arguments, got "
                        f"{kwargs!r}"
                    )
                kwargs = task.kwargs(member)
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

    def evaluate(
        self, state: State, data: tuple[Array, Array], metrics: Sequence[tuple[str, Callable]]
    ) -> dict[str, Array]:
        """Mean of each per-example metric on ``data = (inputs, targets)``, evaluation mode."""
        x, y = data
        outputs = self.model.eval_outputs(state.params, state.model_state, x)
        return {name: jnp.mean(fn(outputs, y).astype(jnp.float32)) for name, fn in metrics}


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


def _is_schedule(value: Any) -> bool:
    """A plain schedule (a function of the step); optax's stateful schedules stay with
    ``inject_hyperparams``, which keeps their state."""
    return callable(value) and not isinstance(value, optax.schedules.StatefulSchedule)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jnp.integer)


def _expand(mask: Array, a: Array) -> Array:
    return mask.reshape(mask.shape + (1,) * (jnp.ndim(a) - 1))
