"""Metric writers: every member's curves in TensorBoard or MLflow while the sweep trains.

:class:`Writer` is a host-loop hook (:func:`lrjax.fit`, or ``sweep.Options(hooks=...)``). After
each chunk it reads what the loop recorded for the steps just finished, never the compiled
program: every scalar step metric of every member (``loss``, ``grad_norm``, the hyperparameters
the controller logs as ``hparams/<name>``, the values the updates used), and every evaluation
(``loop.evaluations``, as ``eval/<name>``). Each member's settings are written as hyperparameters
(TensorBoard's HParams dashboard, MLflow params), so a sweep shows as parallel coordinates.
With ``layout="runs"`` each member is a run of its own (``member_03``); with ``layout="tags"``
the sweep is one run and each curve a tag per member (``loss/member_03``).

The writing follows ``clu.metric_writers``' interface, one writer per run with
``write_scalars(step, scalars)``, ``write_hparams(hparams)``, ``flush()`` and ``close()``, so any
such writer plugs in (``Writer(lambda run: clu_writer_for(run))``). Two backends come with lrjax:

* :class:`TensorBoard` — event files under ``logdir/<run>``, written with TensorBoard's own
  event writer and HParams summaries (the ``tensorboard`` package; no TensorFlow);
* :class:`MLflow` — runs in an MLflow tracking store through ``MlflowClient.log_batch``
  (``mlflow-skinny``); a local file store is ``"file:./mlruns"``, which MLflow 3 opens only with
  ``MLFLOW_ALLOW_FILE_STORE=true`` (its ``sqlite:///mlflow.db`` needs the full ``mlflow``).

By default the writes run in a background thread (as clu's ``AsyncWriter``), so the host
returns to the devices at once; ``on_end`` waits for them.

Examples:
  >>> import tempfile, numpy as np, jax, jax.numpy as jnp, lrjax
  >>> def step(state, batch, member):
  ...     return {"w": state["w"] - member["lr"]}, {"loss": state["w"] ** 2}
  >>> logdir = tempfile.mkdtemp()
  >>> out = lrjax.fit(lrjax.vectorize(step, lambda m: {"w": jnp.float32(1.0)}),
  ...                 {"lr": np.float32([0.1, 0.2])}, lambda t: np.zeros(1), num_steps=4,
  ...                 hooks=[Writer(TensorBoard(logdir))])
  >>> sorted(entry.name for entry in os.scandir(logdir) if entry.is_dir())  # a run per member
  ['member_0', 'member_1']
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import numpy as np

__all__ = ["MLflow", "MetricWriter", "TensorBoard", "Writer", "member_settings"]


class MetricWriter(Protocol):
    """One run's writer: the part of ``clu.metric_writers.MetricWriter`` a :class:`Writer`
    uses."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def write_hparams(self, hparams: Mapping[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


# -----------------------------------------------------------------------------------------------
# TensorBoard


class TensorBoard:
    """Event files under ``logdir``, one directory per run, for ``tensorboard --logdir``.

    Scalars are ``simple_value`` summaries (float32, as the loop records them); a run's
    hyperparameters are an HParams session, and ``logdir`` itself holds the experiment (the
    hyperparameters and metrics the HParams dashboard's parallel coordinates show).

    Args:
      logdir: the log directory (created if needed).
    """

    def __init__(self, logdir: str | os.PathLike):
        try:
            self.logdir = os.path.abspath(os.fspath(logdir))
        except TypeError:
            raise ValueError(f"logdir must be a path, got {logdir!r}") from None
        _require("tensorboard", "tensorboard")

    def __call__(self, run: str | None) -> _EventWriter:
        return self.open(run)

    def open(self, run: str | None, resume: bool = False) -> _EventWriter:
        """The writer of run ``run`` (None: ``logdir`` itself)."""
        del resume  # TensorBoard keeps the newest values of steps written again
        return _EventWriter(self.logdir if run is None else os.path.join(self.logdir, run))

    def write_experiment(self, hparams: list[str], metrics: list[str]) -> None:
        """The HParams experiment: which hyperparameters and metrics the dashboard shows."""
        from tensorboard.plugins.hparams import summary_v2 as hp

        summary = hp.hparams_config_pb(
            hparams=[hp.HParam(name) for name in hparams],
            metrics=[hp.Metric(tag) for tag in metrics],
        )
        writer = _EventWriter(self.logdir)
        writer.write_summary(summary)
        writer.close()

    def __repr__(self):
        return f"TensorBoard({self.logdir!r})"


