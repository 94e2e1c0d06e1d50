"""Figures from recorded arrays: schedules, range tests, LR sweeps, training curves, PBT.

The general plots of lrjax's tools: a schedule or a family of them, a range test with its
suggestions, a score against a log-LR grid with seed bands, curves against steps, and a PBT
lineage with the schedules it discovered. Figures that serve one part of the study live with
the study (``experiments/figures.py``).

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
    "plot_curves",
    "plot_lr_sweep",
    "plot_pbt_lineage",
    "plot_pbt_schedules",
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
    styles = _line_styles(len(curves) + len(secondary or {}))
    for (label, values), (color, ls) in zip(curves.items(), styles, strict=False):
        ax.plot(*_as_curve(steps, values), ls, color=color, label=label, linewidth=1.4)
    for i, x in enumerate(vlines):
        ax.axvline(
            x, color="0.5", linestyle=":", linewidth=1.0, label=vlines_label if i == 0 else None
        )
    _style(ax, log_y=log_y, xlabel=xlabel, ylabel=_LR_LABEL)
    if zoom is not None:
        inset = ax.inset_axes((0.55, 0.5, 0.42, 0.44))
        keep = (steps >= zoom[0]) & (steps <= zoom[1])
        for values, (color, ls) in zip(curves.values(), styles, strict=False):
            inset.plot(steps[keep], np.asarray(values)[keep], ls, color=color, linewidth=1.2)
        inset.set_title(f"steps {zoom[0]:g}–{zoom[1]:g}", fontsize="small")
        inset.tick_params(labelsize="x-small")
        inset.grid(True, alpha=0.3)
        if log_y:
            inset.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if secondary:
        twin = ax.twinx()
        for (label, values), (color, _) in zip(
            secondary.items(), styles[len(curves) :], strict=True
        ):
            twin.plot(*_as_curve(steps, values), "--", label=label, linewidth=1.2, color=color)
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
            ncols=_legend_columns(ax, labels, legend_fontsize),
            frameon=False,
        )
    elif handles:
        ax.legend(handles, labels, fontsize=legend_fontsize)
    return ax


def _legend_columns(ax: Axes, labels: Sequence[str], fontsize: str | float) -> int:
    """2 legend columns under ``ax`` when two of its longest labels fit side by side within the
    axes' width, else 1, so a legend below a panel never spills into its neighbour."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=fontsize)
    em = prop.get_size_in_points()
    measure = TextToPath().get_text_width_height_descent
    widest = max(measure(label, prop, ismath=False)[0] for label in labels)
    # The axes' share of the figure width, less about 50 pt of y tick labels and y label
    # (known before constrained layout places it, unlike ax.get_position()).
    spec = ax.get_subplotspec()
    share = 1.0 if spec is None else len(spec.colspan) / spec.get_gridspec().ncols
    width = ax.figure.get_figwidth() * 72.0 * share - 50.0
    # each column: handle (2 em) and its padding (0.8 em) then the text; 2 em between columns
    return 2 if 2 * (widest + 2.8 * em) + 2 * em <= width else 1


