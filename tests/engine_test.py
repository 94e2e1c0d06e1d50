"""Tests for lrjax.engine (with the layers and the loop): a user's own step, vectorized.

The model has BatchNorm and dropout and is trained by the user's own linen ``TrainState``
step, fed by an iterator: the engine must equal K separate runs of that step.
"""

import gc
import os
import subprocess
import sys
import textwrap
import weakref
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import lrjax
from lrjax import engine, hooks

N, D, B, STEPS, CHUNK = 64, 4, 8, 6, 4  # two chunks, the second partial
RTOL, ATOL = 1e-5, 1e-6


class Net(nn.Module):
    """Dense, BatchNorm, ReLU, dropout, Dense: state and randomness in six lines."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.8)(nn.Dense(8)(x)))
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(3)(x)


NET = Net()
X0 = np.zeros((B, D), np.float32)


class TrainState(train_state.TrainState):
    batch_stats: Any


def make_init(net, example):
    def init(member):
        variables = net.init(jax.random.key(member["seed"]), example, train=False)
        tx = optax.inject_hyperparams(optax.sgd)(learning_rate=member["lr"], momentum=0.9)
        return TrainState.create(
            apply_fn=net.apply, params=variables["params"], tx=tx,
            batch_stats=variables["batch_stats"],
        )  # fmt: skip

    return init


init = make_init(NET, X0)


def step(state, batch, member):
    """The user's own step for ONE model, as in the Flax examples."""
    x, y = batch
    key = lrjax.step_key(member["seed"], state.step)

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, x, train=True,
            rngs={"dropout": key}, mutable=["batch_stats"],
        )  # fmt: skip
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, updates["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads).replace(batch_stats=stats)
    return state, {"loss": loss, "lr": state.opt_state.hyperparams["learning_rate"]}


def make_data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)


DATA = make_data()


def batches(seed=0):
    """An endless iterator of batches, the same sequence for the same seed."""
    rng = np.random.default_rng(seed)
    x, y = DATA
    while True:
        idx = rng.integers(0, N, B)
        yield x[idx], y[idx]


def members_of(lrs, seeds):
    return {"lr": np.asarray(lrs, np.float32), "seed": np.asarray(seeds, np.int32)}


PROGRAM = lrjax.vectorize(step, init)
GUARDED = lrjax.vectorize(*lrjax.freeze_on_divergence(step, init))


def separate_run(member, steps=STEPS):
    """One member alone: the user's jitted step in a Python loop, no lrjax engine."""
    jitted = jax.jit(step)
    state = jax.jit(init)(member)
    losses = []
    source = batches()
    for _ in range(steps):
        state, metrics = jitted(state, next(source), member)
        losses.append(float(metrics["loss"]))
    return np.array(losses), state


def assert_trees_close(a, b, rtol=RTOL, atol=ATOL):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


MEMBERS = members_of([0.05, 0.2, 0.1], [0, 1, 2])


@pytest.fixture(scope="module")
def fitted():
    return lrjax.fit(PROGRAM, MEMBERS, batches(), num_steps=STEPS, chunk_steps=CHUNK)


def test_members_equal_separate_runs_of_the_users_step(fitted):
    assert fitted.metrics["loss"].shape == (3, STEPS)
    for k in range(3):
        losses, state = separate_run(engine.member_slice(MEMBERS, k))
        np.testing.assert_allclose(fitted.metrics["loss"][k], losses, rtol=RTOL, atol=ATOL)
        assert_trees_close(engine.member_slice(fitted.state.params, k), state.params)
        assert_trees_close(engine.member_slice(fitted.state.batch_stats, k), state.batch_stats)
    # the learning rate each member's update used is its own, read from its optimizer state
    np.testing.assert_allclose(fitted.metrics["lr"], np.repeat(MEMBERS["lr"][:, None], STEPS, 1))


def test_debug_path_agrees(fitted):
    slow = lrjax.fit(
        PROGRAM, MEMBERS, batches(), num_steps=STEPS, chunk_steps=CHUNK, vectorize=False
    )
    np.testing.assert_allclose(slow.metrics["loss"], fitted.metrics["loss"], rtol=RTOL, atol=ATOL)
    assert_trees_close(slow.state.params, fitted.state.params)


