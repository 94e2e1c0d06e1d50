"""The optimizers part: LR sensitivity of eight optax optimizers, constant LR vs a schedule.

One `lrjax.sweep.train` run per optimizer (different optimizer factories are different
programs): its members are {constant, warmup + cosine} × a common log grid of LRs × seeds, the
schedule picked per member by `schedule_family_switch`. Sensitivity = the width, in decades, of
the LR range whose mean validation accuracy stays within `tolerance` of the optimizer's best
(`experiments.study.lr_sensitivity`). See `experiments/configs/optimizers.py`.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from matplotlib.figure import Figure

from experiments import figures, results, study
from experiments.schedule_comparison import choose, load_data
from lrjax import plotting, schedules, sweep


def optimizer_factory(spec: dict[str, Any]):
    """`optax.<fn>` with the spec's static (non-injectable) arguments bound."""
    fn = getattr(optax, spec["fn"])
    return functools.partial(fn, **spec["static"]) if spec.get("static") else fn


def train_optimizer(config, spec, model, ds) -> dict[str, Any]:
    """One run: schedules × LRs × seeds for one optimizer; arrays shaped [2, L, S]."""
    lrs, seeds, T = config["learning_rates"], config["seeds"], config["num_steps"]
    names = config["schedules"]
    n_sched, L, S = len(names), len(lrs), len(seeds)
    sched_idx, lr_idx, seed_idx = study.member_grid(n_sched, L, S)
    member_seeds = np.asarray(seeds, np.int32)[seed_idx]
    kwargs = dict(spec.get("kwargs", {}))
    warmup = config["warmup_fraction"]

    def optimizer_kwargs(hp):
        candidates = {
            "constant": schedules.constant(hp["lr"]),
            "warmup_cosine": schedules.warmup_cosine_decay(hp["lr"], warmup, T),
        }
        lr = sweep.schedule_family_switch(hp["schedule"], [candidates[n] for n in names])
        return {"learning_rate": lr, **kwargs}

    res = study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=optimizer_factory(spec),
        hparams={
            "schedule": sched_idx.astype(np.int32),
            "lr": np.asarray(lrs, np.float32)[lr_idx],
        },
        optimizer_kwargs=optimizer_kwargs,
        num_steps=T,
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
    )
    test = study.evaluate(model, res.params, ds.x_test, ds.y_test)
    shape = (n_sched, L, S)
    labels = [
        {"optimizer": spec["name"], "schedule": names[a], "learning_rate": lrs[b], "seed": seeds[c]}
        for a, b, c in zip(sched_idx, lr_idx, seed_idx, strict=True)
    ]
    return {
        "result": res,
        "labels": labels,
        "val_acc": res.eval_metrics["accuracy"][:, -1].reshape(shape),
        "test_acc": test["accuracy"].reshape(shape),
        "diverged": res.diverged.reshape(shape),
    }


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Runs every optimizer of the config into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train)
    lrs = np.asarray(config["learning_rates"])
    names, tol = config["schedules"], config["tolerance"]
    rows, summary, curves, ranges, rows_meta = [], {}, {n: {} for n in names}, {}, []
    all_rows, seconds = [], {}
    for spec in config["optimizers"]:
        start = time.perf_counter()
        grid = train_optimizer(config, spec, model, ds)
        seconds[spec["name"]] = round(time.perf_counter() - start, 1)
        all_rows += results.member_rows(grid["result"], grid["labels"])
        best = choose(grid["val_acc"], grid["diverged"])
        summary[spec["name"]] = {}
        for i, sched in enumerate(names):
            val = np.where(grid["diverged"][i], np.nan, grid["val_acc"][i])  # [L, S]
            mean = np.where(grid["diverged"][i].any(axis=-1), np.nan, val.mean(axis=-1))
            width, lo, hi = study.lr_sensitivity(lrs, mean, tol)
            b = int(best[i])
            test = grid["test_acc"][i, b]
            s = {
                "best_lr": float(lrs[b]),
                "val_acc_mean": float(mean[b]),
                "val_acc_std": float(np.nanstd(val[b])),
                "test_acc_mean": float(test.mean()),
                "test_acc_std": float(test.std()),
                "width_decades": width,
                "range": [lo, hi],
                "diverged_members": int(grid["diverged"][i].sum()),
                "members": int(grid["diverged"][i].size),
                "val_acc_grid": [None if not np.isfinite(v) else float(v) for v in mean],
            }
            summary[spec["name"]][sched] = s
            curves[sched][spec["name"]] = val.T
            ranges[f"{spec['name']} ({config['schedule_labels'][sched]})"] = (lo, s["best_lr"], hi)
            rows_meta.append((spec["name"], sched, s))
    results.write_jsonl(out / "metrics.jsonl", all_rows)
    for opt, sched, s in rows_meta:
        rows.append(
            [
                opt,
                config["schedule_labels"][sched],
                f"{s['best_lr']:.3g}",
                round(s["val_acc_mean"], 3),
                f"{s['test_acc_mean']:.3f} ± {s['test_acc_std']:.3f}",
                f"{s['range'][0]:.2g}–{s['range'][1]:.2g}",
                round(s["width_decades"], 2),
                f"{s['diverged_members']}/{s['members']}",
            ]
        )
    table = results.markdown_table(
        [
            "optimizer",
            "schedule",
            "best LR (val)",
            "val acc",
            f"test acc (mean ± std, {len(config['seeds'])} seeds)",
            f"LR range within {tol * 100:g} pt of best",
            "width (decades)",
            "diverged",
        ],
        rows,
    )
    (out / "table.md").write_text(table)
    _figures(config, out, lrs, curves, ranges)
    summary = {"optimizers": summary, "val_examples": len(ds.y_val)}
    results.write_json(out / "summary.json", summary)
    results.write_timings(out, seconds)
    return _report(config, summary, table)


