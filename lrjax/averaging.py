"""Weight averaging inside a compiled loop: stochastic weight averaging (SWA) and EMA.

Both are pure updates of a parameter pytree, written with ``jnp.where`` so they run inside
``lax.scan`` and under ``jax.vmap`` over members (each member keeps its own average, and the
EMA decay may differ between members). Use :func:`lrjax.swa_schedule` for the SWA learning
rate, and :func:`recompute_batch_stats` for models with batch-norm statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lrjax._checks import check_int, check_magnitude

__all__ = ["SWAState", "ema_update", "recompute_batch_stats", "swa_init", "swa_update"]

PyTree = Any


class SWAState(NamedTuple):
    """Running equal average of sampled parameters.

    Attributes:
      mean: the average, shaped like the parameters.
      count: how many parameter sets it averages (int32).
    """

    mean: PyTree
    count: jax.Array


def swa_init(params: PyTree) -> SWAState:
    """An empty SWA average shaped like ``params``.

    Args:
      params: a parameter pytree (only its shapes and dtypes are used).

    Returns:
      An :class:`SWAState` with zero mean and count 0.
    """
    return SWAState(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.int32))


def swa_update(
    state: SWAState, params: PyTree, num_updates: Any, start: int, every: int = 1
) -> SWAState:
    r"""Adds ``params`` to the equal average when SWA samples this step.

    The parameters after :math:`n` updates are sampled when :math:`n \ge s` and
    :math:`(n - s) \bmod c = 0`; the average of :math:`k` samples is updated as

    .. math:: \bar w_{k+1} = \bar w_k + \frac{w - \bar w_k}{k + 1}

    Args:
      state: the current average.
      params: the parameters after ``num_updates`` updates.
      num_updates: :math:`n`, number of updates done so far (traceable int).
      start: :math:`s \ge 0`, first number of updates that is sampled.
      every: :math:`c \ge 1`, sampling period in updates.

    Returns:
      The new :class:`SWAState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lrjax import swa_init, swa_update
      >>> state = swa_init(jnp.zeros(()))
      >>> for n, w in enumerate([9.0, 1.0, 2.0, 3.0], start=1):
      ...     state = swa_update(state, jnp.asarray(w), n, start=2)
      >>> float(state.mean), int(state.count)
      (2.0, 3)

    References:
      Izmailov et al., Averaging Weights Leads to Wider Optima and Better Generalization,
      arXiv:1803.05407, 2018; PyTorch ``torch.optim.swa_utils.AveragedModel``.
    """
    start = check_int("start", start, 0)
    every = check_int("every", every, 1)
    n = jnp.asarray(num_updates, jnp.int32)
    take = (n >= start) & ((n - start) % every == 0)
    count = state.count + take.astype(jnp.int32)
    weight = 1.0 / jnp.maximum(count, 1).astype(jnp.float32)

    def mix(mean, p):
        return jnp.where(take, mean + (p - mean) * weight.astype(mean.dtype), mean)

    return SWAState(jax.tree.map(mix, state.mean, params), count)


def ema_update(ema: PyTree, params: PyTree, decay: Any) -> PyTree:
    r"""One step of an exponential moving average of the parameters.

    .. math:: \bar w \leftarrow \beta\, \bar w + (1 - \beta)\, w

    Start it from the initial parameters (``ema = params``), as timm's ``ModelEmaV2`` does.

    Args:
      ema: the current average.
      params: the new parameters.
      decay: :math:`\beta \in [0, 1]` (traceable, so it may differ between members; checked
        unless traced).

    Returns:
      The new average.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lrjax import ema_update
      >>> float(ema_update(jnp.asarray(1.0), jnp.asarray(3.0), decay=0.75))
      1.5

    References:
      Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging, 1992;
      optax ``ema``; timm ``ModelEmaV2``.
    """
    check_magnitude("decay", decay, 0, 1)

    def mix(e, p):
        beta = jnp.asarray(decay, e.dtype)
        return beta * e + (1.0 - beta) * p

    return jax.tree.map(mix, ema, params)


def recompute_batch_stats(
    apply_fn: Callable[..., Any], variables: PyTree, batches: Iterable[Any]
) -> PyTree:
    r"""Recomputes batch-norm statistics for (averaged) weights, PyTorch ``update_bn`` style.

    Averaged weights never produced the running means and variances stored with them, so they
    are recomputed as the equal average, over ``batches``, of each batch's statistics under the
    new weights (PyTorch's ``update_bn`` resets the statistics and uses a cumulative average).

    It works with any module whose ``batch_stats`` follow Flax ``BatchNorm``'s rule
    :math:`r \leftarrow m r + (1 - m) b` without knowing :math:`m`: running the batch once
    from :math:`r = 0` gives :math:`(1-m) b` and once from :math:`r = 1` gives
    :math:`m + (1-m) b`, from which :math:`m` and :math:`b` follow exactly.

    Models without a ``batch_stats`` collection (all models in :mod:`lrjax.models`) need
    nothing: ``variables`` is returned unchanged.

    Args:
      apply_fn: ``apply_fn(variables, x, mutable=["batch_stats"])`` runs the model in training
        mode and returns ``(outputs, {"batch_stats": ...})`` (bind ``train=True`` yourself).
      variables: ``{"params": ..., "batch_stats": ...}`` with the averaged parameters.
      batches: the inputs to recompute on (one pass over the training data).

    Returns:
      ``variables`` with recomputed ``batch_stats``.

    References:
      Izmailov et al., arXiv:1803.05407, 2018; PyTorch ``torch.optim.swa_utils.update_bn``.
    """
    if "batch_stats" not in variables:
        return variables

    def stats_from(value, x):
        filled = jax.tree.map(lambda s: jnp.full_like(s, value), variables["batch_stats"])
        _, updated = apply_fn({**variables, "batch_stats": filled}, x, mutable=["batch_stats"])
        return updated["batch_stats"]

    @jax.jit
    def batch_stats(x):
        from_zero, from_one = stats_from(0.0, x), stats_from(1.0, x)
        # from_zero = (1 - m) b and from_one - from_zero = m, so b = from_zero / (1 - m).
        return jax.tree.map(lambda z, o: z / (1.0 - (o - z)), from_zero, from_one)

    total, count = None, 0
    for x in batches:
        stats = batch_stats(x)
        total = stats if total is None else jax.tree.map(jnp.add, total, stats)
        count += 1
    if count == 0:
        raise ValueError("batches must hold at least one batch, got none")
    return {**variables, "batch_stats": jax.tree.map(lambda s: s / count, total)}
