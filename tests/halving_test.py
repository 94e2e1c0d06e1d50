"""Successive halving on the user's own step: survivors re-packed into smaller groups are the
same members, bit for bit up to the rung and to float32 round-off after it (against a run of
the member alone); stopped members keep their curves and state; the plateau hook, a tracker and
the controller follow the re-packing; a checkpoint resumes across rungs bit-exact."""

import functools
import typing
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import lrjax
from lrjax import engine, halving, hooks, writers
from tests.helpers import BATCH, D_IN, DATA, EVAL, LOSS, LinenBNDropout, run_python

STEPS, CHUNK = 12, 2
RTOL, ATOL = 1e-5, 1e-6


# -----------------------------------------------------------------------------------------------
# The user's own step: a linen TrainState with BatchNorm and dropout, under the controller and an
# EMA tracker.


class BNState(train_state.TrainState):
    batch_stats: Any = None


TX = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(
    learning_rate=0.0, momentum=0.9
)


def init(member):
    model = LinenBNDropout()
    variables = model.init(jax.random.key(member["seed"]), jnp.ones((1, D_IN)))
    return BNState.create(
        apply_fn=model.apply, params=variables["params"], tx=TX,
        batch_stats=variables["batch_stats"],
    )  # fmt: skip


def step(state, batch, member):
    x, y = batch
    key = lrjax.step_key(member["seed"], state.step)

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, x, train=True,
            rngs={"dropout": key}, mutable=["batch_stats"],
        )  # fmt: skip
        return jnp.mean(LOSS(logits, y)), updates["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads).replace(batch_stats=stats), {"loss": loss}


def evaluate(state, member, data):
    s = engine.unwrap(state)
    logits = s.apply_fn({"params": s.params, "batch_stats": s.batch_stats}, data[0])
    return {"loss": jnp.mean(LOSS(logits, data[1]))}


PROGRAM = lrjax.vectorize(
    *lrjax.track(
        *lrjax.control(step, init, {"learning_rate": lambda m: m["lr"]}), {"ema": lrjax.EMA(0.8)}
    )
)
K = 9
MEMBERS = {
    "lr": np.geomspace(0.02, 2.0, K).astype(np.float32),
    "seed": np.arange(K, dtype=np.int32),
}


class Snapshots:
    """Keeps every group's state (host) after each chunk, by member row."""

    def __init__(self):
        self.states = {}

    def on_chunk_end(self, loop):
        for g in loop.groups:
            host = jax.tree.map(engine.to_host, g.state)
            for j, row in enumerate(g.rows):
                self.states[(loop.step, int(row))] = jax.tree.map(lambda a, j=j: a[j], host)


class Kill:
    """Stops the run with an exception at the end of the chunk that reaches ``at``."""

    def __init__(self, at):
        self.at = at

    def on_chunk_end(self, loop):
        if loop.step == self.at:
            raise KeyboardInterrupt(f"killed at {self.at}")


def bn_fit(members=MEMBERS, halve=True, first=(), before_halving=(), after=()):
    plateau = hooks.PlateauHook(lrjax.reduce_on_plateau(factor=0.5, patience=0), "loss")
    hook_list = [*first, hooks.Evaluate(evaluate, EVAL), plateau, *before_halving]
    if halve:
        hook_list.append(lrjax.SuccessiveHalving("loss", eta=3, min_steps=2))
    return lrjax.fit(
        PROGRAM, members, DATA, num_steps=STEPS, chunk_steps=CHUNK, batch_size=BATCH,
        hooks=[*hook_list, *after],
    )  # fmt: skip


@functools.cache
def halved_and_full():
    full_snapshots = Snapshots()
    full = bn_fit(halve=False, after=[full_snapshots])
    return bn_fit(), full, full_snapshots


def leaves(tree):
    return [np.asarray(jax.random.key_data(a) if engine.is_key(a) else a)
            for a in jax.tree.leaves(tree)]  # fmt: skip


def test_survivors_are_bit_identical_up_to_the_rung_and_continue_like_a_lone_run():
    halved, full, full_states = halved_and_full()
    stopped = halved.stopped_step
    # 9 members, eta = 3, rungs at 2 and 6: 6 stop at step 2, 2 at step 6, 1 trains to the end.
    assert sorted(stopped.tolist()) == [-1, 2, 2, 2, 2, 2, 2, 6, 6]
    assert halved.member_steps == 9 * 2 + 3 * 4 + 1 * 6 < K * STEPS == full.member_steps
    for k in range(K):
        end = STEPS if stopped[k] < 0 else stopped[k]
        for name in ("loss", "hparams/learning_rate"):
            # Up to the first rung the same program ran: the same bits.
            np.testing.assert_array_equal(halved.metrics[name][k, :2], full.metrics[name][k, :2])
            assert np.isnan(halved.metrics[name][k, end:]).all()
        if stopped[k] == 2:  # stopped at the first rung: its state then, bit for bit
            for got, want in zip(
                leaves(engine.member_slice(halved.state, k)), leaves(full_states.states[(2, k)]),
                strict=True,
            ):  # fmt: skip
                np.testing.assert_array_equal(got, want)
    # Each survivor of the first rung continues as if it had been trained alone (its plateau
    # controller and EMA included): a K = 1 run of that member.
    for k in np.flatnonzero(stopped != 2):
        alone = bn_fit(engine.member_slice(MEMBERS, k, k + 1), halve=False)
        end = STEPS if stopped[k] < 0 else stopped[k]
        for name in ("loss", "hparams/learning_rate"):
            np.testing.assert_allclose(
                halved.metrics[name][k, :end], alone.metrics[name][0, :end], rtol=RTOL, atol=ATOL
            )
        if stopped[k] < 0:
            for got, want in zip(
                leaves(engine.member_slice(halved.state, k)),
                leaves(engine.member_slice(alone.state, 0)),
                strict=True,
            ):
                np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-4, atol=1e-5)
    # The plateau hook really turned some survivor's scale (so following it matters).
    assert np.nanmin(halved.metrics["hparams/learning_rate"][stopped != 2, 2:] /
                     MEMBERS["lr"][stopped != 2, None]) < 1  # fmt: skip


