"""Tests for lrjax.sweep: the vectorized engine against independent single-member optax loops."""

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx

import lrjax
from lrjax import schedules, sweep

N, D_IN, D_HID, D_OUT = 64, 4, 8, 3
STEPS, BATCH, CHUNK = 12, 8, 5  # 3 chunks, the last one partial
RTOL, ATOL = 1e-5, 1e-6  # float32, a dozen steps: the vmapped program reorders reductions


def mlp_init(key):
    # Pseudo-random weights hashed from the key's bits: threefry takes seconds to compile on CPU,
    # and these tests compile many programs. (The Flax tests below use jax.random initializers.)
    seed = jax.random.key_data(key)[-1].astype(jnp.float32)

    def weights(shape, salt):
        i = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
        return jnp.sin(i * 12.9898 + seed * 78.233 + salt) / np.sqrt(shape[0])

    return {
        "w1": weights((D_IN, D_HID), 0.0),
        "b1": jnp.zeros((D_HID,)),
        "w2": weights((D_HID, D_OUT), 1.0),
        "b2": jnp.zeros((D_OUT,)),
    }


def mlp_apply(params, x):
    h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    return h @ params["w2"] + params["b2"][None, :]


MODEL = sweep.Model(mlp_init, mlp_apply)
LOSS = optax.softmax_cross_entropy_with_integer_labels
QUIET = sweep.Options(progress=False)


def make_data(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D_IN)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)
    return x, y


DATA = make_data(0, N)
EVAL = make_data(1, 32)


@functools.partial(jax.jit, static_argnames=("make_tx", "apply"))
def reference_step(params, state, xb, yb, hp, make_tx, apply):
    tx = make_tx(**hp)
    loss, grads = jax.value_and_grad(lambda p: jnp.mean(LOSS(apply(p, xb), yb)))(params)
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam computes f32 ** int32 count
        updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss


indices = jax.jit(sweep.batch_indices, static_argnums=(2, 3))


def reference(make_tx, hp, *, seed=0, data_seed=0, steps=STEPS, member_batch=None, model=None):
    """Plain optax: one member, ``make_tx(**hp)``, a jitted step, a Python loop; no lrjax engine.

    The hyperparameters are traced arguments of one jitted step per ``make_tx``, so references
    for many members share a compiled step.
    """
    model = model or MODEL
    x, y = DATA
    params = jax.jit(model.init)(jax.random.key(seed))
    with jax.numpy_dtype_promotion("standard"):
        state = make_tx(**hp).init(params)
    hp = {k: jnp.float32(v) for k, v in hp.items()}
    losses = []
    for t in range(steps):
        idx = np.asarray(indices(data_seed, t, len(x), BATCH))[:member_batch]
        params, state, loss = reference_step(
            params, state, x[idx], y[idx], hp, make_tx=make_tx, apply=model.apply
        )
        losses.append(float(loss))
    return np.array(losses), params


def assert_member_matches(result, k, ref_losses, ref_params, params_atol=ATOL):
    np.testing.assert_allclose(result.loss[k], ref_losses, rtol=RTOL, atol=ATOL)
    for got, want in zip(
        jax.tree.leaves(result.member_params(k)), jax.tree.leaves(ref_params), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=params_atol)


# -----------------------------------------------------------------------------------------------
# A sweep over optimizer x schedule family x peak LR x seed, in one run per optimizer.

FAMILIES = ("warmup_cosine", "step", "one_cycle", "wsd")


def family_schedules(peak):
    return [
        schedules.warmup_cosine_decay(peak, warmup_steps=3, total_steps=STEPS),
        schedules.step_decay(peak, step_size=4, gamma=0.5),
        schedules.one_cycle(STEPS, peak),
        schedules.warmup_stable_decay(peak, STEPS, warmup_steps=2, decay_steps=4),
    ]


def sweep_kwargs(name):
    def momentum_kwargs(hp):
        lr = sweep.schedule_family_switch(hp["family"], family_schedules(hp["peak"]))
        return {"learning_rate": lr, "momentum": hp["momentum"]}

    def adam_kwargs(hp):
        lr = sweep.schedule_family_switch(hp["family"], family_schedules(hp["peak"]))
        return {"learning_rate": lr, "b1": hp["b1"]}

    return {"sgd": (optax.sgd, momentum_kwargs), "adam": (optax.adam, adam_kwargs)}[name]


HPARAMS = {
    "sgd": {
        "peak": np.array([0.3, 0.1, 0.5, 0.2], np.float32),
        "family": np.array([0, 1, 2, 3], np.int32),
        "momentum": np.array([0.9, 0.5, 0.0, 0.8], np.float32),
    },
    "adam": {
        "peak": np.array([0.01, 0.03, 0.02, 0.05], np.float32),
        "family": np.array([3, 2, 1, 0], np.int32),
        "b1": np.array([0.9, 0.8, 0.95, 0.7], np.float32),
    },
}
SEEDS = np.array([0, 1, 2, 0], np.int32)


def family_sgd(family, peak, momentum):
    return optax.sgd(family_schedules(peak)[family], momentum=momentum)


def family_adam(family, peak, b1):
    return optax.adam(family_schedules(peak)[family], b1=b1)


# One make_tx per (optimizer, family), made once so the reference step compiles once for each.
FAMILY_TX = {
    (name, f): functools.partial(fn, f)
    for name, fn in (("sgd", family_sgd), ("adam", family_adam))
    for f in range(len(FAMILIES))
}


def reference_member(name, k):
    hp = {key: v[k].item() for key, v in HPARAMS[name].items()}
    family = hp.pop("family")
    return FAMILY_TX[name, family], hp, family_schedules(hp["peak"])[family]


@pytest.fixture(scope="module", params=["sgd", "adam"])
def family_sweep(request):
    optimizer, kwargs = sweep_kwargs(request.param)
    result = sweep.train(
        MODEL,
        LOSS,
        DATA,
        optimizer=optimizer,
        optimizer_kwargs=kwargs,
        hparams=HPARAMS[request.param],
        seeds=SEEDS,
        num_steps=STEPS,
        batch_size=BATCH,
        evaluation=sweep.Evaluation(EVAL, CHUNK, {"loss": LOSS, "accuracy": sweep.accuracy}),
        options=QUIET,
    )
    return request.param, result


def test_vmapped_members_equal_separate_runs(family_sweep):
    name, result = family_sweep
    assert result.loss.shape == (4, STEPS)
    for k in range(4):
        make_tx, hp, _ = reference_member(name, k)
        ref_losses, ref_params = reference(make_tx, hp, seed=int(SEEDS[k]))
        # Adam divides by sqrt(v): gradients of ~1e-9 that differ in their last bits (the
        # vmapped matmul sums in another order) move a parameter by up to ~lr in sign, so its
        # parameters are compared at a tolerance scaled by the learning rate.
        atol = 1e-4 * hp["peak"] if name == "adam" else ATOL
        assert_member_matches(result, k, ref_losses, ref_params, params_atol=atol)
    assert not result.diverged.any()
    np.testing.assert_array_equal(result.diverged_step, -1)


def test_logged_learning_rate_is_the_schedule(family_sweep):
    name, result = family_sweep
    steps = np.arange(STEPS)
    for k in range(4):
        _, _, lr = reference_member(name, k)
        want = np.array([float(lr(t)) for t in steps], np.float32)
        np.testing.assert_allclose(result.learning_rate[k], want, rtol=1e-6, atol=0)
    # the families really differ, so the switch picked different branches
    assert len({tuple(np.round(r, 6)) for r in result.learning_rate}) == 4


