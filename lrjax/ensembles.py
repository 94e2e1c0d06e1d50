"""Snapshot ensembles: evaluate the snapshots a cyclic schedule leaves behind.

Training with :func:`lrjax.snapshot_ensemble` and capturing the parameters after each of the
:func:`lrjax.snapshot_steps` happens inside the compiled loop of :mod:`lrjax.sweep`; this module
turns the stacked snapshots into predictions and the numbers the paper reports: each single
snapshot, and the ensembles of the last ``m`` snapshots for ``m = 1..M``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["SnapshotEvaluation", "ensemble_probabilities", "evaluate_snapshots"]

PyTree = Any


class SnapshotEvaluation(NamedTuple):
    """Accuracy and loss of single snapshots and of ensembles of the last snapshots.

    Entry ``i`` of ``single_*`` is snapshot ``i`` (in training order); entry ``m - 1`` of
    ``ensemble_*`` is the ensemble of the last ``m`` snapshots, so ``ensemble_*[0]`` is the final
    snapshot alone and ``ensemble_*[-1]`` averages all of them. Add a leading member axis under
    ``jax.vmap``.
    """

    single_accuracy: jax.Array
    single_loss: jax.Array
    ensemble_accuracy: jax.Array
    ensemble_loss: jax.Array


def ensemble_probabilities(
    apply_fn: Callable[[PyTree, jax.Array], jax.Array], snapshots: PyTree, x: jax.Array
) -> jax.Array:
    r"""Class probabilities of every snapshot, shape ``(M, batch, classes)``.

    .. math:: p_k(x) = \mathrm{softmax}(f(w_k, x)), \qquad k = 1, \dots, M

    Args:
      apply_fn: ``apply_fn(params, x) -> logits``.
      snapshots: parameter pytree with a leading snapshot axis of size :math:`M`.
      x: a batch of inputs.

    Returns:
      The stacked softmax outputs.
    """
    return jax.vmap(lambda params: jax.nn.softmax(apply_fn(params, x), axis=-1))(snapshots)


def evaluate_snapshots(
    apply_fn: Callable[[PyTree, jax.Array], jax.Array],
    snapshots: PyTree,
    x: jax.Array,
    y: jax.Array,
) -> SnapshotEvaluation:
    r"""Scores each snapshot and each ensemble of the last :math:`m` snapshots.

    The ensemble of the last :math:`m` of :math:`M` snapshots predicts the average of their
    softmax outputs, as in Huang et al. (2017):

    .. math:: \bar p_m(x) = \frac{1}{m} \sum_{k = M - m + 1}^{M} p_k(x)

    Loss is the mean negative log-likelihood of the labels under the (averaged) probabilities;
    accuracy is the top-1 accuracy.

    Args:
      apply_fn: ``apply_fn(params, x) -> logits``.
      snapshots: parameter pytree with a leading snapshot axis of size :math:`M`.
      x: inputs, shape ``(batch, ...)``.
      y: integer labels, shape ``(batch,)``.

    Returns:
      A :class:`SnapshotEvaluation`, each field of shape ``(M,)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lrjax import evaluate_snapshots
      >>> apply = lambda w, x: x @ w
      >>> snapshots = jnp.stack([jnp.eye(2), jnp.eye(2)])  # two identical snapshots
      >>> result = evaluate_snapshots(apply, snapshots, jnp.eye(2), jnp.array([0, 1]))
      >>> result.ensemble_loss.tolist() == result.single_loss.tolist()
      True

    References:
      Huang et al., Snapshot Ensembles: Train 1, get M for free, arXiv:1704.00109, 2017.
    """
    probs = ensemble_probabilities(apply_fn, snapshots, x)
    num = probs.shape[0]
    # Mean of the last m snapshots for m = 1..M: reversed cumulative sums over snapshots.
    last_m = (
        jnp.cumsum(probs[::-1], axis=0) / jnp.arange(1, num + 1, dtype=probs.dtype)[:, None, None]
    )

    def scores(p):
        picked = jnp.take_along_axis(p, y[:, None].astype(jnp.int32), axis=-1)[:, 0]
        loss = -jnp.mean(jnp.log(jnp.maximum(picked, jnp.finfo(p.dtype).tiny)))
        accuracy = jnp.mean((jnp.argmax(p, axis=-1) == y).astype(jnp.float32))
        return accuracy, loss

    single_accuracy, single_loss = jax.vmap(scores)(probs)
    ensemble_accuracy, ensemble_loss = jax.vmap(scores)(last_m)
    return SnapshotEvaluation(single_accuracy, single_loss, ensemble_accuracy, ensemble_loss)
