"""Tests for lrjax.sweep: the vectorized engine against independent single-member optax loops."""

import dataclasses
import functools
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import schedules, sweep
from tests.helpers import (
    ATOL,
    BATCH,
    CHUNK,
    DATA,
    EVAL,
    LOSS,
    MODEL,
    QUIET,
    RTOL,
    STEPS,
    N,
    NnxMLP,
    assert_member_matches,
    bad,
    mlp_apply,
    mlp_init,
    reference,
    run_python,
    sgd_train,
)

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


def test_absurd_learning_rate_is_frozen_and_others_unchanged():
    result = sgd_train([0.1, 1e3, 0.05, 0.2])
    assert result.diverged.tolist() == [False, True, False, False]
    diverged_at = int(result.diverged_step[1])
    assert 0 <= diverged_at < STEPS
    assert np.isnan(result.loss[1, diverged_at + 1 :]).all()
    assert np.isnan(result.learning_rate[1, diverged_at + 1 :]).all()
    assert all(np.isfinite(leaf[1]).all() for leaf in jax.tree.leaves(result.params))
    np.testing.assert_array_equal(result.diverged_step[[0, 2, 3]], -1)

    # Same shapes, a sane member in its place: the others are bit-identical.
    sane = sgd_train([0.1, 0.3, 0.05, 0.2])
    assert not sane.diverged.any()
    for k in (0, 2, 3):
        np.testing.assert_array_equal(result.loss[k], sane.loss[k])
        for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(sane.params), strict=True):
            np.testing.assert_array_equal(a[k], b[k])

    # Without the member at all: the others match separate runs.
    for k, lr in ((0, 0.1), (2, 0.05), (3, 0.2)):
        assert_member_matches(result, k, *reference(optax.sgd, {"learning_rate": lr}))


def test_divergence_factor_flags_a_loss_jump():
    # A small factor flags the growing loss of a too-large but finite learning rate.
    strict = sgd_train([0.05, 30.0, 0.1, 0.2], divergence_factor=1.5)
    assert strict.diverged.tolist() == [False, True, False, False]
    at = strict.diverged_step[1]
    assert np.isfinite(strict.loss[1, : at + 1]).all()
    assert strict.loss[1, at] > 1.5 * strict.loss[1, 0]
    assert (strict.loss[1, :at] <= 1.5 * strict.loss[1, 0]).all()
    # With no ratio test, only non-finite values freeze a member.
    off = sgd_train([0.05, 30.0, 0.1, 0.2], divergence_factor=None)
    np.testing.assert_array_equal(off.loss[1, :at], strict.loss[1, :at])
    assert off.diverged_step[1] != at
    np.testing.assert_array_equal(off.loss[0], strict.loss[0])


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
        ({"divergence_factor": -1.0}, "divergence_factor must be a finite number > 0"),
        ({"divergence_factor": float("nan")}, "divergence_factor must be a finite number > 0"),
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
    from tests.helpers import DATA, EVAL, LOSS, MODEL

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
    from tests.helpers import LinenBNDropout
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


def test_sharded_over_four_devices_equals_one_device():
    proc = run_python(
        SHARDED_SCRIPT,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SHARDED OK" in proc.stdout


DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    process_id, address, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=address, num_processes=2, process_id=process_id)
    from tests.helpers import DATA, EVAL, LOSS, MODEL
    from tests.sweep_test import distributed_sweep_kwargs
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
        (  # was: a TypeError from inside the evaluation, after the first chunk had trained
            {"evaluation": sweep.Evaluation(EVAL, metrics={"m": lambda o, t: o @ t})},
            r"evaluation.metrics\['m'\] does not fit the model: model outputs \(32, 3\)",
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
    ],
)
def test_bad_input_never_trains_silently(overrides, message):
    with pytest.raises(ValueError, match=message):
        bad(**overrides)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: sweep.Evaluation(EVAL, every=0), "evaluation.every must be an integer >= 1"),
        (lambda: sweep.Options(group_size=0), "options.group_size must be an integer >= 1"),
        (  # was: an evaluation loss of nan
            lambda: sweep.Evaluation((EVAL[0][:0], EVAL[1][:0])),
            "evaluation.data must hold at least one example, got none",
        ),
        (  # was: a TypeError after the first chunk
            lambda: sweep.Options(progress=False, callback=3),
            r"options.callback must be a function callback\(info\), got 3",
        ),
        (  # was: an AttributeError
            lambda: sweep.Options(progress=False, devices=["cpu"]),
            r"options.devices must hold jax devices \(from jax.devices\(\)\), got 'cpu'",
        ),
    ],
)
def test_options_and_evaluation_check_themselves_when_built(make, message):
    with pytest.raises(ValueError, match=message):
        make()


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


@pytest.mark.parametrize(
    "make, message",
    [
        (  # was: an error that did not name data
            lambda: bad(data={"x": DATA[0], "y": DATA[1]}),
            r"each batch must be an \(inputs, targets\) pair: data must be .* got a dict with "
            r"keys \['x', 'y'\] \(pass its arrays as a pair",
        ),
        (  # was: clamped silently to the 5 steps
            lambda: bad(evaluation=sweep.Evaluation(EVAL, every=1000), num_steps=5),
            r"evaluation.every must be in \[1, num_steps=5\] .*, got 1000",
        ),
        (  # was: taken as true
            lambda: sweep.Options(vectorize="no"),
            "options.vectorize must be True or False, got 'no'",
        ),
        (lambda: sweep.Options(check_data="no"), "options.check_data must be True or False"),
        (lambda: sweep.Options(progress="yes"), "options.progress must be True or False"),
    ],
)
def test_silent_inputs_of_a_sweep_are_value_errors_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_checkpoint_dir_that_is_a_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(
        ValueError, match=r"options.checkpoint_dir must be a directory .* is a file"
    ):
        sweep.Options(checkpoint_dir=path)  # was: FileExistsError from os.makedirs
    with pytest.raises(ValueError, match=r"checkpoint_dir must be a directory .* is a file"):
        lrjax.hooks.Checkpoint(path)


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
