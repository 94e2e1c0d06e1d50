"""(f) The shape of Flax's nnx MNIST tutorial, vectorized over learning rates and range-tested in
one call each: a CNN whose ``__call__`` takes ``rngs`` (dropout), an ``nnx.Optimizer``, and an
``nnx.MultiMetric`` of accuracy and average loss.

Run: ``python -m examples.nnx_mnist_sweep`` (about a minute on 2 CPU cores; scikit-learn digits,
8x8 images standing in for MNIST's 28x28).

The model, ``loss_fn`` and ``train_step`` are the tutorial's, for ONE model; the objects that
``make(member)`` returns (model, optimizer, metrics, and the ``nnx.Rngs`` the step passes to
the model) become one member's state through :func:`lrjax.flax_steps.nnx_step`. Two choices
make members differ as data, not as static graph attributes: the learning rate lives in the
optimizer state (``optax.inject_hyperparams``), and the seed enters as a key,
``nnx.Rngs(jax.random.key(member["seed"]))``. The step resets the ``MultiMetric`` before each
update, so the metrics it returns (its ``compute()`` output) are the step's own; the tutorial's
running averages over ``eval_every`` steps are means of these.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import lrjax
from lrjax.flax_steps import nnx_step


class CNN(nnx.Module):
    """The tutorial's CNN, with its dropout drawing from the ``rngs`` given at call time."""

    def __init__(self, *, width: int = 16, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, width, kernel_size=(3, 3), rngs=rngs)
        self.dropout1 = nnx.Dropout(rate=0.025)
        self.conv2 = nnx.Conv(width, 2 * width, kernel_size=(3, 3), rngs=rngs)
        self.avg_pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
        self.linear1 = nnx.Linear(2 * width * 2 * 2, 64, rngs=rngs)
        self.dropout2 = nnx.Dropout(rate=0.025)
        self.linear2 = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x, rngs: nnx.Rngs | None = None):
        x = self.avg_pool(self.dropout1(nnx.relu(self.conv1(x)), rngs=rngs))
        x = self.avg_pool(nnx.relu(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)  # flatten
        x = nnx.relu(self.dropout2(self.linear1(x), rngs=rngs))
        return self.linear2(x)


def loss_fn(model: CNN, rngs: nnx.Rngs, batch):
    logits = model(batch["image"], rngs=rngs)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, logits


def train_step(model, optimizer, metrics, rngs, batch):
    """Train for a single step (the tutorial's), returning this step's metrics."""
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(model, rngs, batch)
    metrics.reset()
    metrics.update(loss=loss, logits=logits, labels=batch["label"])  # In-place updates.
    optimizer.update(model, grads)  # In-place updates.
    return metrics.compute()


def make(member, width: int = 16):
    """One member's objects, from its traced learning rate and seed."""
    model = CNN(width=width, rngs=nnx.Rngs(jax.random.key(member["seed"])))
    tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
        learning_rate=member["lr"], b1=0.9
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss"))
    return model, optimizer, metrics, nnx.Rngs(dropout=jax.random.key(member["seed"] + 1))


def main(quick: bool = False, num_steps: int | None = None) -> dict:
    ds = lrjax.load_digits()
    images = {"image": ds.x_train[..., None], "label": ds.y_train}
    width = 4 if quick else 16
    num_steps = num_steps or (6 if quick else 300)
    lrs = np.geomspace(1e-3, 3e-2, 4 if quick else 8).astype(np.float32)
    members = {"lr": lrs, "seed": np.zeros(lrs.size, np.int32)}

    def make_member(member):
        return make(member, width)

    step, init = nnx_step(make_member, train_step, members)
    result = lrjax.fit(
        lrjax.vectorize(step, init), members, images, batch_size=32, num_steps=num_steps
    )
    # The range test of the same step: the controller ramps the injected learning rate (each
    # run's `lr` is only the optimizer's initial value), one run per seed.
    found = lrjax.range_test(
        step, init, images, members={"lr": np.zeros(2, np.float32), "seed": np.arange(2)},
        start_lr=1e-5, end_lr=1.0, num_steps=20 if quick else 100, batch_size=32,
    )  # fmt: skip
    return {"members": members, "result": result, "range_test": found, "make": make_member}


if __name__ == "__main__":
    out = main()
    accuracy = out["result"].metrics["accuracy"]
    for lr, acc in zip(out["members"]["lr"], accuracy[:, -50:].mean(axis=1), strict=True):
        print(f"lr {lr:.4f}: training accuracy over the last 50 steps {acc:.3f}")
    print("range test suggestions:", out["range_test"].suggestions(skip_end=2))
