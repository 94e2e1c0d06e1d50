"""Snapshot-ensemble evaluation against NumPy averages of softmax outputs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

import lrjax


def linear_apply(params, x):
    return x @ params["w"] + params["b"][None, :]


def random_snapshots(num, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.standard_normal((num, 5, 3)), jnp.float32),
        "b": jnp.asarray(rng.standard_normal((num, 3)), jnp.float32),
    }


def numpy_softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_matches_numpy_reference():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    snaps = random_snapshots(4)
    got = jax.jit(lrjax.evaluate_snapshots, static_argnums=0)(linear_apply, snaps, x, y)

    w, b = np.asarray(snaps["w"], np.float64), np.asarray(snaps["b"], np.float64)
    probs = np.stack([numpy_softmax(x @ w[k] + b[k]) for k in range(4)])
    for m in range(1, 5):
        avg = probs[4 - m :].mean(axis=0)
        np.testing.assert_allclose(
            got.ensemble_loss[m - 1], -np.mean(np.log(avg[np.arange(40), y])), rtol=1e-5
        )
        np.testing.assert_allclose(got.ensemble_accuracy[m - 1], np.mean(avg.argmax(-1) == y))
    for k in range(4):
        np.testing.assert_allclose(
            got.single_loss[k], -np.mean(np.log(probs[k][np.arange(40), y])), rtol=1e-5
        )
    np.testing.assert_allclose(got.ensemble_loss[0], got.single_loss[-1], rtol=1e-6)


def test_ensemble_of_identical_snapshots_equals_the_single_model():
    one = random_snapshots(1, seed=3)
    same = jax.tree.map(lambda a: jnp.concatenate([a, a, a]), one)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((16, 5)), jnp.float32)
    y = jnp.arange(16, dtype=jnp.int32) % 3
    result = lrjax.evaluate_snapshots(linear_apply, same, x, y)
    np.testing.assert_allclose(result.ensemble_loss, result.single_loss[0], rtol=1e-6)
    np.testing.assert_array_equal(result.ensemble_accuracy, result.single_accuracy[0])


def test_vmaps_over_members():
    members = jax.tree.map(lambda a: jnp.stack([a, a[::-1]]), random_snapshots(3))
    x = jnp.asarray(np.random.default_rng(4).standard_normal((8, 5)), jnp.float32)
    y = jnp.zeros(8, jnp.int32)
    both = jax.vmap(lambda s: lrjax.evaluate_snapshots(linear_apply, s, x, y))(members)
    for k in range(2):
        member = jax.tree.map(lambda a, k=k: a[k], members)
        alone = lrjax.evaluate_snapshots(linear_apply, member, x, y)
        np.testing.assert_allclose(both.ensemble_loss[k], alone.ensemble_loss, rtol=1e-6)


def test_snapshot_ensemble_on_mnist1d_is_no_worse_than_its_best_snapshot():
    """Six snapshot ensembles (3 peak LRs x 2 seeds) train in one run; snapshots at cycle ends.

    On MNIST-1D the MLP overfits (train accuracy near 100%, test about 65%), each snapshot is
    overconfident in its own way, and averaging them lowers the test NLL for every member
    (measured: 0.77-0.98 for the 4-snapshot ensembles vs 0.91-1.03 for their best snapshots).
    On scikit-learn's digits the same check is not robust: there the ensemble ties its best
    snapshot and tiny numerical changes decide which wins, so that is not tested.
    """
    import optax

    from lrjax import models, sweep

    ds = lrjax.load_mnist1d()
    model = lrjax.Model.from_linen(models.MLP(hidden=(100, 100)), ds.x_train[:1])
    total, cycles = 2000, 4
    result = sweep.train(
        model, optax.softmax_cross_entropy_with_integer_labels, (ds.x_train, ds.y_train),
        optimizer=optax.sgd, hparams={"peak": np.array([0.05, 0.1, 0.2] * 2, np.float32)},
        optimizer_kwargs=lambda hp: {
            "learning_rate": lrjax.snapshot_ensemble(hp["peak"], total, cycles), "momentum": 0.9},
        num_steps=total, batch_size=64, seeds=np.repeat([0, 1], 3),
        trackers={"snapshots": lrjax.Snapshots(lrjax.snapshot_steps(total, cycles))},
        options=sweep.Options(progress=False),
    )  # fmt: skip
    assert not result.diverged.any()
    final = jax.tree.map(lambda s: s[:, -1], result.snapshots)
    chex.assert_trees_all_equal(final, result.params)  # the last snapshot ends training
    scores = jax.vmap(lambda s: lrjax.evaluate_snapshots(model.apply, s, ds.x_test, ds.y_test))(
        result.snapshots
    )
    for k in range(6):
        assert scores.ensemble_loss[k, -1] <= scores.single_loss[k].min(), k
        assert scores.single_accuracy[k].min() > 0.5  # every snapshot is a real model