def test_eval_metrics_match_final_params(family_sweep):
    _, result = family_sweep
    np.testing.assert_array_equal(result.eval_steps, [0, 5, 10, 12])
    x, y = EVAL
    for k in range(4):
        out = mlp_apply(result.member_params(k), x)
        np.testing.assert_allclose(
            result.eval_metrics["loss"][k, -1], np.mean(LOSS(out, y)), rtol=RTOL
        )
        np.testing.assert_allclose(
            result.eval_metrics["accuracy"][k, -1], np.mean(sweep.accuracy(out, y)), rtol=RTOL
        )


def test_grad_norm_is_logged(family_sweep):
    _, result = family_sweep
    x, y = DATA
    idx = np.asarray(sweep.batch_indices(0, 0, N, BATCH))
    params = jax.jit(mlp_init)(jax.random.key(int(SEEDS[0])))
    grads = jax.jit(jax.grad(lambda p: jnp.mean(LOSS(mlp_apply(p, x[idx]), y[idx]))))(params)
    want = np.sqrt(sum(np.sum(np.square(g)) for g in jax.tree.leaves(grads)))
    np.testing.assert_allclose(result.grad_norm[0, 0], want, rtol=RTOL)


# -----------------------------------------------------------------------------------------------
# Small constant-LR SGD sweeps share one compiled program through the module-level cache.


def sgd_train(learning_rates, eval_data=None, every=CHUNK, options=None, **kwargs):
    """Constant-LR SGD in chunks of ``every`` steps (evaluated on ``eval_data`` when given)."""
    if eval_data is None:
        options = dataclasses.replace(options or QUIET, chunk_steps=every)
    return sweep.train(
        MODEL,
        LOSS,
        DATA,
        optimizer=optax.sgd,
        hparams={"learning_rate": np.asarray(learning_rates, np.float32)},
        num_steps=STEPS,
        batch_size=BATCH,
        evaluation=None if eval_data is None else sweep.Evaluation(eval_data, every),
        options=options or QUIET,
        **kwargs,
    )


def test_batch_size_masking_equals_training_on_the_smaller_batch():
    result = sgd_train([0.2, 0.2, 0.3, 0.1], batch_sizes=[BATCH, 5, 3, 1])
    for k, (lr, b) in enumerate([(0.2, BATCH), (0.2, 5), (0.3, 3), (0.1, 1)]):
        assert_member_matches(
            result, k, *reference(optax.sgd, {"learning_rate": lr}, member_batch=b)
        )
    assert not np.allclose(result.loss[0], result.loss[1])


def test_per_member_data_order_and_init_seeds():
    result = sgd_train([0.2, 0.2, 0.2, 0.2], seeds=[0, 0, 3, 3], data_seeds=[0, 7, 7, 1])
    for k, (seed, data_seed) in enumerate([(0, 0), (0, 7), (3, 7), (3, 1)]):
        assert_member_matches(
            result, k, *reference(optax.sgd, {"learning_rate": 0.2}, seed=seed, data_seed=data_seed)
        )


def test_shared_batch_when_data_seed_is_scalar():
    result = sgd_train([0.2, 0.2, 0.2, 0.2], seeds=[5, 5, 5, 5], data_seeds=4)
    np.testing.assert_array_equal(result.loss[0], result.loss[3])
    assert_member_matches(
        result, 0, *reference(optax.sgd, {"learning_rate": 0.2}, seed=5, data_seed=4)
    )


def test_compiles_once_for_a_whole_sweep():
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        first = sgd_train([0.1, 0.2, 0.3, 0.4], every=4, eval_data=EVAL)
        assert compiles.count("jit(lrjax_chunk)") == 1  # 3 chunks of 4 steps, one program
        compiles.clear()
        # New values for everything a member may vary: nothing compiles.
        second = sgd_train(
            [1.0, 0.5, 0.01, 0.02],
            every=4,
            eval_data=EVAL,
            seeds=[1, 2, 3, 4],
            batch_sizes=[8, 7, 6, 5],
        )
        assert compiles == []
        assert second.metadata["num_compiles"] == 0
        assert not np.allclose(first.loss, second.loss)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


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


