"""Tests for lrjax.loop: groups, memory budgets and the sequential debugging path agree with one
group."""

import jax
import numpy as np

from lrjax import sweep
from tests.helpers import (
    ATOL,
    EVAL,
    RTOL,
    STEPS,
    sgd_train,
)


def assert_same_sweep(a, b):
    np.testing.assert_array_equal(a.diverged_step, b.diverged_step)
    # Different group sizes are differently shaped programs, so XLA may round differently.
    for x, y in zip(
        jax.tree.leaves((a.loss, a.learning_rate, a.params)),
        jax.tree.leaves((b.loss, b.learning_rate, b.params)),
        strict=True,
    ):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


def test_grouped_runs_equal_one_group():
    lrs = [0.1, 0.2, 1e3, 0.4]
    one = sgd_train(lrs)
    grouped = sgd_train(
        lrs, options=sweep.Options(progress=False, group_size=3)
    )  # two groups of 3, the second padded
    assert grouped.metadata["num_groups"] == 2
    assert grouped.loss.shape == (4, STEPS)
    assert_same_sweep(grouped, one)


def test_memory_budget_splits_into_groups():
    lrs = [0.1, 0.2, 1e3, 0.4]
    one = sgd_train(lrs)
    small = sgd_train(
        lrs, options=sweep.Options(progress=False, memory_budget=1)
    )  # below anything: one member per group
    assert small.metadata["num_groups"] == 4
    assert_same_sweep(small, one)
    roomy = sgd_train(lrs, options=sweep.Options(progress=False, memory_budget=1 << 34))
    assert roomy.metadata["num_groups"] == 1


def test_sequential_debug_path_agrees():
    lrs = [0.1, 0.3]
    vectorized = sgd_train(lrs, eval_data=EVAL)
    sequential = sgd_train(
        lrs, eval_data=EVAL, options=sweep.Options(progress=False, vectorize=False)
    )
    np.testing.assert_allclose(sequential.loss, vectorized.loss, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        sequential.learning_rate, vectorized.learning_rate, rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        sequential.eval_metrics["loss"], vectorized.eval_metrics["loss"], rtol=RTOL, atol=ATOL
    )
    for a, b in zip(
        jax.tree.leaves(sequential.params), jax.tree.leaves(vectorized.params), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
