"""(g) Take the best member of a sweep away: :func:`lrjax.export` writes it as a standalone orbax
checkpoint that a plain single-model Flax loop restores with the standard orbax call, for a
linen ``TrainState`` loop and for an nnx loop, each with BatchNorm and dropout.

Run: ``python -m examples.export_member`` (about half a minute on 2 CPU cores; scikit-learn
digits).

Linen: the step is the Flax examples' ``TrainState`` step for ONE model (``batch_stats``,
``mutable=["batch_stats"]``, a ``"dropout"`` RNG), followed by EMA, SWA and snapshot
trackers (:func:`lrjax.track`) and vectorized over learning rates. The best member by validation
accuracy is exported twice: its final state and its EMA (the EMA weights and statistics in the
``TrainState``'s ``params`` and ``batch_stats``). A fresh single-model loop restores each with

    ocp.StandardCheckpointer().restore(path, jax.eval_shape(create_train_state, key))

nnx: the tutorial-style step mutating ``(model, optimizer)`` (:func:`lrjax.flax_steps.nnx_step`);
the best member's model state is exported (``select`` picks the model out of the objects) and
restored the way Flax's checkpointing guide restores a model:

    graphdef, abstract_state = nnx.split(nnx.eval_shape(lambda: Net(rngs=nnx.Rngs(0))))
    model = nnx.merge(graphdef, ocp.StandardCheckpointer().restore(path, abstract_state))

In both, the restored model's predictions equal the member's in the sweep exactly.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from flax.training import train_state

import lrjax
from lrjax.flax_steps import nnx_step

HIDDEN, CLASSES = 32, 10

# -----------------------------------------------------------------------------------------------
# Linen: a TrainState with batch statistics, as the Flax examples write it


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(HIDDEN)(x.reshape(x.shape[0], -1))
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(CLASSES)(x)


class TrainState(train_state.TrainState):
    batch_stats: Any


def create_train_state(key, lr=0.0):
    """The single-model loop's state (the learning rate lives in the optimizer state)."""
    model = MLP()
    variables = model.init(key, jnp.zeros((1, 8, 8)))
    tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(
        learning_rate=lr, momentum=0.9
    )
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=tx,
        batch_stats=variables["batch_stats"],
    )  # fmt: skip


def linen_step(state, batch, member):
    """One training step of ONE model."""
    x, y = batch
    key = lrjax.step_key(member["seed"], state.step)

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, x, train=True,
            rngs={"dropout": key}, mutable=["batch_stats"],
        )  # fmt: skip
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads).replace(batch_stats=updates["batch_stats"])
    return state, {"loss": loss}


@jax.jit
def linen_predict(state, x):
    """The single-model loop's predictions: running statistics, no dropout."""
    return state.apply_fn({"params": state.params, "batch_stats": state.batch_stats}, x)


def linen_accuracy(state, member, data):
    del member
    x, y = data
    return {"accuracy": jnp.mean(jnp.argmax(linen_predict(lrjax.unwrap(state), x), -1) == y)}


