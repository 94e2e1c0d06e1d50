"""Divergence freezing as a layer around one member's step.

A member whose loss or gradient becomes non-finite, or whose loss grows past ``factor`` times
its first loss, is frozen: from that step on its state stays at the last good values and its
metrics read ``nan``. Under ``jax.vmap`` every member decides for itself, so a diverged member
never changes what the others compute: their arrays are bit-identical to a run without it.

The checks read scalars the step already computes (its loss and, when it reports one, its
gradient norm), so the decision is known before the new state is written and the freeze is a
select fused into the update: it costs about nothing. Scanning the whole new state for
non-finite values (the only check of a step that reports no gradient norm) costs one pass over
the state and a fusion per leaf; see :func:`freeze_on_divergence`.

Examples:
  >>> import jax.numpy as jnp
  >>> from lrjax import freeze_on_divergence
  >>> def step(w, batch, member):
  ...     w = w * member["growth"]
  ...     return w, {"loss": w}
  >>> guarded_step, guarded_init = freeze_on_divergence(step, lambda m: jnp.float32(1.0))
  >>> state = guarded_init({"growth": jnp.float32(1e3)})
  >>> for _ in range(3):
  ...     state, metrics = guarded_step(state, None, {"growth": jnp.float32(1e3)})
  >>> bool(state.alive), int(state.diverged_step), float(state.state)
  (False, 1, 1000.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lrjax import _checks, engine

__all__ = ["Guarded", "freeze_on_divergence"]

PyTree = Any


class Guarded(NamedTuple):
    """The state of a guarded member.

    Attributes:
      state: the wrapped step's state (the last good one once the member diverged).
      alive: False once the member diverged.
      diverged_step: the member's step count at which it diverged, ``-1`` while alive.
      initial_loss: the loss of its first step (``nan`` before it).
      step: steps this member took (int32).
    """

    state: PyTree
    alive: jax.Array
    diverged_step: jax.Array
    initial_loss: jax.Array
    step: jax.Array

    is_lrjax_wrapper = True


def _all_finite(tree: PyTree) -> jax.Array:
    checks = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def guard(state: PyTree) -> Guarded:
    """Wraps one member's fresh state as a live :class:`Guarded` state."""
    return Guarded(
        state=state,
        alive=jnp.array(True),
        diverged_step=jnp.array(-1, jnp.int32),
        initial_loss=jnp.array(jnp.nan, jnp.float32),
        step=jnp.array(0, jnp.int32),
    )


def freeze_on_divergence(
    step: Callable,
    init: Callable | None = None,
    *,
    factor: float | None = 100.0,
    loss: str = "loss",
    grad_norm: str | None = "grad_norm",
    finite: Callable[[PyTree], PyTree] | None = None,
) -> tuple[Callable, Callable | None]:
    r"""Wraps ``(step, init)`` so a diverging member is frozen and flagged.

    At its step :math:`t` with loss :math:`\ell_t` (the metric named ``loss``), gradient norm
    :math:`g_t` (the metric named ``grad_norm``, if the step reports it), first loss
    :math:`\ell_0` and new state :math:`s_{t+1}`, a member diverges when

    .. math:: \neg\,\mathrm{finite}(\ell_t) \;\lor\; \neg\,\mathrm{finite}(g_t)
              \;\lor\; \ell_t > c\,|\ell_0|
              \;\lor\; \neg\,\mathrm{finite}(\mathrm{finite\_part}(s_{t+1}))

    The new state is then discarded: the member keeps :math:`s_t` for the rest of the run.
    Metrics of that step are kept (they show what went wrong); later ones are ``nan``. What each
    check covers:

    * the loss: a forward pass that overflows, or a state that went in non-finite;
    * the gradient norm: a non-finite gradient, which would make the update, and so the new
      parameters and optimizer state, non-finite (with a finite loss and gradient, SGD's,
      momentum's or Adam's new state is finite unless the update itself overflows float32:
      a learning rate beyond about 1e30);
    * the ratio: a loss that explodes while still finite;
    * the state scan, every floating-point leaf of ``finite(new_state)``: anything else that
      would leave the state non-finite, the overflowing update included. It runs when
      ``finite`` is given (``finite=lambda s: s`` scans the whole state), and, with
      ``finite=None``, when the step reports no gradient norm (then the whole state is
      scanned, so a member whose state would become non-finite is always frozen before it
      does).

    The loss and gradient-norm checks are scalars known before the update is written, so
    freezing is a select XLA fuses into the update; the state scan reads the whole new state
    again, one reduction per leaf (10-13% of a small model's step on a CPU).

    Args:
      step: ``step(state, batch, member) -> (state, metrics)``; ``metrics[loss]`` a scalar.
      init: ``init(member) -> state`` or None.
      factor: :math:`c > 0` (static); None turns the ratio test off (non-finite values still
        freeze).
      loss: the name of the loss in the step's metrics.
      grad_norm: the name of the gradient norm in the step's metrics (e.g.
        ``optax.tree.norm(grads)``); None, or a step that does not report it, skips that
        check.
      finite: what of the new state must stay finite, ``finite(state) -> pytree``. Default:
        nothing when the step reports its gradient norm, else the whole state.

    Returns:
      ``(guarded_step, guarded_init)`` over :class:`Guarded` states (``guarded_init`` is None
      when ``init`` is; wrap a fresh state with :func:`guard`).
    """
    if factor is not None:
        factor = _checks.check_float("divergence factor", factor, 0.0, open_min=True)
    limit = jnp.float32(jnp.inf if factor is None else factor)

    def guarded_step(state: Guarded, batch: PyTree, member: PyTree):
        new_state, metrics = step(state.state, batch, member)
        metrics = engine.as_metrics(metrics)
        if loss not in metrics:
            raise ValueError(
                f"freeze_on_divergence needs the step's metrics to hold {loss!r}, got "
                f"{sorted(metrics)}"
            )
        value = jnp.asarray(metrics[loss], jnp.float32)
        initial = jnp.where(jnp.isnan(state.initial_loss), value, state.initial_loss)
        bad = ~jnp.isfinite(value) | (value > limit * jnp.abs(initial))
        reported = grad_norm is not None and grad_norm in metrics
        if reported:
            bad |= ~jnp.all(jnp.isfinite(jnp.asarray(metrics[grad_norm])))
        if finite is not None or not reported:
            bad |= ~_all_finite(new_state if finite is None else finite(new_state))
        keep = state.alive & ~bad

        def choose(new, old):
            return jnp.where(keep, new, old)

        nan = jnp.float32(jnp.nan)

        def hide(m):
            m = jnp.asarray(m)
            if not jnp.issubdtype(m.dtype, jnp.inexact):
                return m
            return jnp.where(state.alive, m, nan.astype(m.dtype))

        guarded = Guarded(
            state=jax.tree.map(choose, new_state, state.state),
            alive=keep,
            diverged_step=jnp.where(state.alive & bad, state.step, state.diverged_step),
            initial_loss=jnp.where(state.alive, initial, state.initial_loss),
            step=state.step + 1,
        )
        return guarded, jax.tree.map(hide, dict(metrics))

    guarded_init = None if init is None else (lambda member: guard(init(member)))
    return guarded_step, guarded_init