def test_the_survivors_are_the_best_of_each_rung_by_the_evaluated_metric():
    halved, _, _ = halved_and_full()
    loop = halved.loop
    running = np.arange(K)
    for rung in (2, 6):
        column = loop.evaluations["loss"][running, list(loop.eval_steps).index(rung)]
        kept = running[halving.keep_best(column, 3, "min")]
        assert (halved.stopped_step[np.setdiff1d(running, kept)] == rung).all()
        running = kept
    assert halved.stopped_step[running].tolist() == [-1]


def test_a_checkpoint_resumes_across_rungs_bit_exact(tmp_path):
    halved, _, _ = halved_and_full()

    def checkpoint():
        return hooks.Checkpoint(tmp_path, {"checkpoint_id": "halving"})

    # Killed at the first rung after the save and before halving (the resumed run re-packs),
    # then after the second rung (the resumed run restores the re-packed layout).
    for at in (2, 8):
        with pytest.raises(KeyboardInterrupt):
            bn_fit(first=[checkpoint()], before_halving=[Kill(at)])
    resumed_checkpoint = checkpoint()
    resumed = bn_fit(first=[resumed_checkpoint])
    assert resumed_checkpoint.restored_step == 8
    np.testing.assert_array_equal(resumed.stopped_step, halved.stopped_step)
    assert resumed.member_steps == halved.member_steps
    for name in halved.metrics:
        np.testing.assert_array_equal(resumed.metrics[name], halved.metrics[name])
    for got, want in zip(leaves(resumed.state), leaves(halved.state), strict=True):
        np.testing.assert_array_equal(got, want)


