"""One member of a sweep as a standalone orbax checkpoint that a single-model Flax loop restores.

:func:`export` takes member ``k`` of a :class:`lrjax.sweep.SweepResult`, of a
:class:`lrjax.FitResult` of your own step, or of a stacked state, picks its final weights or a
tracker's (SWA, EMA, a snapshot), and writes them with ``orbax.checkpoint.StandardCheckpointer``
in the layout of ONE model's state, so the single-model code restores it with the standard
orbax call:

* your own step (a ``FitResult``): the member's state as your step holds it, unwrapped from
  lrjax's layers (a Flax ``TrainState`` with its ``batch_stats``, an ``nnx.state``, a dict),
  with a tracker's weights put in place of its parameters (and batch statistics):
  ``ocp.StandardCheckpointer().restore(path, abstract_state)`` with ``abstract_state`` the
  single model's (``jax.eval_shape(create_train_state)``, ``nnx.split(nnx.eval_shape(...))``);
* :func:`lrjax.sweep.train`: the member's variables, ``{"params": ..., "batch_stats": ...}``
  for a model with batch statistics (linen's ``apply`` takes them; nnx's
  ``nnx.replace_by_pure_dict`` fills a model's state), its parameters alone otherwise, as the
  trackers follow them.

``examples/export_member.py`` restores members into a linen ``TrainState`` loop and an nnx loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from lrjax import engine, loop
from lrjax.trackers import Tracked, params_of

__all__ = ["export", "member_state"]

PyTree = Any

_WHAT = re.compile(r"^(params|swa|ema|snapshot:(-?\d+))$")


def process_local_options():
    """orbax's multiprocessing options for a write by this process alone (a result on the
    host, not a state sharded over processes): no barrier with the other processes."""
    import orbax.checkpoint as ocp

    me = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})


def member_state(result: Any, member: int, what: str = "params") -> PyTree:
    """The single-model state :func:`export` writes (see the module docstring), as host arrays.

    Args:
      result: a :class:`lrjax.sweep.SweepResult`, a :class:`lrjax.FitResult`, or a stacked
        state ``[K, ...]`` (wrapped in lrjax's layers or not).
      member: the member's index in ``[0, K)``.
      what: ``"params"`` (the final weights), ``"swa"``, ``"ema"``, or ``"snapshot:i"`` (the
        i-th snapshot; negative counts from the last): the tracker of that name (``"snapshots"``
        for a snapshot), as :func:`lrjax.sweep.train` names them.

    Returns:
      The member's state, one model's pytree.

    Examples:
      >>> import numpy as np
      >>> stacked = {"params": {"w": np.arange(6.0).reshape(3, 2)}, "step": np.arange(3)}
      >>> member_state(stacked, 1)
      {'params': {'w': array([2., 3.])}, 'step': np.int64(1)}
    """
    match = _WHAT.match(what) if isinstance(what, str) else None
    if match is None:
        raise ValueError(
            f"what must be 'params', 'swa', 'ema' or 'snapshot:i' (i an integer), got {what!r}"
        )
    from lrjax.sweep import SweepResult

    if isinstance(result, SweepResult):
        trackers = result.trackers
        base = result.params
        if result.model_state is not None:
            base = {"params": result.params, **result.model_state}
        num = result.num_members
    else:
        stacked = result.state if isinstance(result, loop.FitResult) else result
        trackers = _trackers(stacked)
        base = engine.unwrap(stacked)
        leaves = jax.tree.leaves(base)
        if not leaves:
            raise ValueError("result holds no arrays to export")
        num = int(np.shape(leaves[0])[0])
    if not isinstance(member, int | np.integer) or not 0 <= member < num:
        raise ValueError(f"member must be an integer in [0, {num}), got {member!r}")
    state = _member(base, member)
    if match.group(1) == "params":
        return state
    name = "snapshots" if match.group(2) is not None else match.group(1)
    if name not in trackers:
        raise ValueError(
            f"what={what!r} reads the tracker named {name!r}, but the result's trackers are "
            f"{sorted(trackers)}"
        )
    tracked = _member(trackers[name], member)
    if name == "swa":
        tracked = tracked["mean"] if isinstance(tracked, Mapping) else tracked.mean
    elif name == "snapshots":
        i, count = int(match.group(2)), int(np.shape(jax.tree.leaves(tracked)[0])[0])
        if not -count <= i < count:
            raise ValueError(f"what={what!r}: the snapshot index must be in [0, {count}), got {i}")
        tracked = jax.tree.map(lambda a: a[i], tracked)
    return _place(state, tracked)


def export(
    result: Any,
    directory: str | os.PathLike,
    *,
    member: int,
    what: str = "params",
    select: Callable[[PyTree], PyTree] | None = None,
) -> str:
    """Writes member ``member``'s ``what`` as a standalone orbax checkpoint at ``directory``.

    Args:
      result: a :class:`lrjax.sweep.SweepResult`, a :class:`lrjax.FitResult` of your step, or
        a stacked state.
      directory: a new directory (an existing path is refused, never overwritten).
      member: the member's index.
      what: ``"params"``, ``"swa"``, ``"ema"`` or ``"snapshot:i"`` (see :func:`member_state`).
      select: ``select(state) -> tree``, the part of the member's state to write (e.g.
        ``lambda s: {"params": s.params, "batch_stats": s.batch_stats}``, or an nnx model's
        state out of the objects an :func:`lrjax.flax_steps.nnx_step` state holds); default
        the whole state.

    Returns:
      The checkpoint's absolute path; restore it with
      ``orbax.checkpoint.StandardCheckpointer().restore(path, abstract_state)``.
    """
    import orbax.checkpoint as ocp

    try:
        path = os.path.abspath(os.fspath(directory))
    except TypeError:
        raise ValueError(f"directory must be a path, got {directory!r}") from None
    if os.path.exists(path):
        raise ValueError(
            f"directory must be a new path (export never overwrites), but {path} exists"
        )
    state = member_state(result, member, what)
    if select is not None:
        state = select(state)
    with ocp.StandardCheckpointer(multiprocessing_options=process_local_options()) as writer:
        writer.save(path, state)
    return path


def _trackers(state: PyTree) -> dict[str, PyTree]:
    """The trackers of a stacked state, from its :class:`lrjax.Tracked` layer (or none)."""
    while getattr(type(state), "is_lrjax_wrapper", False):
        if isinstance(state, Tracked):
            return dict(state.trackers)
        state = state.state
    return {}


def _member(tree: PyTree, k: int) -> PyTree:
    return jax.tree.map(lambda a: a[k] if engine.is_key(a) else np.asarray(a)[k], tree)


def _place(state: PyTree, variables: PyTree) -> PyTree:
    """``state`` with a tracker's ``variables`` in place of its own: the whole state, its
    parameters and batch statistics (``{"params": ..., "batch_stats": ...}``), or its
    parameters, whichever the tracker followed."""
    structure = jax.tree.structure
    if structure(variables) == structure(state):
        return variables
    fields = None
    if isinstance(variables, Mapping) and "params" in variables:
        fields = dict(variables)
    elif params_of(state) is not state and structure(variables) == structure(params_of(state)):
        fields = {"params": variables}
    if fields is not None:
        if isinstance(state, Mapping) and set(fields) <= set(state):
            return {**state, **fields}
        if hasattr(state, "replace") and all(hasattr(state, f) for f in fields):
            return state.replace(**fields)
    raise ValueError(
        "the tracker's weights do not fit the member's state (the tracker followed neither the "
        "whole state, nor its params and batch statistics, nor its params); export what='params' "
        "and read the tracker from result.trackers, or write it with select"
    )
