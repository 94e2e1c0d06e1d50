"""(b) Your own linen ``TrainState`` loop, with BatchNorm and dropout, vectorized: 8 learning
rates x 2 dropout rates of :class:`lrjax.models.ResNet` on scikit-learn digits, one program.

Run: ``python -m examples.linen_trainstate_sweep`` (about a minute on 2 CPU cores).

``init`` and ``step`` below are the Flax-examples code for ONE model: a ``TrainState`` with
``batch_stats``, ``mutable=["batch_stats"]`` in training, a ``"dropout"`` RNG. Three choices make
them vectorizable over members without recompiling:

* the learning rate is injected into the optimizer state (``optax.inject_hyperparams``), so the
  ``tx`` stored in the ``TrainState`` holds no member's value;
* the dropout rate is an argument of the module call (``ResNet(dropout_rate=...)`` accepts a
  traced rate, :func:`lrjax.models.dropout`);
* the dropout key is :func:`lrjax.step_key` of the member's seed and step, so a member draws the
  same masks whatever K, groups or devices.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import lrjax
from lrjax import models

MODEL = models.ResNet(features=(8, 16))


class TrainState(train_state.TrainState):
    batch_stats: Any


def make_init(model, sample_x):
    def init(member):
        variables = model.init(jax.random.key(member["seed"]), sample_x)
        tx = optax.inject_hyperparams(optax.sgd)(learning_rate=member["lr"], momentum=0.9)
        return TrainState.create(
            apply_fn=model.apply, params=variables["params"], tx=tx,
            batch_stats=variables["batch_stats"],
        )  # fmt: skip

    return init


def step(state, batch, member):
    """One training step of ONE model, as in the Flax examples."""
    x, y = batch
    key = lrjax.step_key(member["seed"], state.step)

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, x, train=True,
            dropout_rate=member["dropout"], rngs={"dropout": key}, mutable=["batch_stats"],
        )  # fmt: skip
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, updates["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
    return state, {"loss": loss, "lr": state.opt_state.hyperparams["learning_rate"]}


def evaluate(state, member, data):
    """Validation accuracy of one member: running statistics, no dropout."""
    del member
    x, y = data
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, x)
    return {"accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == y)}


def members(num_lrs: int = 8, dropout_rates=(0.0, 0.3)):
    lrs = np.geomspace(0.01, 1.0, num_lrs).astype(np.float32)
    lr, rate = np.meshgrid(lrs, np.asarray(dropout_rates, np.float32), indexing="ij")
    return {"lr": lr.ravel(), "dropout": rate.ravel(), "seed": np.arange(lr.size, dtype=np.int32)}


def main(quick: bool = False, num_steps: int | None = None) -> dict:
    ds = lrjax.load_digits()
    model = models.ResNet(features=(4,)) if quick else MODEL
    grid = members(num_lrs=4 if quick else 8)
    num_steps = num_steps or (12 if quick else 400)
    # Divergence freezing is a layer around the user's step: a member whose loss explodes stops.
    guarded_step, guarded_init = lrjax.freeze_on_divergence(step, make_init(model, ds.x_train[:1]))
    program = lrjax.vectorize(guarded_step, guarded_init)
    evaluate_hook = lrjax.hooks.Evaluate(
        lambda state, member, data: evaluate(lrjax.unwrap(state), member, data),
        (ds.x_val, ds.y_val),
    )
    result = lrjax.fit(
        program, grid, (ds.x_train, ds.y_train), batch_size=64, num_steps=num_steps,
        chunk_steps=num_steps // 2, hooks=[evaluate_hook],
    )  # fmt: skip
    return {
        "grid": grid,
        "result": result,
        "accuracy": result.loop.evaluations["accuracy"],
        "init": make_init(model, ds.x_train[:1]),
        "data": ds,
    }


if __name__ == "__main__":
    out = main()
    acc = out["accuracy"][:, -1].reshape(-1, 2)
    for lr, row in zip(np.unique(out["grid"]["lr"]), acc, strict=True):
        print(f"lr {lr:.4f}: val accuracy {row[0]:.3f} (no dropout), {row[1]:.3f} (dropout 0.3)")
