"""The README's engine examples, verbatim, on small random data (kept in sync by hand)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import lrjax
from lrjax import sweep

rng = np.random.default_rng(0)
x_train = rng.normal(size=(256, 40)).astype(np.float32)
y_train = (x_train[:, :10].argmax(axis=1)).astype(np.int32)
x_test = rng.normal(size=(64, 40)).astype(np.float32)
y_test = (x_test[:, :10].argmax(axis=1)).astype(np.int32)


images = rng.normal(size=(128, 8, 8)).astype(np.float32)
labels = (images[:, :4].mean(axis=(1, 2)) > 0).astype(np.int32)


# README: the primitive, your own step vectorized (model with BatchNorm and dropout).
def readme_primitive(num_steps=200):
    model = lrjax.models.ResNet()  # BatchNorm + dropout

    def tx(member):  # the optimizer of one member, from its traced learning rate
        return optax.sgd(member["lr"], momentum=0.9)

    def init(member):
        v = model.init(jax.random.key(member["seed"]), images[:1])
        opt = tx(member).init(v["params"])
        return {"params": v["params"], "stats": v["batch_stats"], "opt": opt, "t": jnp.int32(0)}

    def step(state, batch, member):
        x, y = batch
        key = lrjax.step_key(member["seed"], state["t"])  # dropout: seed and step only

        def loss_fn(params):
            logits, new = model.apply({"params": params, "batch_stats": state["stats"]}, x,
                                      train=True, rngs={"dropout": key},
                                      mutable=["batch_stats"])  # fmt: skip
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt = tx(member).update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "stats": new["batch_stats"], "opt": opt, "t": state["t"] + 1}, {
            "loss": loss}  # fmt: skip

    members = {"lr": np.geomspace(1e-3, 1, 16, dtype=np.float32),
               "seed": np.arange(16, dtype=np.int32)}  # fmt: skip
    result = lrjax.fit(lrjax.vectorize(step, init), members, (images, labels), batch_size=64,
                       num_steps=num_steps)  # fmt: skip
    return result


def test_primitive_example_trains_every_member():
    result = readme_primitive(num_steps=20)
    assert result.metrics["loss"].shape == (16, 20)
    assert np.isfinite(result.metrics["loss"][:8]).all()  # the smaller learning rates
    assert int(result.state["t"][0]) == 20
    moved = jax.tree.leaves(result.state["stats"])[0]
    assert not np.allclose(moved[0], moved[1])  # every member has its own batch statistics


# README example (a): an lrjax schedule in a hand-written Flax NNX training loop.
class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(40, 64, rngs=rngs)
        self.out = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))


def readme_flax_loop():
    schedule = lrjax.warmup_cosine_decay(peak_value=0.1, warmup_steps=10, total_steps=100)
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(schedule, momentum=0.9), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = []
    for step in range(100):
        i = (step * 32) % len(x_train)
        losses.append(float(train_step(model, optimizer, x_train[i : i + 32], y_train[i : i + 32])))
    return model, optimizer, schedule, losses


# README example (b): a vmapped sweep of 16 peak learning rates x seeds, in one compiled run.
def readme_sweep():
    def optimizer_kwargs(hp):  # one member's optimizer arguments, from its traced hyperparameters
        return {"learning_rate": lrjax.warmup_cosine_decay(hp["peak"], 10, 100), "momentum": 0.9}

    result = sweep.train(
        sweep.Model.from_nnx(MLP), optax.softmax_cross_entropy_with_integer_labels,
        (x_train, y_train), optimizer=optax.sgd, optimizer_kwargs=optimizer_kwargs,
        hparams={"peak": np.logspace(-3, 0, 16)}, seeds=np.arange(16),
        num_steps=100, batch_size=32, evaluation=sweep.Evaluation((x_test, y_test), every=25),
    )  # fmt: skip
    best = np.nanargmin(result.eval_metrics["loss"][:, -1])
    return result, best


def test_flax_loop_example_uses_the_schedule():
    _, optimizer, schedule, losses = readme_flax_loop()
    assert int(optimizer.step[...]) == 100
    assert losses[-1] < losses[0]
    assert schedule(10) == np.float32(0.1)  # the peak, at the end of the warmup


def test_sweep_example_trains_every_member():
    result, best = readme_sweep()
    assert result.loss.shape == (16, 100)
    assert result.eval_metrics["loss"].shape == (16, 5)
    np.testing.assert_array_equal(result.eval_steps, [0, 25, 50, 75, 100])
    # The learning rate in the results is each member's schedule.
    peaks = np.logspace(-3, 0, 16).astype(np.float32)
    np.testing.assert_allclose(result.learning_rate[:, 10], peaks, rtol=1e-6)
    assert result.eval_metrics["loss"][best, -1] < result.eval_metrics["loss"][best, 0]
    # Member `best` equals the same model trained alone.
    alone = sweep.train(
        sweep.Model.from_nnx(MLP),
        optax.softmax_cross_entropy_with_integer_labels,
        (x_train, y_train),
        optimizer=optax.sgd,
        optimizer_kwargs=lambda hp: {
            "learning_rate": lrjax.warmup_cosine_decay(hp["peak"], 10, total_steps=100),
            "momentum": 0.9,
        },
        hparams={"peak": peaks[best : best + 1]},
        seeds=[best],
        num_steps=100,
        batch_size=32,
        options=sweep.Options(vectorize=False, progress=False),
    )
    np.testing.assert_allclose(alone.loss[0], result.loss[best], rtol=1e-5, atol=1e-6)


# README: one hyperparameter controller on a TrainState step, and the range test of that step.
def readme_controller(num_steps=200):
    from flax import linen as nn
    from flax.training import train_state

    model = nn.Dense(10)
    tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.0)

    def init(member):  # a Flax TrainState, as you build it for one model
        params = model.init(jax.random.key(member["seed"]), x_train[:1])["params"]
        return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    def step(state, batch, member):  # your train step; the controller has set its learning rate
        def loss_fn(params):
            logits = state.apply_fn({"params": params}, batch[0])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), {"loss": loss}

    rules = {"learning_rate": lambda m: lrjax.warmup_cosine_decay(m["peak"], 10, 200)}
    members = {"peak": np.geomspace(1e-3, 1, 8, dtype=np.float32), "seed": np.zeros(8, np.int32)}
    result = lrjax.fit(lrjax.vectorize(*lrjax.control(step, init, rules)), members,
                       (x_train, y_train), batch_size=32, num_steps=num_steps)  # fmt: skip
    found = lrjax.range_test(step, init, (x_train, y_train), seeds=(0, 1, 2), batch_size=32)
    return result, found


def test_controller_example_schedules_each_peak_and_range_tests_the_same_step():
    result, found = readme_controller(num_steps=20)
    lr = result.metrics["hparams/learning_rate"]
    peaks = np.geomspace(1e-3, 1, 8, dtype=np.float32)
    np.testing.assert_allclose(lr[:, 10], peaks, rtol=1e-6)  # the end of the warmup: the peak
    assert found.loss.shape == (3, 100)
