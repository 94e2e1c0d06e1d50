"""The Flax integration examples (examples/), run small: each must do what its docstring says."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax
from examples import (
    flax_imagenet_sweep,
    linen_trainstate_sweep,
    nnx_mnist_sweep,
    nnx_optimizer_sweep,
    range_test_bn,
    snapshot_swa_bn,
)
from lrjax import engine
from lrjax.flax_steps import nnx_step

STEPS = 6
RTOL, ATOL = 1e-5, 1e-6


def shared_batches(ds, steps, batch=64):
    """The batches every member saw (array data, one shared order of seed 0)."""
    for t in range(steps):
        idx = np.asarray(lrjax.feeds.batch_indices(0, t, len(ds.x_train), batch))
        yield ds.x_train[idx], ds.y_train[idx]


# -----------------------------------------------------------------------------------------------
# (a) an nnx loop with nnx.Optimizer


@pytest.fixture(scope="module")
def nnx_sweep():
    return nnx_optimizer_sweep.main(quick=True, num_steps=STEPS)


def test_nnx_members_equal_their_own_nnx_loop(nnx_sweep):
    grid, result = nnx_sweep["grid"], nnx_sweep["result"]
    ds = lrjax.load_digits()
    assert result.metrics["loss"].shape == (8, STEPS)  # 4 learning rates x 2 dropout rates
    train_step = nnx.jit(nnx_optimizer_sweep.train_step)
    for k in (0, 5):  # no dropout, and dropout 0.3 at another learning rate
        member = jax.tree.map(lambda a, k=k: jnp.asarray(a[k]), grid)
        model, optimizer = nnx_optimizer_sweep.make(member, width=4)
        losses = [
            float(train_step(model, optimizer, batch)["loss"])
            for batch in shared_batches(ds, STEPS)
        ]
        np.testing.assert_allclose(result.metrics["loss"][k], losses, rtol=RTOL, atol=ATOL)


def test_nnx_members_train_at_their_own_learning_rate(nnx_sweep):
    # The nnx trap: a transformation in the static graph would give every member one LR.
    lr = nnx_sweep["result"].metrics["lr"]
    np.testing.assert_allclose(lr, np.repeat(nnx_sweep["grid"]["lr"][:, None], STEPS, 1))
    assert len(np.unique(lr)) == 4


def test_nnx_optimizer_with_a_static_learning_rate_is_refused():
    def make_static(member):
        model, _ = nnx_optimizer_sweep.make(member, width=4)
        return model, nnx.Optimizer(model, optax.sgd(member["lr"]), wrt=nnx.Param)

    with pytest.raises(ValueError, match=r"members\['lr'\] never reach the state"):
        nnx_step(make_static, nnx_optimizer_sweep.train_step, nnx_optimizer_sweep.members(2))


# -----------------------------------------------------------------------------------------------
# (b) a linen TrainState loop with BatchNorm and dropout


def test_linen_trainstate_members_equal_separate_runs():
    out = linen_trainstate_sweep.main(quick=True, num_steps=STEPS)
    grid, result, ds = out["grid"], out["result"], out["data"]
    step = jax.jit(linen_trainstate_sweep.step)
    for k in (1, 6):
        member = jax.tree.map(lambda a, k=k: jnp.asarray(a[k]), grid)
        state = jax.jit(out["init"])(member)
        losses = []
        for batch in shared_batches(ds, STEPS):
            state, metrics = step(state, batch, member)
            losses.append(float(metrics["loss"]))
        np.testing.assert_allclose(result.metrics["loss"][k], losses, rtol=RTOL, atol=ATOL)
        got = engine.member_slice(lrjax.unwrap(result.state), k)
        for a, b in zip(jax.tree.leaves(got.batch_stats), jax.tree.leaves(state.batch_stats),
                        strict=True):  # fmt: skip
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
        # the evaluation hook scored the final state in evaluation mode
        want = linen_trainstate_sweep.evaluate(state, member, (ds.x_val, ds.y_val))["accuracy"]
        np.testing.assert_allclose(out["accuracy"][k, -1], want, rtol=1e-6)
    # dropout changes the run: same learning rate, dropout 0 vs 0.3
    assert not np.allclose(result.metrics["loss"][0], result.metrics["loss"][1])


# -----------------------------------------------------------------------------------------------
# (c) the one-call range test with a plot, and (d) snapshot ensemble + SWA with BN recompute


def test_range_test_on_a_batchnorm_cnn_with_its_plot(tmp_path):
    out = range_test_bn.main(quick=True, out=str(tmp_path / "rt.png"))
    result = out["result"]
    assert result.loss.shape == (2, 30)
    assert np.isfinite(result.loss[:, :10]).all()
    for name, lr in out["suggestions"].items():
        assert 1e-4 <= lr <= 10.0, name
    assert os.path.getsize(out["figure"]) > 10_000


def test_snapshot_ensemble_and_swa_with_recomputed_batch_statistics():
    out = snapshot_swa_bn.main(quick=True)
    result = out["result"]
    # Snapshots keep each moment's parameters and batch statistics; the last is the end state.
    last = jax.tree.map(lambda s: s[:, -1], result.snapshots)
    final = {"params": result.params, **result.model_state}
    for a, b in zip(jax.tree.leaves(last), jax.tree.leaves(final), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(result.swa_count, [2, 2])  # the ends of cycles 2 and 3
    # Recomputed statistics replace the averaged ones; the parameters stay the average.
    for a, b in zip(jax.tree.leaves(out["swa_variables"]["params"]),
                    jax.tree.leaves(result.swa_params["params"]), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    stale = jax.tree.leaves(result.swa_params["batch_stats"])
    fresh = jax.tree.leaves(out["swa_variables"]["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(stale, fresh, strict=True))
    for name in ("single", "swa", "swa_stale_stats", "snapshot_ensemble"):
        assert out[name].shape == (2,) and np.all((out[name] >= 0) & (out[name] <= 1)), name


# -----------------------------------------------------------------------------------------------
# (e) the shapes of Flax's ImageNet example and (f) of the nnx MNIST tutorial


@pytest.fixture(scope="module")
def imagenet():
    return flax_imagenet_sweep.main(quick=True, num_steps=STEPS)


def standard_promotion(fn):
    """``fn`` under standard dtype promotion: optax's schedules mix Python floats with int32
    steps, which the tests' strict promotion rejects (users run them under standard)."""

    def wrapped(*args):
        with jax.numpy_dtype_promotion("standard"):
            return fn(*args)

    return wrapped


