"""(e) The shape of Flax's official ImageNet example, vectorized over peak learning rates and
range-tested in one call each: a ``TrainState`` with ``batch_stats``, ``BatchNorm`` over the
named ``'batch'`` axis, gradients and metrics averaged with ``lax.pmean`` over it, and a
warmup + cosine learning-rate schedule.

Run: ``python -m examples.flax_imagenet_sweep`` (about a minute on 2 CPU cores; a tiny ResNet
on scikit-learn digits, 8x8 images standing in for ImageNet's).

The step below is written as ``examples/imagenet/train.py`` writes it (pmap-style, for ONE
replica's batch); three things make it a sweep:

* lrjax binds the ``'batch'`` axis over one replica (``lrjax.vectorize(axis_names=("batch",))``,
  the default), so ``lax.pmean`` and ``BatchNorm(axis_name='batch')`` run unchanged: each
  member's batch is the whole batch;
* the optimizer keeps its learning rate in its state (``optax.inject_hyperparams``), and the
  schedule ``create_learning_rate_fn`` (Flax's warmup + cosine) is given to
  :func:`lrjax.control` with each member's own peak instead of to ``optax.sgd``: every member
  equals a run of this step with ``optax.sgd(create_learning_rate_fn(peak))``, at every peak;
* :func:`lrjax.range_test` takes the same step, ramping the same injected learning rate.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax import lax

import lrjax

NUM_CLASSES = 10


class ResNetBlock(nn.Module):
    filters: int
    norm: Any
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x):
        residual = x
        y = nn.relu(self.norm()(nn.Conv(self.filters, (3, 3), self.strides)(x)))
        y = self.norm(scale_init=nn.initializers.zeros_init())(nn.Conv(self.filters, (3, 3))(y))
        if residual.shape != y.shape:
            residual = self.norm()(nn.Conv(self.filters, (1, 1), self.strides)(residual))
        return nn.relu(residual + y)


class ResNet(nn.Module):
    """Flax's ``models.ResNet``, small: stem, stages of residual blocks, global pooling."""

    stage_sizes: tuple[int, ...] = (1, 1)
    num_filters: int = 8

    @nn.compact
    def __call__(self, x, train: bool = True):
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5,
            axis_name="batch",
        )  # fmt: skip
        x = nn.relu(norm(name="bn_init")(nn.Conv(self.num_filters, (3, 3), name="conv_init")(x)))
        for i, block_size in enumerate(self.stage_sizes):
            for j in range(block_size):
                strides = (2, 2) if i > 0 and j == 0 else (1, 1)
                x = ResNetBlock(self.num_filters * 2**i, norm, strides)(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(NUM_CLASSES)(x)


class TrainState(train_state.TrainState):
    batch_stats: Any


def cross_entropy_loss(logits, labels):
    one_hot = jax.nn.one_hot(labels, num_classes=NUM_CLASSES)
    return optax.softmax_cross_entropy(logits=logits, labels=one_hot).mean()


def compute_metrics(logits, labels):
    metrics = {
        "loss": cross_entropy_loss(logits, labels),
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
    }
    return lax.pmean(metrics, axis_name="batch")


def create_learning_rate_fn(base_learning_rate, steps_per_epoch, warmup_epochs, num_epochs):
    """Flax's schedule: linear warmup to the base rate, then cosine decay (``base_learning_rate``
    may be traced: a member's own peak)."""
    warmup_fn = optax.linear_schedule(
        init_value=0.0, end_value=base_learning_rate,
        transition_steps=warmup_epochs * steps_per_epoch,
    )  # fmt: skip
    cosine_epochs = max(num_epochs - warmup_epochs, 1)
    cosine_fn = optax.cosine_decay_schedule(
        init_value=base_learning_rate, decay_steps=cosine_epochs * steps_per_epoch
    )
    return optax.join_schedules(
        schedules=[warmup_fn, cosine_fn], boundaries=[warmup_epochs * steps_per_epoch]
    )


def train_step(state, batch, learning_rate_fn):
    """One training step of ONE replica, as Flax's ImageNet example writes it."""

    def loss_fn(params):
        logits, new_model_state = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, batch["image"],
            mutable=["batch_stats"],
        )  # fmt: skip
        loss = cross_entropy_loss(logits, batch["label"])
        weight_l2 = sum(jnp.sum(x**2) for x in jax.tree.leaves(params) if x.ndim > 1)
        return loss + 0.0001 * 0.5 * weight_l2, (new_model_state, logits)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    aux, grads = grad_fn(state.params)
    # Re-use the same axis_name as the pmap (here: the axis lrjax binds).
    grads = lax.pmean(grads, axis_name="batch")
    new_model_state, logits = aux[1]
    metrics = compute_metrics(logits, batch["label"])
    metrics["learning_rate"] = learning_rate_fn(state.step)
    new_state = state.apply_gradients(grads=grads, batch_stats=new_model_state["batch_stats"])
    return new_state, metrics