# -----------------------------------------------------------------------------------------------
# Counts, brackets, groups and the debugging path, on a linear step (cheap to compile).


def linear_init(member):
    return {"w": jnp.zeros(D_IN)}


def linear_step(state, batch, member):
    x, y = batch
    loss, g = jax.value_and_grad(lambda w: jnp.mean((x @ w - y.astype(jnp.float32)) ** 2))(
        state["w"]
    )
    return {"w": state["w"] - member["lr"] * g}, {"loss": loss}


LINEAR = lrjax.vectorize(linear_step, linear_init)


def linear_fit(k, num_steps=STEPS, hooks_=(), data=DATA, **kwargs):
    members = {"lr": np.geomspace(1e-3, 0.5, k).astype(np.float32)}
    return lrjax.fit(
        LINEAR, members, data, num_steps=num_steps, chunk_steps=kwargs.pop("chunk_steps", CHUNK),
        batch_size=BATCH, hooks=list(hooks_), **kwargs,
    )  # fmt: skip


def test_k64_eta4_spends_under_a_third_of_the_full_grid():
    def halve():
        sh = lrjax.SuccessiveHalving("loss", eta=4, min_steps=4)
        return linear_fit(64, num_steps=64, chunk_steps=4, hooks_=[sh])

    def chunk_compiles():
        return sum(name == "jit(lrjax_chunk)" for name, _ in engine.compile_log())

    full = linear_fit(64, num_steps=64, chunk_steps=4)
    before = chunk_compiles()
    halved = halve()
    # One compile per new group size, at most one per rung; a second run compiles nothing.
    assert 0 < chunk_compiles() - before <= 2
    again = chunk_compiles()
    np.testing.assert_array_equal(halve().metrics["loss"], halved.metrics["loss"])
    assert chunk_compiles() == again
    # 64 members to step 4, 16 to step 16, 4 to the end.
    assert halved.member_steps == 64 * 4 + 16 * 12 + 4 * 48 == 640
    assert full.member_steps == 64 * 64
    assert halved.member_steps <= full.member_steps / 3
    assert np.bincount(halved.stopped_step + 1).tolist()[:1] == [4]


def test_brackets_groups_and_the_debugging_path_agree():
    bracket = np.repeat([0, 1, 2], 4)

    def run(**kwargs):
        sh = lrjax.SuccessiveHalving("loss", eta=2, rungs=[2, 4], bracket=bracket)
        return linear_fit(12, hooks_=[sh], **kwargs)

    one = run()
    stopped = one.stopped_step
    # Bracket 0 halves at 2 and 4 (4 -> 2 -> 1), bracket 1 only at 4 (4 -> 2), bracket 2 never.
    assert sorted(stopped[:4].tolist()) == [-1, 2, 2, 4]
    assert sorted(stopped[4:8].tolist()) == [-1, -1, 4, 4]
    assert stopped[8:].tolist() == [-1] * 4
    # Ranked within each bracket on the mean training loss of the chunk that ends at the rung.
    loss = one.metrics["loss"]
    for b, rung in ((0, 2), (0, 4), (1, 4)):
        running = np.flatnonzero((bracket == b) & ((stopped < 0) | (stopped >= rung)))
        kept = halving.keep_best(loss[running, rung - CHUNK : rung].mean(axis=1), 2)
        assert (stopped[running[~kept]] == rung).all()
    # Members in groups of 2 (some empty) are ranked together, and the debugging path
    # (no vmap, no scan) takes the same decisions.
    groups = run(group_size=2)
    sequential = run(vectorize=False)
    for other in (groups, sequential):
        np.testing.assert_array_equal(other.stopped_step, stopped)
        np.testing.assert_allclose(other.metrics["loss"], loss, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(other.state["w"], one.state["w"], rtol=RTOL, atol=ATOL)
    assert len(groups.loop.groups) < 6


def test_iterator_data():
    x, y = DATA
    batches = [(x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]) for i in range(8)]
    sh = lrjax.SuccessiveHalving("loss", eta=2, min_steps=4)
    out = linear_fit(4, num_steps=8, hooks_=[sh], data=iter(batches))
    arrays = linear_fit(4, num_steps=8, data=iter(batches))
    np.testing.assert_array_equal(out.metrics["loss"][:, :4], arrays.metrics["loss"][:, :4])
    assert sorted(out.stopped_step.tolist()) == [-1, -1, 4, 4]


