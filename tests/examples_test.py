"""The Flax integration examples (examples/), run small: each must do what its docstring says."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax
from examples import linen_trainstate_sweep, nnx_optimizer_sweep, range_test_bn, snapshot_swa_bn
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