def plot_range_test(
    learning_rates: ArrayLike,
    loss: ArrayLike,
    smoothed: ArrayLike,
    valid: ArrayLike,
    *,
    suggestions: Mapping[str, float] | None = None,
    skip_start: int | None = None,
    skip_end: int = 5,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Draws an LR range test as fastai does: loss against a log-x learning rate, its ends cut.

    Takes the arrays of a :class:`lrjax.lr_finder.RangeTestResult` (``result.learning_rates``,
    ``result.loss``, ``result.smoothed``, ``result.valid``). The first ``skip_start`` points and
    the last ``skip_end`` are left out (fastai's ``plot_lr_find``; the same defaults as
    :meth:`~lrjax.lr_finder.RangeTestResult.suggestions`). Each run's raw loss is drawn
    faintly, the mean smoothed loss over runs as a line with a band from the lowest to the
    highest run, each run's divergence point as a cross; the y-limits come from the part before
    divergence, so the blow-up does not flatten the curve. A suggestion is a dashed vertical line
    with its value in the legend, drawn only when it lies inside the swept (shown) range; one
    outside is named in the legend as such.

    Args:
      learning_rates: ``(N,)`` the LR of each step.
      loss: ``(R, N)`` raw losses of R runs (seeds).
      smoothed: ``(R, N)`` smoothed losses.
      valid: ``(R, N)`` False after a run diverged.
      suggestions: optional ``{name: lr}`` to mark.
      skip_start: points left out at the start (default ``N // 10``).
      skip_end: points left out at the end, ``>= 0``.
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
    n = lrs.size
    skip_start = n // 10 if skip_start is None else skip_start
    if (
        not (isinstance(skip_start, int) and isinstance(skip_end, int))
        or min(skip_start, skip_end) < 0
    ):
        raise ValueError(
            f"skip_start and skip_end must be integers >= 0, got {skip_start} and {skip_end}"
        )
    if n - skip_start - skip_end < 2:
        raise ValueError(
            f"skip_start={skip_start} and skip_end={skip_end} leave fewer than 2 of the {n} points"
        )
    shown = slice(skip_start, n - skip_end)
    lrs, loss, smoothed, valid = lrs[shown], loss[:, shown], smoothed[:, shown], valid[:, shown]
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
    low_lr, high_lr = lrs[0], lrs[-1]
    for (name, lr), color in zip(
        (suggestions or {}).items(), itertools.cycle(["C1", "C2", "C4", "C5", "C6"]), strict=False
    ):
        if low_lr <= lr <= high_lr:
            ax.axvline(lr, color=color, linestyle="--", linewidth=1.0, label=f"{name}: {lr:.2g}")
        else:
            ax.plot([], [], " ", label=f"{name}: {lr:.2g} (outside the swept range)")
    before = smoothed[valid]  # y-limits from the part before divergence
    finite = before[np.isfinite(before)]
    if finite.size:
        low, high = finite.min(), finite.max()
        ax.set_ylim(low - 0.05 * (high - low), high + 0.25 * (high - low))
    ax.set_xscale("log")
    _style(ax, log_y=False, xlabel="learning rate", ylabel="loss")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def _band(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over axis 0 of the finite entries (NaN where a column has none)."""
    ok = np.isfinite(v)
    count = ok.sum(axis=0)
    mean = np.where(count > 0, np.where(ok, v, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    lo = np.where(count > 0, np.where(ok, v, np.inf).min(axis=0), np.nan)
    hi = np.where(count > 0, np.where(ok, v, -np.inf).max(axis=0), np.nan)
    return mean, lo, hi


_STYLES = ("-", "--", "-.", ":")
# tab20 dark shades first, then the light ones, so neighbours in a legend differ most.
_TAB20_ORDER = (*range(0, 20, 2), *range(1, 20, 2))


def _line_styles(n: int) -> list[tuple[str | tuple[float, ...], str]]:
    """(color, linestyle) for n curves from a qualitative palette.

    Up to 10 curves: matplotlib's tab10 colors (``C0``..``C9``), solid. More: the 20 colors of
    tab20, each curve with its own color (up to 20) and the line styles cycling, so two curves
    never share both color and style (up to 80 curves) and neighbours differ in style too.
    """
    if n <= 10:
        return [(f"C{i}", "-") for i in range(n)]
    colors = matplotlib.colormaps["tab20"].colors
    return [(colors[_TAB20_ORDER[i % 20]], _STYLES[(i + i // 20) % len(_STYLES)]) for i in range(n)]


def _band_alpha(n: int, base: float = 0.15) -> float:
    """Opacity of one of n overlapping seed bands: lighter as more overlap, so that where all
    overlap the stack stays readable (``base`` up to 3 bands, then ``base * 3 / n``)."""
    return max(base * min(1.0, 3.0 / max(n, 1)), 0.03)


def _label_grid(ax: Axes, values: np.ndarray, max_labels: int = 8) -> None:
    """Labels every point of a short log-x grid (a 4-point grid shows all 4 values; the default
    log locator would label only the decades)."""
    values = np.unique(values[np.isfinite(values) & (values > 0)])
    if 0 < values.size <= max_labels:
        ax.set_xticks(values, [f"{v:.3g}" for v in values])
        ax.set_xticks([], minor=True)
        # a margin of 5% of the grid's span (in log space) on each side, so the labels of the
        # end points (also where a run diverged and no line is drawn) sit inside the axes
        margin = (values[-1] / values[0]) ** 0.05 if values.size > 1 else 2.0
        ax.set_xlim(values[0] / margin, values[-1] * margin)


def plot_lr_sweep(
    learning_rates: ArrayLike,
    curves: Mapping[str, ArrayLike],
    *,
    ax: Axes | None = None,
    ylabel: str = "validation accuracy",
    title: str | None = None,
    best: str | None = "max",
    marks: Mapping[str, float] | None = None,
    ylim: tuple[float, float] | None = None,
    legend_fontsize: str | float = "small",
) -> Axes:
    """Draws a score against a log-x learning-rate grid, one line per label, with seed bands.

    Args:
      learning_rates: ``(L,)`` the LR grid.
      curves: label -> scores ``(S, L)`` of S seeds (or ``(L,)``); the line is the mean over
        seeds, the band spans the lowest to the highest seed. Non-finite scores (diverged runs)
        are left out of the line and band.
      ax: Axes to draw into; a new figure is made when None.
      ylabel: y axis label.
      title: optional title.
      best: ``"max"`` or ``"min"`` marks each line's best mean with a dot; None marks nothing.
      marks: optional ``{name: lr}`` drawn as dashed vertical lines with their value.
      ylim: optional y limits.
      legend_fontsize: legend font size.

    Returns:
      The Axes drawn into.
    """
    lrs = np.asarray(learning_rates, dtype=float)
    ax = new_axes() if ax is None else ax
    alpha = _band_alpha(len(curves))
    for (label, values), (color, ls) in zip(curves.items(), _line_styles(len(curves)), strict=True):
        v = np.atleast_2d(np.asarray(values, dtype=float))
        if v.shape[1:] != lrs.shape:
            raise ValueError(
                f"curves[{label!r}] must have shape (seeds, {lrs.size}), got {v.shape}"
            )
        mean, lo, hi = _band(v)
        ok = np.isfinite(mean)
        ax.plot(lrs, mean, ls, color=color, marker=".", label=label, linewidth=1.4)
        if len(v) > 1 and ok.any():
            ax.fill_between(lrs[ok], lo[ok], hi[ok], color=color, alpha=alpha, linewidth=0)
        if best is not None and ok.any():
            masked = np.where(ok, mean if best == "max" else -mean, -np.inf)
            i = int(np.argmax(masked))
            ax.plot(lrs[i], mean[i], "o", color=color, markersize=7, markeredgecolor="k")
    for (name, lr), color in zip(
        (marks or {}).items(), itertools.cycle(["k", "C3", "C2", "C4"]), strict=False
    ):
        ax.axvline(lr, color=color, linestyle="--", linewidth=1.0, label=f"{name}: {lr:.2g}")
    ax.set_xscale("log")
    _label_grid(ax, lrs)
    if ylim is not None:
        ax.set_ylim(*ylim)
    _style(ax, log_y=False, xlabel="peak learning rate", ylabel=ylabel)
    if title:
        ax.set_title(title)
    if curves or marks:
        ax.legend(fontsize=legend_fontsize)
    return ax


def plot_curves(
    steps: ArrayLike,
    curves: Mapping[str, ArrayLike],
    *,
    ax: Axes | None = None,
    xlabel: str = _STEP_LABEL,
    ylabel: str = "training loss",
    title: str | None = None,
    log_y: bool = False,
    smooth: int = 1,
    drawstyle: str = "default",
    ylim: tuple[float, float] | None = None,
    legend_fontsize: str | float = "small",
) -> Axes:
    """Draws recorded curves against steps (or trials), one line per label, with seed bands.

    Args:
      steps: ``(T,)`` x values shared by all curves.
      curves: label -> values ``(S, T)`` of S seeds (or ``(T,)``); mean line, min-max band.
      ax: Axes to draw into; a new figure is made when None.
      xlabel: x axis label.
      ylabel: y axis label.
      title: optional title.
      log_y: logarithmic y axis.
      smooth: width of a centred moving average applied for display (1 = none), e.g. for
        per-batch training losses.
      drawstyle: matplotlib drawstyle, e.g. ``"steps-post"`` for best-so-far curves.
      ylim: optional y limits.
      legend_fontsize: legend font size.

    Returns:
      The Axes drawn into.
    """
    x = np.asarray(steps)
    ax = new_axes() if ax is None else ax
    alpha = _band_alpha(len(curves))
    for (label, values), (color, ls) in zip(curves.items(), _line_styles(len(curves)), strict=True):
        v = np.atleast_2d(np.asarray(values, dtype=float))
        if v.shape[1:] != x.shape:
            raise ValueError(f"curves[{label!r}] must have shape (seeds, {x.size}), got {v.shape}")
        if smooth > 1:
            kernel = np.ones(smooth) / smooth
            v = np.stack([np.convolve(row, kernel, mode="same") for row in v])
            # Edges of a "same" convolution average in zeros: drop them.
            v[:, : smooth // 2] = np.nan
            v[:, v.shape[1] - smooth // 2 :] = np.nan
        mean, lo, hi = _band(v)
        ax.plot(x, mean, ls, color=color, label=label, linewidth=1.3, drawstyle=drawstyle)
        if len(v) > 1:
            step = "post" if "steps" in drawstyle else None
            ax.fill_between(x, lo, hi, color=color, alpha=alpha, linewidth=0, step=step)
    _style(ax, log_y=log_y, xlabel=xlabel, ylabel=ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(fontsize=legend_fontsize)
    return ax


def save(fig: Figure | Axes, path: str | os.PathLike, *, dpi: float = 110) -> str:
    """Writes ``fig`` (or the figure of an Axes) to a PNG file, creating parent folders.

    Args:
      fig: a Figure, or an Axes whose figure is saved.
      path: output file; the format follows its suffix (``.png``).
      dpi: resolution.

    Returns:
      ``path`` as a string. A PNG holds no time stamp or software version, so saving the same
      figure again gives the same bytes.
    """
    fig = fig.figure if isinstance(fig, Axes) else fig
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # No "Software" entry (the matplotlib version): the same figure gives the same bytes, so a
    # re-run of the study leaves the committed PNGs unchanged.
    metadata = {"Software": None} if path.lower().endswith(".png") else None
    fig.savefig(path, dpi=dpi, metadata=metadata)
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


# -----------------------------------------------------------------------------------------------
# Population-based training


def plot_pbt_schedules(
    steps: ArrayLike,
    parents: ArrayLike,
    values: ArrayLike,
    num_steps: int,
    members: Mapping[str, int],
    *,
    ax: Axes | None = None,
    log_y: bool = True,
    reference: Mapping[str, ArrayLike] | None = None,
    ylabel: str = _LR_LABEL,
    title: str | None = None,
    legend_fontsize: str | float = "small",
) -> Axes:
    """Draws the schedules PBT discovered: a hyperparameter along the line of chosen members.

    Args:
      steps: ``[E + 1]`` the first step of each segment (``PBT.steps``).
      parents: ``[K, E]`` whose state each member continued from at each event
        (``PBT.parents``).
      values: ``[K, E + 1]`` the hyperparameter of each member in each segment
        (``PBT.values[name]``).
      num_steps: the length of the run.
      members: legend label -> final member whose line (:func:`lrjax.pbt.ancestry`) is drawn.
      ax: Axes to draw into; a new figure is made when None.
      log_y: logarithmic y axis.
      reference: legend label -> ``[num_steps]`` values drawn dashed (e.g. a fixed schedule).
      ylabel: y axis label.
      title: axes title.
      legend_fontsize: legend font size.

    Returns:
      The Axes drawn into; exploit/explore events are dotted vertical lines.
    """
    from lrjax.pbt import lineage_schedule

    ax = new_axes() if ax is None else ax
    t = np.arange(num_steps)
    for label, k in members.items():
        ax.step(t, lineage_schedule(steps, parents, values, k, num_steps), where="post",
                label=label, linewidth=1.4)  # fmt: skip
    for label, curve in (reference or {}).items():
        ax.plot(*_as_curve(t, curve), "--", color="0.3", linewidth=1.2, label=label)
    for i, x in enumerate(np.asarray(steps)[1:]):
        ax.axvline(x, color="0.6", linestyle=":", linewidth=0.8,
                   label="exploit/explore" if i == 0 else None)  # fmt: skip
    _style(ax, log_y=log_y, xlabel=_STEP_LABEL, ylabel=ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=legend_fontsize)
    return ax


def plot_pbt_lineage(
    steps: ArrayLike,
    parents: ArrayLike,
    values: ArrayLike,
    num_steps: int,
    *,
    ax: Axes | None = None,
    highlight: Sequence[int] = (),
    log_color: bool = True,
    label: str = "learning rate",
    title: str | None = None,
) -> Axes:
    """Draws a PBT lineage tree: one row per member slot, colored by its hyperparameter.

    Each member is a horizontal bar per segment, colored by ``values`` (log scale by
    default); an arrow at an event goes from the donor's row to the member that copied it.
    The lines of the ``highlight`` members (:func:`lrjax.pbt.ancestry`) are drawn in black.

    Args:
      steps: ``[E + 1]`` the first step of each segment (``PBT.steps``).
      parents: ``[K, E]`` (``PBT.parents``).
      values: ``[K, E + 1]`` (``PBT.values[name]``).
      num_steps: the length of the run.
      ax: Axes to draw into; a new figure is made when None.
      highlight: final members whose lines are traced.
      log_color: color by the logarithm of the value.
      label: the colorbar's label.
      title: axes title.

    Returns:
      The Axes drawn into.
    """
    from lrjax.pbt import ancestry

    ax = new_axes() if ax is None else ax
    steps, parents = np.asarray(steps), np.asarray(parents)
    values = np.asarray(values, np.float64)
    k, e = parents.shape
    if values.shape != (k, e + 1) or steps.shape != (e + 1,):
        raise ValueError(
            f"steps [E + 1], parents [K, E] and values [K, E + 1] disagree: got shapes "
            f"{steps.shape}, {parents.shape} and {values.shape}"
        )
    bounds = np.append(steps, num_steps)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (1.0, 2.0)
    norm_cls = matplotlib.colors.LogNorm if log_color and low > 0 else matplotlib.colors.Normalize
    norm = norm_cls(vmin=low, vmax=high if high > low else low * 1.0001 + 1e-12)
    cmap = matplotlib.colormaps["viridis"]
    for row in range(k):
        for j in range(e + 1):
            ax.plot(bounds[j : j + 2], [row, row], color=cmap(norm(values[row, j])),
                    linewidth=4, solid_capstyle="butt")  # fmt: skip
    for j in range(e):
        for row in np.flatnonzero(parents[:, j] != np.arange(k)):
            arrow = {"arrowstyle": "->", "color": "0.45", "linewidth": 0.7}
            xy, donor = (steps[j + 1], row), (steps[j + 1], parents[row, j])
            ax.annotate("", xy=xy, xytext=donor, arrowprops=arrow)
    for member in highlight:
        slots = ancestry(parents, member)
        xs, ys = [], []
        for j, slot in enumerate(slots):
            xs += [bounds[j], bounds[j + 1]]
            ys += [slot, slot]
        ax.plot(xs, ys, color="black", linewidth=1.2)
    mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.figure.colorbar(mappable, ax=ax, label=label)
    ax.set_xlim(0, num_steps)
    ax.set_ylim(-0.7, k - 0.3)
    ax.set_xlabel(_STEP_LABEL)
    ax.set_ylabel("member")
    if title:
        ax.set_title(title)
    return ax
