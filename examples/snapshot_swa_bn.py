"""(d) A snapshot ensemble and SWA on a CNN with BatchNorm, BN statistics recomputed for SWA.

Run: ``python -m examples.snapshot_swa_bn`` (about a minute on 2 CPU cores).

One :func:`lrjax.sweep.train` run per peak learning rate member: the cyclic cosine schedule of
Huang et al. (2017) leaves a snapshot at the end of every cycle, and SWA averages the iterates at
the end of the cycles after the first (cyclic SWA, Izmailov et al. 2018), both inside the
compiled loop. For a model with batch statistics the trackers follow
``{"params": ..., "batch_stats": ...}``: each snapshot keeps the statistics of its moment, while
the SWA average's statistics belong to no set of weights and are recomputed on the training
data (:func:`lrjax.recompute_batch_stats`, PyTorch's ``update_bn``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from lrjax import models, sweep

LOSS = optax.softmax_cross_entropy_with_integer_labels


def main(quick: bool = False) -> dict:
    ds = lrjax.load_digits()
    module = models.ResNet(features=(4,)) if quick else models.ResNet()
    total, cycles = (24, 3) if quick else (1200, 4)
    cycle = total // cycles
    peaks = np.array([0.05, 0.2], np.float32)
    model = lrjax.supervised.as_model(module, ds.x_train[:1])
    result = sweep.train(
        model, LOSS, (ds.x_train, ds.y_train), optimizer=optax.sgd,
        optimizer_kwargs=lambda hp: {
            "learning_rate": lrjax.snapshot_ensemble(hp["peak"], total, cycles), "momentum": 0.9},
        hparams={"peak": peaks}, seeds=[0, 1], num_steps=total, batch_size=64,
        trackers={
            "snapshots": lrjax.Snapshots(lrjax.snapshot_steps(total, cycles)),
            "swa": lrjax.SWA(start=2 * cycle, every=cycle),  # the ends of cycles 2..M
        },
        options=sweep.Options(progress=False),
    )  # fmt: skip
    # The SWA average's batch statistics, recomputed member by member on the training data.
    batches = [ds.x_train[i : i + 256] for i in range(0, len(ds.x_train), 256)]
    swa = lrjax.recompute_batch_stats(model, result.swa_params, batches, stacked=True)

    def accuracy(variables):
        logits = model.predict(variables, jnp.asarray(ds.x_test))
        return jnp.mean(jnp.argmax(logits, axis=-1) == ds.y_test)

    snapshots = jax.vmap(
        lambda s: lrjax.evaluate_snapshots(model.predict, s, ds.x_test, ds.y_test)
    )(result.snapshots)
    final = model.variables(result.params, result.model_state)
    return {
        "result": result,
        "single": np.asarray(jax.vmap(accuracy)(final)),
        "swa_stale_stats": np.asarray(jax.vmap(accuracy)(result.swa_params)),
        "swa": np.asarray(jax.vmap(accuracy)(swa)),
        "snapshot_ensemble": np.asarray(snapshots.ensemble_accuracy[:, -1]),
        "swa_variables": swa,
    }


if __name__ == "__main__":
    out = main()
    for name in ("single", "snapshot_ensemble", "swa", "swa_stale_stats"):
        print(f"{name:>18}: test accuracy per member {np.round(out[name], 4).tolist()}")
