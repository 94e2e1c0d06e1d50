"""Tests for lrjax.writers: a sweep written to TensorBoard and MLflow is read back with each
tool's own reader (TensorBoard's EventAccumulator, MLflow's MlflowClient on a file store)."""

import os

import jax
import numpy as np
import optax
import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

import lrjax
from examples import export_member
from lrjax import sweep
from lrjax.writers import MLflow, TensorBoard, Writer
from tests.helpers import BATCH, CHUNK, DATA, EVAL, LOSS, MODEL, STEPS

LRS = np.float32([0.1, 0.4, 1e3])  # the last one diverges: its curves turn NaN


@pytest.fixture(scope="module", autouse=True)
def mlflow_file_store():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for the opt-in
        yield


def written_sweep(directory, options=None, callback=None):
    """A sweep with a warmup (the LR curve moves) and an evaluation, written to both tools
    (a sweep's step records the learning rate each update used as ``opt_hparams/...``)."""
    writers = [
        Writer(TensorBoard(directory / "tb")),
        Writer(MLflow(f"file:{directory / 'mlruns'}", experiment="sweep", run_name="lr")),
    ]
    return sweep.train(
        MODEL, LOSS, DATA, optimizer=optax.sgd, hparams={"lr": LRS},
        optimizer_kwargs=lambda hp: {"learning_rate": optax.linear_schedule(0.0, hp["lr"], 4)},
        num_steps=STEPS, batch_size=BATCH, seeds=[0, 1, 2],
        evaluation=sweep.Evaluation(EVAL, every=CHUNK),
        options=sweep.Options(progress=False, hooks=writers, callback=callback, **(options or {})),
    )  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("written")
    return written_sweep(directory), directory


def tensorboard_run(directory):
    run = event_accumulator.EventAccumulator(str(directory), size_guidance={"scalars": 0})
    run.Reload()
    return run


def curve(run, tag):
    events = run.Scalars(tag)
    return np.array([e.step for e in events]), np.float32([e.value for e in events])


def session_hparams(run):
    content = run.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    info = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    return {name: value.number_value for name, value in info.hparams.items()}


def test_every_members_curves_and_settings_read_back_from_tensorboard(written):
    result, directory = written
    steps = np.arange(STEPS)
    for k in range(3):
        run = tensorboard_run(directory / "tb" / f"member_{k}")
        curves = {"loss": result.loss, "opt_hparams/learning_rate": result.learning_rate,
                  "grad_norm": result.grad_norm}  # fmt: skip
        for tag, want in ((tag, values[k]) for tag, values in curves.items()):
            got_steps, got = curve(run, tag)
            np.testing.assert_array_equal(got_steps, steps)
            np.testing.assert_array_equal(got, want)  # NaN where the member diverged
        got_steps, got = curve(run, "eval/loss")
        np.testing.assert_array_equal(got_steps, result.eval_steps)
        np.testing.assert_array_equal(got, result.eval_metrics["loss"][k])
        hparams = session_hparams(run)
        assert np.float32(hparams["hparams/lr"]) == LRS[k]
        assert hparams["seed"] == k and hparams["batch_size"] == BATCH
    assert np.isnan(result.loss[2, -1])  # the diverged member's curve is there, NaN and all
    # The experiment at the log directory's root: the dashboard's columns.
    root = tensorboard_run(directory / "tb")
    content = root.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    experiment = hparams_metadata.parse_experiment_plugin_data(
        content[hparams_metadata.EXPERIMENT_TAG]
    )
    assert {h.name for h in experiment.hparam_infos} >= {"hparams/lr", "seed"}
    assert {m.name.tag for m in experiment.metric_infos} >= {"loss", "eval/loss"}


def mlflow_runs(directory, experiment="sweep"):
    client = MlflowClient(tracking_uri=f"file:{directory / 'mlruns'}")
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    by_name = {run.info.run_name: run for run in runs}
    assert len(by_name) == len(runs)  # one run of each name
    return client, by_name


def history(client, run, key):
    points = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
    return np.array([m.step for m in points]), np.float32([m.value for m in points])


def test_every_members_curves_and_settings_read_back_from_mlflow(written):
    result, directory = written
    client, runs = mlflow_runs(directory)
    assert sorted(runs) == ["lr/member_0", "lr/member_1", "lr/member_2"]
    for k in range(3):
        run = runs[f"lr/member_{k}"]
        assert run.info.status == "FINISHED"
        for key, want in [("loss", result.loss[k]),
                          ("opt_hparams/learning_rate", result.learning_rate[k])]:  # fmt: skip
            steps, got = history(client, run, key)
            np.testing.assert_array_equal(steps, np.arange(STEPS))
            np.testing.assert_array_equal(got, want)
        steps, got = history(client, run, "eval/loss")
        np.testing.assert_array_equal(steps, result.eval_steps)
        np.testing.assert_array_equal(got, result.eval_metrics["loss"][k])
        assert np.float32(run.data.params["hparams/lr"]) == LRS[k]
        assert run.data.params["seed"] == str(k)


