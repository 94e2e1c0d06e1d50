"""The schedule-gallery part: build each configured schedule, evaluate it on a grid, plot it.

`build` turns a JSON spec into a schedule, `evaluate` runs one jitted, vmapped call over a step
grid, and `run` writes the gallery (see `experiments/configs/schedules.py` for what it holds).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import figures, results
from lrjax import plotting, schedules


def build(spec: Any) -> Any:
    """Builds `{"fn": NAME, "args": {...}}` as `lrjax.schedules.NAME(**args)`, nested specs first.

    Lists are built element-wise; anything else is returned unchanged.
    """
    if isinstance(spec, dict) and "fn" in spec:
        fn = getattr(schedules, spec["fn"], None)
        if not callable(fn):
            raise ValueError(f"spec fn must name a function of lrjax.schedules, got {spec['fn']!r}")
        return fn(**{k: build(v) for k, v in spec.get("args", {}).items()})
    if isinstance(spec, list):
        return [build(v) for v in spec]
    return spec


def step_grid(total_steps: int) -> np.ndarray:
    """Steps 0, 1, ..., total_steps (inclusive: the last entry is one past the final update)."""
    return np.arange(total_steps + 1, dtype=np.int32)


def evaluate(schedule: Any, steps: Sequence[int] | np.ndarray) -> np.ndarray:
    """Returns `schedule(step)` for every step, from one jitted, vmapped call (float32)."""
    values = jax.jit(jax.vmap(schedule))(jnp.asarray(steps, dtype=jnp.int32))
    return np.asarray(values)


def entries(config: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(family, entry) for every schedule of the config, secondary curves included, in order."""
    return [
        (fam, e) for fam in config["families"] for e in fam["schedules"] + fam.get("secondary", [])
    ]


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Writes the gallery into `out_dir` and returns the body of its report section."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = step_grid(config["total_steps"])
    all_entries = entries(config)
    ids = [e["id"] for _, e in all_entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"schedule ids must be unique, got duplicates in {ids}")

    start = time.perf_counter()
    values = {e["id"]: evaluate(build(e["spec"]), steps) for _, e in _progress(all_entries)}
    eval_s = time.perf_counter() - start
    results.write_csv(out / "values.csv", {"step": steps, **values})

    panels, log_y = {}, []
    for fam in config["families"]:
        curves = {e["label"]: values[e["id"]] for e in fam["schedules"]}
        secondary = {e["label"]: values[e["id"]] for e in fam.get("secondary", [])}
        marks = fam.get("marks")
        ax = plotting.plot_schedules(
            steps,
            curves,
            title=fam["title"],
            log_y=fam["log_y"],
            secondary=secondary or None,
            vlines=build(marks["spec"]) if marks else (),
            vlines_label=marks["label"] if marks else None,
            legend_below=True,
            zoom=fam.get("zoom"),
            ax=plotting.new_axes((7.0, 4.8)),
        )
        plotting.save(ax, out / fam["file"], dpi=config["dpi"])
        panels[fam["title"]] = curves
        if fam["log_y"]:
            log_y.append(fam["title"])
    fig = figures.plot_gallery(
        steps,
        panels,
        ncols=config["ncols"],
        log_y=log_y,
        title=f"lrjax schedules (T = {config['total_steps']}, W = {config['warmup_steps']})",
    )
    plotting.save(fig, out / "overview.png", dpi=config["dpi"])

    table = _table(config, all_entries, values)
    (out / "table.md").write_text(table)
    bad = [i for i, v in values.items() if not np.all(np.isfinite(v))]
    results.write_json(
        out / "summary.json",
        {
            "families": len(config["families"]),
            "schedules": len(values),
            "total_steps": config["total_steps"],
            "non_finite": bad,
        },
    )
    results.write_timings(out, {"evaluating every schedule, compiles included": eval_s})
    return _report(config, table, bad, len(values))


def _progress(items):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra, like matplotlib
        return items
    return tqdm(items, desc="schedules (compile + evaluate)", unit="sched", leave=False)


def _table(config, all_entries, values) -> str:
    columns = [(name if name == str(s) else f"{name}={s}", s) for name, s in config["table_steps"]]
    header = ["family", "schedule", *[c for c, _ in columns]]
    rows = [
        [
            fam["title"].split(". ", 1)[-1],
            e["label"],
            *[float(values[e["id"]][s]) for _, s in columns],
        ]
        for fam, e in all_entries
    ]
    return results.markdown_table(header, rows)


def _report(config, table, bad, n) -> str:
    T, W, peak = config["total_steps"], config["warmup_steps"], config["peak_value"]
    lines = [
        f"Every schedule family of `lrjax.schedules` ({n} schedules in {len(config['families'])} "
        f"families), each evaluated by one jitted, vmapped call on steps 0..{T}. "
        f"Common settings: total T = {T} steps, "
        f"warmup W = {W} steps, peak {peak}. Step t is the optimizer update count (optax's "
        "convention: the LR used by update t, t = 0 first), so step T is one past the last update.",
        "",
        "![All schedule families](overview.png)",
        "",
    ]
    if bad:
        lines += [f"**Non-finite values** in: {', '.join(f'`{b}`' for b in bad)}.", ""]
    lines += [
        "Learning rate at selected steps t (every step in [values.csv](values.csv); settings in "
        "[config.json](config.json)):",
        "",
        table,
        "### One figure per family",
        "",
    ]
    for fam in config["families"]:
        lines += [f"![{fam['title']}]({fam['file']})", ""]
    return "\n".join(lines)