def eval_step(state, batch):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits = state.apply_fn(variables, batch["image"], train=False, mutable=False)
    return compute_metrics(logits, batch["label"])


def create_train_state(rng, model, image_size, tx):
    variables = model.init(rng, jnp.ones((1, image_size, image_size, 1)), train=False)
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=tx,
        batch_stats=variables["batch_stats"],
    )  # fmt: skip


def make_tx():
    """SGD with Nesterov momentum, as Flax's; its learning rate lives in its state."""
    return optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(
        learning_rate=0.0, momentum=0.9, nesterov=True
    )


def make_init(model, image_size):
    def init(member):
        return create_train_state(jax.random.key(member["seed"]), model, image_size, make_tx())

    return init


def step(state, batch, member):
    """Flax's ``train_step`` for ONE member; the controller has written its learning rate into
    the optimizer state, which the update uses and the metric reports."""
    del member
    return train_step(state, batch, lambda _: state.opt_state.hyperparams["learning_rate"])


def main(quick: bool = False, num_steps: int | None = None) -> dict:
    ds = lrjax.load_digits()
    images = {"image": ds.x_train[..., None], "label": ds.y_train}
    model = ResNet(stage_sizes=(1,), num_filters=4) if quick else ResNet()
    batch_size, num_steps = 64, num_steps or (6 if quick else 300)
    steps_per_epoch = max(num_steps // 10, 1)
    peaks = np.geomspace(0.02, 0.6, 4 if quick else 8).astype(np.float32)
    members = {"peak": peaks, "seed": np.zeros(peaks.size, np.int32)}

    def schedule(member):
        return create_learning_rate_fn(member["peak"], steps_per_epoch, 1, 10)

    controlled = lrjax.control(step, make_init(model, 8), {"learning_rate": schedule})
    evaluate = lrjax.hooks.Evaluate(
        lambda state, member, data: eval_step(lrjax.unwrap(state), data),
        {"image": ds.x_val[..., None], "label": ds.y_val},
    )
    result = lrjax.fit(
        lrjax.vectorize(*controlled), members, images, batch_size=batch_size,
        num_steps=num_steps, chunk_steps=max(num_steps // 2, 1), hooks=[evaluate],
    )  # fmt: skip
    # The range test of the same step, one run per seed, in one call.
    found = lrjax.range_test(
        step, make_init(model, 8), images, seeds=(0, 1), start_lr=1e-3, end_lr=10.0,
        num_steps=20 if quick else 100, batch_size=batch_size,
    )  # fmt: skip
    return {
        "members": members,
        "result": result,
        "range_test": found,
        "model": model,
        "data": images,
        "schedule": schedule,
        "steps_per_epoch": steps_per_epoch,
    }


if __name__ == "__main__":
    out = main()
    accuracy = out["result"].loop.evaluations["accuracy"][:, -1]
    for peak, acc in zip(out["members"]["peak"], accuracy, strict=True):
        print(f"peak {peak:.3f}: validation accuracy {acc:.3f}")
    print("range test suggestions:", out["range_test"].suggestions(skip_end=2))
