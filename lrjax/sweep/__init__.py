"""A whole hyperparameter sweep of a supervised model in one call: the convenience on the engine.

:func:`train` is a composition of the engine's layers: the supervised step of one member
(:class:`lrjax.supervised.Supervised`: model with or without batch statistics and dropout, a
per-example loss, an optax optimizer whose hyperparameters are injected per member), wrapped in
trackers (:func:`lrjax.track`) and divergence freezing (:func:`lrjax.freeze_on_divergence`),
vectorized over K members (:func:`lrjax.vectorize`) and driven by the host loop
(:func:`lrjax.fit`) with its hooks (evaluation, reduce-on-plateau, checkpoints, progress).
Write your own step and use those pieces directly when this shape does not fit.

The package's rooms: ``_options`` (:class:`Evaluation`, :class:`Options`, each validating
itself), ``_members`` (the per-member settings), ``_data`` (the feed and its data check),
``_parts`` (the controller's rules, the program, the evaluation and the hooks), ``_data_errors``
(the same-batch divergence hook), ``_result`` (:class:`SweepResult`) and ``_train`` (the
composition). :func:`schedule_family_switch` lives in :mod:`lrjax.schedules`.

Examples:
  >>> import jax.numpy as jnp, numpy as np, optax
  >>> from lrjax import sweep
  >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
  >>> y = (x @ np.ones((4, 1), np.float32))
  >>> model = sweep.Model(
  ...     init=lambda key: {"w": jnp.zeros((4, 1))}, apply=lambda p, x: x @ p["w"])
  >>> mse = lambda out, y: jnp.mean((out - y) ** 2, axis=-1)
  >>> res = sweep.train(model, mse, (x, y), optimizer=optax.sgd,
  ...                   hparams={"learning_rate": jnp.array([0.01, 0.1])},
  ...                   num_steps=20, batch_size=16, options=sweep.Options(progress=False))
  >>> res.loss.shape, bool(res.loss[1, -1] < res.loss[0, -1])
  ((2, 20), True)
"""

from lrjax.feeds import batch_indices
from lrjax.schedules import schedule_family_switch  # its home; kept here as an alias
from lrjax.supervised import Model, accuracy
from lrjax.sweep._options import CPU_MEMBERS_PER_DEVICE, Evaluation, Options
from lrjax.sweep._result import SweepResult
from lrjax.sweep._train import train

__all__ = [
    "CPU_MEMBERS_PER_DEVICE",
    "Evaluation",
    "Model",
    "Options",
    "SweepResult",
    "accuracy",
    "batch_indices",
    "schedule_family_switch",
    "train",
]
