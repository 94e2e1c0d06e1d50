"""Results as pandas tables, for seaborn, W&B tables or HiPlot: every member setting a column.

``SweepResult.to_dataframe(kind)`` and ``FitResult.to_dataframe(kind)`` give, with ``kind``:

* ``"steps"`` (long format): a row per member and step, the step's scalar metrics as columns
  (``loss``, ``grad_norm``, the hyperparameters each update used: ``opt_hparams/<name>`` for a
  sweep, ``hparams/<name>`` under :func:`lrjax.control`);
* ``"evaluations"``: a row per member and evaluation, ``eval/<name>`` columns;
* ``"final"``: a row per member, its last step's metrics and last evaluation (and, for a sweep,
  ``diverged`` and ``diverged_step``).

Every table starts with ``member`` (the index), ``step`` (for the first two) and each member
setting (:func:`lrjax.writers.member_settings`: a sweep's ``hparams``, or the ``members`` of
:func:`lrjax.fit`). Steps count the updates done before the measurement, as ``eval_steps`` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lrjax.writers import member_settings

__all__ = ["dataframe", "fit_dataframe", "sweep_dataframe"]

KINDS = ("steps", "evaluations", "final")


def dataframe(
    settings: Mapping[str, np.ndarray],
    metrics: Mapping[str, np.ndarray],
    eval_steps: np.ndarray,
    evaluations: Mapping[str, np.ndarray],
    kind: str = "steps",
    final: Mapping[str, np.ndarray] | None = None,
):
    """The table of ``kind`` from ``[K]`` settings, ``[K, T]`` step metrics and ``[K, E]``
    evaluations (``final``: more ``[K]`` columns for the final table)."""
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError("to_dataframe needs pandas: pip install 'lrjax[pandas]'") from e
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    metrics = {n: np.asarray(v) for n, v in metrics.items() if np.ndim(v) == 2}
    evaluations = {f"eval/{n}": np.asarray(v) for n, v in evaluations.items()}
    k = len(next(iter(settings.values()))) if settings else _members(metrics, evaluations)
    member = np.arange(k)
    if kind == "final":
        columns = {"member": member, **settings}
        columns.update({n: v[:, -1] for n, v in metrics.items() if v.shape[1]})
        columns.update({n: v[:, -1] for n, v in evaluations.items() if v.shape[1]})
        columns.update(final or {})
        return pd.DataFrame(columns)
    series, steps = (metrics, None) if kind == "steps" else (evaluations, np.asarray(eval_steps))
    t = next(iter(series.values())).shape[1] if series else 0
    steps = np.arange(t) if steps is None else steps
    columns = {"member": np.repeat(member, t), "step": np.tile(steps, k)}
    columns.update({n: np.repeat(np.asarray(v), t) for n, v in settings.items()})
    columns.update({n: v.reshape(-1) for n, v in series.items()})
    return pd.DataFrame(columns)


def _members(*tables: Mapping[str, np.ndarray]) -> int:
    for table in tables:
        for values in table.values():
            return int(values.shape[0])
    return 0


def sweep_dataframe(result: Any, kind: str = "steps"):
    """The table of ``kind`` of a :class:`lrjax.sweep.SweepResult` (its ``hparams`` as the
    member settings)."""
    metrics = {"loss": result.loss, "grad_norm": result.grad_norm}
    metrics.update({f"opt_hparams/{n}": v for n, v in result.opt_hparams.items()})
    final = {"diverged": result.diverged, "diverged_step": result.diverged_step}
    return dataframe(
        member_settings(result.hparams), metrics, result.eval_steps, result.eval_metrics, kind,
        final,
    )  # fmt: skip


def fit_dataframe(result: Any, kind: str = "steps"):
    """The table of ``kind`` of a :class:`lrjax.FitResult` (its ``members`` as the settings)."""
    loop = result.loop
    return dataframe(
        member_settings(result.members), result.metrics, loop.eval_steps, loop.evaluations, kind
    )
