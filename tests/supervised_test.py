"""Tests for lrjax.supervised: the supervised step with optax optimizers and Flax models (batch
statistics, dropout), masked batch sizes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax
from lrjax import sweep
from tests.helpers import (
    ATOL,
    BATCH,
    DATA,
    EVAL,
    LOSS,
    MODEL,
    QUIET,
    RTOL,
    LinenBNDropout,
    LinenMLP,
    N,
    NnxBNDropout,
    NnxMLP,
    assert_member_matches,
    bad,
    data_at,
    indices,
    reference,
    sgd_train,
)


def test_batch_size_masking_equals_training_on_the_smaller_batch():
    result = sgd_train([0.2, 0.2, 0.3, 0.1], batch_sizes=[BATCH, 5, 3, 1])
    for k, (lr, b) in enumerate([(0.2, BATCH), (0.2, 5), (0.3, 3), (0.1, 1)]):
        assert_member_matches(
            result, k, *reference(optax.sgd, {"learning_rate": lr}, member_batch=b)
        )
    assert not np.allclose(result.loss[0], result.loss[1])


# -----------------------------------------------------------------------------------------------
# Optimizers out of the box, and Flax models


OPTIMIZERS = {  # name: (make_tx with the static flags bound, traced float hyperparameters)
    "sgd_nesterov": (
        functools.partial(optax.sgd, nesterov=True),
        {"learning_rate": 0.1, "momentum": 0.9},
    ),
    "adamw": (optax.adamw, {"learning_rate": 0.01, "weight_decay": 0.1}),
    "rmsprop": (optax.rmsprop, {"learning_rate": 0.01, "momentum": 0.5}),
    "adagrad": (optax.adagrad, {"learning_rate": 0.1}),
    "adadelta": (optax.adadelta, {"learning_rate": 1.0, "rho": 0.8}),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizers_out_of_the_box(name):
    make_tx, kwargs = OPTIMIZERS[name]
    scales = np.array([1.0, 0.5], np.float32)

    def member_kwargs(hp):
        return dict(kwargs, learning_rate=kwargs["learning_rate"] * hp["scale"])

    result = sweep.train(
        MODEL,
        LOSS,
        DATA,
        optimizer=make_tx,
        optimizer_kwargs=member_kwargs,
        hparams={"scale": scales},
        num_steps=6,
        batch_size=BATCH,
        options=QUIET,
    )
    for k, s in enumerate(scales):
        hp = dict(kwargs, learning_rate=kwargs["learning_rate"] * float(s))
        assert_member_matches(result, k, *reference(make_tx, hp, steps=6))
        np.testing.assert_allclose(result.learning_rate[k], hp["learning_rate"], rtol=1e-6)


def test_flax_linen_module():
    module = LinenMLP()
    result = sweep.train(
        module, LOSS, DATA, optimizer=optax.sgd, hparams={"learning_rate": np.array([0.1, 0.3])},
        seeds=[0, 1], num_steps=6, batch_size=BATCH, options=QUIET,
    )  # fmt: skip
    model = sweep.Model.from_linen(module, DATA[0][:1])
    for k, lr in enumerate([0.1, 0.3]):
        assert_member_matches(
            result, k, *reference(optax.sgd, {"learning_rate": lr}, seed=k, steps=6, model=model)
        )


def test_flax_nnx_factory_and_instance():
    result = sweep.train(
        sweep.Model.from_nnx(NnxMLP), LOSS, DATA, optimizer=optax.sgd,
        hparams={"learning_rate": np.array([0.1, 0.3])}, seeds=[0, 1], num_steps=6,
        batch_size=BATCH, options=QUIET,
    )  # fmt: skip
    for k, lr in enumerate([0.1, 0.3]):
        model = sweep.Model.from_nnx(NnxMLP(nnx.Rngs(k)))
        assert_member_matches(
            result, k, *reference(optax.sgd, {"learning_rate": lr}, steps=6, model=model)
        )
    instance = sweep.train(
        NnxMLP(nnx.Rngs(1)), LOSS, DATA, optimizer=optax.sgd,
        hparams={"learning_rate": np.array([0.3])}, num_steps=6, batch_size=BATCH,
        options=QUIET,
    )  # fmt: skip
    np.testing.assert_allclose(instance.loss[0], result.loss[1], rtol=RTOL, atol=ATOL)


def reference_linen_bn(lr, seed, steps=6):
    """A hand-written linen loop: batch_stats mutable, dropout key from the member's seed and
    step (lrjax.step_key, folded with the collection's index 0), plain optax SGD."""
    module = LinenBNDropout()
    variables = module.init(
        {"params": jax.random.key(seed), "dropout": jax.random.key(1)}, DATA[0][:BATCH]
    )
    params, stats = variables["params"], variables["batch_stats"]
    tx = optax.sgd(lr)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, stats, opt_state, x, y, t):
        key = jax.random.fold_in(lrjax.step_key(seed, t), 0)

        def loss_fn(p):
            out, upd = module.apply({"params": p, "batch_stats": stats}, x, train=True,
                                    rngs={"dropout": key}, mutable=["batch_stats"])  # fmt: skip
            return jnp.mean(LOSS(out, y)), upd["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    losses = []
    for t in range(steps):
        idx = np.asarray(indices(0, t, N, BATCH))
        params, stats, opt_state, loss = step(params, stats, opt_state, *data_at(idx), t)
        losses.append(float(loss))
    return np.array(losses), params, stats


def test_linen_model_with_batch_stats_and_dropout_equals_a_hand_written_loop():
    result = sweep.train(
        LinenBNDropout(), LOSS, DATA, optimizer=optax.sgd,
        hparams={"learning_rate": np.array([0.1, 0.3], np.float32)}, seeds=[0, 1],
        num_steps=6, batch_size=BATCH, evaluation=sweep.Evaluation(EVAL), options=QUIET,
    )  # fmt: skip
    for k, lr in enumerate([0.1, 0.3]):
        losses, params, stats = reference_linen_bn(lr, seed=k)
        np.testing.assert_allclose(result.loss[k], losses, rtol=RTOL, atol=ATOL)
        got = jax.tree.map(lambda a, k=k: a[k], (result.params, result.model_state))
        want = (params, {"batch_stats": stats})
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
        # evaluation runs in inference mode: running statistics, no dropout
        out = LinenBNDropout().apply({"params": params, "batch_stats": stats}, EVAL[0])
        np.testing.assert_allclose(
            result.eval_metrics["loss"][k, -1], np.mean(LOSS(out, EVAL[1])), rtol=RTOL
        )


@functools.cache
def nnx_bn_run(lrs=(0.1, 0.3), seeds=(0, 1), vectorize=True, group_size=None):
    return sweep.train(
        sweep.Model.from_nnx(NnxBNDropout), LOSS, DATA, optimizer=optax.sgd,
        hparams={"learning_rate": np.array(lrs, np.float32)}, seeds=list(seeds), num_steps=6,
        batch_size=BATCH, evaluation=sweep.Evaluation(EVAL),
        options=sweep.Options(progress=False, vectorize=vectorize, group_size=group_size),
    )  # fmt: skip


def test_nnx_model_with_batchnorm_and_dropout_trains_per_member():
    result = nnx_bn_run()
    assert np.isfinite(result.loss).all() and not result.diverged.any()
    # batch statistics moved away from their initial values, differently per member
    means = result.model_state["batch_stats"]["norm"]["mean"]
    assert np.abs(means).min() > 0 and not np.allclose(means[0], means[1])
    # the debug path and a member trained alone (its dropout depends on its seed only) agree
    slow = nnx_bn_run(vectorize=False)
    np.testing.assert_allclose(slow.loss, result.loss, rtol=RTOL, atol=ATOL)
    alone = nnx_bn_run(lrs=(0.3,), seeds=(1,))
    np.testing.assert_allclose(alone.loss[0], result.loss[1], rtol=RTOL, atol=ATOL)
    # evaluation uses the running statistics: recompute it from the stored state
    model = sweep.Model.from_nnx(NnxBNDropout)
    out = model.predict(jax.tree.map(lambda a: a[1], model.variables(
        result.params, result.model_state)), EVAL[0])  # fmt: skip
    np.testing.assert_allclose(
        result.eval_metrics["loss"][1, -1], np.mean(LOSS(out, EVAL[1])), rtol=RTOL
    )


def test_batch_size_masking_is_refused_for_models_with_batch_statistics():
    with pytest.raises(ValueError, match="this model has batch statistics"):
        sweep.train(
            LinenBNDropout(), LOSS, DATA, optimizer=optax.sgd,
            hparams={"learning_rate": np.array([0.1, 0.3], np.float32)}, num_steps=2,
            batch_size=BATCH, batch_sizes=[BATCH, 4], options=QUIET,
        )  # fmt: skip


# -----------------------------------------------------------------------------------------------
# Masked examples never reach a member; checkpoints with and without evaluation and trackers


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e30])
def test_an_example_outside_a_members_batch_cannot_affect_it(value):
    x, y = (a.copy() for a in DATA)
    row = int(np.asarray(sweep.batch_indices(0, 0, N, 16))[10])  # position 10 of the step-0 batch
    x[row] = value
    # The data check would refuse a non-finite example before training; without it, masking
    # still keeps the example away from the members whose batch does not hold it.
    unchecked = sweep.Options(progress=False, check_data=False)
    kwargs = dict(optimizer=optax.sgd, hparams={"learning_rate": np.full(4, 0.1, np.float32)},
                  num_steps=1, batch_size=16, batch_sizes=[16, 8, 5, 1],
                  options=unchecked)  # fmt: skip
    if not np.isfinite(value):
        with pytest.raises(ValueError, match=f"bad data at example {row} of the data"):
            sweep.train(MODEL, LOSS, (x, y), **{**kwargs, "options": QUIET})
    poisoned = sweep.train(MODEL, LOSS, (x, y), **kwargs)
    clean = sweep.train(MODEL, LOSS, DATA, **kwargs)
    # Members 1-3 never see position 10: bit-identical to training on clean data.
    assert not poisoned.diverged[1:].any()
    np.testing.assert_array_equal(poisoned.loss[1:], clean.loss[1:])
    for a, b in zip(jax.tree.leaves(poisoned.params), jax.tree.leaves(clean.params), strict=True):
        np.testing.assert_array_equal(a[1:], b[1:])
    # Member 0's batch holds it: a non-finite example makes it diverge, a huge one need not.
    assert poisoned.diverged[0] == (not np.isfinite(value))


def test_integer_hyperparameters_are_cast_to_float_optimizer_arguments():
    ints = bad(hparams={"learning_rate": [1, 2]}, num_steps=3)
    floats = bad(hparams={"learning_rate": [1.0, 2.0]}, num_steps=3)
    assert ints.hparams["learning_rate"].dtype == np.float32
    np.testing.assert_array_equal(ints.learning_rate, [[1.0] * 3, [2.0] * 3])  # was: raised
    np.testing.assert_array_equal(ints.loss, floats.loss)
    # With optimizer_kwargs, integer hyperparameters stay int32 (a family index, say); an
    # integer that reaches a real optimizer argument is cast there.
    custom = bad(
        hparams={"family": [0, 1]}, num_steps=3,
        optimizer_kwargs=lambda hp: {"learning_rate": 1 + hp["family"]},
    )  # fmt: skip
    assert custom.hparams["family"].dtype == np.int32
    np.testing.assert_array_equal(custom.learning_rate, ints.learning_rate)
    np.testing.assert_array_equal(custom.loss, ints.loss)
