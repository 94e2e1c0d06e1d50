"""Figures from recorded arrays: schedules now; range tests and sweeps will join them here.

Every function takes arrays that were already recorded (steps, learning rates, ...) and never
trains or evaluates anything. Functions that draw take an optional matplotlib ``ax`` and return
it, so figures can be composed; :func:`save` writes a PNG.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than ``pyplot``: no
global figure registry to leak memory in long runs, no interactive backend, and PNGs are
rendered by Agg. In a notebook, display the returned ``ax.figure``.

matplotlib is an optional dependency (the ``experiments`` extra), so ``import lrjax`` does not
import this module; use ``from lrjax import plotting``.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

try:
    import matplotlib
    from matplotlib import transforms
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
except ImportError as e:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "lrjax.plotting needs matplotlib; install the extra: pip install 'lrjax[experiments]'"
    ) from e

__all__ = [
    "new_axes",
    "plot_gallery",
    "plot_range_test",
    "plot_schedule",
    "plot_schedules",
    "save",
]

_LR_LABEL = "learning rate"
_STEP_LABEL = "step (optimizer update count)"


def new_axes(figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    """Returns the single Axes of a new figure (not registered with ``pyplot``).

    Args:
      figsize: figure size in inches.

    Returns:
      A fresh :class:`matplotlib.axes.Axes`; its figure is ``ax.figure``.
    """
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def plot_schedule(
    steps: ArrayLike,
    values: ArrayLike,
    *,
    label: str | None = None,
    ax: Axes | None = None,
    log_y: bool = False,
    **line_kwargs,
) -> Axes:
    """Draws one recorded learning-rate curve ``values[i] = schedule(steps[i])``.

    Args:
      steps: 1-D array of step numbers.
      values: 1-D array of learning rates, same length as ``steps``.
      label: legend entry; a legend is drawn when given.
      ax: Axes to draw into; a new figure is made when None.
      log_y: use a logarithmic y axis (non-positive values are not drawn).
      **line_kwargs: passed to :meth:`matplotlib.axes.Axes.plot` (color, linestyle, ...).

    Returns:
      The Axes drawn into.
    """
    steps, values = _as_curve(steps, values)
    ax = new_axes() if ax is None else ax
    ax.plot(steps, values, label=label, **line_kwargs)
    _style(ax, log_y=log_y, xlabel=_STEP_LABEL, ylabel=_LR_LABEL)
    if label is not None:
        ax.legend(fontsize="small")
    return ax


def plot_schedules(
    steps: ArrayLike,
    curves: Mapping[str, ArrayLike],
    *,
    title: str | None = None,
    ax: Axes | None = None,
    log_y: bool = False,
    secondary: Mapping[str, ArrayLike] | None = None,
    secondary_label: str = "momentum",
    vlines: Sequence[float] = (),
    vlines_label: str | None = None,
    legend_fontsize: str | float = "small",
    legend_below: bool = False,
    xlabel: str = _STEP_LABEL,
    zoom: tuple[float, float] | None = None,
) -> Axes:
    """Draws several recorded curves sharing one step grid, with a legend.

    Args:
      steps: 1-D array of step numbers shared by all curves.
      curves: legend label -> learning rates at ``steps``.
      title: axes title.
      ax: Axes to draw into; a new figure is made when None.
      log_y: use a logarithmic y axis for the learning rates.
      secondary: optional label -> values drawn dashed on a twin y axis (e.g. the momentum
        schedule that goes with one-cycle).
      secondary_label: y label of the twin axis.
      vlines: steps to mark with dotted vertical lines (e.g. snapshot steps).
      vlines_label: legend entry for the vertical lines.
      legend_fontsize: legend font size.
      legend_below: put the legend under the axes (in columns) instead of over the curves.
      xlabel: x axis label.
      zoom: optional (first, last) step range repeated in an inset at the upper right, for
        short phases such as warmup.

    Returns:
      The (primary) Axes drawn into.
    """
    ax = new_axes() if ax is None else ax
    steps = np.asarray(steps)
    for label, values in curves.items():
        ax.plot(*_as_curve(steps, values), label=label, linewidth=1.4)
    for i, x in enumerate(vlines):
        ax.axvline(
            x, color="0.5", linestyle=":", linewidth=1.0, label=vlines_label if i == 0 else None
        )
    _style(ax, log_y=log_y, xlabel=xlabel, ylabel=_LR_LABEL)
    if zoom is not None:
        inset = ax.inset_axes((0.55, 0.5, 0.42, 0.44))
        keep = (steps >= zoom[0]) & (steps <= zoom[1])
        for values in curves.values():
            inset.plot(steps[keep], np.asarray(values)[keep], linewidth=1.2)
        inset.set_title(f"steps {zoom[0]:g}–{zoom[1]:g}", fontsize="small")
        inset.tick_params(labelsize="x-small")
        inset.grid(True, alpha=0.3)
        if log_y:
            inset.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if secondary:
        twin = ax.twinx()
        palette = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        colors = itertools.islice(itertools.cycle(palette), len(curves), None)
        for label, values in secondary.items():
            twin.plot(
                *_as_curve(steps, values), "--", label=label, linewidth=1.2, color=next(colors)
            )
        twin.set_ylabel(secondary_label)
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if title:
        ax.set_title(title)
    if handles and legend_below:
        # Anchored a fixed distance in points under the tick labels (and x label), so it clears
        # them at any figure size; constrained layout makes room for it.
        text_pt = matplotlib.rcParams["font.size"] * 1.6
        below = transforms.offset_copy(
            ax.transAxes, ax.figure, y=-(text_pt * (2 if xlabel else 1) + 4), units="points"
        )
        ax.legend(
            handles,
            labels,
            fontsize=legend_fontsize,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            bbox_transform=below,
            ncols=2,
            frameon=False,
        )
    elif handles:
        ax.legend(handles, labels, fontsize=legend_fontsize)
    return ax


def plot_gallery(
    steps: ArrayLike,
    panels: Mapping[str, Mapping[str, ArrayLike]],
    *,
    ncols: int = 4,
    log_y: Sequence[str] = (),
    panel_size: tuple[float, float] = (4.2, 3.0),
    title: str | None = None,
) -> Figure:
    """Lays out one :func:`plot_schedules` panel per group of curves in a grid.

    Args:
      steps: 1-D array of step numbers shared by every curve.
      panels: panel title -> (legend label -> learning rates at ``steps``), in display order.
      ncols: number of grid columns.
      log_y: titles of the panels drawn with a logarithmic y axis.
      panel_size: size of one panel in inches.
      title: figure title.

    Returns:
      The figure; unused grid cells are hidden.
    """
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, curves) in zip(axes, panels.items(), strict=False):
        plot_schedules(
            steps,
            curves,
            title=name,
            ax=ax,
            log_y=name in log_y,
            legend_fontsize="x-small",
            legend_below=True,
            xlabel="",
        )
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize="x-large")
    fig.supxlabel(_STEP_LABEL)
    return fig


def plot_range_test(
    learning_rates: ArrayLike,
    loss: ArrayLike,
    smoothed: ArrayLike,
    valid: ArrayLike,
    *,
    suggestions: Mapping[str, float] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draws an LR range test: raw and smoothed loss against a log-x learning rate.

    Takes the arrays of a :class:`lrjax.range_test.RangeTestResult` (``result.learning_rates``,
    ``result.loss``, ``result.smoothed``, ``result.valid``). Each run's raw loss is drawn
    faintly, the mean smoothed loss over runs as a line with a band from the lowest to the
    highest run, each run's divergence point as a cross, and each suggestion as a dashed
    vertical line with its value in the legend. Points after a run diverged are not drawn.

    Args:
      learning_rates: ``(N,)`` the LR of each step.
      loss: ``(R, N)`` raw losses of R runs (seeds).
      smoothed: ``(R, N)`` smoothed losses.
      valid: ``(R, N)`` False after a run diverged.
      suggestions: optional ``{name: lr}`` to mark.
      ax: Axes to draw into; a new figure is made when None.
      title: optional title.

    Returns:
      The Axes drawn into.
    """
    lrs = np.asarray(learning_rates, dtype=float)
    loss, smoothed = np.atleast_2d(loss).astype(float), np.atleast_2d(smoothed).astype(float)
    valid = np.atleast_2d(valid).astype(bool)
    if not (loss.shape == smoothed.shape == valid.shape and loss.shape[1:] == lrs.shape):
        raise ValueError(
            f"loss, smoothed and valid must all have shape (runs, {lrs.size}), got "
            f"{loss.shape}, {smoothed.shape} and {valid.shape}"
        )
    ax = new_axes() if ax is None else ax
    for raw, ok in zip(loss, valid, strict=True):
        ax.plot(lrs[ok], raw[ok], color="0.6", alpha=0.35, linewidth=0.8)
    common = valid.all(axis=0)
    ax.plot(lrs[common], smoothed[:, common].mean(axis=0), color="C0",
            label=f"smoothed loss (mean of {len(loss)})")  # fmt: skip
    if len(loss) > 1:
        alive = valid.any(axis=0)  # columns where some run is still valid
        band = np.where(valid, smoothed, np.nan)[:, alive]
        ax.fill_between(lrs[alive], np.nanmin(band, axis=0), np.nanmax(band, axis=0),
                        color="C0", alpha=0.2, label="seed range")  # fmt: skip
    label = "divergence"
    for k, ok in enumerate(valid):
        if not ok.all():
            at = int(np.argmin(ok))
            ax.plot(lrs[at], smoothed[k, max(at - 1, 0)], "x", color="C3", label=label)
            label = None
    for (name, lr), color in zip(
        (suggestions or {}).items(), itertools.cycle(["C1", "C2", "C4", "C5", "C6"]), strict=False
    ):
        ax.axvline(lr, color=color, linestyle="--", linewidth=1.0, label=f"{name}: {lr:.2g}")
    finite = smoothed[:, common]
    if finite.size:
        low, high = np.nanmin(finite), np.nanmax(finite)
        ax.set_ylim(low - 0.05 * (high - low), high + 0.25 * (high - low))
    ax.set_xscale("log")
    _style(ax, log_y=False, xlabel="learning rate", ylabel="loss")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def save(fig: Figure | Axes, path: str | os.PathLike, *, dpi: float = 110) -> str:
    """Writes ``fig`` (or the figure of an Axes) to a PNG file, creating parent folders.

    Args:
      fig: a Figure, or an Axes whose figure is saved.
      path: output file; the format follows its suffix (``.png``).
      dpi: resolution.

    Returns:
      ``path`` as a string.
    """
    fig = fig.figure if isinstance(fig, Axes) else fig
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _as_curve(steps, values) -> tuple[np.ndarray, np.ndarray]:
    steps, values = np.asarray(steps), np.asarray(values)
    if steps.ndim != 1 or steps.shape != values.shape:
        raise ValueError(
            "steps and values must be 1-D of equal length, "
            f"got shapes {steps.shape} and {values.shape}"
        )
    return steps, values


def _style(ax: Axes, *, log_y: bool, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
