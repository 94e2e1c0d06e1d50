"""The schedule-comparison part: families × peak LRs × seeds as ONE vectorized run per model.

Every member is (family, peak LR, seed); the family is picked inside the compiled program by
`lrjax.sweep.schedule_family_switch`, so all of them share one program. The best peak LR of each
family is chosen on validation accuracy (mean over seeds; an LR at which any seed diverged is
not eligible); test accuracy is computed once, for the chosen LR. See
`experiments/configs/schedule_comparison.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from matplotlib.figure import Figure

from experiments import results, study
from lrjax import data, plotting


def load_data(config: dict[str, Any]) -> data.Dataset:
    """The config's dataset (`dataset`, optional `dataset_kwargs`)."""
    return data.load(config["dataset"], **config.get("dataset_kwargs", {}))


def train_grid(config: dict[str, Any], model_name: str, ds: data.Dataset) -> dict[str, Any]:
    """Trains the family × LR × seed grid of one model; returns arrays shaped [F, L, S, ...]."""
    families, lrs, seeds = config["families"], config["peak_lrs"][model_name], config["seeds"]
    F, L, S = len(families), len(lrs), len(seeds)
    T = config["num_steps"]
    fam_idx, lr_idx, seed_idx = study.member_grid(F, L, S)
    member_seeds = np.asarray(seeds, np.int32)[seed_idx]
    build = study.family_schedules(families, T)
    momentum = config["momentum"]

    def optimizer_kwargs(hp):
        return {"learning_rate": build(hp["family"], hp["peak"]), "momentum": momentum}

    model = study.make_model(model_name, ds.x_train)
    res = study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=optax.sgd,
        hparams={
            "family": fam_idx.astype(np.int32),
            "peak": np.asarray(lrs, np.float32)[lr_idx],
        },
        optimizer_kwargs=optimizer_kwargs,
        num_steps=T,
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
    )
    test = study.evaluate(model, res.params, ds.x_test, ds.y_test)
    labels = [
        {"model": model_name, "family": families[f], "peak_lr": lrs[lr], "seed": seeds[s]}
        for f, lr, s in zip(fam_idx, lr_idx, seed_idx, strict=True)
    ]
    shape = (F, L, S)
    return {
        "result": res,
        "labels": labels,
        "val_acc": res.eval_metrics["accuracy"][:, -1].reshape(shape),
        "val_acc_curve": res.eval_metrics["accuracy"].reshape(*shape, -1),
        "test_acc": test["accuracy"].reshape(shape),
        "diverged": res.diverged.reshape(shape),
        "loss": res.loss.reshape(*shape, -1),
        "lr_used": res.learning_rate.reshape(*shape, -1),
    }


def choose(val_acc: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """Best LR index per family [F]: highest mean val accuracy over seeds, no seed diverged."""
    score = np.where(diverged.any(axis=-1), -np.inf, val_acc.mean(axis=-1))
    return np.argmax(score, axis=-1)


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Runs every model of the config into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    ds = load_data(config)
    families = config["families"]
    labels = [study.FAMILY_LABELS[f] for f in families]
    summary: dict[str, Any] = {"models": {}, "num_steps": config["num_steps"]}
    lines, timings = [_intro(config, ds)], {}
    for model_name in config["models"]:
        start = time.perf_counter()
        grid = train_grid(config, model_name, ds)
        res = grid["result"]
        timings[f"{model_name} run"] = time.perf_counter() - start
        timings[f"{model_name} compiling"] = res.metadata["compile_seconds"]
        results.write_jsonl(
            out / f"metrics_{model_name}.jsonl", results.member_rows(res, grid["labels"])
        )
        lrs = np.asarray(config["peak_lrs"][model_name])
        best = choose(grid["val_acc"], grid["diverged"])
        target = config["target_accuracy"][model_name]
        rows, fam_summary = [], {}
        for f, name in enumerate(families):
            b = int(best[f])
            test = grid["test_acc"][f, b]
            reach = study.steps_to_target(res.eval_steps, grid["val_acc_curve"][f, b], target)
            div = grid["diverged"][f]
            fam_summary[name] = {
                "best_lr": float(lrs[b]),
                "val_acc_mean": float(grid["val_acc"][f, b].mean()),
                "val_acc_std": float(grid["val_acc"][f, b].std()),
                "test_acc_mean": float(test.mean()),
                "test_acc_std": float(test.std()),
                "test_acc_seeds": test.tolist(),
                "steps_to_target": reach.tolist(),
                "diverged_members": int(div.sum()),
                "members": int(div.size),
                "val_acc_grid": grid["val_acc"][f].mean(axis=-1).tolist(),
            }
            rows.append(_row(labels[f], fam_summary[name], lrs, div))
        order = sorted(
            range(len(families)), key=lambda f: -fam_summary[families[f]]["val_acc_mean"]
        )
        table = results.markdown_table(
            [
                "family",
                "best peak LR (val)",
                "val acc",
                f"test acc (mean ± std, {len(config['seeds'])} seeds)",
                f"steps to {target:.0%} val acc",
                "diverged members (LRs)",
            ],
            [rows[f] for f in order],
        )
        (out / f"table_{model_name}.md").write_text(table)
        files = _figures(config, out, model_name, grid, best, labels, lrs, res.eval_steps)
        winner = families[order[0]]
        summary["models"][model_name] = {
            "families": fam_summary,
            "ranking": [families[f] for f in order],
            "best_family": winner,
            "target_accuracy": target,
            "peak_lrs": lrs.tolist(),
            "seeds": config["seeds"],
            "val_examples": len(ds.y_val),
            "members": res.num_members,
        }
        lines += _model_section(
            config, model_name, res, table, files, summary["models"][model_name]
        )
    results.write_json(out / "summary.json", summary)
    results.write_timings(out, timings)
    return "\n".join(lines)


def _row(label, s, lrs, diverged) -> list[Any]:
    reached = [r for r in s["steps_to_target"] if r >= 0]
    n = len(s["steps_to_target"])
    if len(reached) == n:
        steps = f"{np.mean(reached):.0f}"
    elif reached:
        steps = f"{np.mean(reached):.0f} ({len(reached)}/{n} seeds)"
    else:
        steps = "not reached"
    div_lrs = sorted({f"{lrs[i]:.2g}" for i in np.flatnonzero(diverged.any(axis=-1))}, key=float)
    div = f"{s['diverged_members']}/{s['members']}" + (
        f" ({', '.join(div_lrs)})" if div_lrs else ""
    )
    test = f"{s['test_acc_mean']:.3f} ± {s['test_acc_std']:.3f}"
    return [label, f"{s['best_lr']:.3g}", round(s["val_acc_mean"], 3), test, steps, div]


def _figures(config, out, model_name, grid, best, labels, lrs, eval_steps) -> dict[str, str]:
    dpi = config["dpi"]
    title = config["model_titles"][model_name]
    files = {}
    val = np.where(grid["diverged"], np.nan, grid["val_acc"])  # [F, L, S]
    curves = {lab: val[f].T for f, lab in enumerate(labels)}
    ax = plotting.plot_lr_sweep(
        lrs,
        curves,
        ylabel="validation accuracy after the budget",
        title=f"{title}: validation accuracy vs peak LR (band: seed min–max)",
        legend_fontsize="x-small",
        ax=plotting.new_axes((8.0, 5.5)),
    )
    files["val_acc"] = plotting.save(ax, out / f"val_acc_vs_lr_{model_name}.png", dpi=dpi)

    steps = np.arange(config["num_steps"])
    fig = Figure(figsize=(13.0, 5.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    pick = {lab: (f, int(best[f])) for f, lab in enumerate(labels)}
    plotting.plot_curves(
        steps,
        {f"{lab} @ {lrs[b]:.2g}": grid["loss"][f, b] for lab, (f, b) in pick.items()},
        ax=left,
        log_y=True,
        smooth=config["smooth"],
        title=f"training loss at each family's best LR (moving average of {config['smooth']})",
        legend_fontsize="x-small",
    )
    plotting.plot_curves(
        eval_steps,
        {lab: grid["val_acc_curve"][f, b] for lab, (f, b) in pick.items()},
        ax=right,
        ylabel="validation accuracy",
        title="validation accuracy at each family's best LR",
        legend_fontsize="x-small",
    )
    files["curves"] = plotting.save(fig, out / f"loss_curves_{model_name}.png", dpi=dpi)

    lr_curves = {f"{lab} @ {lrs[b]:.2g}": grid["lr_used"][f, b, 0] for lab, (f, b) in pick.items()}
    ax = plotting.plot_schedules(
        steps,
        lr_curves,
        title=f"{title}: LR each update used (from the optimizer state)",
        log_y=True,
        legend_fontsize="x-small",
        legend_below=True,
        ax=plotting.new_axes((8.0, 6.5)),
    )
    files["lr_used"] = plotting.save(ax, out / f"lr_used_{model_name}.png", dpi=dpi)
    return {k: Path(v).name for k, v in files.items()}


def _intro(config, ds) -> str:
    T, lrs = config["num_steps"], config["peak_lrs"]
    grids = "; ".join(f"{m}: {', '.join(f'{v:g}' for v in lrs[m])}" for m in config["models"])
    return (
        f"{len(config['families'])} schedule families × peak LRs × {len(config['seeds'])} seeds, "
        f"SGD with momentum {config['momentum']}, batch {config['batch_size']}, T = {T} steps "
        f"each, on {ds!r}. Each model is ONE `lrjax.sweep.train` run: the family is selected per "
        "member with `schedule_family_switch`, the peak LR and seed are per-member arrays. "
        f"Peak LR grids: {grids}. The best LR of each family is chosen on **validation** "
        "accuracy after T steps (mean over seeds; an LR where any seed diverged is not "
        "eligible); the test accuracy of that LR is reported once. Per-step training loss, LR "
        "actually used and validation accuracy of every member are in `metrics_<model>.jsonl`.\n"
    )


def conclusion(model: dict[str, Any]) -> str:
    """The report's verdict on one model, from its summary (`summary["models"][name]`) alone.

    The best family is called best only when it leads the runner-up on validation by more than
    the noise: the larger seed standard deviation of the two, at least one validation example.
    """
    fam, (winner, runner_up, *_) = model["families"], model["ranking"]
    loser = model["ranking"][-1]
    w, r, lo = fam[winner], fam[runner_up], fam[loser]
    spread = w["test_acc_mean"] - lo["test_acc_mean"]
    gap = w["val_acc_mean"] - r["val_acc_mean"]
    level = results.noise(w["val_acc_std"], r["val_acc_std"], examples=model["val_examples"])
    close = [
        study.FAMILY_LABELS[k]
        for k in model["ranking"]
        if w["val_acc_mean"] - fam[k]["val_acc_mean"]
        <= results.noise(w["val_acc_std"], fam[k]["val_acc_std"], examples=model["val_examples"])
    ]
    label = study.FAMILY_LABELS
    if gap > level:
        verdict = (
            f"{label[winner]} leads the runner-up, {label[runner_up]}, by {gap * 100:.1f} "
            f"validation points, more than the noise ({level * 100:.1f} points): it is the best "
            "family here."
        )
    else:
        verdict = (
            f"**No family is clearly best**: {label[winner]} leads the runner-up, "
            f"{label[runner_up]}, by {gap * 100:.1f} validation points, within the noise "
            f"({level * 100:.1f} points). Families within the noise of the best: "
            f"{', '.join(close)}."
        )
    return (
        f"**Best on validation: {label[winner]}** at peak LR {w['best_lr']:.3g}: "
        f"test accuracy {w['test_acc_mean']:.3f} ± {w['test_acc_std']:.3f}. "
        f"**Worst: {label[loser]}** ({lo['test_acc_mean']:.3f} ± "
        f"{lo['test_acc_std']:.3f} test), {spread * 100:.1f} points behind. {verdict} Noise: "
        f"the larger seed standard deviation of validation accuracy of the two families "
        f"compared ({len(model['seeds'])} seeds), at least one of the {model['val_examples']} "
        "validation examples."
    )


def _model_section(config, model_name, res, table, files, model):
    title = config["model_titles"][model_name]
    return [
        f"### {title}",
        "",
        f"{res.num_members} members in one run.",
        "",
        conclusion(model),
        "",
        table,
        f"![validation accuracy vs peak LR, {title}]({files['val_acc']})",
        "",
        f"![loss curves at the best LR, {title}]({files['curves']})",
        "",
        f"![learning rates used, {title}]({files['lr_used']})",
        "",
    ]
