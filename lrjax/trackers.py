"""In-loop trackers: snapshots, SWA and EMA of one member's parameters, as a layer on its step.

A tracker is a small ``(init, update)`` pair, like an optax transformation:
``tracker.init(params, member) -> tracker_state`` and
``tracker.update(tracker_state, params, num_updates, member) -> tracker_state``, called after
every step with the parameters that step produced. :func:`track` wraps a step with any number
of them; everything runs inside the compiled loop, per member under ``vmap``.

* :class:`Snapshots` — the parameters after given update counts (snapshot ensembles); its
  state is the followed tree with a leading axis ``[M, ...]``.
* :class:`SWA` — the equal average of sampled iterates (:func:`lrjax.swa_update`); its state is
  an :class:`lrjax.SWAState` ``(mean, count)``.
* :class:`EMA` — an exponential moving average (:func:`lrjax.ema_update`), decay per member;
  its state is the average, shaped like the followed tree.

What they follow is :func:`variables_of` the user's state by default: the parameters and,
where the state has them, the batch statistics (a snapshot keeps its moment's statistics, an
EMA averages them as timm's ``ModelEmaV2`` does, an SWA average needs them recomputed:
:func:`lrjax.recompute_batch_stats`).

Examples:
  >>> import jax.numpy as jnp
  >>> from lrjax import SWA, Snapshots, track
  >>> def step(state, batch, member):
  ...     return {"params": state["params"] + 1.0}, {}
  >>> tracked_step, tracked_init = track(
  ...     step, lambda m: {"params": jnp.float32(0.0)},
  ...     {"snap": Snapshots((2, 3)), "swa": SWA(start=2)})
  >>> state = tracked_init(None)
  >>> for _ in range(4):
  ...     state, _ = tracked_step(state, None, None)
  >>> state.trackers["snap"].tolist(), float(state.trackers["swa"].mean)
  ([2.0, 3.0], 3.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _checks, averaging, engine

__all__ = [
    "EMA",
    "SWA",
    "Snapshots",
    "Tracked",
    "Tracker",
    "params_of",
    "track",
    "variables_of",
]

PyTree = Any


class Tracker:
    """The interface of a tracker (any object with these two methods is one)."""

    def init(self, params: PyTree, member: PyTree) -> PyTree:
        raise NotImplementedError

    def update(self, state: PyTree, params: PyTree, num_updates: jax.Array, member: PyTree):
        raise NotImplementedError

    def check(self, name: str, num_steps: int) -> None:
        """Refuses settings that a run of ``num_steps`` updates cannot honour (``name`` says
        which tracker in the message)."""


@dataclasses.dataclass(frozen=True)
class Snapshots(Tracker):
    """The parameters after each of ``steps`` updates, stacked: ``[M, ...]`` per member.

    Attributes:
      steps: strictly increasing update counts ``>= 1`` (see :func:`lrjax.snapshot_steps`).
    """

    steps: tuple[int, ...]

    def __post_init__(self):
        steps = _checks.check_increasing("snapshot steps", tuple(self.steps), 1)
        if not steps:
            raise ValueError("snapshot steps must hold at least one update count, got none")
        object.__setattr__(self, "steps", steps)

    def check(self, name, num_steps):
        if max(self.steps) > num_steps:
            raise ValueError(
                f"{name} snapshot steps must be <= num_steps={num_steps} (a later one is never "
                f"taken), got {list(self.steps)}"
            )

    def init(self, params, member):
        del member
        m = len(self.steps)
        return jax.tree.map(lambda p: jnp.zeros((m, *jnp.shape(p)), jnp.result_type(p)), params)

    def update(self, state, params, num_updates, member):
        del member
        hit = jnp.asarray(self.steps, jnp.int32) == num_updates
        slot = jnp.argmax(hit)

        # Writing one slot (with itself when no snapshot is due) costs one parameter copy per
        # step, where a select over the whole buffer would cost M.
        def write(buffer, p):
            return buffer.at[slot].set(jnp.where(jnp.any(hit), p, buffer[slot]))

        return jax.tree.map(write, state, params)


@dataclasses.dataclass(frozen=True)
class SWA(Tracker):
    """Stochastic weight averaging of the parameters after ``n`` updates, for every
    ``n >= start`` with ``(n - start) % every == 0`` (:func:`lrjax.swa_update`).

    Recompute batch-norm statistics for the average afterwards
    (:func:`lrjax.recompute_batch_stats`).
    """

    start: int
    every: int = 1

    def __post_init__(self):
        _checks.check_int("swa start", self.start, 0)
        _checks.check_int("swa every", self.every, 1)

    def check(self, name, num_steps):
        if self.start > num_steps:
            raise ValueError(
                f"{name}.start must be <= num_steps={num_steps} (the average would hold "
                f"nothing), got {self.start}"
            )

    def init(self, params, member):
        del member
        return averaging.swa_init(params)

    def update(self, state, params, num_updates, member):
        del member
        return averaging.swa_update(state, params, num_updates, self.start, self.every)


@dataclasses.dataclass(frozen=True)
class EMA(Tracker):
    """Exponential moving average from the initial parameters (:func:`lrjax.ema_update`).

    Attributes:
      decay: :math:`\\beta \\in [0, 1]`, a number shared by all members, or a function
        ``decay(member) -> beta`` reading each member's own (traced) decay. A sequence of
        per-member decays is stored as a tuple for :func:`lrjax.sweep.train`, which gives each
        member its own as the tracker's per-member setting (``member.trackers[name]["decay"]``).
    """

    decay: float | tuple[float, ...] | Callable[[PyTree], Any]

    def __post_init__(self):
        if callable(self.decay):
            return
        if np.ndim(self.decay) == 1:
            decay = tuple(_checks.check_float(f"ema decay[{i}]", float(d), 0, 1)
                          for i, d in enumerate(np.asarray(self.decay)))  # fmt: skip
            object.__setattr__(self, "decay", decay)
        else:
            _checks.check_float("ema decay", self.decay, 0, 1)

    def init(self, params, member):
        del member
        return params

    def update(self, state, params, num_updates, member):
        del num_updates
        if isinstance(self.decay, tuple):
            raise ValueError(
                "EMA with per-member decays needs each member's decay: pass decay as a function "
                "of the member (lrjax.sweep.train does this for you)"
            )
        decay = self.decay(member) if callable(self.decay) else self.decay
        return averaging.ema_update(state, params, decay)


class Tracked(NamedTuple):
    """A member's state with its trackers: ``state`` (wrapped), ``trackers`` (by name) and
    ``step``, the number of updates done."""

    state: PyTree
    trackers: dict[str, PyTree]
    step: jax.Array

    is_lrjax_wrapper = True


def params_of(state: PyTree) -> PyTree:
    """The parameters inside a state: ``state["params"]``, ``state.params`` (Flax
    ``TrainState``, lrjax's supervised state) or else the state itself."""
    if isinstance(state, Mapping) and "params" in state:
        return state["params"]
    if hasattr(state, "params"):
        return state.params
    return state


def variables_of(state: PyTree) -> PyTree:
    """What trackers follow by default: the parameters, with the batch statistics when the
    state has them, in linen's layout ``{"params": ..., "batch_stats": ...}`` (``apply`` takes
    it as ``variables``).

    Read from the user's state inside any lrjax wrappers: a Flax ``TrainState`` with a
    ``batch_stats`` field, a dict with ``"params"`` and ``"batch_stats"``, lrjax's supervised
    state (its ``model_state`` collections); a state without statistics gives
    :func:`params_of`.

    Examples:
      >>> variables_of({"params": 1.0, "batch_stats": 2.0, "opt_state": 3.0})
      {'params': 1.0, 'batch_stats': 2.0}
      >>> variables_of({"params": 1.0, "opt_state": 3.0})
      1.0
    """
    state = engine.unwrap(state)
    model_state = getattr(state, "model_state", None)  # lrjax.supervised.State
    if isinstance(model_state, Mapping) and hasattr(state, "params"):
        return (
            {"params": state.params, **model_state}
            if jax.tree.leaves(model_state)
            else (state.params)
        )
    if isinstance(state, Mapping):
        stats = state.get("batch_stats") if "params" in state else None
    else:
        stats = getattr(state, "batch_stats", None) if hasattr(state, "params") else None
    if stats is None:
        return params_of(state)
    return {"params": params_of(state), "batch_stats": stats}


def track(
    step: Callable,
    init: Callable | None,
    trackers: Mapping[str, Tracker],
    *,
    select: Callable[[PyTree], PyTree] = variables_of,
) -> tuple[Callable, Callable | None]:
    """Wraps ``(step, init)`` so each tracker follows ``select(state)`` after every step.

    Args:
      step: ``step(state, batch, member) -> (state, metrics)``.
      init: ``init(member) -> state`` or None.
      trackers: ``{name: tracker}``, e.g. ``{"swa": SWA(100), "ema": EMA(0.999)}``.
      select: what the trackers follow, a function of the user's state (inside the wrappers
        of other layers); default :func:`variables_of`, the parameters and batch statistics.

    Returns:
      ``(tracked_step, tracked_init)`` over :class:`Tracked` states. Put
      :func:`lrjax.freeze_on_divergence` outside this layer, so a diverged member's trackers
      stop with it.
    """
    trackers = dict(trackers)
    for name, tracker in trackers.items():
        if not (
            callable(getattr(tracker, "init", None)) and callable(getattr(tracker, "update", None))
        ):
            raise ValueError(
                f"trackers[{name!r}] must have init and update methods, got {tracker!r}"
            )

    def tracked_step(state: Tracked, batch: PyTree, member: PyTree):
        new_state, metrics = step(state.state, batch, member)
        n = state.step + 1
        followed = select(engine.unwrap(new_state))
        updated = {
            name: tracker.update(state.trackers[name], followed, n, member)
            for name, tracker in trackers.items()
        }
        return Tracked(new_state, updated, n), metrics

    def tracked_init(member: PyTree) -> Tracked:
        state = init(member)
        followed = select(engine.unwrap(state))
        return Tracked(
            state,
            {name: tracker.init(followed, member) for name, tracker in trackers.items()},
            jnp.array(0, jnp.int32),
        )

    return tracked_step, (None if init is None else tracked_init)