def test_rng_stream_of_a_member_does_not_depend_on_k_or_groups(fitted):
    # Member 1 of the 3-member run, alone and inside groups of 2 in a 4-member run.
    alone = lrjax.fit(PROGRAM, members_of([0.2], [1]), batches(), num_steps=STEPS)
    wide = lrjax.fit(
        PROGRAM, members_of([0.3, 0.2, 0.05, 0.2], [5, 1, 0, 7]), batches(),
        num_steps=STEPS, chunk_steps=CHUNK, group_size=2,
    )  # fmt: skip
    np.testing.assert_allclose(alone.metrics["loss"][0], fitted.metrics["loss"][1], rtol=RTOL)
    np.testing.assert_allclose(wide.metrics["loss"][1], fitted.metrics["loss"][1], rtol=RTOL)
    # Same LR, another seed (other dropout masks and init): a difference far above the tolerance.
    assert np.abs(wide.metrics["loss"][3] - wide.metrics["loss"][1]).max() > 1e-3


def test_chunks_compile_once_and_a_new_sweep_of_the_same_shape_not_at_all(fitted):
    del fitted  # compiled the program already
    before = engine.compile_stats()[1]
    lrjax.fit(PROGRAM, members_of([1.0, 0.5, 0.3], [4, 5, 6]), batches(3), num_steps=STEPS,
              chunk_steps=CHUNK)  # fmt: skip
    assert engine.compile_stats()[1] == before
    # Another num_steps, the same chunk: the short last chunk reuses the program.
    lrjax.fit(PROGRAM, MEMBERS, batches(), num_steps=STEPS + 1, chunk_steps=CHUNK)
    assert engine.compile_stats()[1] == before


# -----------------------------------------------------------------------------------------------
# Executions: a conv net with BatchNorm and dropout, every way the engine can run it


