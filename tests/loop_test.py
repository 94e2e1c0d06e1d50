"""Tests for lrjax.loop: groups, memory budgets and the sequential debugging path agree with one
group."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax
from lrjax import sweep
from tests.helpers import (
    ATOL,
    BATCH,
    D_IN,
    DATA,
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


# -----------------------------------------------------------------------------------------------
# Inputs of bare lrjax.fit that trained silently or failed deep inside JAX before


def plain_init(member):
    return {"w": jnp.zeros(D_IN, jnp.float32)}


def plain_step(state, batch, member):
    x, y = batch
    loss, g = jax.value_and_grad(lambda w: jnp.mean((x @ w - y) ** 2))(state["w"])
    return {"w": state["w"] - member["lr"] * g}, {"loss": loss}


PLAIN = lrjax.vectorize(plain_step, plain_init)
XY = (DATA[0], DATA[0][:, 0].copy())


def plain_fit(members=None, **kwargs):
    members = {"lr": np.float32([0.1, 0.2])} if members is None else members
    return lrjax.fit(PLAIN, members, XY, num_steps=2, batch_size=BATCH, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (  # was: the seed wrapped to 0, two members identical
            {"members": {"lr": np.float32([0.1, 0.2]), "seed": np.array([0, 2**32])}},
            r"members\['seed'\] must hold integers in \[-2147483648, 2147483647\] .*, got "
            r"4294967296 at index \(1,\)",
        ),
        (  # was: a TypeError from inside JAX
            {"members": {"lr": np.float32([0.1, 0.2]), "name": np.array(["a", "b"])}},
            r"members\['name'\] holds <U1 values; a member setting must hold numbers \(bool, "
            r"int, float\)",
        ),
        (  # was: ignored, never called
            {"hooks": [lambda loop: None]},
            r"hooks\[0\] has none of the hook methods .* pass lrjax.hooks.Callback\(fn\)",
        ),
        (  # was: taken as true
            {"vectorize": "no"},
            "vectorize must be True or False, got 'no'",
        ),
    ],
)
def test_bad_fit_input_is_a_value_error_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plain_fit(**kwargs)


def test_one_hook_alone_is_taken_as_a_list_of_one():
    seen = []
    plain_fit(hooks=lrjax.hooks.Callback(lambda info: seen.append(info["step"])))  # was: an error
    assert seen == [2]
