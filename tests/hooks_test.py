"""Tests for lrjax.hooks: reduce-on-plateau, the progress bar, and checkpoints (resume, identity,
a kill during a save)."""

import dataclasses
import functools
import json
import signal
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import schedules, sweep
from tests.helpers import (
    BATCH,
    CHUNK,
    D_IN,
    DATA,
    EVAL,
    LOSS,
    MODEL,
    QUIET,
    RTOL,
    STEPS,
    LinenBNDropoutAct,
    N,
    Opaque,
    identity_run,
    run_python,
    sgd_train,
)


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


def test_progress_bar_shows_members_alive_and_best_loss(capsys):
    sgd_train([0.1, 1e3, 0.05, 0.2], options=sweep.Options(progress=True))
    err = capsys.readouterr().err
    assert "step/s" in err or "s/step" in err
    assert "alive=3/4" in err
    assert "best_loss=" in err


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
    with pytest.raises(ValueError, match=r"but loss \(a Opaque\) has none .*'checkpoint_id'"):
        lrjax.hooks.Checkpoint(tmp_path, {"loss": Opaque()})


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    import jax, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    from orbax.checkpoint._src.path import atomicity
    from tests.helpers import CHUNK, identity_run

    directory, mode = sys.argv[1], sys.argv[2]
    if mode == "kill":
        # SIGKILL inside orbax's background thread, while the second chunk's save is written
        # but not yet committed (its temporary directory not yet renamed), once the main
        # thread has gone on past the save (a synchronous save would hold it there).
        commit = atomicity.on_commit_callback
        async def commit_or_die(tmp_dir, **kwargs):
            if os.path.basename(str(tmp_dir.get_final())) == str(2 * CHUNK):
                assert threading.current_thread() is not threading.main_thread()
                if went_on.wait(timeout=20):
                    print("THE MAIN THREAD WENT ON DURING THE SAVE", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return await commit(tmp_dir, **kwargs)
        atomicity.on_commit_callback = commit_or_die
    chunks, went_on = [], threading.Event()
    def callback(info):
        chunks.append(info["step"])
        if info["step"] == 2 * CHUNK:
            went_on.set()
    result = identity_run(directory, callback=callback)
    np.savez(os.path.join(directory, "result.npz"), loss=result.loss,
             *jax.tree.leaves(result.params))
    print("CHUNKS", chunks)
    """
)


def test_kill_during_an_asynchronous_save_then_a_new_process_resumes_bit_exact(tmp_path):
    uninterrupted = identity_run(None)
    killed = run_python(KILL_SCRIPT, {"JAX_PLATFORMS": "cpu"}, args=[str(tmp_path), "kill"])
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert "THE MAIN THREAD WENT ON DURING THE SAVE" in killed.stdout
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


# -----------------------------------------------------------------------------------------------
# Hooks share data through the loop; their checkpointed state is keyed by name


TX = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.0)


def linear_init(member):
    w = jnp.zeros(D_IN, jnp.float32)
    return {"w": w, "opt_state": TX.init(w)}


def linear_step(state, batch, member):
    x, y = batch
    target = y.astype(jnp.float32)
    loss, g = jax.value_and_grad(lambda w: jnp.mean((x @ w - target) ** 2))(state["w"])
    updates, opt_state = TX.update(g, state["opt_state"])
    return {"w": state["w"] + updates, "opt_state": opt_state}, {"loss": loss}


def linear_eval(state, member, data):
    x, y = data
    return {"loss": jnp.mean((x @ lrjax.unwrap(state)["w"] - y.astype(jnp.float32)) ** 2)}


LINEAR = lrjax.vectorize(
    *lrjax.control(linear_step, linear_init, {"learning_rate": lambda m: m["lr"]})
)
LINEAR_MEMBERS = {"lr": np.array([1e-6, 0.05, 0.2], np.float32)}


class Tally:
    """A stateful hook that reads the loop's records: the best evaluated loss seen per
    member, and how many chunks it saw (its state must come back to it, not to another)."""

    def __init__(self, name="tally"):
        self.name = name
        self.best, self.chunks = None, 0

    def after_chunk(self, loop, group):
        latest = loop.evaluation(group)["loss"]
        self.best = latest if self.best is None else np.minimum(self.best, latest)
        self.chunks += 1

    def state_dict(self):
        if self.best is None:
            return {}
        return {"best": np.asarray(self.best), "chunks": np.asarray(self.chunks)}

    def load_state_dict(self, state):
        if "best" in state:
            self.best, self.chunks = np.asarray(state["best"]), int(state["chunks"])


def linear_fit(hooks, **kwargs):
    return lrjax.fit(
        LINEAR, LINEAR_MEMBERS, DATA, num_steps=STEPS, chunk_steps=2, batch_size=BATCH,
        hooks=hooks, **kwargs,
    )  # fmt: skip


def test_hooks_read_the_loops_records_and_a_reordered_resume_is_the_same(tmp_path):
    def hooks(checkpoint, order, callback=None):
        evaluate = lrjax.hooks.Evaluate(linear_eval, EVAL)
        plateau = lrjax.hooks.PlateauHook(lrjax.reduce_on_plateau(factor=0.5, patience=0), "loss")
        tally = Tally()
        rest = [evaluate, tally, plateau] if order == "tally first" else [evaluate, plateau, tally]
        extra = [] if callback is None else [lrjax.hooks.Callback(callback)]
        first = [] if checkpoint is None else [lrjax.hooks.Checkpoint(checkpoint, {"run": 1})]
        return [*first, *rest, *extra], tally, plateau

    whole_hooks, whole_tally, whole_plateau = hooks(None, "tally last")
    whole = linear_fit(whole_hooks)
    # The evaluations live on the loop, for every hook and for the caller.
    assert whole.loop.eval_steps.tolist() == [0, 2, 4, 6, 8, 10, 12]
    assert whole.loop.evaluations["loss"].shape == (3, 7)
    assert whole_tally.chunks == 6
    # The plateau hook cut the stuck member's learning rate through the controller's knob.
    assert whole.metrics["hparams/learning_rate"][0, -1] < 1e-6

    class Stop(Exception):
        pass

    def stop_after_the_second_chunk(info):
        if info["step"] == 4:
            raise Stop

    with pytest.raises(Stop):
        linear_fit(hooks(tmp_path, "tally last", stop_after_the_second_chunk)[0])
    # The rerun lists its hooks in another order: each state comes back to its own hook.
    resumed_hooks, tally, plateau = hooks(tmp_path, "tally first")
    resumed = linear_fit(resumed_hooks)
    for name in whole.metrics:
        np.testing.assert_array_equal(resumed.metrics[name], whole.metrics[name])
    np.testing.assert_array_equal(resumed.loop.evaluations["loss"], whole.loop.evaluations["loss"])
    np.testing.assert_array_equal(tally.best, whole_tally.best)
    assert tally.chunks == whole_tally.chunks
    for a, b in zip(jax.tree.leaves(plateau.states), jax.tree.leaves(whole_plateau.states),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_written_before_hook_names_is_refused(tmp_path):
    # What lrjax wrote before: run.json held the fingerprint itself, and hook states were kept
    # by their position in the hook list.
    (tmp_path / "run.json").write_text(json.dumps({"run": 1}))
    (tmp_path / "chunks").mkdir()
    with pytest.raises(ValueError, match=r"was written by an earlier version of lrjax "
                                         r"\(checkpoint format 1, this one reads 2"):  # fmt: skip
        linear_fit([lrjax.hooks.Checkpoint(tmp_path, {"run": 1}), Tally()])


def test_two_stateful_hooks_with_one_name_are_refused():
    evaluate = lrjax.hooks.Evaluate(linear_eval, EVAL)
    with pytest.raises(ValueError, match=r"hooks\[1\] and hooks\[2\] are both named 'tally'"):
        linear_fit([evaluate, Tally(), Tally()])
    linear_fit([evaluate, Tally(), Tally(name="other")], vectorize=False)


def test_the_controller_knobs_are_read_and_turned_through_the_loop():
    seen = {}

    class Turn:
        def on_start(self, loop):
            seen["start"] = loop.control(loop.groups[0])["learning_rate"]

        def after_chunk(self, loop, group):
            if loop.step == 4:
                loop.set_control(group, "learning_rate", scale=0.5, override=[np.nan, 0.1, 0.1])
            if loop.step == 8:
                loop.set_control(group, "learning_rate", override=np.nan)

    out = linear_fit([Turn()])
    np.testing.assert_array_equal(seen["start"].value, LINEAR_MEMBERS["lr"])
    np.testing.assert_array_equal(seen["start"].scale, 1.0)
    lr = out.metrics["hparams/learning_rate"]
    np.testing.assert_array_equal(lr[:, :4], np.repeat(LINEAR_MEMBERS["lr"][:, None], 4, 1))
    np.testing.assert_array_equal(lr[:, 4:8], np.float32([[5e-7] * 4, [0.05] * 4, [0.05] * 4]))
    np.testing.assert_array_equal(lr[:, 8:], 0.5 * np.repeat(LINEAR_MEMBERS["lr"][:, None], 4, 1))
    with pytest.raises(ValueError, match=r"name must be a hyperparameter the controller sets"):

        class Wrong:
            def on_start(self, loop):
                loop.set_control(loop.groups[0], "momentum", scale=0.5)

        linear_fit([Wrong()])


# -----------------------------------------------------------------------------------------------
# Checkpoint policies: orbax's save interval, newest n and best k


def saved_steps(directory):
    return sorted(int(p.name) for p in (directory / "chunks").iterdir() if p.name.isdigit())


@pytest.mark.parametrize("mode", ["min", "max"])
def test_keep_best_k_keeps_exactly_the_k_best_saves_and_the_newest(tmp_path, mode):
    policy = lrjax.hooks.CheckpointPolicy(
        keep_last=1, keep_best=2, best_metric="loss", best_mode=mode
    )
    checkpoint = lrjax.hooks.Checkpoint(tmp_path, {"run": mode}, policy)
    out = linear_fit([checkpoint, lrjax.hooks.Evaluate(linear_eval, EVAL)])
    # A save's score is its best member's evaluated loss at its step (saves follow chunks).
    losses = out.loop.evaluations["loss"]
    score = np.nanmin(losses, axis=0) if mode == "min" else np.nanmax(losses, axis=0)
    saves = [(score[j], int(s)) for j, s in enumerate(out.loop.eval_steps) if s > 0]
    ranked = sorted(saves, reverse=mode == "max")
    assert len({value for value, _ in ranked}) == len(ranked)  # no ties: the k best are defined
    expected = {step for _, step in ranked[:2]} | {STEPS}
    assert saved_steps(tmp_path) == sorted(expected)
    # "max" keeps the two earliest saves (the flat member's loss only falls), so it is not
    # the newest-n rule in disguise.
    assert mode == "min" or expected == {2, 4, STEPS}


def test_save_interval_keeps_the_newest_n_and_resumes_from_the_newest(tmp_path):
    policy = lrjax.hooks.CheckpointPolicy(save_interval_steps=4, keep_last=2, asynchronous=False)

    class Stop(Exception):
        pass

    def stop_at(step):
        def callback(info):
            if info["step"] == step:
                raise Stop

        return lrjax.hooks.Callback(callback)

    def hooks(*extra):
        return [lrjax.hooks.Checkpoint(tmp_path, {"run": 1}, policy), *extra]

    with pytest.raises(Stop):
        linear_fit(hooks(stop_at(10)))
    assert saved_steps(tmp_path) == [4, 8]  # every 4 steps, not after every chunk of 2
    seen = []
    resumed = linear_fit(hooks(lrjax.hooks.Callback(lambda info: seen.append(info["step"]))))
    assert seen == [10, 12]  # resumed from step 8
    assert saved_steps(tmp_path) == [8, 12]  # the last step is always saved; keep the newest 2
    np.testing.assert_array_equal(resumed.metrics["loss"], linear_fit([]).metrics["loss"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(keep_last=0), r"keep_last must be an integer >= 1, got 0"),
        (dict(keep_best=2), r"keep_best=2 needs best_metric, the name of an evaluation metric"),
        (dict(keep_best=-1), r"keep_best must be an integer >= 0"),
        (dict(best_mode="lowest"), r"best_mode must be 'min' or 'max', got 'lowest'"),
        (dict(save_interval_steps=0), r"save_interval_steps must be an integer >= 1"),
        (dict(asynchronous="no"), r"asynchronous must be"),
    ],
)
def test_checkpoint_policy_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lrjax.hooks.CheckpointPolicy(**kwargs)


def test_checkpoint_policy_errors_at_run_time(tmp_path):
    between = lrjax.hooks.CheckpointPolicy(save_interval_steps=3)
    with pytest.raises(
        ValueError, match=r"save_interval_steps must be a multiple of chunk_steps=2"
    ):
        linear_fit([lrjax.hooks.Checkpoint(tmp_path / "a", {"run": 1}, between)])
    unknown = lrjax.hooks.CheckpointPolicy(keep_best=1, best_metric="accuracy")
    evaluate = lrjax.hooks.Evaluate(linear_eval, EVAL)
    with pytest.raises(ValueError, match=r"best_metric 'accuracy' is not among the evaluated"):
        linear_fit([lrjax.hooks.Checkpoint(tmp_path / "b", {"run": 1}, unknown), evaluate])
    with pytest.raises(ValueError, match=r"policy must be an lrjax.hooks.CheckpointPolicy"):
        lrjax.hooks.Checkpoint(tmp_path / "c", {"run": 1}, {"keep_last": 2})
    with pytest.raises(ValueError, match=r"options.checkpoint_policy must be an lrjax.hooks"):
        sweep.Options(checkpoint_policy={"keep_last": 2})
