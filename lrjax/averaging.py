"""Weight averaging inside a compiled loop: stochastic weight averaging (SWA) and EMA.

Both are pure updates of a parameter pytree, written with ``jnp.where`` so they run inside
``lax.scan`` and under ``jax.vmap`` over members (each member keeps its own average, and the
EMA decay may differ between members). Use :func:`lrjax.swa_schedule` for the SWA learning
rate, and :func:`recompute_batch_stats` for models with batch-norm statistics.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    apply_fn: Any, variables: PyTree, batches: Iterable[Any], *, stacked: bool = False
) -> PyTree:
    r"""Recomputes batch-norm statistics for (averaged) weights, PyTorch ``update_bn`` style.

    Averaged weights never produced the running means and variances stored with them, so they
    are recomputed as the equal average, over ``batches``, of each batch's statistics under the
    new weights (PyTorch's ``update_bn`` resets the statistics and uses a cumulative average).
    The model runs in training mode, as ``update_bn`` does (dropout included).

    It works with any batch norm following Flax's rule :math:`r \leftarrow m r + (1 - m) b`
    without knowing :math:`m`: running the batch once from :math:`r = 0` gives
    :math:`(1-m) b` and once from :math:`r = 1` gives :math:`m + (1-m) b`, from which
    :math:`m` and :math:`b` follow exactly.

    Args:
      apply_fn: one of

        * a linen ``apply_fn(variables, x, mutable=["batch_stats"])`` running the model in
          training mode (bind ``train=True`` yourself), with ``variables = {"params": ...,
          "batch_stats": ...}``;
        * an :class:`lrjax.Model` with batch statistics (from a linen or an nnx module), with
          ``variables = {"params": params, **model_state}`` (``result.params`` and
          ``result.model_state`` of a sweep);
        * an ``nnx.Module`` (``variables`` is ignored): its ``nnx.BatchStat`` variables are
          recomputed on a copy, which is returned.

      variables: as above. Without ``"batch_stats"`` (a model without batch norm, like all
        stateless models) they are returned unchanged.
      batches: the inputs to recompute on (one pass over the training data).
      stacked: ``variables`` carry a leading member axis (a sweep's K members), each member's
        statistics recomputed under its own weights on the same batches.

    Returns:
      ``variables`` (or the module) with recomputed batch statistics.

    Examples:
      >>> import flax.linen as nn, jax.numpy as jnp
      >>> class Net(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x, train=True):
      ...         return nn.BatchNorm(use_running_average=not train)(nn.Dense(2)(x))
      >>> variables = Net().init(jax.random.key(0), jnp.ones((4, 3)))
      >>> new = recompute_batch_stats(Net().apply, variables, [jnp.ones((4, 3))])
      >>> new["batch_stats"]["BatchNorm_0"]["var"].tolist()  # a constant batch has no variance
      [0.0, 0.0]

    References:
      Izmailov et al., arXiv:1803.05407, 2018; PyTorch ``torch.optim.swa_utils.update_bn``.
    """
    from flax import nnx

    from lrjax.supervised import Model

    if isinstance(apply_fn, nnx.Module):
        return _recompute_nnx(apply_fn, batches)
    if variables is None or "batch_stats" not in variables:
        if isinstance(variables, nnx.State):
            raise ValueError(
                "variables is an nnx.State: pass the nnx.Module itself as apply_fn "
                "(its nnx.BatchStat variables are recomputed)"
            )
        return variables
    if isinstance(apply_fn, Model):
        if not apply_fn.stateful:
            raise ValueError("this lrjax.Model has no batch statistics to recompute")
        model = apply_fn

        def run(v, stats, x):
            state = {k: val for k, val in v.items() if k != "params"}
            key = jax.random.key(0)
            return model.apply_train(v["params"], {**state, "batch_stats": stats}, x, key)[1][
                "batch_stats"
            ]

    else:

        def run(v, stats, x):
            return apply_fn({**v, "batch_stats": stats}, x, mutable=["batch_stats"])[1][
                "batch_stats"
            ]

    stats = _average_batch_stats(run, variables, variables["batch_stats"], batches, stacked)
    return {**variables, "batch_stats": stats}


def _average_batch_stats(run, variables, template, batches, stacked) -> PyTree:
    """The equal average over batches of each batch's statistics, by the 0/1 start trick."""

    def from_start(v, value, x):
        return run(v, jax.tree.map(lambda s: jnp.full_like(s, value), template_of(v)), x)

    def template_of(v):
        return v["batch_stats"] if isinstance(v, dict) and "batch_stats" in v else template

    def one(v, x):
        from_zero, from_one = from_start(v, 0.0, x), from_start(v, 1.0, x)
        # from_zero = (1 - m) b and from_one - from_zero = m, so b = from_zero / (1 - m).
        return jax.tree.map(lambda z, o: z / (1.0 - (o - z)), from_zero, from_one)

    batch_stats = jax.jit(jax.vmap(one, in_axes=(0, None)) if stacked else one)
    total, count = None, 0
    for x in batches:
        stats = batch_stats(variables, x)
        total = stats if total is None else jax.tree.map(jnp.add, total, stats)
        count += 1
    if count == 0:
        raise ValueError("batches must hold at least one batch, got none")
    return jax.tree.map(lambda s: s / count, total)


def _recompute_nnx(module: Any, batches: Iterable[Any]) -> Any:
    from flax import nnx

    graphdef, stats, rest = nnx.split(module, nnx.BatchStat, ...)
    train_graph = nnx.graphdef(
        nnx.view(module, deterministic=False, use_running_average=False, raise_if_not_found=False)
    )

    def run(v, new_stats, x):
        live = nnx.merge(train_graph, new_stats, v)
        live(x)
        return nnx.split(live, nnx.BatchStat, ...)[1]

    recomputed = _average_batch_stats(run, rest, stats, batches, stacked=False)
    return nnx.merge(graphdef, recomputed, rest)