def test_imagenet_members_equal_runs_of_flax_sgd_with_the_schedule_at_every_peak(imagenet):
    ex, out = flax_imagenet_sweep, imagenet
    model, data, result = out["model"], out["data"], out["result"]
    variables = model.init(jax.random.key(0), jnp.ones((1, 8, 8, 1)), train=False)

    def schedule(peak):
        return ex.create_learning_rate_fn(peak, out["steps_per_epoch"], 1, 10)

    @functools.partial(jax.pmap, axis_name="batch")  # the step runs as Flax runs it
    def flax_step(params, batch_stats, opt_state, step, peak, batch):
        return standard_promotion(flax_step_body)(params, batch_stats, opt_state, step, peak, batch)

    def flax_step_body(params, batch_stats, opt_state, step, peak, batch):
        tx = optax.sgd(learning_rate=schedule(peak), momentum=0.9, nesterov=True)
        state = ex.TrainState(step=step, apply_fn=model.apply, params=params, tx=tx,
                              opt_state=opt_state, batch_stats=batch_stats)  # fmt: skip
        state, metrics = ex.train_step(state, batch, learning_rate_fn=schedule(peak))
        return state.params, state.batch_stats, state.opt_state, state.step, metrics

    one = lambda tree: jax.tree.map(lambda a: jnp.asarray(a)[None], tree)  # noqa: E731
    for k, peak in enumerate(out["members"]["peak"]):  # every peak, the largest included
        tx = optax.sgd(learning_rate=schedule(peak), momentum=0.9, nesterov=True)
        opt_state = standard_promotion(tx.init)(variables["params"])
        carry = one((variables["params"], variables["batch_stats"], opt_state, jnp.int32(0)))
        losses, rates = [], []
        for t in range(STEPS):
            idx = np.asarray(lrjax.feeds.batch_indices(0, t, len(data["label"]), 64))
            batch = one({"image": data["image"][idx], "label": data["label"][idx]})
            *carry, metrics = flax_step(*carry, one(np.float32(peak)), batch)
            losses.append(float(metrics["loss"][0]))
            rates.append(float(metrics["learning_rate"][0]))
        np.testing.assert_allclose(result.metrics["loss"][k], losses, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(result.metrics["learning_rate"][k], rates, rtol=1e-6)
        got = engine.member_slice(lrjax.unwrap(result.state), k)
        for a, b in zip(jax.tree.leaves((got.params, got.batch_stats)),
                        jax.tree.leaves((carry[0], carry[1])), strict=True):  # fmt: skip
            np.testing.assert_allclose(a, np.asarray(b)[0], rtol=RTOL, atol=ATOL)
    # The evaluation hook averaged its metrics over the bound 'batch' axis, after each chunk.
    assert result.loop.evaluations["accuracy"].shape == (4, 3)


def test_imagenet_step_is_range_tested_in_one_call(imagenet):
    found = imagenet["range_test"]
    assert found.loss.shape == (2, 20)
    np.testing.assert_allclose(found.learning_rates[[0, -1]], [1e-3, 10.0], rtol=1e-5)
    assert np.isfinite(found.loss[:, :5]).all()
    assert not np.allclose(found.loss[0], found.loss[1])  # two seeds, two runs


@pytest.fixture(scope="module")
def mnist():
    # optax's AdamW computes f32 ** int32 step counts: standard promotion, as users run it.
    with jax.numpy_dtype_promotion("standard"):
        return nnx_mnist_sweep.main(quick=True, num_steps=STEPS)


def test_nnx_mnist_members_equal_the_tutorials_own_loop(mnist):
    ds, result = lrjax.load_digits(), mnist["result"]
    train_step = nnx.jit(nnx_mnist_sweep.train_step)
    for k in (0, 3):
        member = jax.tree.map(lambda a, k=k: jnp.asarray(a[k]), mnist["members"])
        model, optimizer, metrics, rngs = mnist["make"](member)
        seen = []
        for t in range(STEPS):
            idx = np.asarray(lrjax.feeds.batch_indices(0, t, len(ds.y_train), 32))
            batch = {"image": ds.x_train[idx][..., None], "label": ds.y_train[idx]}
            with jax.numpy_dtype_promotion("standard"):
                seen.append(train_step(model, optimizer, metrics, rngs, batch))
        for name in ("loss", "accuracy"):  # the MultiMetric's compute(), every step
            want = [float(m[name]) for m in seen]
            np.testing.assert_allclose(result.metrics[name][k], want, rtol=RTOL, atol=ATOL)
    assert len({float(v) for v in result.metrics["loss"][:, -1]}) == 4  # four learning rates


def test_nnx_mnist_step_is_range_tested_in_one_call(mnist):
    found = mnist["range_test"]
    assert found.loss.shape == (2, 20)
    np.testing.assert_allclose(found.learning_rates[[0, -1]], [1e-5, 1.0], rtol=1e-5)
    assert np.isfinite(found.loss[:, :5]).all()