class Memory:
    """A clu-style metric writer that keeps what it is given."""

    runs: typing.ClassVar[dict] = {}

    def __init__(self, run):
        self.scalars, self.hparams = {}, {}
        Memory.runs[run] = self

    def write_scalars(self, step, scalars):
        self.scalars[step] = dict(scalars)

    def write_hparams(self, hparams):
        self.hparams.update(hparams)

    def flush(self):
        pass

    def close(self):
        pass


def test_a_writer_opened_after_a_rung_still_writes_every_member():
    Memory.runs.clear()
    sh = lrjax.SuccessiveHalving("loss", eta=2, min_steps=2)  # the first chunk ends at a rung
    out = linear_fit(4, num_steps=4, hooks_=[sh, writers.Writer(Memory)])
    assert sorted(Memory.runs) == [f"member_{k}" for k in range(4)]
    for k in range(4):
        run = Memory.runs[f"member_{k}"]
        assert run.hparams["lr"] == pytest.approx(float(out.members["lr"][k]))
        assert sorted(run.scalars) == [0, 1, 2, 3]


def test_keep_best_against_a_reference():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 9, 16):
        scores = rng.normal(size=n)
        scores[rng.random(n) < 0.2] = np.nan
        for eta, mode in ((2, "min"), (3, "max"), (4, "min")):
            ranked = sorted(
                range(n),
                key=lambda i: (not np.isfinite(scores[i]),
                               scores[i] if mode == "min" else -scores[i], i),
            )  # fmt: skip
            want = np.isin(np.arange(n), ranked[: max(1, -(-n // eta))])
            np.testing.assert_array_equal(halving.keep_best(scores, eta, mode), want)
    assert halving.geometric_rungs(2, 3, 54) == [2, 6, 18]


# -----------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(eta=1, min_steps=2), "eta must be an integer >= 2, got 1"),
        (dict(eta=0.5, min_steps=2), "eta must be an integer >= 2"),
        (dict(min_steps=2, rungs=[2]), "exactly one of min_steps"),
        (dict(), "exactly one of min_steps"),
        (dict(rungs=[4, 2]), "rungs must be a non-empty ascending list"),
        (dict(min_steps=2, mode="best"), "mode must be 'min' or 'max'"),
        (dict(min_steps=2, bracket=[0.5]), r"bracket must be \[K\] ints"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lrjax.SuccessiveHalving("loss", **kwargs)


@pytest.mark.parametrize(
    "k, kwargs, message",
    [
        (4, dict(rungs=[14]), r"rungs must be steps in \[1, num_steps=12\).*got rung 0 = 14"),
        (4, dict(rungs=[2, 12]), r"rungs must be steps in \[1, num_steps=12\).*rung 1 = 12"),
        (4, dict(rungs=[3]), r"multiples of chunk_steps=2\), got rung 0 = 3"),
        (4, dict(min_steps=12), "min_steps must be < num_steps=12"),
        (2, dict(min_steps=2), "each needs at least eta=3 members; bracket 0 has 2"),
        (4, dict(min_steps=2, bracket=[0, 0, 0, 9]), r"bracket must hold one int per member"),
        (4, dict(min_steps=2, bracket=[0, 0]), r"bracket must hold one int per member, \[K=4\]"),
    ],
)
def test_bad_rungs_and_populations_are_value_errors(k, kwargs, message):
    with pytest.raises(ValueError, match=message):
        linear_fit(k, hooks_=[lrjax.SuccessiveHalving("loss", eta=3, **kwargs)])


def test_a_metric_the_loop_never_records_fails_after_the_first_chunk():
    seen = []
    spy = hooks.Callback(lambda info: seen.append(info["step"]))
    with pytest.raises(ValueError, match=r"metric 'accuracy' is neither an evaluated metric"):
        linear_fit(4, hooks_=[lrjax.SuccessiveHalving("accuracy", min_steps=8, eta=2), spy])
    assert seen == []  # before the first rung, at the first chunk's end


def test_hooks_that_cannot_follow_the_repacking_are_refused(tmp_path):
    pbt = lrjax.PBT({"learning_rate": lrjax.Range(1e-3, 1.0)}, metric="loss", ready=2)
    sh = lrjax.SuccessiveHalving("loss", eta=2, min_steps=2)
    with pytest.raises(ValueError, match=r"hooks\[1\] \(PBT\) keeps per-member state but has no"):
        linear_fit(4, hooks_=[sh, pbt])
    late = hooks.Checkpoint(tmp_path, {"checkpoint_id": "late"})
    with pytest.raises(ValueError, match=r"hooks\[1\] \(a Checkpoint\) comes after the halving"):
        linear_fit(4, hooks_=[sh, late])


# -----------------------------------------------------------------------------------------------
# Several devices: the re-packed group is padded to a multiple of the devices


MULTI_DEVICE = """
import jax, numpy as np
import lrjax
from tests import halving_test as t
assert jax.device_count() == 4
def run(devices):
    sh = lrjax.SuccessiveHalving("loss", eta=3, min_steps=2)
    program = lrjax.vectorize(t.linear_step, t.linear_init, devices=devices)
    members = {"lr": np.geomspace(1e-3, 0.5, 9).astype(np.float32)}
    return lrjax.fit(program, members, t.DATA, num_steps=t.STEPS, chunk_steps=t.CHUNK,
                     batch_size=t.BATCH, hooks=[sh])
four, one = run(jax.devices()), run(jax.devices()[:1])
assert four.loop.program.num_devices == 4 and four.loop.groups[0].size == 4, four.loop.groups
np.testing.assert_array_equal(four.stopped_step, one.stopped_step)
np.testing.assert_allclose(four.metrics["loss"], one.metrics["loss"], rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(four.state["w"], one.state["w"], rtol=1e-5, atol=1e-6)
print("ok", four.stopped_step.tolist())
"""


def test_halving_on_four_devices_pads_the_survivors_and_agrees_with_one():
    out = run_python(
        MULTI_DEVICE,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok")


def keyed_init(member):
    return {"w": jnp.zeros(D_IN), "key": jax.random.key(0)}


def keyed_step(state, batch, member):
    new, metrics = linear_step({"w": state["w"]}, batch, member)
    return {"w": new["w"], "key": state["key"]}, metrics


KEYED = lrjax.vectorize(keyed_step, keyed_init)


def test_stopped_members_with_key_state_resume_from_a_checkpoint(tmp_path):
    members = {"lr": np.geomspace(1e-3, 0.5, 4).astype(np.float32)}

    def run(extra=()):
        sh = lrjax.SuccessiveHalving("loss", eta=2, rungs=[2])
        return lrjax.fit(
            KEYED, members, DATA, num_steps=6, chunk_steps=2, batch_size=BATCH,
            hooks=[*extra, sh],
        )  # fmt: skip

    whole = run()
    with pytest.raises(KeyboardInterrupt):
        run([hooks.Checkpoint(tmp_path, {"checkpoint_id": "keyed"}), Kill(4)])
    resumed = run([hooks.Checkpoint(tmp_path, {"checkpoint_id": "keyed"})])
    assert engine.is_key(resumed.state["key"])
    np.testing.assert_array_equal(resumed.stopped_step, whole.stopped_step)
    for got, want in zip(leaves(resumed.state), leaves(whole.state), strict=True):
        np.testing.assert_array_equal(got, want)