def test_a_resumed_sweep_writes_each_step_once_and_continues_its_mlflow_runs(written, tmp_path):
    class Stop(Exception):
        pass

    def stop_after_the_second_chunk(info):
        if info["step"] == 2 * CHUNK:
            raise Stop

    options = {"checkpoint_dir": tmp_path / "ckpt"}
    with pytest.raises(Stop):
        written_sweep(tmp_path, options, stop_after_the_second_chunk)
    resumed = written_sweep(tmp_path, options)
    np.testing.assert_array_equal(resumed.loss, written[0].loss)
    client, runs = mlflow_runs(tmp_path)
    assert len(runs) == 3  # the resumed sweep continued the interrupted runs (no new ones)
    for k in range(3):
        steps, got = history(client, runs[f"lr/member_{k}"], "loss")
        np.testing.assert_array_equal(steps, np.arange(STEPS))  # each step once
        np.testing.assert_array_equal(got, resumed.loss[k])
        steps, got = curve(tensorboard_run(tmp_path / "tb" / f"member_{k}"), "loss")
        np.testing.assert_array_equal(steps, np.arange(STEPS))
        np.testing.assert_array_equal(got, resumed.loss[k])


def test_a_users_trainstate_step_written_as_a_tag_per_member(tmp_path):
    # The user's own TrainState step (BatchNorm, dropout), its learning rate warmed up by the
    # controller, written synchronously as one run with a tag per member.
    ds = lrjax.load_digits()
    members = {"lr": np.float32([0.05, 0.2]), "seed": np.int32([0, 1])}

    def init(member):
        return export_member.create_train_state(jax.random.key(member["seed"]))

    def warmup(member):
        return optax.linear_schedule(0.0, member["lr"], 3)

    step, init = lrjax.control(export_member.linen_step, init, {"learning_rate": warmup})
    hooks = [
        lrjax.hooks.Evaluate(export_member.linen_accuracy, (ds.x_val, ds.y_val)),
        Writer(TensorBoard(tmp_path / "tb"), layout="tags", asynchronous=False),
        Writer(MLflow(f"file:{tmp_path / 'mlruns'}", "own"), layout="tags", every=2),
    ]
    out = lrjax.fit(
        lrjax.vectorize(step, init), members, (ds.x_train, ds.y_train), batch_size=32,
        num_steps=6, chunk_steps=3, hooks=hooks,
    )  # fmt: skip
    run = tensorboard_run(tmp_path / "tb")
    client, runs = mlflow_runs(tmp_path, "own")
    (mlflow_run,) = runs.values()
    for k in range(2):
        for name in ("loss", "hparams/learning_rate"):
            steps, got = curve(run, f"{name}/member_{k}")
            np.testing.assert_array_equal(steps, np.arange(6))
            np.testing.assert_array_equal(got, out.metrics[name][k])
            steps, got = history(client, mlflow_run, f"{name}/member_{k}")
            np.testing.assert_array_equal(steps, [0, 2, 4])  # every=2
            np.testing.assert_array_equal(got, out.metrics[name][k, ::2])
        steps, got = curve(run, f"eval/accuracy/member_{k}")
        np.testing.assert_array_equal(steps, out.loop.eval_steps)
        np.testing.assert_array_equal(got, out.loop.evaluations["accuracy"][k])
        assert np.float32(mlflow_run.data.params[f"member_{k}/lr"]) == members["lr"][k]
    assert session_hparams(run)["member_1/lr"] == np.float32(0.2)


def test_writer_refuses_bad_settings(tmp_path):
    backend = TensorBoard(tmp_path)
    with pytest.raises(ValueError, match=r"layout must be 'runs' or 'tags', got 'members'"):
        Writer(backend, layout="members")
    with pytest.raises(ValueError, match=r"every must be an integer >= 1, got 0"):
        Writer(backend, every=0)
    with pytest.raises(ValueError, match=r"backend must be lrjax.writers.TensorBoard"):
        Writer(str(tmp_path))
    with pytest.raises(ValueError, match=r"run_name must be a non-empty string"):
        MLflow(run_name="")
    with pytest.raises(ValueError, match=r"hparams\['lr'\] must hold one value per member \(3\)"):
        written = Writer(backend, hparams={"lr": [0.1]}, asynchronous=False)
        sweep.train(
            MODEL, LOSS, DATA, optimizer=optax.sgd, hparams={"learning_rate": LRS},
            num_steps=2, batch_size=BATCH, options=sweep.Options(progress=False, hooks=written),
        )  # fmt: skip
    assert os.path.isdir(tmp_path)


@pytest.mark.slow  # 12 s: eight sweeps, compiled on first use
def test_the_overhead_measurement_runs_on_a_tiny_sweep():
    from experiments import writer_overhead

    ratios = writer_overhead.main(reps=1, num_steps=50, hidden=16)
    assert set(ratios) == {"none", "tensorboard", "mlflow", "both"} and ratios["none"] == 1.0
