"""Tests for experiments/figures.py: the single-use figures of the study's parts."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from experiments import figures
from lrjax import plotting
from tests.plotting_test import COSINE, EXPONENTIAL, STEPS, assert_png


def test_heatmap_ranges_and_scaling_draw_their_cells_segments_and_rules(tmp_path):
    ax = figures.plot_heatmap(np.array([[0.1, np.nan], [0.5, 0.6]]), ["16", "32"], ["a", "b"],
                              marks=[(1, 1)])  # fmt: skip
    assert [t.get_text() for t in ax.texts] == ["0.10", "div", "0.50", "0.60"]
    ax = figures.plot_lr_ranges({"sgd": (0.01, 0.1, 1.0)})
    assert ax.texts[0].get_text().strip() == "2.00"
    ax = figures.plot_scaling([16, 32], [0.1, 0.2], {"linear": [0.1, 0.2]})
    assert plotting.save(ax, tmp_path / "s.png").endswith("s.png")
    with pytest.raises(ValueError, match=r"values must have shape \(2, 2\), got \(1, 2\)"):
        figures.plot_heatmap(np.array([[0.1, 0.2]]), ["16", "32"], ["a", "b"])


def test_plot_gallery_lays_out_panels_and_hides_empty_cells(tmp_path):
    panels = {f"family {i}": {"cosine": COSINE, "exponential": EXPONENTIAL} for i in range(5)}
    fig = figures.plot_gallery(STEPS, panels, ncols=3, log_y=["family 1"], title="gallery")
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(panels)
    assert [ax.get_yscale() for ax in visible] == ["linear", "log", "linear", "linear", "linear"]
    assert len(fig.axes) == 6
    plotting.save(fig, tmp_path / "gallery.png", dpi=50)
    assert_png(tmp_path / "gallery.png")
    with pytest.raises(ValueError, match=r"ncols must be >= 1, got 0"):
        figures.plot_gallery(STEPS, {"a": {"c": COSINE}}, ncols=0)


def test_plot_ensemble_sizes_draws_curves_with_bands_and_baselines(tmp_path):
    sizes = np.arange(1, 4)
    ax = figures.plot_ensemble_sizes(
        sizes,
        {"snapshots": [[0.6, 0.65, 0.7], [0.62, 0.66, 0.69]], "one": [0.6, 0.61, 0.6]},
        {"cosine": [0.64, 0.66], "swa": 0.67},
    )
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["snapshots", "one", "cosine", "swa"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.61, 0.655, 0.695])
    assert ax.get_lines()[2].get_ydata()[0] == pytest.approx(0.65)  # baseline at its mean
    assert len(ax.collections) == 1 and len(ax.patches) == 1  # one seed band, one baseline band
    assert list(ax.get_xticks()) == [1, 2, 3]
    plotting.save(ax, tmp_path / "e.png")
    assert_png(tmp_path / "e.png")
    with pytest.raises(ValueError, match=r"curves\['a'\] must have shape \(seeds, 3\)"):
        figures.plot_ensemble_sizes(sizes, {"a": [1.0, 2.0]})


def test_plot_finetune_sweep_draws_a_line_per_decay_and_dashed_references(tmp_path):
    lrs = np.array([1e-3, 1e-2, 1e-1])
    scores = np.array([[[0.5, 0.7, 0.6], [0.6, 0.8, 0.6]], [[0.4, 0.6, 0.9], [0.4, 0.6, 0.7]]])
    ax = figures.plot_finetune_sweep(
        lrs, [1.0, 0.5], scores, references={"from scratch": [[0.3, 0.4, 0.5]]}
    )
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["LLRD γ=1"].get_ydata(), [0.55, 0.75, 0.6])
    np.testing.assert_allclose(lines["LLRD γ=0.5"].get_ydata(), [0.4, 0.6, 0.8])
    assert lines["from scratch"].get_linestyle() == "--"
    assert ax.get_xscale() == "log"
    plotting.save(ax, tmp_path / "ft.png")
    assert_png(tmp_path / "ft.png")
    with pytest.raises(ValueError, match=r"scores must have shape \(3, seeds, 3\)"):
        figures.plot_finetune_sweep(lrs, [1.0, 0.8, 0.5], scores)


def test_ensemble_size_axis_reads_left_to_right():
    ax = figures.plot_ensemble_sizes([1, 2, 3, 4], {"ens": [0.8, 0.85, 0.86, 0.87]})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert ax.get_xlim()[0] < ax.get_xlim()[1]
    with pytest.raises(ValueError, match=r"sizes must increase left to right, got \[4.0, 3.0"):
        figures.plot_ensemble_sizes([4, 3, 2, 1], {"ens": [0.8, 0.85, 0.86, 0.87]})


def test_legends_below_gallery_panels_stay_within_their_panel(tmp_path):
    # long labels (as lrjax.get calls in the gallery) go into one column instead of spilling
    # into the neighbouring panel; short ones keep two columns
    long = {f'get("warmup_cosine_decay", warmup=.{i})': COSINE * (i + 1) for i in range(4)}
    short = {f"power {i}": COSINE * (i + 1) for i in range(4)}
    fig = figures.plot_gallery(STEPS, {"long": long, "short": short, "more": short}, ncols=3)
    plotting.save(fig, tmp_path / "gallery.png", dpi=80)
    renderer = fig._get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_legend()._ncols for ax in axes] == [1, 2, 2]
    for ax in axes:
        legend = ax.get_legend().get_window_extent(renderer)
        panel = ax.get_window_extent(renderer)
        tick_labels = 50 * fig.dpi / 72  # the y tick labels and label left of the axes
        assert legend.x0 >= panel.x0 - tick_labels and legend.x1 <= panel.x1 + 2, ax.get_title()