def _figures(config, out, lrs, curves, ranges) -> None:
    names = config["schedules"]
    fig = Figure(figsize=(6.5 * len(names), 5.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names), sharey=True))
    for ax, sched in zip(axes, names, strict=True):
        plotting.plot_lr_sweep(
            lrs,
            curves[sched],
            ax=ax,
            title=f"{config['schedule_labels'][sched]}: validation accuracy vs LR",
            legend_fontsize="x-small",
        )
        ax.set_xlabel("learning rate (peak)")
    plotting.save(fig, out / "val_acc_vs_lr.png", dpi=config["dpi"])
    ax = figures.plot_lr_ranges(
        ranges,
        title=f"LR range within {config['tolerance'] * 100:g} accuracy point of each "
        "optimizer's best (dot = best LR)",
        ax=plotting.new_axes((8.0, 0.5 + 0.32 * len(ranges))),
    )
    plotting.save(ax, out / "sensitivity.png", dpi=config["dpi"])


def conclusion(config: dict[str, Any], summary: dict[str, Any]) -> str:
    """The report's verdict, from the config and `summary.json` alone.

    A difference of validation accuracy counts only beyond the noise: the larger seed standard
    deviation of the two results compared, at least one validation example.
    """
    names, opts, n = config["schedules"], summary["optimizers"], summary["val_examples"]
    flat = sorted(
        ((opt, s, v) for opt, per in opts.items() for s, v in per.items()),
        key=lambda t: -t[2]["val_acc_mean"],
    )
    best, runner_up, worst = flat[0], flat[1], flat[-1]
    widest = max(flat, key=lambda t: t[2]["width_decades"])
    narrowest = min(flat, key=lambda t: t[2]["width_decades"])
    lab = config["schedule_labels"]
    b, r = best[2], runner_up[2]
    gap = b["val_acc_mean"] - r["val_acc_mean"]
    level = results.noise(b["val_acc_std"], r["val_acc_std"], examples=n)
    lines = [
        f"**Best**: {best[0]} with {lab[best[1]]} (test {b['test_acc_mean']:.3f} ± "
        f"{b['test_acc_std']:.3f} at LR {b['best_lr']:.3g}), {gap * 100:.1f} validation points "
        f"ahead of {runner_up[0]} with {lab[runner_up[1]]}, {results.beyond(gap, level)} "
        f"({level * 100:.1f} points). **Worst**: {worst[0]} with {lab[worst[1]]} (test "
        f"{worst[2]['test_acc_mean']:.3f}). **Least sensitive**: {widest[0]} "
        f"({lab[widest[1]]}, {widest[2]['width_decades']:.2f} decades); **most sensitive**: "
        f"{narrowest[0]} ({lab[narrowest[1]]}, {narrowest[2]['width_decades']:.2f} decades)."
    ]
    if len(names) > 1:
        verdicts: dict[str, list[str]] = {"better": [], "tie": [], "worse": []}
        for opt, per in opts.items():
            s, c = per[names[1]], per[names[0]]
            diff = s["val_acc_mean"] - c["val_acc_mean"]
            if abs(diff) <= results.noise(s["val_acc_std"], c["val_acc_std"], examples=n):
                verdicts["tie"].append(opt)
            else:
                verdicts["better" if diff > 0 else "worse"].append(opt)
        parts = [
            f"{len(v)} ({', '.join(v)}) {what}"
            for key, what in (
                ("better", "beat the constant LR by more than the noise"),
                ("tie", "were within the noise of it"),
                ("worse", "lost to it by more than the noise"),
            )
            if (v := verdicts[key])
        ]
        lines.append(
            f"On validation, {lab[names[1]]} against {lab[names[0]]} for the {len(opts)} "
            f"optimizers: {'; '.join(parts)}."
        )
    lines.append(
        f"Noise: the larger seed standard deviation of the two results compared "
        f"({len(config['seeds'])} seeds), at least one of the {n} validation examples "
        f"({100 / n:.1f} points)."
    )
    return " ".join(lines)


def _report(config, summary, table) -> str:
    names, tol = config["schedules"], config["tolerance"]
    lab = config["schedule_labels"]
    lrs = config["learning_rates"]
    return "\n".join(
        [
            f"{len(config['optimizers'])} optax optimizers on the MLP (MNIST-1D), batch "
            f"{config['batch_size']}, "
            f"T = {config['num_steps']} steps, each with {' and '.join(lab[n] for n in names)}, "
            f"over one common log LR grid ({len(lrs)} LRs from {lrs[0]:g} to {lrs[-1]:g}) × "
            f"{len(config['seeds'])} seeds: one `sweep.train` run per optimizer. Best LR chosen "
            "on validation; "
            f"**sensitivity** = width in decades of the LR range whose mean validation accuracy "
            f"is within {tol * 100:g} point of that optimizer's best (interpolated in log LR "
            "between grid points; 0 = only the best grid point qualifies). With 500 validation "
            "examples one point is 5 examples, so widths are noisy to about ±0.25 decades.",
            "",
            conclusion(config, summary),
            "",
            table,
            "![validation accuracy vs LR per optimizer](val_acc_vs_lr.png)",
            "",
            "![LR sensitivity](sensitivity.png)",
            "",
            "Optimizer settings: " + "; ".join(_describe(s) for s in config["optimizers"]) + ".",
        ]
    )


def _describe(spec) -> str:
    args = {**spec.get("kwargs", {}), **spec.get("static", {})}
    inner = ", ".join(f"{k}={v}" for k, v in args.items())
    return f"{spec['name']} = `optax.{spec['fn']}({inner})`"