def test_save_and_load_round_trip(tmp_path):
    result = sgd_train([0.1, 1e3], eval_data=EVAL)
    result.save(tmp_path / "sweep")
    loaded = sweep.SweepResult.load(tmp_path / "sweep")
    for field in ("loss", "grad_norm", "eval_steps", "diverged", "diverged_step"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(result, field))
    for group in ("hparams", "opt_hparams", "eval_metrics"):
        assert getattr(loaded, group).keys() == getattr(result, group).keys()
        for key, value in getattr(result, group).items():
            np.testing.assert_array_equal(getattr(loaded, group)[key], value)
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(result.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.metadata == result.metadata


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    lrs = [0.1, 0.4, 1e3]
    full = sgd_train(lrs, eval_data=EVAL, options=sweep.Options(progress=False, group_size=2))

    class Interrupt(Exception):
        pass

    def crash_after_second_chunk(info):
        if info["step"] >= 2 * CHUNK:
            raise Interrupt

    def checkpointed(callback):
        return sweep.Options(
            progress=False, group_size=2, checkpoint_dir=tmp_path, callback=callback
        )

    with pytest.raises(Interrupt):
        sgd_train(lrs, eval_data=EVAL, options=checkpointed(crash_after_second_chunk))
    seen = []
    resumed = sgd_train(lrs, eval_data=EVAL, options=checkpointed(seen.append))
    # only the last chunk ran again
    assert [i["step"] for i in seen] == [STEPS]
    np.testing.assert_array_equal(resumed.loss, full.loss)
    np.testing.assert_array_equal(resumed.diverged_step, full.diverged_step)
    np.testing.assert_array_equal(resumed.eval_metrics["loss"], full.eval_metrics["loss"])
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(full.params), strict=True):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(ValueError, match=r"checkpoint_dir .* holds a different run"):
        sgd_train([0.1, 0.4, 0.5], eval_data=EVAL, options=checkpointed(None))


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


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(D_OUT)(jnp.tanh(linen.Dense(D_HID)(x)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(D_IN, D_HID, rngs=rngs)
        self.out = nnx.Linear(D_HID, D_OUT, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


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


# -----------------------------------------------------------------------------------------------
# Bad input


def test_schedule_family_switch():
    lo, hi = optax.constant_schedule(1.0), optax.linear_schedule(1.0, 0.0, 10)
    switched = jax.vmap(lambda i: sweep.schedule_family_switch(i, [lo, hi])(5))(jnp.array([0, 1]))
    np.testing.assert_allclose(switched, [1.0, 0.5])
    with pytest.raises(ValueError, match=r"schedule family index must be in \[0, 2\), got 2"):
        sweep.schedule_family_switch(2, [lo, hi])
    with pytest.raises(ValueError, match="schedules must hold at least one"):
        sweep.schedule_family_switch(0, [])


def bad(**overrides):
    args = dict(
        model=MODEL,
        loss=LOSS,
        data=DATA,
        optimizer=optax.sgd,
        hparams={"learning_rate": np.array([0.1, 0.2])},
        num_steps=STEPS,
        batch_size=BATCH,
        options=QUIET,
    )
    args.update(overrides)
    model, loss, data = args.pop("model"), args.pop("loss"), args.pop("data")
    return sweep.train(model, loss, data, **args)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"hparams": {"learning_rate": np.array([0.1, 0.2]), "momentum": np.array([0.9])}},
            r"share one leading size K, got hparams\['learning_rate'\]: 2, "
            r"hparams\['momentum'\]: 1",
        ),
        ({"hparams": {"learning_rate": np.zeros((0,))}}, "number of members K must be >= 1, got 0"),
        ({"hparams": {"learning_rate": 0.1}}, r"hparams\['learning_rate'\] must have a leading"),
        ({"seeds": [1, 2, 3]}, "seeds: 3"),
        ({"batch_sizes": [8, 9]}, r"batch_sizes must be in \[1, batch_size=8\], got .* \[8, 9\]"),
        ({"batch_sizes": [0, 8]}, r"batch_sizes must be in \[1, batch_size=8\]"),
        ({"batch_size": 65}, r"batch_size must be an integer in \[1, 64\], got 65"),
        ({"num_steps": 0}, "num_steps must be an integer >= 1, got 0"),
        ({"num_steps": 3.0}, "num_steps must be an integer >= 1, got 3.0"),
        (
            {"evaluation": sweep.Evaluation(EVAL, every=0)},
            "evaluation.every must be an integer >= 1",
        ),
        ({"divergence_factor": -1.0}, "divergence_factor must be a finite number > 0"),
        ({"divergence_factor": float("nan")}, "divergence_factor must be a finite number > 0"),
        ({"options": sweep.Options(group_size=0)}, "group_size must be an integer >= 1"),
        (
            {"loss": lambda out, y: jnp.mean(LOSS(out, y))},
            r"loss must return one value per example, shape \(8,\)",
        ),
        (
            {"loss": optax.l2_loss},
            r"loss does not fit the model: model outputs \(8, 3\) float32, targets \(8,\) int32",
        ),
        (
            {"model": sweep.Model(mlp_init, lambda p, x: jnp.sum(x @ p["w1"], axis=1))},
            r"loss does not fit the model: model outputs \(8,\)",
        ),
        ({"model": sweep.Model(mlp_init, lambda p, x: x @ p["w2"])}, "model.apply failed"),
        ({"model": object()}, "model must be an lrjax.Model"),
        ({"data": (DATA[0], DATA[1][:10])}, "must share a leading size N"),
        (
            {"evaluation": sweep.Evaluation((EVAL[0][:, :2], EVAL[1]))},
            "evaluation.data must match",
        ),
        (
            {"optimizer_kwargs": lambda hp: {"learning_rate": hp["learning_rate"], "beta": 1.0}},
            "optimizer does not accept optimizer_kwargs",
        ),
        (
            {
                "hparams": {"family": np.array([0, 3])},
                "optimizer_kwargs": lambda hp: {
                    "learning_rate": sweep.schedule_family_switch(
                        hp["family"], [optax.constant_schedule(0.1)] * 3
                    )
                },
            },
            r"schedule family index must be in \[0, 3\), got 3",
        ),
    ],
)
def test_bad_input_is_a_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        bad(**overrides)


# -----------------------------------------------------------------------------------------------
# Multiple devices and processes (subprocesses: XLA's device count is fixed at startup)

SHARDED_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np, optax
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    from lrjax import sweep
    from tests.sweep_test import DATA, EVAL, LOSS, MODEL

    assert jax.device_count() == 4, jax.devices()
    kw = dict(optimizer=optax.sgd, num_steps=9, batch_size=8,
              evaluation=sweep.Evaluation(EVAL, every=4),
              hparams={"learning_rate": np.array([0.1, 0.2, 0.3, 1e3, 0.5, 0.6], np.float32),
                       "momentum": np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.0], np.float32)},
              seeds=[0, 1, 2, 3, 4, 5])
    one = sweep.train(MODEL, LOSS, DATA, options=sweep.Options(devices=jax.devices()[:1]), **kw)
    sharded = sweep.train(MODEL, LOSS, DATA, options=sweep.Options(group_size=6), **kw)
    grouped = sweep.train(MODEL, LOSS, DATA, options=sweep.Options(group_size=3), **kw)
    assert sharded.metadata["devices"] == 4 and sharded.loss.shape == (6, 9)
    assert grouped.metadata["num_groups"] == 2, grouped.metadata
    assert one.diverged.tolist() == [False, False, False, True, False, False]
    for other in (sharded, grouped):
        np.testing.assert_array_equal(other.diverged_step, one.diverged_step)
        for a, b in zip(jax.tree.leaves((other.loss, other.learning_rate, other.eval_metrics,
                                         other.params)),
                        jax.tree.leaves((one.loss, one.learning_rate, one.eval_metrics,
                                         one.params))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # BatchNorm and dropout: a member's dropout masks do not depend on the device count.
    from tests.sweep_test import LinenBNDropout
    bn = dict(optimizer=optax.sgd, num_steps=4, batch_size=8,
              hparams={"learning_rate": np.array([0.1, 0.2, 0.3, 0.4, 0.5], np.float32)},
              seeds=[0, 1, 2, 3, 4])
    bn_one = sweep.train(LinenBNDropout(), LOSS, DATA, **bn,
                         options=sweep.Options(devices=jax.devices()[:1], group_size=5))
    bn_four = sweep.train(LinenBNDropout(), LOSS, DATA, **bn, options=sweep.Options(group_size=8))
    assert bn_four.metadata["devices"] == 4
    np.testing.assert_allclose(bn_four.loss, bn_one.loss, rtol=1e-5, atol=1e-6)
    print("SHARDED OK")
    """
)


def run_python(script, env_extra, timeout=240, args=()):
    env = dict(os.environ, **env_extra)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_sharded_over_four_devices_equals_one_device():
    proc = run_python(
        SHARDED_SCRIPT,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SHARDED OK" in proc.stdout


def test_progress_bar_shows_members_alive_and_best_loss(capsys):
    sgd_train([0.1, 1e3, 0.05, 0.2], options=sweep.Options(progress=True))
    err = capsys.readouterr().err
    assert "step/s" in err or "s/step" in err
    assert "alive=3/4" in err
    assert "best_loss=" in err


DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    process_id, address, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=address, num_processes=2, process_id=process_id)
    from tests.sweep_test import DATA, EVAL, LOSS, MODEL, distributed_sweep_kwargs
    from lrjax import sweep
    assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
    result = sweep.train(MODEL, LOSS, DATA, **distributed_sweep_kwargs())
    assert result.metadata["process_count"] == 2 and result.metadata["devices"] == 4
    result.save(f"{out}/process{process_id}")
    print("DISTRIBUTED OK", process_id)
    """
)


def distributed_sweep_kwargs():
    return dict(
        optimizer=optax.sgd,
        num_steps=9,
        batch_size=BATCH,
        evaluation=sweep.Evaluation(EVAL, every=4),
        hparams={"learning_rate": np.array([0.1, 0.2, 0.3, 1e3, 0.5, 0.6], np.float32)},
        seeds=[0, 1, 2, 3, 4, 5],
        options=sweep.Options(progress=False, group_size=6),
    )


