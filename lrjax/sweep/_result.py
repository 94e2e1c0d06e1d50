"""What a sweep recorded (:class:`SweepResult`), saved and loaded, and built from the loop."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from lrjax import engine, feeds, loop
from lrjax.artifacts import process_local_options

PyTree = Any

# -----------------------------------------------------------------------------------------------
# Results


def _get(tree: Any, name: str) -> Any:
    return tree[name] if isinstance(tree, Mapping) else getattr(tree, name)


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep recorded, as NumPy arrays with a leading member axis ``K``.

    Attributes:
      hparams: the per-member hyperparameters, each ``[K, ...]``.
      loss: training loss ``[K, T]`` of the batch at each step, before that step's update;
        ``nan`` after a member diverged.
      grad_norm: ``[K, T]`` global gradient norm at each step.
      opt_hparams: every injected float optimizer hyperparameter, ``{name: [K, T]}``, read
        from the optimizer state after each update, so it is the value that update used
        (``nan`` after divergence). ``learning_rate`` is a shortcut to its learning rate.
      eval_steps: ``[E]`` optimizer counts at which ``eval_metrics`` were taken.
      eval_metrics: ``{name: [K, E]}`` mean of each metric over the evaluation set.
      diverged: ``[K]`` bool; diverged_step: ``[K]`` the step whose loss or new state was
        non-finite or whose loss was above ``divergence_factor`` times the initial loss,
        ``-1`` if none.
      params: the final parameters, a pytree of ``[K, ...]`` arrays (frozen at divergence).
      opt_state: the final optimizer state, ``[K, ...]`` (e.g. for
        :func:`lrjax.lr_free.eval_params`).
      metadata: JSON-serializable run settings and timings.
      model_state: the final model state (batch statistics), ``[K, ...]``, or None.
      trackers: ``{name: state}`` of every tracker; ``snapshots``, ``swa_params``,
        ``swa_count`` and ``ema_params`` read the ones named ``"snapshots"``, ``"swa"`` and
        ``"ema"``. Trackers follow the parameters, or for a model with state (batch
        statistics) ``model.variables(params, model_state) = {"params": ..., **model_state}``:
        a snapshot keeps the statistics of its moment, an EMA averages them (as timm's
        ``ModelEmaV2`` does), and an SWA average needs them recomputed
        (:func:`lrjax.recompute_batch_stats`); evaluate any of them with ``model.predict``.
    """

    hparams: dict[str, np.ndarray]
    loss: np.ndarray
    grad_norm: np.ndarray
    opt_hparams: dict[str, np.ndarray]
    eval_steps: np.ndarray
    eval_metrics: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_step: np.ndarray
    params: PyTree
    metadata: dict[str, Any]
    model_state: PyTree = None
    trackers: dict[str, PyTree] = dataclasses.field(default_factory=dict)
    opt_state: PyTree = None

    @property
    def learning_rate(self) -> np.ndarray:
        """``[K, T]`` learning rate each update used (the optimizer must take ``learning_rate``)."""
        if "learning_rate" not in self.opt_hparams:
            raise ValueError(
                "the optimizer has no float learning_rate hyperparameter to read back; recorded "
                f"optimizer hyperparameters: {sorted(self.opt_hparams)}"
            )
        return self.opt_hparams["learning_rate"]

    @property
    def num_members(self) -> int:
        return int(self.loss.shape[0])

    @property
    def snapshots(self) -> PyTree:
        """``[K, M, ...]`` parameters after each snapshot step (the ``"snapshots"`` tracker)."""
        return self.trackers.get("snapshots")

    @property
    def swa_params(self) -> PyTree:
        """``[K, ...]`` the SWA average (the ``"swa"`` tracker)."""
        return None if "swa" not in self.trackers else _get(self.trackers["swa"], "mean")

    @property
    def swa_count(self) -> np.ndarray | None:
        """``[K]`` how many parameter sets the SWA average holds."""
        return None if "swa" not in self.trackers else _get(self.trackers["swa"], "count")

    @property
    def ema_params(self) -> PyTree:
        """``[K, ...]`` the exponential moving average (the ``"ema"`` tracker)."""
        return self.trackers.get("ema")

    def member_params(self, k: int) -> PyTree:
        """The final parameters of member ``k``."""
        return jax.tree.map(lambda a: a[k], self.params)

    def to_dataframe(self, kind: str = "steps"):
        """The result as a pandas table, every hyperparameter a column
        (:mod:`lrjax.tables`): ``kind="steps"`` a row per member and step (``loss``,
        ``grad_norm``, ``opt_hparams/<name>``), ``"evaluations"`` a row per member and
        evaluation (``eval/<name>``), ``"final"`` a row per member (last values, ``diverged``).

        Examples:
          >>> import numpy as np
          >>> result = SweepResult(
          ...     hparams={"lr": np.float32([0.1, 0.2])}, loss=np.float32([[1, 0.5], [1, 0.25]]),
          ...     grad_norm=np.ones((2, 2), np.float32), opt_hparams={}, eval_steps=np.zeros(0),
          ...     eval_metrics={}, diverged=np.zeros(2, bool), diverged_step=-np.ones(2),
          ...     params={}, metadata={})
          >>> print(result.to_dataframe()[["member", "step", "lr", "loss"]].to_string(index=False))
          member  step  lr  loss
               0     0 0.1  1.00
               0     1 0.1  0.50
               1     0 0.2  1.00
               1     1 0.2  0.25
        """
        from lrjax.tables import sweep_dataframe

        return sweep_dataframe(self, kind)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the result as an orbax checkpoint directory ``path`` (arrays and trees through
        ``StandardSave``, hyperparameter names and metadata through ``JsonSave``). An existing
        ``path`` is overwritten only if it holds a saved result."""
        import orbax.checkpoint as ocp

        path = os.path.abspath(os.fspath(path))
        if os.path.exists(path):
            if not _is_saved_result(path):
                raise ValueError(
                    f"path must be new or hold a saved SweepResult (it is overwritten), but {path} "
                    "holds something else"
                )
            shutil.rmtree(path)
        arrays = {
            "loss": self.loss,
            "grad_norm": self.grad_norm,
            "eval_steps": self.eval_steps,
            "diverged": self.diverged,
            "diverged_step": self.diverged_step,
            "hparams": self.hparams,
            "opt_hparams": self.opt_hparams,
            "eval_metrics": self.eval_metrics,
            "params": self.params,
            "model_state": self.model_state,
            "trackers": self.trackers,
        }
        arrays, empty = _without_empty(_plain(arrays))
        meta = {"format": RESULT_FORMAT, "metadata": self.metadata, "empty": empty}
        with ocp.Checkpointer(
            ocp.CompositeCheckpointHandler(), multiprocessing_options=process_local_options()
        ) as writer:
            writer.save(
                path,
                args=ocp.args.Composite(
                    arrays=ocp.args.StandardSave(arrays), result=ocp.args.JsonSave(meta)
                ),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepResult:
        """Reads a result written by :meth:`save` (trees come back as nested dicts and lists;
        ``opt_state`` is not saved). A result saved by an earlier lrjax as ``path.npz`` +
        ``path.json`` is read too."""
        import orbax.checkpoint as ocp

        path = os.path.abspath(os.fspath(path))
        if not os.path.isdir(path) and os.path.exists(path + ".npz"):
            return _load_npz(cls, path)
        if not _is_saved_result(path):
            raise ValueError(f"path must be a directory written by SweepResult.save, got {path}")
        with ocp.Checkpointer(
            ocp.CompositeCheckpointHandler(), multiprocessing_options=process_local_options()
        ) as reader:
            restored = reader.restore(
                path,
                args=ocp.args.Composite(
                    arrays=ocp.args.StandardRestore(), result=ocp.args.JsonRestore()
                ),
            )
        meta = restored["result"]
        if meta.get("format") != RESULT_FORMAT:
            raise ValueError(
                f"{path} holds a result of format {meta.get('format')!r}; this lrjax reads "
                f"{RESULT_FORMAT!r}"
            )
        arrays = _with_empty(restored["arrays"], meta["empty"])
        return cls(
            hparams=arrays["hparams"],
            loss=arrays["loss"],
            grad_norm=arrays["grad_norm"],
            opt_hparams=arrays["opt_hparams"],
            eval_steps=arrays["eval_steps"],
            eval_metrics=arrays["eval_metrics"],
            diverged=arrays["diverged"],
            diverged_step=arrays["diverged_step"],
            metadata=meta["metadata"],
            params=arrays["params"],
            model_state=arrays["model_state"],
            trackers=arrays["trackers"],
        )


RESULT_FORMAT = "lrjax.SweepResult/2"  # 1: path.npz + path.json (still read)


def _is_saved_result(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "result", "metadata"))


def _plain(tree: PyTree) -> PyTree:
    """NamedTuples as dicts, so a saved structure keeps its field names."""
    if hasattr(tree, "_asdict"):
        return {k: _plain(v) for k, v in tree._asdict().items()}
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_plain(v) for v in tree]
    return tree


def _without_empty(tree: PyTree) -> tuple[PyTree, dict]:
    """The tree as host arrays, zero-size ones (which orbax cannot save) as None, and their
    ``{path: [shape, dtype]}`` to put them back."""
    empty = {}

    def take(path, leaf):
        array = np.asarray(leaf)
        if array.size:
            return array
        empty[jax.tree_util.keystr(path)] = [list(array.shape), array.dtype.str]
        return None

    return jax.tree_util.tree_map_with_path(take, tree), empty


def _with_empty(tree: PyTree, empty: Mapping[str, Any]) -> PyTree:
    def put(path, leaf):
        key = jax.tree_util.keystr(path)
        if key in empty:
            shape, dtype = empty[key]
            return np.zeros(shape, np.dtype(dtype))
        return leaf if leaf is None else np.asarray(leaf)

    return jax.tree_util.tree_map_with_path(put, tree, is_leaf=lambda x: x is None)


def _load_npz(cls, path: str) -> SweepResult:
    """A result an earlier lrjax saved as ``path.npz`` (arrays) and ``path.json``
    (hyperparameters, metadata and each tree's structure)."""
    with open(path + ".json") as f:
        meta = json.load(f)
    with np.load(path + ".npz") as z:
        arrays = {k: z[k] for k in z.files}

    def group(prefix):
        n = len(prefix) + 1
        return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}

    trees = {
        name: _rebuild_structure(meta[f"{name}_structure"], group(name))
        for name in ("params", "model_state", "trackers")
        if f"{name}_structure" in meta
    }
    return cls(
        hparams=group("hparams"),
        loss=arrays["loss"],
        grad_norm=arrays["grad_norm"],
        opt_hparams=group("opt_hparams"),
        eval_steps=arrays["eval_steps"],
        eval_metrics=group("eval_metrics"),
        diverged=arrays["diverged"],
        diverged_step=arrays["diverged_step"],
        metadata=meta["metadata"],
        params=trees["params"],
        model_state=trees.get("model_state"),
        trackers=trees.get("trackers", {}),
    )


