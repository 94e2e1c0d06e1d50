"""Figures that serve one part of the study each, from recorded arrays (they never train).

The general plots (schedules, range tests, LR sweeps, curves, PBT lineages) are lrjax's, in
:mod:`lrjax.plotting`; these six draw one part's result each and live with the study, as flax
keeps an example's code in the example's folder:

* :func:`plot_gallery`: the schedule gallery's grid of panels (part ``schedules``);
* :func:`plot_lr_ranges`: the range of good LRs per optimizer and schedule (``optimizers``);
* :func:`plot_heatmap` and :func:`plot_scaling`: batch size × LR, and the best LR against the
  linear and square-root rules (``batch_size``);
* :func:`plot_ensemble_sizes`: a score against the number of snapshots (``snapshots``);
* :func:`plot_finetune_sweep`: fine-tuning accuracy per layer-wise LR decay (``finetune``).

They take an optional matplotlib ``ax`` and return it (:func:`plot_gallery` returns its
figure); :func:`lrjax.plotting.save` writes the PNG.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from lrjax.plotting import (
    _STEP_LABEL,
    _band,
    _band_alpha,
    _line_styles,
    _style,
    new_axes,
    plot_lr_sweep,
    plot_schedules,
)

__all__ = [
    "plot_ensemble_sizes",
    "plot_finetune_sweep",
    "plot_gallery",
    "plot_heatmap",
    "plot_lr_ranges",
    "plot_scaling",
]


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


def plot_ensemble_sizes(
    sizes: ArrayLike,
    curves: Mapping[str, ArrayLike],
    baselines: Mapping[str, ArrayLike] | None = None,
    *,
    ax: Axes | None = None,
    xlabel: str = "number of snapshots m",
    ylabel: str = "test accuracy",
    title: str | None = None,
    legend_fontsize: str | float = "x-small",
) -> Axes:
    """Draws a score against ensemble size, with baselines as horizontal lines.

    Args:
      sizes: ``(M,)`` ensemble sizes (e.g. the last ``m = 1..M`` snapshots).
      curves: label -> scores ``(S, M)`` of S seeds (or ``(M,)``): mean line with markers,
        min-max band over seeds.
      baselines: label -> scores ``(S,)`` (or a scalar) of methods without a size: a
        horizontal line at the mean, a band from the lowest to the highest seed.
      ax: Axes to draw into; a new figure is made when None.
      xlabel, ylabel, title: labels.
      legend_fontsize: legend font size.

    Returns:
      The Axes drawn into.
    """
    x = np.asarray(sizes, dtype=float)
    if x.ndim != 1 or np.any(np.diff(x) <= 0):
        raise ValueError(f"sizes must increase left to right, got {x.tolist()}")
    ax = new_axes() if ax is None else ax
    styles = _line_styles(len(curves) + len(baselines or {}))
    for (label, values), (color, _) in zip(curves.items(), styles, strict=False):
        v = np.atleast_2d(np.asarray(values, dtype=float))
        if v.shape[1:] != x.shape:
            raise ValueError(f"curves[{label!r}] must have shape (seeds, {x.size}), got {v.shape}")
        mean, lo, hi = _band(v)
        ax.plot(x, mean, "o-", color=color, label=label, linewidth=1.6, markersize=4)
        if len(v) > 1:
            ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
    for (label, values), (color, _) in zip(
        (baselines or {}).items(), styles[len(curves) :], strict=True
    ):
        v = np.asarray(values, dtype=float).reshape(-1, 1)
        mean, lo, hi = _band(v)
        ax.axhline(mean[0], color=color, linestyle="--", linewidth=1.2, label=label)
        if len(v) > 1 and np.isfinite(mean[0]):
            alpha = _band_alpha(len(baselines), base=0.08)
            ax.axhspan(lo[0], hi[0], color=color, alpha=alpha, linewidth=0)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    _style(ax, log_y=False, xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    if curves or baselines:
        ax.legend(fontsize=legend_fontsize)
    return ax


def plot_lr_ranges(
    ranges: Mapping[str, tuple[float, float, float]],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str = "learning rate",
) -> Axes:
    """Draws one horizontal log-x segment per label: a range of good LRs and the best LR in it.

    Args:
      ranges: label -> ``(low, best, high)`` learning rates, drawn top to bottom in order; the
        width in decades is written at the right end.
      ax: Axes to draw into; a new figure is made when None.
      title: optional title.
      xlabel: x axis label.

    Returns:
      The Axes drawn into.
    """
    ax = new_axes() if ax is None else ax
    for i, (low, best, high) in enumerate(ranges.values()):
        y = -i
        ax.plot([low, high], [y, y], color=f"C{i % 10}", linewidth=4, solid_capstyle="butt")
        ax.plot([best], [y], "o", color="k", markersize=4)
        ax.annotate(f" {math.log10(high / low):.2f}", (high, y), va="center", fontsize="x-small")
    ax.set_yticks([-i for i in range(len(ranges))], list(ranges), fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    if title:
        ax.set_title(title, fontsize="medium")
    return ax


def plot_scaling(
    batch_sizes: ArrayLike,
    measured: ArrayLike,
    predictions: Mapping[str, ArrayLike],
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draws the measured best LR per batch size against scaling-rule predictions (log-log).

    Args:
      batch_sizes: ``(B,)`` batch sizes.
      measured: ``(B,)`` best learning rate measured at each batch size.
      predictions: rule name -> ``(B,)`` predicted learning rates (dashed lines).
      ax: Axes to draw into; a new figure is made when None.
      title: optional title.

    Returns:
      The Axes drawn into.
    """
    ax = new_axes() if ax is None else ax
    b = np.asarray(batch_sizes, dtype=float)
    ax.plot(b, np.asarray(measured, dtype=float), "o-", color="k", label="measured best LR")
    for (name, values), color in zip(
        predictions.items(), itertools.cycle(["C0", "C1", "C2", "C3"]), strict=False
    ):
        ax.plot(b, np.asarray(values, dtype=float), "--", color=color, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(b, [f"{int(v)}" for v in b])
    _style(ax, log_y=True, xlabel="batch size", ylabel="best peak learning rate")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_heatmap(
    values: ArrayLike,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    ax: Axes | None = None,
    xlabel: str = "learning rate",
    ylabel: str = "batch size",
    cbar_label: str = "validation accuracy",
    title: str | None = None,
    marks: Sequence[tuple[int, int]] = (),
    fmt: str = "{:.2f}",
    vmin: float | None = None,
) -> Axes:
    """Draws a 2-D grid of scores with each cell's value written in it.

    Args:
      values: ``(R, C)`` scores; non-finite cells (diverged) are grey and marked "div".
      row_labels: R labels (y axis, top to bottom).
      col_labels: C labels (x axis).
      ax: Axes to draw into; a new figure is made when None.
      xlabel, ylabel, cbar_label, title: labels.
      marks: ``(row, col)`` cells to outline (e.g. the best LR of each row).
      fmt: format of the cell text.
      vmin: lower end of the color scale (default: the lowest finite value).

    Returns:
      The Axes drawn into.
    """
    v = np.asarray(values, dtype=float)
    if v.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"values must have shape ({len(row_labels)}, {len(col_labels)}), got {v.shape}"
        )
    ax = new_axes() if ax is None else ax
    masked = np.ma.masked_invalid(v)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.8")
    image = ax.imshow(masked, cmap=cmap, aspect="auto", vmin=vmin)
    ax.figure.colorbar(image, ax=ax, label=cbar_label)
    low, high = image.get_clim()
    for (r, c), value in np.ndenumerate(v):
        text = fmt.format(value) if np.isfinite(value) else "div"
        light = np.isfinite(value) and value < low + 0.6 * (high - low)
        ax.text(c, r, text, ha="center", va="center", fontsize="x-small",
                color="w" if light else "k")  # fmt: skip
    for r, c in marks:
        ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                                  edgecolor="C3", linewidth=2.0))  # fmt: skip
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def plot_finetune_sweep(
    learning_rates: ArrayLike,
    layer_decays: Sequence[float],
    scores: ArrayLike,
    *,
    references: Mapping[str, ArrayLike] | None = None,
    ax: Axes | None = None,
    ylabel: str = "validation accuracy",
    title: str | None = None,
) -> Axes:
    """Draws fine-tuning accuracy against peak LR, one line per layer-wise LR decay factor.

    Args:
      learning_rates: ``(L,)`` the peak-LR grid.
      layer_decays: ``(D,)`` the LLRD factors :math:`\\gamma` (see :mod:`lrjax.param_groups`).
      scores: ``(D, S, L)`` scores of S seeds per factor and LR (mean line, min-max band).
      references: optional ``{label: (S, L)}`` drawn dashed in grey tones (e.g. a frozen
        backbone, training from scratch).
      ax: Axes to draw into; a new figure is made when None.
      ylabel: y axis label.
      title: optional title.

    Returns:
      The Axes drawn into.
    """
    lrs = np.asarray(learning_rates, dtype=float)
    v = np.asarray(scores, dtype=float)
    if v.ndim != 3 or v.shape[0] != len(layer_decays) or v.shape[2] != lrs.size:
        raise ValueError(
            f"scores must have shape ({len(layer_decays)}, seeds, {lrs.size}), got {v.shape}"
        )
    ax = plot_lr_sweep(
        lrs,
        {f"LLRD γ={g:g}": v[i] for i, g in enumerate(layer_decays)},
        ax=ax,
        ylabel=ylabel,
        title=title,
        legend_fontsize="small",
    )
    for (label, ref), color in zip(
        (references or {}).items(), itertools.cycle(["0.35", "0.6", "0.8"]), strict=False
    ):
        mean, lo, hi = _band(np.atleast_2d(np.asarray(ref, dtype=float)))
        ok = np.isfinite(mean)
        ax.plot(lrs, mean, "--", color=color, marker="x", label=label, linewidth=1.2)
        if np.atleast_2d(ref).shape[0] > 1 and ok.any():
            ax.fill_between(lrs[ok], lo[ok], hi[ok], color=color, alpha=0.15, linewidth=0)
    ax.legend(fontsize="small")
    return ax