@pytest.mark.slow
def test_two_processes_under_jax_distributed_equal_one_process(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        address = f"localhost:{s.getsockname()[1]}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DISTRIBUTED_SCRIPT, str(i), address, str(tmp_path)],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for i, (p, out) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, out
        assert f"DISTRIBUTED OK {i}" in out

    one = sweep.train(MODEL, LOSS, DATA, **distributed_sweep_kwargs())
    for i in range(2):  # every process holds the whole result
        got = sweep.SweepResult.load(tmp_path / f"process{i}")
        np.testing.assert_array_equal(got.diverged_step, one.diverged_step)
        np.testing.assert_allclose(got.loss, one.loss, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(
            got.eval_metrics["loss"], one.eval_metrics["loss"], rtol=RTOL, atol=ATOL
        )
        for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(one.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_float64_inputs_are_canonicalized():
    x64, y64 = DATA[0].astype(np.float64), DATA[1].astype(np.int64)
    result = sweep.train(
        MODEL, LOSS, (x64, y64), optimizer=optax.sgd,
        hparams={"learning_rate": [0.1, 0.2, 0.3, 0.4]}, num_steps=STEPS, batch_size=BATCH,
        evaluation=sweep.Evaluation((EVAL[0].astype(np.float64), EVAL[1]), every=CHUNK),
        options=QUIET,
    )  # fmt: skip
    np.testing.assert_array_equal(result.loss, sgd_train([0.1, 0.2, 0.3, 0.4]).loss)


# -----------------------------------------------------------------------------------------------
# In-loop trackers: snapshots, SWA, EMA and reduce-on-plateau (lrjax's research tools).

TRACK_LRS = np.array([0.1, 0.4], np.float32)


@functools.cache
def tracked_run(vectorize=True):
    return sweep.train(
        MODEL, LOSS, DATA, optimizer=optax.sgd, hparams={"learning_rate": TRACK_LRS},
        num_steps=STEPS, batch_size=BATCH,
        trackers={"snapshots": lrjax.Snapshots(tuple(range(1, STEPS + 1))),
                  "swa": lrjax.SWA(start=3, every=2), "ema": lrjax.EMA([0.5, 0.9])},
        options=sweep.Options(chunk_steps=CHUNK, progress=False, vectorize=vectorize),
    )  # fmt: skip


@pytest.mark.parametrize("n", [1, 5, 6, STEPS])  # first step, chunk boundary, last step
def test_snapshots_are_the_parameters_after_their_update_counts(n):
    result = tracked_run()
    for k, lr in enumerate(TRACK_LRS):
        _, params = reference(optax.sgd, {"learning_rate": lr}, steps=n)
        for got, want in zip(
            jax.tree.leaves(result.snapshots), jax.tree.leaves(params), strict=True
        ):
            np.testing.assert_allclose(got[k, n - 1], want, rtol=RTOL, atol=ATOL)


def test_swa_is_the_average_of_the_sampled_iterates():
    result = tracked_run()
    sampled = [n for n in range(1, STEPS + 1) if n >= 3 and (n - 3) % 2 == 0]
    np.testing.assert_array_equal(result.swa_count, [len(sampled)] * 2)
    for avg, snaps in zip(
        jax.tree.leaves(result.swa_params), jax.tree.leaves(result.snapshots), strict=True
    ):
        expected = np.mean(np.asarray(snaps, np.float64)[:, [n - 1 for n in sampled]], axis=1)
        np.testing.assert_allclose(avg, expected, rtol=1e-5, atol=1e-7)


def test_ema_follows_its_recursion_from_the_initial_parameters():
    result = tracked_run()
    initial = jax.tree.leaves(jax.jit(MODEL.init)(jax.random.key(0)))
    for k, decay in enumerate([0.5, 0.9]):
        for ema, snaps, start in zip(
            jax.tree.leaves(result.ema_params), jax.tree.leaves(result.snapshots), initial,
            strict=True,
        ):  # fmt: skip
            expected = np.asarray(start, np.float64)
            for n in range(STEPS):
                expected = decay * expected + (1 - decay) * np.asarray(snaps[k, n], np.float64)
            np.testing.assert_allclose(ema[k], expected, rtol=1e-5, atol=1e-6)


def test_trackers_agree_between_vectorized_and_debug_paths():
    fast, slow = tracked_run(), tracked_run(vectorize=False)
    for name in ("snapshots", "swa_params", "ema_params"):
        for a, b in zip(
            jax.tree.leaves(getattr(fast, name)), jax.tree.leaves(getattr(slow, name)), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


PLATEAU_EVERY = 2


@functools.cache
def plateau_run(vectorize=True):
    # A tiny LR leaves the loss flat (a plateau); a large one keeps improving it.
    return sweep.train(
        MODEL, LOSS, DATA, optimizer=optax.sgd, hparams={"learning_rate": [1e-7, 0.5]},
        optimizer_kwargs=lambda hp: {"learning_rate": hp["learning_rate"], "momentum": 0.9},
        num_steps=STEPS, batch_size=BATCH, evaluation=sweep.Evaluation(DATA, PLATEAU_EVERY),
        plateau=PLATEAU, options=sweep.Options(progress=False, vectorize=vectorize),
    )  # fmt: skip


PLATEAU = lrjax.reduce_on_plateau(factor=0.5, patience=1, threshold=1e-3)


def expected_plateau_lrs(result, k, base_lr, plateau):
    """Replays the controller on the recorded evaluation losses: the LR each step should use."""
    state, scale, lrs = plateau.init(), 1.0, []
    for metric in result.eval_metrics["loss"][k, 1:]:
        lrs += [base_lr * scale] * PLATEAU_EVERY
        state = plateau.update(state, metric, base_lr)
        scale = float(state.scale)
    return np.array(lrs[:STEPS], np.float32)


def test_plateau_reduces_each_member_independently_and_logs_the_lr_used():
    result = plateau_run()
    flat = expected_plateau_lrs(result, 0, 1e-7, PLATEAU)
    assert flat[-1] < 1e-7 / 2  # the flat member was reduced at least twice
    np.testing.assert_allclose(result.learning_rate[0], flat, rtol=1e-6)
    improving = expected_plateau_lrs(result, 1, 0.5, PLATEAU)
    np.testing.assert_allclose(result.learning_rate[1], improving, rtol=1e-6)

    # Scaling the update equals training with that LR schedule given up front (momentum too).
    boundaries = [PLATEAU_EVERY * (j + 1) - 1 for j in range(STEPS // PLATEAU_EVERY - 1)]
    values = flat[::PLATEAU_EVERY]
    replay = sweep.train(
        MODEL, LOSS, DATA, optimizer=optax.sgd, hparams={"lr": [0.0]},
        optimizer_kwargs=lambda hp: {
            "learning_rate": schedules.piecewise_constant(boundaries, values), "momentum": 0.9},
        num_steps=STEPS, batch_size=BATCH, options=QUIET,
    )  # fmt: skip
    np.testing.assert_allclose(replay.learning_rate[0], flat, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(replay.params), strict=True):
        np.testing.assert_allclose(a[0], b[0], rtol=RTOL, atol=1e-9)

    slow = plateau_run(vectorize=False)
    np.testing.assert_allclose(slow.learning_rate, result.learning_rate, rtol=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: lrjax.Snapshots((5, 3)), "snapshot steps must be strictly increasing"),
        (lambda: lrjax.Snapshots((0,)), r"snapshot steps\[0\] must be an integer >= 1"),
        (lambda: lrjax.Snapshots(()), "snapshot steps must hold at least one"),
        (lambda: lrjax.SWA(start=-1), "swa start must be an integer >= 0"),
        (lambda: lrjax.SWA(start=2, every=0), "swa every must be an integer >= 1"),
        (lambda: lrjax.EMA(1.5), r"ema decay must be a finite number in \[0, 1\]"),
        (lambda: lrjax.EMA([0.5, float("nan")]), r"ema decay\[1\] must be a finite number"),
    ],
)
def test_tracker_arguments_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_plateau_needs_an_evaluation_and_a_known_metric():
    common = dict(
        optimizer=optax.sgd, hparams={"learning_rate": [0.1]}, num_steps=STEPS,
        batch_size=BATCH, options=QUIET,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"plateau must come from lrjax\.reduce_on_plateau"):
        sweep.train(MODEL, LOSS, DATA, plateau="yes", evaluation=sweep.Evaluation(EVAL), **common)
    with pytest.raises(ValueError, match="plateau needs an evaluation"):
        sweep.train(MODEL, LOSS, DATA, plateau=lrjax.reduce_on_plateau(), **common)
    with pytest.raises(ValueError, match="the plateau metric must be one of the metrics"):
        sweep.train(
            MODEL, LOSS, DATA, evaluation=sweep.Evaluation(EVAL),
            plateau=(lrjax.reduce_on_plateau(), "accuracy"), **common,
        )  # fmt: skip


def test_save_and_load_keep_the_trackers(tmp_path):
    result = tracked_run()
    result.save(tmp_path / "tracked")
    loaded = sweep.SweepResult.load(tmp_path / "tracked")
    np.testing.assert_array_equal(loaded.swa_count, result.swa_count)
    for name in ("params", "snapshots", "swa_params", "ema_params"):
        for a, b in zip(
            jax.tree.leaves(getattr(loaded, name)), jax.tree.leaves(getattr(result, name)),
            strict=True,
        ):  # fmt: skip
            np.testing.assert_array_equal(a, b)


# -----------------------------------------------------------------------------------------------
# Models with batch statistics and dropout (linen and nnx)


class LinenBNDropout(linen.Module):
    @linen.compact
    def __call__(self, x, train: bool = False):
        x = linen.BatchNorm(use_running_average=not train, momentum=0.8)(linen.Dense(D_HID)(x))
        x = linen.Dropout(0.5, deterministic=not train)(jnp.tanh(x))
        return linen.Dense(D_OUT)(x)


class NnxBNDropout(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(D_IN, D_HID, rngs=rngs)
        self.norm = nnx.BatchNorm(D_HID, momentum=0.8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(D_HID, D_OUT, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jnp.tanh(self.norm(self.hidden(x)))))


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


def data_at(idx):
    return DATA[0][idx], DATA[1][idx]


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


@pytest.mark.parametrize("with_eval", [False, True])
@pytest.mark.parametrize("with_trackers", [False, True])
def test_checkpoint_resume_with_and_without_evaluation_and_trackers(
    tmp_path, with_eval, with_trackers
):
    trackers = (
        {"snapshots": lrjax.Snapshots((3, 9)), "swa": lrjax.SWA(2), "ema": lrjax.EMA([0.5, 0.9])}
        if with_trackers
        else None
    )

    class Interrupt(Exception):
        pass

    def stop_after_first_chunk(info):
        if info["step"] == CHUNK:
            raise Interrupt

    def run(checkpoint_dir=None, callback=None):
        return sgd_train(
            [0.1, 0.3], eval_data=EVAL if with_eval else None, trackers=trackers,
            options=sweep.Options(progress=False, checkpoint_dir=checkpoint_dir,
                                  callback=callback, chunk_steps=None if with_eval else CHUNK),
        )  # fmt: skip

    whole = run()
    with pytest.raises(Interrupt):
        run(tmp_path, stop_after_first_chunk)
    resumed = run(tmp_path)
    np.testing.assert_array_equal(resumed.loss, whole.loss)
    for name in ("params", "trackers", "eval_metrics"):
        got, want = jax.tree.leaves(getattr(resumed, name)), jax.tree.leaves(getattr(whole, name))
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


# -----------------------------------------------------------------------------------------------
# Bad input never trains silently (each case below trained, or failed deep inside JAX, before)


def with_value(value, row=5, part=0):
    """DATA with ``value`` written into example ``row`` of the inputs (part 0) or targets (1)."""
    arrays = [a.copy() for a in DATA]
    arrays[part][row] = value
    return tuple(arrays)


EVAL_BAD_LABEL = (EVAL[0], np.where(np.arange(len(EVAL[1])) == 7, 3, EVAL[1]).astype(np.int32))
LABEL = r"bad data at example 5 of the data: the targets hold the label {}, outside \[0, 3\)"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data": with_value(15, part=1)}, LABEL.format(15)),  # was: all members "diverged"
        ({"data": with_value(-1, part=1)}, LABEL.format(-1)),  # was: wrapped to class 2
        ({"data": with_value(np.nan)}, "bad data at example 5 of the data: the inputs hold nan"),
        ({"data": with_value(-np.inf)}, "bad data at example 5 of the data: the inputs hold -inf"),
        (
            {"evaluation": sweep.Evaluation(EVAL_BAD_LABEL)},
            r"bad data at example 7 of evaluation.data: the targets hold the label 3",
        ),
        (  # was: both members got seed 0
            {"seeds": [0, 2**32]},
            r"seeds must hold integers in \[-2147483648, 2147483647\] \(int32\), got 4294967296 "
            r"at index \(1,\)",
        ),
        ({"seeds": 2**31}, r"seeds must hold integers in .*, got 2147483648"),
        ({"data_seeds": [0, 2**32]}, r"data_seeds must hold integers in .*, got 4294967296"),
        ({"data_seeds": 2.5}, r"data_seeds must hold integers in .*, got 2.5"),
        ({"batch_sizes": [8, 2**32 + 8]}, r"batch_sizes must hold integers in .*, got 4294967304"),
        (  # was: trained, then result.learning_rate raised
            {"hparams": {"learning_rate": [[0.1], [0.2]]}},
            r"hparams\['learning_rate'\] must be a 1-D \[K\] array, one scalar optimizer argument "
            r"per member, got shape \(2, 1\)",
        ),
        (
            {"hparams": {"learning_rate": [True, False]}},
            r"hparams\['learning_rate'\] must hold numbers, got booleans",
        ),
        (
            {"hparams": {"learning_rate": [0.1, np.nan]}},
            r"hparams\['learning_rate'\] must hold float32 numbers, got nan for member 1",
        ),
        (
            {"hparams": {"learning_rate": [0.1, 1e40]}},
            r"hparams\['learning_rate'\] must hold float32 numbers, got 1e\+40 for member 1",
        ),
        (  # was: gradient ascent
            {"hparams": {"learning_rate": [0.1, -0.2]}},
            "member 1's learning_rate must be a finite number >= 0, got -0.2",
        ),
        (
            {"optimizer": optax.adam, "hparams": {"learning_rate": [0.1, 0.1], "b1": [0.9, 1.5]}},
            r"member 1's b1 must be a finite number in \[0, 1\), got 1.5",
        ),
        (
            {"hparams": {"learning_rate": [0.1, 0.1], "momentum": [0.9, 1.0]}},
            r"member 1's momentum must be a finite number in \[0, 1\), got 1.0",
        ),
        (
            {
                "optimizer": optax.adamw,
                "hparams": {"learning_rate": [0.1, 0.1], "weight_decay": [-1e-4, 0.0]},
            },
            "member 0's weight_decay must be a finite number >= 0, got -0.0001",
        ),
        (
            {"optimizer": optax.adam, "hparams": {"learning_rate": [0.1, 0.1], "eps": [0, -1e-8]}},
            "member 1's eps must be a finite number >= 0, got -1e-08",
        ),
        (  # 0.1 -> -0.1 over 12 steps: negative from step 7 on
            {
                "optimizer_kwargs": lambda hp: {
                    "learning_rate": optax.linear_schedule(hp["learning_rate"], -0.1, STEPS)
                }
            },
            "member 0's learning_rate schedule at step 7 must be a finite number >= 0",
        ),
        (
            {
                "optimizer_kwargs": lambda hp: {
                    "learning_rate": hp["learning_rate"],
                    "momentum": jnp.float32(jnp.nan),
                }
            },
            "member 0's momentum must be a finite number in",
        ),
        (  # was: "operands could not be broadcast" from inside the program
            {"trackers": {"ema": lrjax.EMA([0.5, 0.9, 0.99])}},
            r"share one leading size K, got hparams\['learning_rate'\]: 2, "
            r"trackers\['ema'\].decay: 3",
        ),
        (  # was: an array of zeros, silently
            {"trackers": {"s": lrjax.Snapshots((5, 100))}},
            r"trackers\['s'\] snapshot steps must be <= num_steps=12 .*, got \[5, 100\]",
        ),
        (
            {"trackers": {"swa": lrjax.SWA(13)}},
            r"trackers\['swa'\].start must be <= num_steps=12 .*, got 13",
        ),
        (  # was: an evaluation loss of nan
            {"evaluation": sweep.Evaluation((EVAL[0][:0], EVAL[1][:0]))},
            "evaluation.data must hold at least one example, got none",
        ),
        (  # was: a TypeError from inside the evaluation, after the first chunk had trained
            {"evaluation": sweep.Evaluation(EVAL, metrics={"m": lambda o, t: o @ t})},
            r"evaluation.metrics\['m'\] does not fit the model: model outputs \(32, 3\)",
        ),
        (  # was: a TypeError after the first chunk
            {"options": sweep.Options(progress=False, callback=3)},
            r"options.callback must be a function callback\(info\), got 3",
        ),
        (  # was: an AttributeError
            {"options": sweep.Options(progress=False, devices=["cpu"])},
            r"options.devices must hold jax devices \(from jax.devices\(\)\), got 'cpu'",
        ),
        (  # was: a KeyError from inside the plateau hook
            {
                "evaluation": sweep.Evaluation(EVAL),
                "plateau": lrjax.reduce_on_plateau(),
                "optimizer": lambda: optax.sgd(0.1),
                "optimizer_kwargs": lambda hp: {},
            },
            "plateau scales the learning rate, but the optimizer gets no learning_rate argument",
        ),
        (  # was: both EMAs silently used the second one's decays
            {"trackers": {"slow": lrjax.EMA([0.5, 0.9]), "fast": lrjax.EMA([0.1, 0.2])}},
            r"at most one EMA tracker may take per-member decays, got trackers\['slow'\].decay "
            r"and trackers\['fast'\].decay",
        ),
    ],
)
def test_bad_input_never_trains_silently(overrides, message):
    with pytest.raises(ValueError, match=message):
        bad(**overrides)


def test_non_finite_float_targets_and_host_batches_are_data_errors():
    x, y = DATA
    regression = sweep.Model(mlp_init, lambda p, x: mlp_apply(p, x)[:, 0])
    targets = x[:, 1].copy()
    targets[9] = np.nan
    mse = lambda out, t: (out - t) ** 2  # noqa: E731
    with pytest.raises(ValueError, match="example 9 of the data: the targets hold nan"):
        bad(model=regression, loss=mse, data=(x, targets))

    def batch(step):  # a batch function whose step-4 batch holds a label out of range
        idx = np.asarray(sweep.batch_indices(0, step, N, BATCH))
        labels = y[idx].copy()
        labels[2] = 3 if step == 4 else labels[2]
        return x[idx], labels

    with pytest.raises(ValueError, match=r"example 2 of the batch of step 4: the targets hold the "
                                         r"label 3, outside \[0, 3\)"):  # fmt: skip
        bad(data=batch, batch_size=None)
    with pytest.raises(ValueError, match="example 2 of the batch of step 4"):
        bad(data=(batch(t) for t in range(STEPS)), batch_size=None)


def test_integer_targets_that_are_not_class_indices_can_skip_the_check():
    # One output per example (C=1) is not a classifier: integer targets are left alone.
    regression = sweep.Model(mlp_init, lambda p, x: mlp_apply(p, x)[:, :1])
    mse = lambda out, t: (out[:, 0] - t.astype(jnp.float32)) ** 2  # noqa: E731
    counts = (np.arange(N) % 7).astype(np.int32)
    assert np.isfinite(bad(model=regression, loss=mse, data=(DATA[0], counts)).loss).all()
    # Three outputs and labels in [0, 3] is ambiguous (an ordinal loss, say): the check refuses,
    # and says how to turn it off.
    ordinal = (DATA[0], (np.arange(N) % 4).astype(np.int32))

    def ordinal_loss(out, t):  # a stand-in: any loss taking labels up to C
        return jnp.sum(out, -1) * t.astype(jnp.float32)

    with pytest.raises(ValueError, match=r"pass options=sweep.Options\(check_data=False\)"):
        bad(loss=ordinal_loss, data=ordinal)
    unchecked = sweep.Options(progress=False, check_data=False)
    kept = bad(loss=ordinal_loss, data=ordinal, options=unchecked)
    assert kept.loss.shape == (2, STEPS)


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


def log_model():
    """MODEL plus 1e-3 log|x_0|: finite for every example except one whose x_0 is exactly 0."""
    return sweep.Model(mlp_init, lambda p, x: mlp_apply(p, x) + 1e-3 * jnp.log(jnp.abs(x[:, :1])))


@pytest.mark.parametrize("kind", ["arrays", "function", "iterator"])
def test_every_member_diverging_on_one_batch_is_a_data_error(kind):
    x, y = (a.copy() for a in DATA)
    position = 3
    row = int(np.asarray(sweep.batch_indices(0, 2, N, BATCH))[position])  # first used at step 2
    x[row, 0] = 0.0

    def batch(step):
        idx = np.asarray(sweep.batch_indices(0, step, N, BATCH))
        return x[idx], y[idx]

    data = {"arrays": (x, y), "function": batch, "iterator": (batch(t) for t in range(STEPS))}
    named = {
        "arrays": f"a non-finite loss comes from example {row} of the data",
        "function": f"a non-finite loss comes from example {position} of that batch",
        "iterator": "an iterator's batches cannot be read again",
    }[kind]
    size = BATCH if kind == "arrays" else None
    # Before, both members came back "diverged" at step 2, as if their learning rates were at
    # fault.
    message = r"every member's training loss or gradient was non-finite at step 2 \(all 2 members"
    with pytest.raises(ValueError, match=message) as error:
        bad(model=log_model(), data=data[kind], batch_size=size)
    assert named in str(error.value)
    if kind != "arrays":
        return
    # One member may diverge by its learning rate: no error after the first step.
    alone = bad(model=log_model(), data=(x, y), hparams={"learning_rate": [0.1]})
    assert alone.diverged_step.tolist() == [2]
    unchecked = sweep.Options(progress=False, check_data=False)
    kept = bad(model=log_model(), data=(x, y), options=unchecked)
    assert kept.diverged_step.tolist() == [2, 2]


def test_a_single_member_non_finite_before_any_update_is_a_data_error():
    x, y = (a.copy() for a in DATA)
    row = int(np.asarray(sweep.batch_indices(0, 0, N, BATCH))[0])
    x[row, 0] = 0.0
    with pytest.raises(ValueError, match=r"at step 0 \(at the first step, before any update"):
        bad(model=log_model(), data=(x, y), hparams={"learning_rate": [0.1]})


# -----------------------------------------------------------------------------------------------
# Fresh but equal closures share the compiled program; different ones never do


def readme_style_run():
    """Everything built afresh, as the README's example writes it inline: the nnx model from its
    factory, the optimizer arguments, the evaluation metrics."""
    return sweep.train(
        sweep.Model.from_nnx(lambda rngs: NnxMLP(rngs)), LOSS, DATA, optimizer=optax.sgd,
        optimizer_kwargs=lambda hp: {
            "learning_rate": lrjax.warmup_cosine_decay(hp["peak"], 2, STEPS), "momentum": 0.9
        },
        hparams={"peak": np.array([0.1, 0.3], np.float32)}, seeds=[0, 1], num_steps=STEPS,
        batch_size=BATCH, options=QUIET,
        evaluation=sweep.Evaluation(EVAL, CHUNK, {"loss": lambda o, t: LOSS(o, t),
                                                  "accuracy": sweep.accuracy}),
    )  # fmt: skip


def test_fresh_but_equal_closures_compile_nothing():
    runs = [readme_style_run() for _ in range(3)]
    assert [r.metadata["num_compiles"] for r in runs[1:]] == [0, 0]  # was: 3 each, every call
    np.testing.assert_array_equal(runs[2].loss, runs[0].loss)
    for name in ("loss", "accuracy"):
        np.testing.assert_array_equal(runs[2].eval_metrics[name], runs[0].eval_metrics[name])
    # Reduce-on-plateau's update is compiled once too (it was compiled again on every call).
    plateau = [sgd_train([0.1, 0.2], EVAL, plateau=lrjax.reduce_on_plateau()) for _ in range(2)]
    assert plateau[1].metadata["num_compiles"] == 0


def one_member(optimizer_kwargs=None, loss=LOSS):
    return sweep.train(
        MODEL, loss, DATA, optimizer=optax.sgd, optimizer_kwargs=optimizer_kwargs,
        hparams={"learning_rate": np.array([0.1], np.float32)}, num_steps=STEPS,
        batch_size=BATCH, options=QUIET,
    )  # fmt: skip


def with_momentum(momentum):
    return lambda hp: {"learning_rate": hp["learning_rate"], "momentum": momentum}


def weighted(weights):
    return lambda out, t: LOSS(out, t) * weights[t]


def test_closures_that_differ_never_share_a_program():
    for momentum in (0.9, 0.5):  # the same code, another closure constant
        result = one_member(with_momentum(momentum))
        expected = reference(optax.sgd, {"learning_rate": 0.1, "momentum": momentum})
        assert_member_matches(result, 0, *expected)
    # The same function, its captured settings changed in place between calls.
    config = {"momentum": 0.9}

    def kwargs(hp):
        return {"learning_rate": hp["learning_rate"], "momentum": config["momentum"]}

    one_member(kwargs)
    config["momentum"] = 0.5
    assert_member_matches(one_member(kwargs), 0, *expected)
    # Arrays in a closure count by their values.
    x, y = DATA
    idx = np.asarray(sweep.batch_indices(0, 0, N, BATCH))
    outputs = MODEL.apply(MODEL.init(jax.random.key(0)), x[idx])
    for w in ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]):
        weights = jnp.asarray(w, jnp.float32)
        result = one_member(loss=weighted(weights))
        first = jnp.mean(LOSS(outputs, y[idx]) * weights[y[idx]])
        np.testing.assert_allclose(result.loss[0, 0], first, rtol=RTOL)


def test_fingerprints_key_on_values_and_fall_back_to_identity():
    from lrjax._fingerprint import fingerprint

    def key(obj):
        return fingerprint(obj)[0]

    def make(value):
        return lambda: value

    assert key(make(0.9)) == key(make(0.9)) != key(make(0.5))
    assert key(make(np.arange(3))) == key(make(np.arange(3))) != key(make(np.arange(3) + 1))
    assert key(make(0.0)) != key(make(-0.0))  # floats exactly
    assert key(make(1)) != key(make(1.0)) != key(make(True))
    assert key(make({"a": [1, (2, 3)]})) == key(make({"a": [1, (2, 3)]}))
    assert key(functools.partial(optax.adamw, weight_decay=0.1)) != key(
        functools.partial(optax.adamw, weight_decay=0.2)
    )

    class Opaque:
        pass

    thing = Opaque()
    found, pinned = fingerprint(make(thing))
    assert found == key(make(thing)) != key(make(Opaque()))
    assert any(p is thing for p in pinned)  # kept alive with the key: its id is never reused


# -----------------------------------------------------------------------------------------------
# Checkpoint identity: a checkpoint resumes only the run that wrote it, in any process


class LinenBNDropoutAct(linen.Module):
    """LinenBNDropout with its activation as an attribute: relu and tanh share every shape."""

    act: Callable = jnp.tanh

    @linen.compact
    def __call__(self, x, train: bool = False):
        x = linen.BatchNorm(use_running_average=not train, momentum=0.8)(linen.Dense(D_HID)(x))
        x = linen.Dropout(0.5, deterministic=not train)(self.act(x))
        return linen.Dense(D_OUT)(x)


def identity_run_kwargs(momentum=0.9, warmup=2):
    """A run as a user writes it: a partial for the optimizer and a lambda with a closure."""
    optimizer = functools.partial(optax.sgd, nesterov=False)
    return dict(
        optimizer=optimizer,
        optimizer_kwargs=lambda hp: {
            "learning_rate": optax.linear_schedule(0.0, hp["lr"], warmup),
            "momentum": momentum,
        },
        hparams={"lr": np.array([0.1, 0.3], np.float32)},
        num_steps=STEPS,
        batch_size=BATCH,
        seeds=[0, 1],
    )


def identity_run(checkpoint_dir, callback=None, model=None, data=DATA, eval_data=EVAL,
                 metrics=None, **changes):  # fmt: skip
    return sweep.train(
        model or LinenBNDropoutAct(), LOSS, data,
        evaluation=sweep.Evaluation(eval_data, every=CHUNK, metrics=metrics),
        options=sweep.Options(progress=False, checkpoint_dir=checkpoint_dir, callback=callback),
        **identity_run_kwargs(**changes),
    )  # fmt: skip


@pytest.fixture(scope="module")
def completed_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("completed")
    return directory, identity_run(directory)


def test_identical_rerun_resumes_a_completed_checkpoint(completed_checkpoint):
    directory, first = completed_checkpoint
    chunks = []
    again = identity_run(directory, callback=chunks.append)  # fresh partial and lambda
    assert chunks == []  # nothing trained again
    np.testing.assert_array_equal(again.loss, first.loss)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(first.params), strict=True):
        np.testing.assert_array_equal(a, b)


