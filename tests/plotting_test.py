"""Tests for lrjax.plotting: every function draws recorded arrays and writes a PNG."""

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes

from lrjax import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = np.arange(101)
COSINE = 0.5 * (1 + np.cos(np.pi * STEPS / 100))
EXPONENTIAL = 0.01 ** (STEPS / 100)


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 1000


def test_plot_schedule_returns_axes_and_saves_png(tmp_path):
    ax = plotting.plot_schedule(STEPS, COSINE, label="cosine")
    assert isinstance(ax, Axes)
    assert [line.get_label() for line in ax.get_lines()] == ["cosine"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), COSINE)
    assert ax.get_xlabel() and ax.get_ylabel() == "learning rate"
    path = plotting.save(ax, tmp_path / "sub" / "cosine.png")
    assert_png(tmp_path / "sub" / "cosine.png")
    assert path == str(tmp_path / "sub" / "cosine.png")


def test_plot_schedule_draws_into_given_axes_with_log_y():
    ax = plotting.new_axes()
    assert plotting.plot_schedule(STEPS, EXPONENTIAL, ax=ax, log_y=True) is ax
    assert ax.get_yscale() == "log"
    assert ax.get_legend() is None  # no label, no legend


def test_plot_schedules_legend_secondary_marks_and_zoom(tmp_path):
    ax = plotting.plot_schedules(
        STEPS,
        {"cosine": COSINE, "exponential": EXPONENTIAL},
        title="two",
        log_y=True,
        secondary={"momentum": 0.9 + 0.05 * COSINE},
        vlines=[25, 50],
        vlines_label="snapshot",
        zoom=(0, 20),
        legend_below=True,
    )
    assert ax.get_title() == "two"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["cosine", "exponential", "snapshot", "momentum"]
    twins = [a for a in ax.figure.axes if a is not ax and a.get_ylabel() == "momentum"]
    assert len(twins) == 1
    plotting.save(ax.figure, tmp_path / "two.png")
    assert_png(tmp_path / "two.png")


def test_mismatched_arrays_raise():
    with pytest.raises(ValueError, match=r"steps and values must be 1-D of equal length"):
        plotting.plot_schedule(STEPS, COSINE[:-1])


def test_import_lrjax_does_not_import_matplotlib():
    # matplotlib is an optional extra: the core package must import without it.
    code = "import sys, lrjax; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_range_test_draws_log_x_with_suggestions_and_divergence(tmp_path):
    lrs = np.logspace(-4, 0, 50)
    smoothed = np.stack([(np.log10(lrs) + 2) ** 2, (np.log10(lrs) + 2.2) ** 2])
    valid = np.ones_like(smoothed, dtype=bool)
    valid[1, 40:] = False
    ax = plotting.plot_range_test(
        lrs, smoothed + 0.1, smoothed, valid, suggestions={"minimum": 1e-3, "valley": 3e-3}
    )
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "divergence" in labels
    assert any(label.startswith("minimum: 0.001") for label in labels)
    path = plotting.save(ax, tmp_path / "range_test.png")
    assert os.path.getsize(path) > 1000


def test_plot_range_test_follows_fastai_skips_limits_and_suggestions():
    lrs = np.logspace(-4, 1, 50)
    smoothed = np.stack([(np.log10(lrs) + 2) ** 2 + 1.0] * 2)
    valid = np.ones_like(smoothed, dtype=bool)
    valid[:, 40:] = False
    smoothed[:, 40:] = 1e6  # the blow-up after divergence
    ax = plotting.plot_range_test(
        lrs, smoothed, smoothed, valid, skip_start=3, skip_end=4,
        suggestions={"valley": 1e-2, "minimum": 1e-6},
    )  # fmt: skip
    mean_line = ax.lines[2]  # the two raw runs, then the smoothed mean
    np.testing.assert_allclose(mean_line.get_xdata(), lrs[3:40])  # skipped, and valid only
    # y-limits from the part before divergence: the blow-up does not flatten the curve
    assert ax.get_ylim()[1] < 100
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("valley: 0.01") for label in labels)
    assert "minimum: 1e-06 (outside the swept range)" in labels
    assert sum(line.get_linestyle() == "--" for line in ax.lines) == 1  # only valley is drawn
    with pytest.raises(ValueError, match="leave fewer than 2 of the 50 points"):
        plotting.plot_range_test(lrs, smoothed, smoothed, valid, skip_start=30, skip_end=20)


