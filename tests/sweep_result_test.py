"""Tests for lrjax.sweep._result: SweepResult saved and loaded through orbax (and the format an
earlier lrjax wrote), and results as pandas tables."""

import functools
import os

import jax
import numpy as np
import optax
import pytest

import lrjax
from lrjax import sweep
from lrjax.sweep._result import _plain
from tests.helpers import BATCH, DATA, EVAL, LOSS, QUIET, RTOL, STEPS, LinenBNDropout, sgd_train

TRACKERS = {"snapshots": lrjax.Snapshots((3, 9)), "swa": lrjax.SWA(2), "ema": lrjax.EMA(0.9)}


@functools.cache
def bn_result():
    """A BatchNorm + dropout model (batch statistics as model state) with every tracker."""
    return sweep.train(
        LinenBNDropout(), LOSS, DATA, optimizer=optax.sgd,
        hparams={"learning_rate": np.array([0.05, 0.2, 1e4], np.float32)},
        num_steps=STEPS, batch_size=BATCH, seeds=[0, 1, 2], trackers=TRACKERS,
        evaluation=sweep.Evaluation(EVAL, every=4), options=QUIET,
    )  # fmt: skip


def by_path(tree):
    """Leaves by path, NamedTuples read as dicts of their fields (as they are saved)."""
    return {
        jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(_plain(tree))
    }


def assert_trees_equal(a, b):
    a, b = by_path(a), by_path(b)
    assert a.keys() == b.keys()
    for path, x in a.items():
        assert np.asarray(x).dtype == np.asarray(b[path]).dtype, path
        np.testing.assert_array_equal(x, b[path], err_msg=path)


def assert_results_equal(loaded, result):
    for field in ("loss", "grad_norm", "eval_steps", "diverged", "diverged_step"):
        got, want = getattr(loaded, field), getattr(result, field)
        assert got.dtype == want.dtype and got.shape == want.shape, field
        np.testing.assert_array_equal(got, want)
    for group in ("hparams", "opt_hparams", "eval_metrics"):
        assert getattr(loaded, group).keys() == getattr(result, group).keys()
        assert_trees_equal(getattr(loaded, group), getattr(result, group))
    for tree in ("params", "model_state", "trackers"):
        assert_trees_equal(getattr(loaded, tree), getattr(result, tree))
    assert loaded.metadata == result.metadata


def test_a_result_with_batch_statistics_and_trackers_round_trips_through_orbax(tmp_path):
    result = bn_result()
    result.save(tmp_path / "sweep")
    assert os.path.isfile(tmp_path / "sweep" / "_CHECKPOINT_METADATA")  # an orbax checkpoint
    loaded = sweep.SweepResult.load(tmp_path / "sweep")
    assert_results_equal(loaded, result)
    # NamedTuples come back as dicts of their fields; the accessors read both.
    np.testing.assert_array_equal(loaded.swa_count, result.swa_count)
    assert_trees_equal(loaded.swa_params, result.swa_params)
    assert_trees_equal(loaded.snapshots, result.snapshots)
    # Saving again over a saved result replaces it; anything else is refused.
    result.save(tmp_path / "sweep")
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match=r"path must be new or hold a saved SweepResult"):
        result.save(tmp_path / "other")
    with pytest.raises(ValueError, match=r"path must be a directory written by SweepResult.save"):
        sweep.SweepResult.load(tmp_path / "other")


def test_a_result_without_evaluation_keeps_its_empty_records(tmp_path):
    result = sgd_train([0.1, 1e3])  # no evaluation: eval_steps is empty, no model state
    assert result.eval_steps.size == 0 and result.model_state is None
    result.save(tmp_path / "plain")
    assert_results_equal(sweep.SweepResult.load(tmp_path / "plain"), result)


def test_a_result_an_earlier_lrjax_saved_as_npz_and_json_still_loads():
    # tests/data/sweep_result_v1.{npz,json}: written by SweepResult.save of lrjax at e00f147,
    # from this very sweep.
    legacy = os.path.join(os.path.dirname(__file__), "data", "sweep_result_v1")
    loaded = sweep.SweepResult.load(legacy)
    again = sgd_train([0.1, 1e3], eval_data=EVAL, trackers=TRACKERS)
    np.testing.assert_allclose(loaded.loss, again.loss, rtol=RTOL)
    np.testing.assert_array_equal(loaded.diverged_step, again.diverged_step)
    np.testing.assert_array_equal(loaded.eval_steps, again.eval_steps)
    got, want = by_path(loaded.trackers), by_path(again.trackers)
    assert got.keys() == want.keys()
    for path, value in want.items():
        np.testing.assert_allclose(got[path], value, rtol=RTOL, atol=1e-6, err_msg=path)
    assert np.shape(jax.tree.leaves(loaded.snapshots)[0])[:2] == (2, 2)