class ConvNet(nn.Module):
    """nn.Conv, BatchNorm, ReLU, dropout, max pooling, Dense (``nn.avg_pool`` divides by an
    int, which the tests' strict dtype promotion refuses)."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(4, (3, 3))(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.8)(x))
        x = nn.Dropout(0.5, deterministic=not train)(x)
        x = nn.max_pool(x, (2, 2), (2, 2))
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


conv_init = make_init(ConvNet(), np.zeros((B, 6, 6, 1), np.float32))
CONV_GUARDED = lrjax.freeze_on_divergence(step, conv_init)
CONV_MEMBERS = members_of([0.05, 0.2, 0.1], [0, 1, 2])


def conv_chunk(steps=4, per_member=False, seed=0, k=3):
    """``steps`` batches of 6x6 images, ``[T, B, ...]`` (``[T, K, B, ...]`` per member)."""
    rng = np.random.default_rng(seed)
    lead = (steps, k, B) if per_member else (steps, B)
    x = rng.normal(size=(*lead, 6, 6, 1)).astype(np.float32)
    return x, (x[..., 0, 0, 0] > 0).astype(np.int32)


@pytest.fixture(scope="module")
def conv_reference():
    """The debugging path (no vmap, no loop in a program) on both batch layouts."""
    program = lrjax.vectorize(*CONV_GUARDED)
    out = {"initial": program.init_sequential(CONV_MEMBERS)}
    for per_member in (False, True):
        state = jax.tree.map(jnp.array, out["initial"])
        out[per_member] = program.run_sequential(
            state, CONV_MEMBERS, conv_chunk(per_member=per_member), num_valid=3,
            per_member_batches=per_member,
        )  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("execution", "per_member"),
    [("scan", False), ("steps", True), ("members", False), ("members", True)],
)
def test_every_execution_equals_the_debugging_path_on_a_conv_net(
    conv_reference, execution, per_member
):
    program = lrjax.vectorize(*CONV_GUARDED, execution=execution)
    state = program.put(jax.tree.map(jnp.array, conv_reference["initial"]))
    state, metrics = program.run(
        state, CONV_MEMBERS, conv_chunk(per_member=per_member), num_valid=3,
        per_member_batches=per_member,
    )  # fmt: skip
    want_state, want_metrics = conv_reference[per_member]
    np.testing.assert_allclose(metrics["loss"], want_metrics["loss"], rtol=RTOL, atol=ATOL)
    assert np.isnan(metrics["loss"][:, 3]).all()  # the skipped fourth step
    assert_trees_close(state, want_state)
    if execution == "members" and not per_member:  # XLA's memory estimate of what it runs
        xs = engine.abstract(conv_chunk())
        assert program.compiled_bytes(engine.abstract(state), CONV_MEMBERS, xs) > 0


def test_members_chunks_start_from_the_states_the_last_chunk_kept(conv_reference, monkeypatch):
    program = lrjax.vectorize(*CONV_GUARDED, execution="members")
    splits = []
    split = engine._split_program
    monkeypatch.setattr(engine, "_split_program", lambda *args: splits.append(1) or split(*args))
    xs, later = conv_chunk(), conv_chunk(seed=1)
    # Two groups, as fit advances them: each chunk takes the states its group's last one kept.
    groups = [program.put(jax.tree.map(jnp.array, conv_reference["initial"])) for _ in range(2)]
    first = [program.run(state, CONV_MEMBERS, xs, num_valid=3)[0] for state in groups]
    assert len(splits) == 4  # the settings and the state of each group
    second = [program.run(state, CONV_MEMBERS, later, num_valid=2) for state in first]
    assert len(splits) == 6  # the settings only
    again, again_metrics = program.run(first[0], CONV_MEMBERS, later, num_valid=2)
    assert len(splits) == 8  # taken once: the same state again is split again
    np.testing.assert_array_equal(second[0][1]["loss"], again_metrics["loss"])
    assert_trees_close(second[0][0], again, rtol=0, atol=0)
    want_state, want = program.run_sequential(
        jax.tree.map(np.array, conv_reference[False][0]), CONV_MEMBERS, later, num_valid=2
    )
    for state, metrics in second:
        np.testing.assert_allclose(metrics["loss"], want["loss"], rtol=RTOL, atol=ATOL)
        assert_trees_close(state, want_state)
    # A lone member's state is the stacked state itself: nothing is kept, nothing outlives it.
    lone = members_of([0.1], [0])
    out, _ = program.run(program.init(lone), lone, xs, num_valid=2)
    alive = weakref.ref(jax.tree.leaves(out)[0])
    del out
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("execution", ["scan", "steps"])
@pytest.mark.parametrize("per_member", [False, True])
def test_one_member_equals_the_debugging_path(execution, per_member):
    # K = 1 runs the member's own step on its slice (no batch of one): same results.
    program = lrjax.vectorize(*CONV_GUARDED, execution=execution)
    one = members_of([0.2], [1])
    initial = program.init_sequential(one)
    xs = conv_chunk(per_member=per_member, k=1)
    kwargs = dict(num_valid=3, per_member_batches=per_member)
    want_state, want = program.run_sequential(jax.tree.map(np.array, initial), one, xs, **kwargs)
    state, got = program.run(program.put(initial), one, xs, **kwargs)
    assert got["loss"].shape == (1, 4) and np.isnan(got["loss"][0, 3])
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=RTOL, atol=ATOL)
    assert_trees_close(state, want_state)


def test_members_run_one_at_a_time_are_never_padded():
    # Groups of 2 over 3 members: the last group holds its one member alone (padding would
    # cost a whole member's steps), and the run equals one group of 3.
    images = [tuple(a[0] for a in conv_chunk(steps=1, seed=s)) for s in range(3)]
    runs = {}
    for group_size in (2, 3):
        program = lrjax.vectorize(*CONV_GUARDED, execution="members")
        runs[group_size] = lrjax.fit(
            program, CONV_MEMBERS, iter(images), num_steps=3, group_size=group_size
        )
    assert [(g.size, g.real) for g in runs[2].loop.groups] == [(2, 2), (1, 1)]
    assert runs[2].member_steps == 9
    np.testing.assert_allclose(runs[2].metrics["loss"], runs[3].metrics["loss"], RTOL, ATOL)
    assert_trees_close(runs[2].state, runs[3].state)
    # The vectorized scan keeps one program for every group: its last group is padded.
    scanned = lrjax.vectorize(*CONV_GUARDED, execution="scan")
    padded = lrjax.fit(scanned, CONV_MEMBERS, iter(images), num_steps=3, group_size=2)
    assert [(g.size, g.real) for g in padded.loop.groups] == [(2, 2), (2, 1)]


def test_auto_runs_a_convolution_member_by_member_on_a_cpu():
    x, y = conv_chunk(steps=1)
    conv = lrjax.vectorize(*CONV_GUARDED)
    assert conv.execution_for(CONV_MEMBERS, (x[0], y[0])) == "members"
    assert PROGRAM.execution_for(MEMBERS, next(batches())) == "scan"
    assert lrjax.vectorize(step, conv_init, execution="steps").execution_for(None, None) == "steps"
    assert engine.uses_convolution(
        jax.make_jaxpr(
            jax.grad(lambda w: jnp.sum(jax.lax.conv(jnp.ones((1, 1, 4, 4)), w, (1, 1), "SAME")))
        )(jnp.ones((1, 1, 3, 3)))
    )
    assert not engine.uses_convolution(jax.make_jaxpr(jnp.sin)(1.0))


def test_an_unknown_execution_is_named():
    with pytest.raises(ValueError, match=r"execution must be one of \('auto', 'scan', 'steps', "):
        lrjax.vectorize(step, init, execution="unroll")


def test_a_slow_compile_says_so_once(monkeypatch, caplog):
    monkeypatch.setattr(engine, "COMPILE_NOTICE_SECONDS", 0.0)
    program = lrjax.vectorize(lambda s, b, m: (s + m, {"loss": s}), lambda m: m)
    members = np.arange(2, dtype=np.float32)
    state = program.init(members)
    with caplog.at_level("WARNING", logger="lrjax"):
        for _ in range(3):
            state, _ = program.run(state, members, np.zeros((2, 1), np.float32))
    said = [r.getMessage() for r in caplog.records if r.name == "lrjax"]
    assert len(said) == 1 and said[0].startswith("lrjax: compiling the scan program of 2 members")


# -----------------------------------------------------------------------------------------------
# Bad input: a named ValueError at the first chunk, never a traceback from deep inside JAX


def test_step_returning_the_wrong_structure_is_named():
    def bad_step(state, batch, member):
        return state.params, {"loss": jnp.float32(0)}

    program = lrjax.vectorize(bad_step, init)
    with pytest.raises(ValueError, match="step must return a state with the structure"):
        lrjax.fit(program, MEMBERS, batches(), num_steps=2)

    def no_metrics(state, batch, member):
        return state

    with pytest.raises(ValueError, match=r"step must return \(state, metrics\)"):
        lrjax.fit(lrjax.vectorize(no_metrics, init), MEMBERS, batches(), num_steps=2)


def test_a_step_that_changes_a_shape_is_named():
    def grow(state, batch, member):
        return {"w": jnp.concatenate([state["w"], state["w"]])}, {}

    program = lrjax.vectorize(grow, lambda m: {"w": jnp.zeros(2)})
    with pytest.raises(
        ValueError, match=r"step changed state\['w'\] from \(2,\) float32 to \(4,\)"
    ):
        lrjax.fit(program, MEMBERS, batches(), num_steps=2)


def test_state_without_the_member_axis_is_named():
    state = jax.jit(init)(engine.member_slice(MEMBERS, 0))  # one member's state, not stacked
    xs = jax.tree.map(lambda a: np.stack([a] * 2), next(batches()))
    with pytest.raises(ValueError, match=r"needs the leading member axis of size K=3"):
        PROGRAM.run(state, MEMBERS, xs)


def test_an_iterator_that_runs_dry_is_named():
    short = iter([next(batches())] * 5)
    with pytest.raises(
        ValueError, match="the data iterator ran dry after 5 batches; the run needs"
    ):
        lrjax.fit(PROGRAM, MEMBERS, short, num_steps=STEPS, chunk_steps=CHUNK)


def test_batches_of_the_wrong_shape_are_named():
    def uneven():
        source = batches()
        yield next(source)
        x, y = next(source)
        yield x[:5], y[:5]

    with pytest.raises(ValueError, match=r"the batch of step 1 has shapes .*\(5, 4\)"):
        lrjax.fit(PROGRAM, MEMBERS, uneven(), num_steps=2)
    wide = ((x[:, None], y) for x, y in batches())
    with pytest.raises(ValueError, match=r"step\(state, batch, member\) failed for one member"):
        lrjax.fit(PROGRAM, MEMBERS, wide, num_steps=2)


def test_a_train_state_tx_closing_over_a_traced_schedule_is_explained():
    def init_with_schedule(member):
        state = init(member)
        tx = optax.sgd(optax.linear_schedule(member["lr"], 0.0, 10))  # closes over a tracer
        return state.replace(tx=tx, opt_state=tx.init(state.params))

    program = lrjax.vectorize(step, init_with_schedule)
    with pytest.raises(ValueError, match="closes over a member's traced hyperparameter"):
        lrjax.fit(program, MEMBERS, batches(), num_steps=2)


def test_members_that_are_not_stacked_are_named():
    with pytest.raises(ValueError, match=r"members\['lr'\] is a scalar"):
        PROGRAM.init({"lr": np.float32(0.1), "seed": np.array([0, 1])})
    with pytest.raises(ValueError, match="share one leading size K"):
        PROGRAM.init({"lr": np.zeros(2, np.float32), "seed": np.array([0, 1, 2])})


def test_unused_member_settings_are_found():
    def init_ignoring_lr(member):
        del member
        return {"w": jnp.zeros(2)}

    one = {"lr": jnp.float32(0.1), "wd": jnp.float32(0.0), "seed": jnp.int32(0)}
    assert engine.unused_members(init_ignoring_lr, one) == ["members['lr']", "members['wd']"]
    assert engine.unused_members(init, engine.member_slice(MEMBERS, 0)) == []


# -----------------------------------------------------------------------------------------------
# Resume after kill -9: bit-exact, BatchNorm + dropout, an iterator as data

RESUME_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import jax, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    import lrjax
    from lrjax import hooks
    from tests.engine_test import GUARDED, batches, members_of

    directory, kill_at, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def maybe_die(info):
        if info["step"] >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handlers

    # Synchronous saves: the save of a chunk has landed when the callback after it kills.
    policy = hooks.CheckpointPolicy(asynchronous=False)
    run_hooks = [hooks.Checkpoint(directory, {"run": "resume test"}, policy=policy),
                 hooks.Callback(maybe_die)]
    result = lrjax.fit(GUARDED, members_of([0.05, 1e3, 0.1], [0, 1, 2]), batches(),
                       num_steps=10, chunk_steps=3, group_size=2, hooks=run_hooks)
    np.savez(out, loss=result.metrics["loss"],
             **{str(i): np.asarray(a) for i, a in enumerate(jax.tree.leaves(result.state))})
    print("RESUMED FROM", run_hooks[0].restored_step)
    """
)