class _EventWriter:
    """One TensorBoard run, through TensorBoard's own ``EventFileWriter``."""

    def __init__(self, directory: str):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.trial = os.path.basename(directory)  # the HParams dashboard's trial id

        # A deep queue: the writes come in bursts of a chunk's steps.
        self._events = EventFileWriter(directory, max_queue_size=1024)

    def write_summary(self, summary, step: int = 0) -> None:
        from tensorboard.compat.proto import event_pb2

        self._events.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        from tensorboard.compat.proto import summary_pb2

        values = [summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        self.write_summary(summary_pb2.Summary(value=values), int(step))

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        from tensorboard.plugins.hparams import summary_v2 as hp

        self.write_summary(hp.hparams_pb(dict(hparams), trial_id=self.trial))

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


# -----------------------------------------------------------------------------------------------
# MLflow


class MLflow:
    """Runs in an MLflow tracking store, through ``mlflow.MlflowClient``.

    A member's run is named ``<run_name>/<member>`` and tagged ``lrjax.sweep`` and
    ``lrjax.run``; a sweep that resumes from a checkpoint continues its unfinished runs of the
    same names. Its settings are params (strings, as MLflow keeps them).

    Args:
      tracking_uri: the store, e.g. ``"file:./mlruns"`` (needs ``MLFLOW_ALLOW_FILE_STORE=true``
        with MLflow 3), ``"sqlite:///mlflow.db"``, a server's URL; None: MLflow's default.
      experiment: the experiment's name (created if needed).
      run_name: the sweep's name, the prefix of its runs' names.
    """

    def __init__(
        self, tracking_uri: str | None = None, experiment: str = "lrjax", run_name: str = "sweep"
    ):
        for name, value in (("experiment", experiment), ("run_name", run_name)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        _require("mlflow", "mlflow")
        self._client = None
        self._experiment_id = None

    def client(self):
        """The ``MlflowClient`` and the experiment's id (created on first use)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
            found = self._client.get_experiment_by_name(self.experiment)
            self._experiment_id = (
                found.experiment_id
                if found is not None
                else self._client.create_experiment(self.experiment)
            )
        return self._client, self._experiment_id

    def __call__(self, run: str | None) -> _MLflowRun:
        return self.open(run)

    def open(self, run: str | None, resume: bool = False) -> _MLflowRun:
        """The writer of member run ``run`` (None: the sweep's single run); ``resume``
        continues the newest unfinished run of that name."""
        client, experiment_id = self.client()
        name = self.run_name if run is None else f"{self.run_name}/{run}"
        run_id = None
        if resume:  # the newest unfinished run of this name
            found = client.search_runs(
                [experiment_id],
                filter_string=f"tags.`lrjax.run` = '{name}' and attributes.status != 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            run_id = found[0].info.run_id if found else None
        if run_id is None:
            tags = {"lrjax.sweep": self.run_name, "lrjax.run": name}
            run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        return _MLflowRun(client, run_id)

    def __repr__(self):
        return f"MLflow({self.tracking_uri!r}, {self.experiment!r}, {self.run_name!r})"


class _MLflowRun:
    """One MLflow run: scalars are buffered and logged in batches of 1000 (MLflow's limit)."""

    BATCH = 1000

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id
        self._metrics: list = []

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._metrics.extend(Metric(k, float(v), now, int(step)) for k, v in scalars.items())
        if len(self._metrics) >= self.BATCH:
            self.flush()

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in hparams.items()]
        for i in range(0, len(params), 100):  # MLflow's limit of params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def flush(self) -> None:
        metrics, self._metrics = self._metrics, []
        for i in range(0, len(metrics), self.BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + self.BATCH])

    def close(self) -> None:
        self.flush()
        self.client.set_terminated(self.run_id)


def _require(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError as e:
        raise ImportError(f"this writer needs {module}: pip install 'lrjax[{extra}]'") from e


# -----------------------------------------------------------------------------------------------
# The hook


def member_settings(members: Any) -> dict[str, np.ndarray]:
    """Each member setting as a named ``[K]`` column: the pytree's paths joined by ``/``
    (``"lr"``, ``"hparams/learning_rate"``); a setting with more values per member gives one
    column per value (``"betas/0"``).

    Examples:
      >>> columns = member_settings({"lr": np.array([0.5, 0.25]), "betas": np.zeros((2, 2))})
      >>> {name: column.tolist() for name, column in columns.items()}
      {'betas/0': [0.0, 0.0], 'betas/1': [0.0, 0.0], 'lr': [0.5, 0.25]}
    """
    columns = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(members):
        name = "/".join(_key_name(key) for key in path)
        array = np.asarray(leaf)
        flat = array.reshape(array.shape[0], -1)
        if array.ndim == 1:
            columns[name] = array
        else:
            for i in range(flat.shape[1]):
                columns[f"{name}/{i}"] = flat[:, i]
    return dict(sorted(columns.items()))


def _key_name(key: Any) -> str:
    for field in ("key", "name", "idx"):
        if hasattr(key, field):
            return str(getattr(key, field))
    return str(key)


def _python(value: np.generic) -> bool | int | float:
    """A setting as the plain Python number the HParams dashboard and MLflow params take."""
    return value.item()


class Writer:
    """Writes every member's step metrics, evaluations and settings between chunks.

    Args:
      backend: :class:`TensorBoard`, :class:`MLflow`, or any function ``backend(run) ->
        writer`` with clu's ``MetricWriter`` methods (``run`` names a member's run, or is None
        for the sweep's single run; a backend with ``open(run, resume)`` is told whether the
        run resumed from a checkpoint).
      layout: ``"runs"`` (a run per member, ``member_03``; parallel coordinates compare them)
        or ``"tags"`` (one run; a tag per member, ``loss/member_03``, and settings named
        ``member_03/<name>``).
      every: write the step metrics of every ``every``-th step (evaluations always).
      hparams: the settings to write, ``{name: [K] values}``; default every member setting
        the loop holds (:func:`member_settings`).
      asynchronous: write in a background thread (the next chunk starts at once).

    Runs only on process 0 of a multi-process run. A run resumed from a checkpoint writes from
    the step it resumed at (TensorBoard keeps the newest values of steps written again; MLflow
    continues the unfinished runs).
    """

    name = "writer"

    def __init__(
        self,
        backend: Callable[..., MetricWriter],
        *,
        layout: str = "runs",
        every: int = 1,
        hparams: Mapping[str, Any] | None = None,
        asynchronous: bool = True,
    ):
        from lrjax import _checks

        if not callable(backend):
            raise ValueError(
                f"backend must be lrjax.writers.TensorBoard(...), lrjax.writers.MLflow(...) or a "
                f"function backend(run) -> writer, got {backend!r}"
            )
        if layout not in ("runs", "tags"):
            raise ValueError(f"layout must be 'runs' or 'tags', got {layout!r}")
        self.backend, self.layout = backend, layout
        self.every = _checks.check_int("every", every, 1)
        self.hparams = None if hparams is None else {k: np.asarray(v) for k, v in hparams.items()}
        self.asynchronous = _checks.check_bool("asynchronous", asynchronous)
        self._writers: dict[str | None, MetricWriter] | None = None
        self._experiment: list[str] | None = None
        self._jobs: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._written = 0  # steps written (the next step to write)
        self._evaluations = 0  # evaluation columns written

    # -- the host loop's calls --------------------------------------------------------------------

    def on_chunk_end(self, loop) -> None:
        if jax.process_index() != 0:
            return
        self._raise_error()
        if self._writers is None:  # opened here, after any checkpoint restored the loop
            self._open(loop)
        start, stop = self._written, loop.step
        metrics = {
            name: np.array(v[:, start:stop])
            for name, v in (loop.metrics or {}).items()
            if v.ndim == 2
        }
        steps = np.arange(start, stop)
        keep = steps % self.every == 0
        metrics = {name: v[:, keep] for name, v in metrics.items()}
        new = slice(self._evaluations, len(loop.eval_steps))
        evaluations = {f"eval/{n}": np.array(v[:, new]) for n, v in loop.evaluations.items()}
        job = (steps[keep], metrics, np.array(loop.eval_steps[new]), evaluations)
        self._written, self._evaluations = stop, len(loop.eval_steps)
        if self._experiment is not None:
            names, self._experiment = self._experiment, None
            tags = [*sorted(metrics), *sorted(evaluations)]
            self._submit(lambda: self.backend.write_experiment(names, tags))
        self._submit(lambda: self._write(*job))

    def on_end(self, loop) -> None:
        del loop
        self.close()

    def close(self) -> None:
        """Waits for the pending writes and closes the writers (also at interpreter exit, for
        a run that stopped with an exception)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        if self._writers is not None:
            for writer in self._writers.values():
                writer.close()
            self._writers = None
        atexit.unregister(self._close_at_exit)
        self._raise_error()

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as e:  # at exit, a failed write is reported, not raised
            print(f"lrjax.writers.Writer: the last writes failed: {e!r}", file=sys.stderr)

    # -- inside ------------------------------------------------------------------------------------

    def _open(self, loop) -> None:
        k = loop.num_members
        self._names = [f"member_{i:0{len(str(k - 1))}d}" for i in range(k)]
        settings = self.hparams
        if settings is None:
            settings = member_settings(loop.member_settings())
        for name, values in settings.items():
            if np.shape(values)[:1] != (k,):
                raise ValueError(f"hparams[{name!r}] must hold one value per member ({k})")
        # Resumed: the steps before this chunk were written by the run that saved them.
        self._written = loop.step - loop.last_chunk
        resumed = self._written > 0
        self._evaluations = int(np.sum(loop.eval_steps <= self._written)) if resumed else 0
        runs = self._names if self.layout == "runs" else [None]
        opener = getattr(self.backend, "open", None)
        self._writers = {
            run: self.backend(run) if opener is None else opener(run, resume=resumed)
            for run in runs
        }
        has_experiment = hasattr(self.backend, "write_experiment") and self.layout == "runs"
        self._experiment = sorted(settings) if has_experiment else None
        if self.asynchronous:
            self._jobs = queue.Queue()
            self._thread = threading.Thread(target=self._work, name="lrjax-writer", daemon=True)
            self._thread.start()
            atexit.register(self._close_at_exit)
        per_member = [{n: _python(v[i]) for n, v in settings.items()} for i in range(k)]
        if self.layout == "runs":
            for run, values in zip(self._names, per_member, strict=True):
                self._submit(lambda w=self._writers[run], v=values: w.write_hparams(v))
        else:
            flat = {f"{run}/{n}": v for run, d in zip(self._names, per_member, strict=True)
                    for n, v in d.items()}  # fmt: skip
            self._submit(lambda: self._writers[None].write_hparams(flat))

    def _submit(self, job: Callable[[], None]) -> None:
        if self._thread is None:
            job()
        else:
            self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as e:  # re-raised on the loop's thread
                    self._error = e

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _write(self, steps, metrics, eval_steps, evaluations) -> None:
        for i, member in enumerate(self._names):
            writer = self._writers[member if self.layout == "runs" else None]
            suffix = "" if self.layout == "runs" else f"/{member}"
            for series, at in ((metrics, steps), (evaluations, eval_steps)):
                rows = {name + suffix: values[i].tolist() for name, values in series.items()}
                for j, step in enumerate(at.tolist()):
                    writer.write_scalars(step, {name: row[j] for name, row in rows.items()})
        for writer in self._writers.values():
            writer.flush()