def linen(ds, directory, num_steps):
    members = {"lr": np.float32([0.01, 0.1, 0.5]), "seed": np.arange(3, dtype=np.int32)}

    def init(member):
        return create_train_state(jax.random.key(member["seed"]), member["lr"])

    trackers = {
        "ema": lrjax.EMA(0.9),
        "swa": lrjax.SWA(num_steps // 2),
        "snapshots": lrjax.Snapshots((num_steps // 2, num_steps)),
    }
    step, init = lrjax.track(linen_step, init, trackers)
    result = lrjax.fit(
        lrjax.vectorize(step, init), members, (ds.x_train, ds.y_train), batch_size=64,
        num_steps=num_steps, chunk_steps=num_steps // 2,
        hooks=[lrjax.hooks.Evaluate(linen_accuracy, (ds.x_val, ds.y_val))],
    )  # fmt: skip
    best = int(np.argmax(result.loop.evaluations["accuracy"][:, -1]))
    out = {"best": best, "result": result}
    for what in ("params", "ema"):
        path = lrjax.export(
            result, os.path.join(directory, f"linen_{what}"), member=best, what=what
        )
        # A fresh single-model loop: its own state's shapes, and the standard orbax call.
        abstract = jax.eval_shape(create_train_state, jax.random.key(0))
        restored = ocp.StandardCheckpointer().restore(path, abstract)
        in_sweep = lrjax.member_state(result, member=best, what=what)
        out[what] = (linen_predict(restored, ds.x_val), linen_predict(in_sweep, ds.x_val))
    out["sweep_accuracy"] = result.loop.evaluations["accuracy"][best, -1]
    return out


# -----------------------------------------------------------------------------------------------
# nnx: the tutorial's objects, mutated in place by the step


class Net(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, HIDDEN, rngs=rngs)
        self.norm = nnx.BatchNorm(HIDDEN, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(HIDDEN, CLASSES, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.hidden(x.reshape(x.shape[0], -1))))
        return self.out(self.dropout(x))


def make(member):
    model = Net(rngs=nnx.Rngs(jax.random.key(member["seed"])))
    tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(member["lr"], 0.9)
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def nnx_train_step(model, optimizer, batch):
    x, y = batch

    def loss_fn(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return {"loss": loss}


def nnx_predict(model, x):
    model.eval()  # running statistics, no dropout
    return model(x)


def nnx_accuracy(state, member, data):
    del member
    x, y = data
    model, _ = nnx.merge(NNX_GRAPH, lrjax.unwrap(state))
    return {"accuracy": jnp.mean(jnp.argmax(nnx_predict(model, x), -1) == y)}


NNX_MEMBERS = {"lr": np.float32([0.01, 0.1, 0.3]), "seed": np.arange(3, dtype=np.int32)}
NNX_GRAPH = nnx.graphdef(nnx.eval_shape(make, {"lr": jnp.float32(0), "seed": jnp.int32(0)}))


def nnx_loop(ds, directory, num_steps):
    step, init = nnx_step(make, nnx_train_step, NNX_MEMBERS)
    result = lrjax.fit(
        lrjax.vectorize(step, init), NNX_MEMBERS, (ds.x_train, ds.y_train), batch_size=64,
        num_steps=num_steps, hooks=[lrjax.hooks.Evaluate(nnx_accuracy, (ds.x_val, ds.y_val))],
    )  # fmt: skip
    best = int(np.argmax(result.loop.evaluations["accuracy"][:, -1]))
    # The member's state holds (model, optimizer); select writes the model's.
    path = lrjax.export(
        result, os.path.join(directory, "nnx"), member=best, select=lambda state: state[0]
    )
    # A fresh single-model loop, restored as Flax's checkpointing guide does.
    graphdef, abstract_state = nnx.split(nnx.eval_shape(lambda: Net(rngs=nnx.Rngs(0))))
    model = nnx.merge(graphdef, ocp.StandardCheckpointer().restore(path, abstract_state))
    member_model, _ = nnx.merge(NNX_GRAPH, lrjax.member_state(result, member=best))
    return {
        "best": best,
        "predictions": (nnx_predict(model, ds.x_val), nnx_predict(member_model, ds.x_val)),
        "sweep_accuracy": result.loop.evaluations["accuracy"][best, -1],
    }


def main(quick: bool = False, directory: str | None = None) -> dict:
    ds = lrjax.load_digits()
    num_steps = 10 if quick else 200
    with tempfile.TemporaryDirectory() as scratch:
        directory = directory or scratch
        return {"linen": linen(ds, directory, num_steps), "nnx": nnx_loop(ds, directory, num_steps)}


if __name__ == "__main__":
    out = main()
    for name in ("linen", "nnx"):
        best = out[name]["best"]
        print(f"{name}: best member {best}, validation accuracy {out[name]['sweep_accuracy']:.3f}")
    for what in ("params", "ema"):
        restored, in_sweep = out["linen"][what]
        print(
            f"linen {what}: restored predictions equal the sweep's:",
            np.array_equal(restored, in_sweep),
        )
    restored, in_sweep = out["nnx"]["predictions"]
    print("nnx: restored predictions equal the sweep's:", np.array_equal(restored, in_sweep))