def test_plot_range_test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must all have shape"):
        plotting.plot_range_test(np.ones(3), np.ones((1, 3)), np.ones((1, 4)), np.ones((1, 3)))


def test_lr_sweep_and_curves_draw_seed_bands(tmp_path):
    lrs = np.array([1e-3, 1e-2, 1e-1])
    ax = plotting.plot_lr_sweep(
        lrs,
        {"a": [[0.5, 0.8, np.nan], [0.6, 0.7, np.nan]], "b": [0.4, 0.5, 0.3]},
        marks={"suggestion": 1e-2},
    )
    assert ax.get_xscale() == "log" and len(ax.collections) == 1  # one seed band
    ax = plotting.plot_curves(np.arange(10), {"x": np.ones((2, 10))}, smooth=3, log_y=True)
    assert ax.get_yscale() == "log"
    assert plotting.save(ax, tmp_path / "s.png").endswith("s.png")
    with pytest.raises(ValueError, match=r"curves\['a'\] must have shape \(seeds, 3\)"):
        plotting.plot_lr_sweep(lrs, {"a": [1.0, 2.0]})


def test_save_writes_the_same_bytes_twice_and_no_software_version(tmp_path):
    # a re-run of the study must leave the committed PNGs unchanged
    paths = []
    for name in ("a.png", "b.png"):
        ax = plotting.plot_schedules(STEPS, {"cosine": COSINE, "exp": EXPONENTIAL}, log_y=True)
        paths.append(plotting.save(ax, tmp_path / name))
    first, second = (Path(p).read_bytes() for p in paths)
    assert first == second
    assert b"Software" not in first and b"atplotlib" not in first


def _line_keys(ax):
    from matplotlib.colors import to_hex

    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    return [(to_hex(ln.get_color()), ln.get_linestyle()) for ln in lines]


@pytest.mark.parametrize("draw", ["schedules", "lr_sweep", "curves"])
def test_seventeen_families_get_distinct_colors_and_styles(draw):
    n = 17
    if draw == "schedules":
        ax = plotting.plot_schedules(STEPS, {f"f{i}": COSINE * (i + 1) for i in range(n)})
    elif draw == "lr_sweep":
        lrs = np.array([0.01, 0.1, 1.0])
        ax = plotting.plot_lr_sweep(lrs, {f"f{i}": np.full((2, 3), i / n) for i in range(n)})
    else:
        ax = plotting.plot_curves(STEPS, {f"f{i}": np.tile(COSINE * i, (2, 1)) for i in range(n)})
    keys = _line_keys(ax)
    assert len(keys) == n
    assert len({color for color, _ in keys}) == n  # every family its own color
    assert len({style for _, style in keys}) >= 3  # and the styles vary
    # neighbours in the legend differ in line style
    assert all(a[1] != b[1] for a, b in itertools.pairwise(keys))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"f{i}" for i in range(n)]


def test_many_overlapping_bands_are_drawn_lighter():
    lrs = np.array([0.01, 0.1, 1.0])

    def alphas(n):
        curves = {f"f{i}": np.array([[0.1, 0.5, 0.2], [0.2, 0.6, 0.3]]) for i in range(n)}
        ax = plotting.plot_lr_sweep(lrs, curves)
        return {round(c.get_alpha(), 4) for c in ax.collections}

    assert alphas(2) == {0.15}
    (many,) = alphas(12)
    assert many <= 0.04  # 12 stacked bands stay lighter than 1 band alone... and visible
    assert many > 0


def test_every_point_of_a_four_point_lr_grid_is_labelled(tmp_path):
    lrs = np.array([0.0316, 0.1, 0.316, 1.0])
    ax = plotting.plot_lr_sweep(lrs, {"a": np.array([[0.5, 0.9, 0.8, 0.1]] * 2)})
    plotting.save(ax, tmp_path / "grid.png")  # draws, so the tick labels are final
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels == ["0.0316", "0.1", "0.316", "1"]
    assert ax.get_xscale() == "log"
    # a long grid keeps matplotlib's decade labels
    long_grid = np.logspace(-4, 1, 11)
    ax = plotting.plot_lr_sweep(long_grid, {"a": np.linspace(0, 1, 11)})
    assert len(ax.get_xticks()) != 11
