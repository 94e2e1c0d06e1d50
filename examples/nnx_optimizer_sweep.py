"""(a) Your own nnx training loop, with nnx.Optimizer, vectorized: 8 learning rates x 2 dropout
rates of a BatchNorm CNN on scikit-learn digits, as ONE compiled program.

Run: ``python -m examples.nnx_optimizer_sweep`` (about a minute on 2 CPU cores).

The model, optimizer and ``train_step`` are written for ONE model, exactly as in the Flax nnx
tutorials; :func:`lrjax.flax_steps.nnx_step` turns them into the pure ``(step, init)`` that
:func:`lrjax.vectorize` compiles over the members. Two things make per-member values reach the
program as data rather than as static attributes of the nnx graph:

* the learning rate lives in the optimizer state: ``optax.inject_hyperparams(optax.sgd)``
  (``nnx.Optimizer`` keeps its transformation in the static graph, so ``optax.sgd(lr)`` would
  make every member train at the template member's rate; ``nnx_step`` refuses that);
* the dropout rate lives in an ``nnx.Variable`` read by :func:`lrjax.models.dropout`, which
  takes a traced rate (``nnx.Dropout`` compares its rate with 0 in Python).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import lrjax
from lrjax.flax_steps import nnx_step


class CNN(nnx.Module):
    """conv-BN-ReLU x2, global average pool, dropout, linear head; for 8x8x1 images."""

    def __init__(self, dropout_rate, *, width: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, width, (3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
        self.conv2 = nnx.Conv(width, width, (3, 3), rngs=rngs)
        self.bn2 = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
        self.head = nnx.Linear(width, 10, rngs=rngs)
        self.dropout_rate = nnx.Variable(jnp.asarray(dropout_rate, jnp.float32))
        self.rngs = rngs
        self.train_mode = True

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.conv1(x[..., None])))
        x = nnx.relu(self.bn2(self.conv2(x)))
        x = jnp.mean(x, axis=(1, 2))
        if self.train_mode:
            x = lrjax.models.dropout(x, self.dropout_rate[...], self.rngs.dropout())
        return self.head(x)


def make(member, width: int = 16):
    """One member's model and optimizer, from its traced learning rate, dropout rate and seed."""
    key = jax.random.key(member["seed"])
    model = CNN(
        member["dropout"],
        width=width,
        rngs=nnx.Rngs(params=key, dropout=jax.random.fold_in(key, 1)),
    )
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=member["lr"], momentum=0.9)
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def train_step(model, optimizer, batch):
    """The usual nnx step for ONE model: mutates the model and the optimizer in place."""
    x, y = batch

    def loss_fn(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return {"loss": loss, "lr": optimizer.opt_state.hyperparams["learning_rate"][...]}


def members(num_lrs: int = 8, dropout_rates=(0.0, 0.3)):
    """The grid: each learning rate with each dropout rate, one seed per member."""
    lrs = np.geomspace(0.01, 1.0, num_lrs).astype(np.float32)
    lr, rate = np.meshgrid(lrs, np.asarray(dropout_rates, np.float32), indexing="ij")
    k = lr.size
    return {"lr": lr.ravel(), "dropout": rate.ravel(), "seed": np.arange(k, dtype=np.int32)}


def main(quick: bool = False, num_steps: int | None = None) -> dict:
    ds = lrjax.load_digits()
    width = 4 if quick else 16
    grid = members(num_lrs=4 if quick else 8)
    num_steps = num_steps or (12 if quick else 400)

    def make_member(member):
        return make(member, width)

    step, init = nnx_step(make_member, train_step, grid)
    program = lrjax.vectorize(step, init)
    one = jax.tree.map(lambda a: jnp.asarray(a[0]), grid)
    graphdef = nnx.graphdef(nnx.eval_shape(make_member, one))

    def accuracy(state, member, data):
        del member
        model, _ = nnx.merge(graphdef, state)
        model.eval()
        model.train_mode = False
        return {"accuracy": jnp.mean(jnp.argmax(model(data[0]), axis=-1) == data[1])}

    evaluate_hook = lrjax.hooks.Evaluate(accuracy, (ds.x_val, ds.y_val))
    result = lrjax.fit(
        program, grid, (ds.x_train, ds.y_train), batch_size=64, num_steps=num_steps,
        chunk_steps=num_steps // 2, hooks=[evaluate_hook],
    )  # fmt: skip
    return {"grid": grid, "result": result, "accuracy": result.loop.evaluations["accuracy"]}


if __name__ == "__main__":
    out = main()
    acc = out["accuracy"][:, -1].reshape(-1, 2)
    for lr, row in zip(np.unique(out["grid"]["lr"]), acc, strict=True):
        print(f"lr {lr:.4f}: val accuracy {row[0]:.3f} (no dropout), {row[1]:.3f} (dropout 0.3)")
