"""Reduce-on-plateau as a pure, per-member controller that runs inside a compiled loop.

The controller is a pair of pure functions over a small state, like an optax transformation:
``state = plateau.init()`` and ``state = plateau.update(state, metric, scheduled_lr)`` at each
evaluation. The learning rate to use is ``state.scale * schedule(step)``: the plateau factor
multiplies whatever schedule runs underneath. All of it is ``jnp.where`` arithmetic, so
``jax.vmap`` runs one independent controller per member, and the magnitudes (``factor``,
``threshold``, ``min_lr``) may differ between members.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lrjax._checks import check_choice, check_int, check_magnitude

__all__ = ["PlateauState", "ReduceOnPlateau", "reduce_on_plateau"]

_MODES = ("min", "max")
_THRESHOLD_MODES = ("rel", "abs")


class PlateauState(NamedTuple):
    """State of one reduce-on-plateau controller (add a leading axis for many members).

    Attributes:
      best: the best metric seen so far (``+inf``/``-inf`` before the first evaluation).
      num_bad: evaluations since the last improvement, cooldown evaluations excluded (int32).
      cooldown: evaluations left before bad evaluations are counted again (int32).
      scale: the factor applied to the scheduled learning rate (float32), 1 at the start.
      num_reductions: how many times the learning rate was reduced (int32).
    """

    best: jax.Array
    num_bad: jax.Array
    cooldown: jax.Array
    scale: jax.Array
    num_reductions: jax.Array


class ReduceOnPlateau(NamedTuple):
    """A reduce-on-plateau controller: ``init() -> state``, ``update(state, metric, lr)``."""

    init: Any
    update: Any


def reduce_on_plateau(
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> ReduceOnPlateau:
    r"""Reduces the learning rate by ``factor`` when a metric stops improving.

    At each evaluation with metric :math:`a` and best-so-far :math:`a^*`, the evaluation is an
    improvement when

    .. math::
        a < a^* - \delta \ \ (\text{min}), \qquad a > a^* + \delta \ \ (\text{max}), \qquad
        \delta = \begin{cases} \tau\,|a^*| & \text{rel} \\ \tau & \text{abs} \end{cases}

    An improvement resets the count of bad evaluations; otherwise it grows by one. During
    cooldown the count stays at zero. When the count exceeds ``patience`` (so after
    ``patience + 1`` bad evaluations), the learning rate :math:`\eta` in use is reduced to
    :math:`\max(\eta\,f, \eta_{min})` if that lowers it by more than ``eps``, the count
    resets and the cooldown starts. The reduction is kept as a scale on the schedule:
    the LR used afterwards is ``scale * schedule(step)``.

    This is PyTorch ``ReduceLROnPlateau`` step for step, with one deliberate difference: for
    ``rel`` thresholds PyTorch compares with :math:`a^*(1 \mp \tau)`, which for a negative
    metric moves the bar the wrong way (a flat negative metric then counts as improving forever,
    the failure of ``optax.contrib.reduce_on_plateau`` on negative losses); lrjax uses
    :math:`a^* \mp \tau|a^*|`, which is identical for positive metrics. ``min_lr`` bounds what
    reductions do; a schedule underneath may still decay below it.

    Args:
      mode: ``"min"`` (lower is better, e.g. a loss) or ``"max"`` (e.g. an accuracy).
      factor: :math:`f \in (0, 1)`, multiplier of each reduction (traceable; checked unless
        traced).
      patience: number of bad evaluations tolerated before reducing, ``>= 0``.
      threshold: :math:`\tau \ge 0`, the least change that counts as improvement (traceable;
        checked unless traced).
      threshold_mode: ``"rel"`` or ``"abs"``.
      cooldown: evaluations to wait after a reduction before counting bad ones, ``>= 0``.
      min_lr: :math:`\eta_{min} \ge 0`, the floor of reductions (traceable; checked unless
        traced).
      eps: reductions smaller than this (``>= 0``) are skipped (traceable; checked unless
        traced).

    Returns:
      A :class:`ReduceOnPlateau` with pure ``init()`` and ``update(state, metric, lr)``, where
      ``lr`` is the scheduled learning rate (before the scale) at the time of the evaluation.

    Examples:
      >>> import lrjax
      >>> plateau = lrjax.reduce_on_plateau(factor=0.5, patience=1)
      >>> state = plateau.init()
      >>> for loss in [1.0, 0.5, 0.5, 0.5, 0.5, 0.5]:
      ...     state = plateau.update(state, loss, 0.1)
      ...     print(round(float(state.scale * 0.1), 6), end=" ")
      0.1 0.1 0.1 0.05 0.05 0.025

    References:
      PyTorch ``torch.optim.lr_scheduler.ReduceLROnPlateau``; Keras ``ReduceLROnPlateau``.
    """
    check_choice("mode", mode, _MODES)
    check_choice("threshold_mode", threshold_mode, _THRESHOLD_MODES)
    patience = check_int("patience", patience, 0)
    cooldown = check_int("cooldown", cooldown, 0)
    # Magnitudes may be traced (one controller per member under vmap); concrete ones are
    # checked here, NaN and inf included (NaN would never compare as a reduction).
    check_magnitude("factor", factor, 0, 1, open_min=True, open_max=True)
    check_magnitude("threshold", threshold, 0)
    check_magnitude("min_lr", min_lr, 0)
    check_magnitude("eps", eps, 0)
    sign = 1.0 if mode == "min" else -1.0  # compare -a in "max" mode, so "lower is better"

    def init() -> PlateauState:
        return PlateauState(
            best=jnp.asarray(sign * jnp.inf, jnp.float32),
            num_bad=jnp.zeros((), jnp.int32),
            cooldown=jnp.zeros((), jnp.int32),
            scale=jnp.ones((), jnp.float32),
            num_reductions=jnp.zeros((), jnp.int32),
        )

    def update(state: PlateauState, metric: Any, lr: Any) -> PlateauState:
        a = sign * jnp.asarray(metric, jnp.float32)
        best = sign * state.best
        tau = jnp.asarray(threshold, jnp.float32)
        margin = tau * jnp.abs(best) if threshold_mode == "rel" else tau
        # The first evaluation always improves on +inf (where inf - margin would be nan).
        improved = (a < best - margin) | jnp.isinf(best)
        new_best = jnp.where(improved, a, best)
        num_bad = jnp.where(improved, 0, state.num_bad + 1)
        in_cooldown = state.cooldown > 0
        cooldown_left = jnp.where(in_cooldown, state.cooldown - 1, 0)
        num_bad = jnp.where(in_cooldown, 0, num_bad)

        reduce = num_bad > patience
        old_lr = state.scale * jnp.asarray(lr, jnp.float32)
        new_lr = jnp.maximum(old_lr * jnp.asarray(factor, jnp.float32), min_lr)
        apply = reduce & (old_lr - new_lr > eps)
        scale = jnp.where(apply, state.scale * new_lr / jnp.where(apply, old_lr, 1.0), state.scale)
        return PlateauState(
            best=sign * new_best,
            num_bad=jnp.where(reduce, 0, num_bad),
            cooldown=jnp.where(reduce, cooldown, cooldown_left),
            scale=scale,
            num_reductions=state.num_reductions + apply.astype(jnp.int32),
        )

    return ReduceOnPlateau(init=init, update=update)
