"""Your own Flax ``nnx`` training step, as the pure step :func:`lrjax.vectorize` takes.

The Flax tutorials write a step that mutates its objects in place,
``train_step(model, optimizer, batch)`` calling ``optimizer.update(model, grads)``. The engine
needs pure functions of arrays; :func:`nnx_step` bridges the two with ``nnx.split`` and
``nnx.merge`` inside the step, so the step you already have trains K members at once.

Seeds are traced too: ``nnx.Rngs`` takes a traced seed as a key,
``nnx.Rngs(jax.random.key(member["seed"]))`` (``nnx.Rngs(member["seed"])`` is refused with that
fix). A module that takes ``rngs`` in ``__call__`` (the Flax MNIST tutorial's dropout) gets them
from an ``nnx.Rngs`` that ``make`` returns among the objects, so its stream is part of the state.

Per-member settings must reach the program as data, never as static attributes of the graph:
``nnx.Optimizer`` keeps its transformation in the static graph (taken from one template
member), so learning rates and other optimizer hyperparameters must live in the optimizer state
(``optax.inject_hyperparams``); a dropout rate, in an ``nnx.Variable`` read by a dropout that
takes a traced rate (:func:`lrjax.models.dropout`). A member setting that neither ``make`` nor
the step reads is refused (:func:`lrjax.engine.unused_members`), so this trap cannot make every
member train at the same learning rate silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from lrjax import engine

__all__ = ["nnx_step"]

PyTree = Any


def nnx_step(
    make: Callable[[PyTree], Any],
    train_step: Callable[..., Any],
    members: PyTree,
) -> tuple[Callable, Callable]:
    """``(step, init)`` for :func:`lrjax.vectorize` from your nnx code.

    Args:
      make: ``make(member) -> objects``, one member's nnx objects (e.g. ``(model, optimizer)``)
        built from its traced settings (``nnx.Rngs`` from ``jax.random.key(member["seed"])``,
        ``optax.inject_hyperparams(...)(learning_rate=member["lr"])``).
      train_step: your step, ``train_step(*objects, batch) -> metrics`` (or a loss), mutating
        the objects in place as nnx code does.
      members: the stacked member settings ``[K, ...]`` (member 0 is the template of the
        static graph).

    Returns:
      ``(step, init)``: ``init(member)`` is the ``nnx.state`` of ``make(member)``;
      ``step(state, batch, member)`` merges it, runs ``train_step`` and splits it again.

    Raises:
      ValueError: if a floating-point member setting is read by neither ``make`` nor
        ``train_step`` (it would be silently shared by every member).
    """
    from flax import nnx

    template = engine.member_slice(jax.tree.map(jnp.asarray, members), 0)
    # Traced like init is under vmap: a concrete template could build a different graph
    # (optax keeps concrete NumPy hyperparameters where it would keep arrays).
    try:
        graphdef = nnx.graphdef(nnx.eval_shape(make, template))
    except ValueError as e:
        if "Invalid rng value" not in str(e):
            raise
        raise ValueError(
            "make(member) built nnx.Rngs from a member's seed, which is traced here (one "
            "program for every member), and nnx.Rngs takes a traced value only as a key: "
            "write nnx.Rngs(jax.random.key(member['seed'])) (or nnx.Rngs(params=jax.random.key("
            f"...), dropout=...)). (nnx said: {e})"
        ) from None

    def as_tuple(objects):
        return objects if isinstance(objects, tuple) else (objects,)

    def init(member):
        return nnx.state(make(member))

    def step(state, batch, member):
        del member  # everything a member varies is in its state
        objects = nnx.merge(graphdef, state)
        metrics = train_step(*as_tuple(objects), batch)
        if not isinstance(metrics, Mapping):
            metrics = {"loss": metrics}
        return nnx.state(objects), dict(metrics)

    # The step reads nothing of `member`, so a setting init ignores is ignored everywhere.
    unused = engine.unused_members(init, template)
    if unused:
        raise ValueError(
            f"{', '.join(unused)} never reach the state that make(member) builds, so every "
            "member would train the same way. nnx.Optimizer keeps its transformation in the "
            "static graph (from one template member): give per-member optimizer settings with "
            "optax.inject_hyperparams(optax.sgd)(learning_rate=member['lr'], ...), and keep "
            "other per-member values in nnx.Variable attributes"
        )
    return step, init