def run_python(script, *args, timeout=300, env=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = dict(os.environ, PYTHONPATH=path, **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env, cwd=root, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_resume_after_kill_is_bit_exact(tmp_path):
    killed = run_python(RESUME_SCRIPT, tmp_path / "ckpt", 6, tmp_path / "never.npz")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    resumed = run_python(RESUME_SCRIPT, tmp_path / "ckpt", 10**6, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "RESUMED FROM 6" in resumed.stdout  # the last chunk saved before the kill
    whole = lrjax.fit(
        GUARDED, members_of([0.05, 1e3, 0.1], [0, 1, 2]), batches(), num_steps=10,
        chunk_steps=3, group_size=2,
    )  # fmt: skip
    with np.load(tmp_path / "resumed.npz") as got:
        np.testing.assert_array_equal(got["loss"], whole.metrics["loss"])
        for i, leaf in enumerate(jax.tree.leaves(whole.state)):
            np.testing.assert_array_equal(got[str(i)], np.asarray(leaf))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    run_hooks = [hooks.Checkpoint(tmp_path, {"lr": [0.1]})]
    lrjax.fit(PROGRAM, MEMBERS, batches(), num_steps=2, hooks=run_hooks)
    with pytest.raises(ValueError, match=r"holds a different run: lr changed"):
        lrjax.fit(PROGRAM, MEMBERS, batches(), num_steps=2,
                  hooks=[hooks.Checkpoint(tmp_path, {"lr": [0.2]})])  # fmt: skip


TWO_DEVICES_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    import lrjax
    from tests.engine_test import (
        CONV_GUARDED, PROGRAM, assert_trees_close, batches, conv_chunk, members_of,
    )

    assert jax.device_count() == 2
    four = members_of([0.05, 0.2, 0.1, 0.3], [0, 1, 2, 3])
    # Members run on the device that holds them, the state comes back sharded like it went in.
    program = lrjax.vectorize(*CONV_GUARDED, execution="members")
    initial = program.init_sequential(four)
    xs = conv_chunk(per_member=True, k=4)
    kwargs = dict(num_valid=3, per_member_batches=True)
    want_state, want = program.run_sequential(jax.tree.map(np.array, initial), four, xs, **kwargs)
    state, got = program.run(program.put(initial), four, xs, **kwargs)
    assert jax.tree.leaves(state)[0].sharding.num_devices == 2
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5, atol=1e-6)
    assert_trees_close(state, want_state)
    # fit shards a vectorized group only when each device gets several members (padded to a
    # multiple of the devices); members run one at a time whenever every group splits evenly
    # over the devices (each device runs its own), and then never padded.
    def placed(program, members, data, group_size=None):
        loop = lrjax.fit(program, members, data, num_steps=2, group_size=group_size).loop
        return loop.program.num_devices, [g.size for g in loop.groups]

    assert placed(PROGRAM, members_of([0.1, 0.2], [0, 1]), batches()) == (1, [2])
    assert placed(PROGRAM, members_of([0.1, 0.2, 0.3], [0, 1, 2]), batches()) == (2, [4])
    def images():
        return iter([tuple(a[0] for a in conv_chunk(steps=1, seed=s)) for s in range(2)])

    conv = lrjax.vectorize(*CONV_GUARDED)
    assert placed(conv, four, images()) == (2, [4])
    assert placed(conv, four, images(), group_size=2) == (2, [2, 2])
    three = members_of([0.05, 0.2, 0.1], [0, 1, 2])
    assert placed(conv, three, images()) == (1, [3])
    assert placed(conv, four, images(), group_size=3) == (1, [3, 1])
    sharded = lrjax.fit(conv, four, images(), num_steps=2)
    alone = lrjax.fit(conv, four, images(), num_steps=2, group_size=3)
    np.testing.assert_allclose(sharded.metrics["loss"], alone.metrics["loss"], 1e-5, 1e-6)
    assert_trees_close(sharded.state, alone.state)
    # An init with LAPACK kernels (the QRs of orthogonal initializers, as in nn.LSTMCell):
    # vmapped over members split across two CPU devices, XLA deadlocked; init runs on one.
    # Vmapped on one device, its second call hung: on a CPU the members' inits are a lax.map.
    def orthogonal(member):
        keys = jax.random.split(jax.random.key(member["seed"]), 8)
        return [jax.nn.initializers.orthogonal()(key, (64, 64)) for key in keys]

    program = lrjax.vectorize(lambda s, b, m: (s, {"loss": 0.0}), orthogonal)
    for offset in range(3):
        state = program.init({"seed": np.arange(8, dtype=np.int32) + offset})
        assert state[0].shape == (8, 64, 64) and state[0].sharding.num_devices == 2
    alone = jax.jit(orthogonal)({"seed": np.int32(2 + 5)})
    np.testing.assert_array_equal(np.asarray(state[0][5]), np.asarray(alone[0]))
    print("OK")
    """
)


def test_two_devices_members_and_placement():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = run_python(TWO_DEVICES_SCRIPT, env=env)
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr
