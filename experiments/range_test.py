"""The LR range-test part: the classic test (vectorized over seeds) and the parallel test.

The classic test ramps the LR exponentially within one training run per seed
(`lrjax.lr_finder.model_range_test`); the parallel test (`lrjax.lr_finder.parallel_range_test`)
trains each LR of a log grid, fixed, for a short budget from scratch, all in one
`lrjax.sweep.train` run, and suggests the LR of the lowest validation loss. Each suggestion is
compared with the best LR the schedule comparison (part 3) found for the same model on
validation, read from its summary.json. See `experiments/configs/range_test.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from matplotlib.figure import Figure

from experiments import results, study
from experiments.schedule_comparison import load_data
from lrjax import lr_finder as rt
from lrjax import plotting, sweep


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Runs both tests into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train, **config.get("resnet", {}))
    momentum = config["momentum"]

    c = config["classic"]
    start = time.perf_counter()
    classic = rt.model_range_test(
        model,
        study.LOSS,
        (ds.x_train, ds.y_train),
        optimizer=optax.sgd,
        optimizer_hparams={"momentum": momentum},
        start_lr=c["start_lr"],
        end_lr=c["end_lr"],
        num_steps=c["num_steps"],
        batch_size=config["batch_size"],
        seeds=config["seeds"],
    )
    classic_s = time.perf_counter() - start
    suggestions = classic.suggestions()
    results.write_csv(
        out / "classic.csv",
        {
            "step": np.arange(classic.learning_rates.size),
            "learning_rate": classic.learning_rates,
            **{f"loss_seed{s}": classic.loss[i] for i, s in enumerate(classic.seeds)},
            **{f"smoothed_seed{s}": classic.smoothed[i] for i, s in enumerate(classic.seeds)},
            **{f"valid_seed{s}": classic.valid[i].astype(int) for i, s in enumerate(classic.seeds)},
        },
    )

    p = config["parallel"]
    start = time.perf_counter()
    parallel = rt.parallel_range_test(
        model,
        study.LOSS,
        (ds.x_train, ds.y_train),
        (ds.x_val, ds.y_val),
        learning_rates=np.logspace(*p["log10_range"], p["num_lrs"]),
        num_steps=p["num_steps"],
        batch_size=config["batch_size"],
        seeds=config["seeds"],
        optimizer_hparams={"momentum": momentum},
        metrics={"accuracy": sweep.accuracy},
    )
    res = parallel.sweep
    parallel_s = time.perf_counter() - start
    labels = [
        {"learning_rate": float(lr), "seed": s}
        for s in config["seeds"]
        for lr in parallel.learning_rates
    ]
    results.write_jsonl(out / "parallel_metrics.jsonl", results.member_rows(res, labels))
    all_suggestions = {**suggestions, "parallel (min val loss)": parallel.suggestion()}

    reference = None
    if "compare_with" in config:
        summary_path = out.parent / config["compare_with"] / "summary.json"
        reference = _part3_best(summary_path, config["model"])
    config = {**config, "dataset_name": ds.name}
    _figure(config, out, classic, suggestions, parallel, reference)
    table = _table(all_suggestions, reference)
    (out / "table.md").write_text(table)
    results.write_json(
        out / "summary.json",
        {
            "model": config["model"],
            "classic": {
                "suggestions": suggestions,
                "divergence_lr": _nan_to_none(classic.divergence_lr),
            },
            "parallel": {
                "learning_rates": parallel.learning_rates.tolist(),
                "val_loss_mean": _nan_to_none(parallel.final_loss.mean(axis=0)),
                "val_acc_mean": parallel.final_metrics["accuracy"].mean(axis=0).tolist(),
                "suggestion": parallel.suggestion(),
                "diverged": parallel.diverged.tolist(),
            },
            "part3_reference": reference,
        },
    )
    results.write_timings(out, {"classic": classic_s, "parallel": parallel_s})
    return _report(
        config, classic, parallel, table, reference, results.read_json(out / "summary.json")
    )


def _part3_best(path: Path, model: str) -> dict[str, Any] | None:
    """Best LR of the constant family and of the best family for `model`, from part 3."""
    if not path.exists():
        return None
    summary = results.read_json(path)
    m = summary.get("models", {}).get(model)
    if m is None:
        return None
    best = m["best_family"]
    return {
        "constant_lr": m["families"]["constant"]["best_lr"]
        if "constant" in m["families"]
        else None,
        "best_family": best,
        "best_family_lr": m["families"][best]["best_lr"],
        "grid": m["peak_lrs"],
        "num_steps": summary["num_steps"],
    }


def conclusion(summary: dict[str, Any]) -> str:
    """How close each suggestion lands to part 3's best constant LR, from `summary.json` alone
    ("" without part 3's result).

    The noise is part 3's grid resolution: its best LR is only known to half a grid step, so a
    suggestion within half a step of it agrees with it.
    """
    ref = summary["part3_reference"]
    if ref is None:
        return ""
    target = ref["constant_lr"] if ref["constant_lr"] is not None else ref["best_family_lr"]
    what = "best constant LR" if ref["constant_lr"] is not None else "best LR of its winner"
    grid = np.log10(np.asarray(ref["grid"], dtype=float))
    half_step = float(np.min(np.diff(grid))) / 2
    rules = {
        **summary["classic"]["suggestions"],
        "parallel (min val loss)": summary["parallel"]["suggestion"],
    }
    off = {name: float(np.log10(lr / target)) for name, lr in rules.items()}
    close = [f"{name} ({d:+.2f})" for name, d in off.items() if abs(d) <= half_step]
    nearest = min(off, key=lambda name: abs(off[name]))
    if close:
        verdict = (
            f"Within the noise of part 3's {what} ({target:.3g}): {', '.join(close)} decades; "
            "the other rules are further off."
        )
    else:
        verdict = (
            f"No suggestion lands within the noise of part 3's {what} ({target:.3g}); the "
            f"nearest is {nearest} ({off[nearest]:+.2f} decades)."
        )
    return f"{verdict} Noise: half a step of part 3's LR grid, {half_step:.2f} decades."


def _decades(a: float, b: float | None) -> str:
    return "—" if b is None else f"{np.log10(a / b):+.2f}"


def _table(suggestions: dict[str, float], ref: dict[str, Any] | None) -> str:
    if ref is None:
        header = ["rule", "suggested LR"]
        rows = [[name, f"{lr:.3g}"] for name, lr in suggestions.items()]
    else:
        fam = study.FAMILY_LABELS[ref["best_family"]]
        header = [
            "rule",
            "suggested LR",
            f"decades from part-3 best constant LR ({ref['constant_lr']:.3g})",
            f"decades from part-3 best LR of the winner, {fam} ({ref['best_family_lr']:.3g})",
        ]
        rows = [
            [
                name,
                f"{lr:.3g}",
                _decades(lr, ref["constant_lr"]),
                _decades(lr, ref["best_family_lr"]),
            ]
            for name, lr in suggestions.items()
        ]
    return results.markdown_table(header, rows)


def _figure(config, out, classic, suggestions, parallel, ref) -> None:
    fig = Figure(figsize=(13.0, 5.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    c = config["classic"]
    plotting.plot_range_test(
        classic.learning_rates,
        classic.loss,
        classic.smoothed,
        classic.valid,
        suggestions=suggestions,
        ax=left,
        title=f"classic: exponential ramp over {c['num_steps']} steps, "
        f"{len(config['seeds'])} seeds",
    )
    marks = {"parallel suggestion (min)": parallel.suggestion()}
    if ref is not None:
        marks["part-3 best constant LR"] = ref["constant_lr"]
    plotting.plot_lr_sweep(
        parallel.learning_rates,
        {"validation loss": parallel.final_loss},
        ax=right,
        ylabel=f"validation loss after {config['parallel']['num_steps']} steps",
        title=f"parallel: {parallel.learning_rates.size} fixed LRs × {len(config['seeds'])} "
        "seeds, one run",
        best="min",
        marks=marks,
    )
    right.set_xlabel("learning rate (fixed)")
    fig.suptitle(f"LR range tests, {config['model_title']}, SGD momentum {config['momentum']}")
    plotting.save(fig, out / "range_tests.png", dpi=config["dpi"])


def _report(config, classic, parallel, table, ref, summary) -> str:
    c, p = config["classic"], config["parallel"]
    div = classic.divergence_lr
    div_text = (
        f"the runs diverged at LR {', '.join(f'{v:.2g}' for v in div if np.isfinite(v))}"
        if np.isfinite(div).any()
        else "no run diverged"
    )
    lines = [
        f"{config['model_title']} on {config['dataset_name']}, SGD with momentum "
        f"{config['momentum']}, batch "
        f"{config['batch_size']}, seeds {config['seeds']}.",
        "",
        f"- **Classic** (Smith 2017): the LR grows exponentially from {c['start_lr']:g} to "
        f"{c['end_lr']:g} over {c['num_steps']} steps, one run per seed, all seeds in one "
        f"compiled program; {div_text}. Suggestions use the mean smoothed "
        "training loss (`robust` uses the seed band).",
        f"- **Parallel**: {parallel.learning_rates.size} fixed LRs from "
        f"{parallel.learning_rates[0]:.2g} to {parallel.learning_rates[-1]:.2g}, each trained "
        f"{p['num_steps']} steps from scratch, as one `lrjax.sweep.train` run of "
        f"{parallel.learning_rates.size * len(config['seeds'])} members; "
        f"suggestion = the LR of the lowest mean validation loss: {parallel.suggestion():.3g}.",
        "",
        "![range tests](range_tests.png)",
        "",
    ]
    if ref is None and "compare_with" not in config:
        lines += [
            "This part trains a model that part 3 (schedule comparison) does not, so the "
            "suggestions are not compared with a sweep's best LR.",
            "",
        ]
    elif ref is None:
        lines += [
            "Part 3 (schedule comparison) has no result for this model in this results folder, "
            "so the suggestions are not compared with a sweep's best LR; run "
            "`make experiment CONFIG=schedule_comparison,range_test` to add the comparison.",
            "",
        ]
    else:
        lines += [
            f"Each suggestion against the best peak LR that part 3 found on validation for the "
            f"same model after {ref['num_steps']} steps (grid "
            f"{', '.join(f'{v:g}' for v in ref['grid'])}, so ±0.25 decades is within the grid's "
            "resolution): positive = the suggestion is larger.",
            "",
            conclusion(summary),
            "",
        ]
    lines += [table]
    return "\n".join(lines)


def _nan_to_none(values) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values)]