NEW_VALUES = (DATA[0] + np.float32(0.5), DATA[1])


@pytest.mark.parametrize(
    "change, what",
    [
        (dict(momentum=0.5), "optimizer_kwargs"),
        (dict(warmup=3), "optimizer_kwargs"),
        (dict(data=NEW_VALUES), "data"),
        (dict(model=LinenBNDropoutAct(act=jax.nn.relu)), "model"),
        (dict(eval_data=(EVAL[0][::-1], EVAL[1][::-1])), "eval_data"),
        (dict(metrics={"loss": LOSS, "accuracy": sweep.accuracy}), "metrics"),
    ],
    ids=["momentum", "warmup", "data", "activation", "eval_data", "metrics"],
)
def test_a_changed_rerun_is_refused_naming_what_changed(completed_checkpoint, change, what):
    directory, _ = completed_checkpoint
    with pytest.raises(ValueError, match=rf"holds a different run: {what} changed"):
        identity_run(directory, **change)


class Opaque:
    """An object with neither an importable name nor an address-free repr."""

    def __call__(self, outputs, targets):
        return LOSS(outputs, targets)


def test_an_undescribable_part_needs_a_checkpoint_id(tmp_path):
    loss = Opaque()
    kwargs = dict(optimizer=optax.sgd, hparams={"learning_rate": np.array([0.1], np.float32)},
                  num_steps=2, batch_size=BATCH)  # fmt: skip
    with pytest.raises(ValueError, match=r"loss \(a Opaque\) has none.*checkpoint_id"):
        sweep.train(MODEL, loss, DATA, options=sweep.Options(checkpoint_dir=tmp_path), **kwargs)
    options = sweep.Options(progress=False, checkpoint_dir=tmp_path, checkpoint_id="opaque-v1")
    sweep.train(MODEL, loss, DATA, options=options, **kwargs)
    renamed = dataclasses.replace(options, checkpoint_id="opaque-v2")
    with pytest.raises(ValueError, match=r"checkpoint_id changed"):
        sweep.train(MODEL, loss, DATA, options=renamed, **kwargs)