def _rebuild_structure(spec, leaves):
    if isinstance(spec, int):
        return leaves[str(spec)]
    if "__dict__" in spec:
        return {k: _rebuild_structure(v, leaves) for k, v in spec["__dict__"].items()}
    if "__list__" in spec:
        return [_rebuild_structure(v, leaves) for v in spec["__list__"]]
    raise ValueError(f"unreadable params structure in saved result: {spec!r}")


def _result(fitted, members, run, t_start, compiles_before) -> SweepResult:
    """The result from what the loop recorded: ``run`` is the run's description (its
    settings, and with a checkpoint the digests it keeps)."""
    final = fitted.state  # Guarded(Tracked(Controlled(State)))
    tracked, user = final.state, engine.unwrap(final)
    metrics = dict(fitted.metrics)
    compile_seconds, num_compiles = engine.compile_stats()
    metadata = dict(run)
    metadata.update(
        devices=fitted.loop.program.num_devices,
        num_groups=len(fitted.loop.groups),
        process_count=jax.process_count(),
        vectorize=fitted.loop.vectorize,
        compile_seconds=compile_seconds - compiles_before[0],
        num_compiles=num_compiles - compiles_before[1],
        program_bytes=_program_bytes(fitted.loop),
        wall_seconds=time.perf_counter() - t_start,
    )
    return SweepResult(
        hparams={k: np.asarray(v) for k, v in members.hparams.items()},
        loss=metrics.pop("loss"),
        grad_norm=metrics.pop("grad_norm"),
        opt_hparams={name.split("/", 1)[1]: v for name, v in metrics.items()},
        eval_steps=np.asarray(fitted.loop.eval_steps, np.int64),
        eval_metrics=dict(fitted.loop.evaluations),
        diverged=~np.asarray(final.alive),
        diverged_step=np.asarray(final.diverged_step),
        params=user.params,
        metadata=metadata,
        model_state=user.model_state if jax.tree.leaves(user.model_state) else None,
        trackers=dict(tracked.trackers),
        opt_state=user.opt_state,
    )


def _program_bytes(fit_loop: loop.Loop) -> int | None:
    """Bytes one device holds while a chunk runs (XLA's estimate), for the first group."""
    if not fit_loop.vectorize:
        return None
    group, feed = fit_loop.groups[0], fit_loop.feed
    if isinstance(feed, feeds.IteratorFeed | feeds.FunctionFeed):
        return None  # measuring would draw batches
    xs = feed.chunk(0, fit_loop.chunk_steps, fit_loop.chunk_steps, group.members_host)
    spec = engine.abstract
    return fit_loop.program.compiled_bytes(
        spec(group.state), spec(group.members), spec(xs), spec(fit_loop.data),
        batch_fn=feed.batch_fn, per_member_batches=feed.per_member,
    )  # fmt: skip
