"""Tests for lrjax.artifacts: a member exported as a standalone orbax checkpoint restores into a
single-model Flax loop (linen TrainState, nnx, lrjax.sweep's variables) with plain orbax."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import lrjax
from examples import export_member
from tests.helpers import D_IN, EVAL, LinenBNDropout
from tests.sweep_result_test import bn_result


@functools.cache
def example():
    return export_member.main(quick=True)


def restore(path, abstract):
    return ocp.StandardCheckpointer().restore(path, abstract)


def member(tree, k):
    return jax.tree.map(lambda a: np.asarray(a)[k], tree)


def assert_trees_equal(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)


def test_a_linen_trainstate_member_restores_into_a_fresh_loop_with_its_predictions():
    # The user's own TrainState step (BatchNorm, dropout), vectorized and fitted: the example
    # exports the best member's final state and its EMA, and restores each with plain orbax.
    out = example()["linen"]
    for what in ("params", "ema"):
        restored, in_sweep = out[what]
        np.testing.assert_array_equal(restored, in_sweep)
    ds = lrjax.load_digits()
    accuracy = np.mean(np.argmax(out["params"][0], -1) == ds.y_val)
    np.testing.assert_allclose(accuracy, out["sweep_accuracy"], rtol=1e-6)
    # The EMA, SWA and a snapshot are the trackers' weights and statistics, placed in the
    # member's TrainState (its step and optimizer state are the final ones).
    result, best = out["result"], out["best"]
    final = member(result.state.state, best)
    trackers = member(result.state.trackers, best)
    for what, want in [
        ("ema", trackers["ema"]),
        ("swa", trackers["swa"].mean),
        ("snapshot:0", jax.tree.map(lambda a: a[0], trackers["snapshots"])),
        ("snapshot:-1", jax.tree.map(lambda a: a[-1], trackers["snapshots"])),
    ]:
        state = lrjax.member_state(result, best, what)
        assert_trees_equal({"params": state.params, "batch_stats": state.batch_stats}, want)
        assert_trees_equal(state.opt_state, final.opt_state)
    # The last snapshot was taken after the last step: it is the final state's weights.
    assert_trees_equal(lrjax.member_state(result, best, "snapshot:1").params, final.params)


def test_an_nnx_member_restores_into_a_fresh_nnx_model_with_its_predictions():
    restored, in_sweep = example()["nnx"]["predictions"]
    np.testing.assert_array_equal(restored, in_sweep)


@pytest.mark.parametrize("what", ["params", "swa", "ema", "snapshot:1"])
def test_a_sweep_member_restores_as_linen_variables_with_its_predictions(tmp_path, what):
    result, k = bn_result(), 1
    path = lrjax.export(result, tmp_path / what, member=k, what=what)
    model = LinenBNDropout()
    abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, D_IN)))
    variables = restore(path, abstract)  # {"params": ..., "batch_stats": ...}
    want = {
        "params": {"params": result.member_params(k), **member(result.model_state, k)},
        "swa": member(result.swa_params, k),
        "ema": member(result.ema_params, k),
        "snapshot:1": jax.tree.map(lambda a: a[1], member(result.snapshots, k)),
    }[what]
    assert_trees_equal(variables, want)
    predict = jax.jit(model.apply)
    np.testing.assert_array_equal(predict(variables, EVAL[0]), predict(want, EVAL[0]))


def test_export_refuses_bad_requests(tmp_path):
    result = bn_result()
    cases = [
        (dict(member=3), r"member must be an integer in \[0, 3\), got 3"),
        (dict(member=0, what="best"), r"what must be 'params', 'swa', 'ema' or 'snapshot:i'"),
        (dict(member=0, what="snapshot:2"), r"the snapshot index must be in \[0, 2\), got 2"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            lrjax.export(result, tmp_path / "x", **kwargs)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match=r"directory must be a new path .* exists"):
        lrjax.export(result, tmp_path / "taken", member=0)
    plain = {"params": {"w": np.zeros((2, 3), np.float32)}}
    with pytest.raises(ValueError, match=r"reads the tracker named 'ema', but the result's"):
        lrjax.member_state(plain, 0, "ema")