def test_checkpoint_hook_digests_functions_and_data(tmp_path):
    x = np.arange(6.0).reshape(3, 2)
    step = lambda state, batch, member: (state, {})  # noqa: E731
    hook = lrjax.hooks.Checkpoint(tmp_path, {"lr": 0.1, "data": x, "step": step})
    same = lrjax.hooks.Checkpoint(tmp_path, {"lr": 0.1, "data": x.copy(), "step": step})
    assert hook.fingerprint == same.fingerprint and hook.fingerprint["lr"] == 0.1
    changed = lrjax.hooks.Checkpoint(tmp_path, {"lr": 0.1, "data": x + 1, "step": step})
    assert changed.fingerprint["data"] != hook.fingerprint["data"]
    with pytest.raises(ValueError, match=r"fingerprint\['loss'\] holds a Opaque"):
        lrjax.hooks.Checkpoint(tmp_path, {"loss": Opaque()})


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import jax, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    import orbax.checkpoint as ocp
    from tests.sweep_test import CHUNK, identity_run

    directory, mode = sys.argv[1], sys.argv[2]
    if mode == "kill":  # SIGKILL while the second chunk's save is being written
        save = ocp.CheckpointManager.save
        def save_then_die(self, step, *args, **kwargs):
            saved = save(self, step, *args, **kwargs)
            if step == 2 * CHUNK:
                os.kill(os.getpid(), signal.SIGKILL)
            return saved
        ocp.CheckpointManager.save = save_then_die
    chunks = []
    result = identity_run(directory, callback=lambda info: chunks.append(info["step"]))
    np.savez(os.path.join(directory, "result.npz"), loss=result.loss,
             *jax.tree.leaves(result.params))
    print("CHUNKS", chunks)
    """
)


def test_kill_during_a_save_then_a_new_process_resumes_bit_exact(tmp_path):
    uninterrupted = identity_run(None)
    killed = run_python(KILL_SCRIPT, {"JAX_PLATFORMS": "cpu"}, args=[str(tmp_path), "kill"])
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    resumed = run_python(KILL_SCRIPT, {"JAX_PLATFORMS": "cpu"}, args=[str(tmp_path), "resume"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # The kill interrupted the save at step 2 * CHUNK: the run resumed from the chunk before it.
    assert f"CHUNKS [{2 * CHUNK}, {STEPS}]" in resumed.stdout, resumed.stdout
    saved = np.load(tmp_path / "result.npz")
    np.testing.assert_array_equal(saved["loss"], uninterrupted.loss)
    leaves = jax.tree.leaves(uninterrupted.params)
    for i, want in enumerate(leaves):
        np.testing.assert_array_equal(saved[f"arr_{i}"], want)


def test_iterator_and_batch_function_identity_on_a_batchnorm_dropout_model(tmp_path):
    def batches(shift=0.0):
        for t in range(STEPS):
            idx = np.arange(t * BATCH, (t + 1) * BATCH) % N
            yield DATA[0][idx] + np.float32(shift), DATA[1][idx]

    def run(data, directory):
        kwargs = dict(optimizer=optax.sgd, hparams={"learning_rate": np.array([0.1], np.float32)},
                      num_steps=STEPS)  # fmt: skip
        options = sweep.Options(progress=False, checkpoint_dir=directory)
        return sweep.train(LinenBNDropoutAct(), LOSS, data, options=options, **kwargs)

    first = run(batches(), tmp_path / "iterator")
    resumed = run(batches(), tmp_path / "iterator")  # a fresh iterator over the same batches
    np.testing.assert_array_equal(resumed.loss, first.loss)
    with pytest.raises(ValueError, match=r"holds a different run: data changed"):
        run(batches(shift=1.0), tmp_path / "iterator")

    run(lambda step: (DATA[0][:BATCH], DATA[1][:BATCH]), tmp_path / "function")
    # The same first batch from other code: only the function tells the runs apart.
    with pytest.raises(ValueError, match=r"holds a different run: data_function changed"):
        shifted = lambda step: (DATA[0][:BATCH] + np.float32(step), DATA[1][:BATCH])  # noqa: E731
        run(shifted, tmp_path / "function")


def test_a_new_num_steps_compiles_nothing_new():
    # The schedules are probed at a fixed number of steps and the chunk is fixed: a longer run
    # reuses every compiled program (before, each eager probe op compiled again: 11 programs).
    def train(num_steps):
        return sweep.train(
            MODEL, LOSS, DATA, optimizer=optax.sgd,
            optimizer_kwargs=lambda hp: {
                "learning_rate": optax.exponential_decay(hp["peak"], 10, 0.9)
            },
            hparams={"peak": np.array([0.1, 0.2], np.float32)}, num_steps=num_steps,
            batch_size=BATCH, options=dataclasses.replace(QUIET, chunk_steps=CHUNK),
        )  # fmt: skip

    train(STEPS)
    before = lrjax.engine.compile_stats()[1]
    train(STEPS + 3)
    assert lrjax.engine.compile_stats()[1] == before
