"""The batch-size part: a batch size × learning rate grid in one run, and the scaling rules.

Every member is (batch size, peak LR, seed): the engine draws batches of the largest size and
member k trains on the first `batch_sizes[k]` examples of each (masked, so its gradient is that
of a batch of its size), so the whole grid is one `lrjax.sweep.train` run. Every member takes
the same number of steps: smaller batches see fewer examples. The measured best LR per batch
size (on validation) is compared with the linear and square-root rules scaled from the
reference batch size (`experiments.study.scaling_fit`). See `experiments/configs/batch_size.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from matplotlib.figure import Figure

from experiments import figures, results, study
from experiments.schedule_comparison import choose, load_data
from lrjax import plotting, schedules


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Runs the grid into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train)
    bss, lrs, seeds, T = (
        config["batch_sizes"],
        np.asarray(config["learning_rates"]),
        config["seeds"],
        config["num_steps"],
    )
    B, L, S = len(bss), len(lrs), len(seeds)
    b_idx, l_idx, s_idx = study.member_grid(B, L, S)
    member_seeds = np.asarray(seeds, np.int32)[s_idx]
    momentum, warmup = config["momentum"], config["warmup_fraction"]

    def optimizer_kwargs(hp):
        lr = schedules.warmup_cosine_decay(hp["lr"], warmup, T)
        return {"learning_rate": lr, "momentum": momentum}

    start = time.perf_counter()
    res = study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=optax.sgd,
        hparams={"lr": lrs.astype(np.float32)[l_idx]},
        optimizer_kwargs=optimizer_kwargs,
        num_steps=T,
        batch_size=max(bss),
        batch_sizes=np.asarray(bss, np.int32)[b_idx],
        eval_every=config["eval_every"],
    )
    seconds = time.perf_counter() - start
    labels = [
        {"batch_size": bss[b], "learning_rate": float(lrs[lr]), "seed": seeds[s]}
        for b, lr, s in zip(b_idx, l_idx, s_idx, strict=True)
    ]
    results.write_jsonl(out / "metrics.jsonl", results.member_rows(res, labels))
    shape = (B, L, S)
    val = res.eval_metrics["accuracy"][:, -1].reshape(shape)
    diverged = res.diverged.reshape(shape)
    test = study.evaluate(model, res.params, ds.x_test, ds.y_test)["accuracy"].reshape(shape)
    mean = np.where(diverged.any(axis=-1), np.nan, val.mean(axis=-1))  # [B, L]
    best = choose(val, diverged)
    best_lrs = lrs[best]
    fit = study.scaling_fit(bss, best_lrs, config["reference_batch_size"])

    _figures(config, out, mean, best, bss, lrs, best_lrs, fit)
    rows = [
        [
            bss[i],
            f"{best_lrs[i]:.3g}",
            f"{fit['linear'][i]:.3g}",
            f"{fit['sqrt'][i]:.3g}",
            round(float(mean[i, best[i]]), 3),
            f"{test[i, best[i]].mean():.3f} ± {test[i, best[i]].std():.3f}",
            f"{int(diverged[i].sum())}/{diverged[i].size}",
        ]
        for i in range(B)
    ]
    ref = config["reference_batch_size"]
    table = results.markdown_table(
        [
            "batch size",
            "best peak LR (val)",
            f"linear rule from B={ref}",
            f"sqrt rule from B={ref}",
            "val acc",
            f"test acc (mean ± std, {S} seeds)",
            "diverged",
        ],
        rows,
    )
    (out / "table.md").write_text(table)
    summary = {
        "batch_sizes": bss,
        "learning_rates": lrs.tolist(),
        "best_lr": best_lrs.tolist(),
        "val_acc": [[None if not np.isfinite(v) else float(v) for v in r] for r in mean],
        "test_acc_at_best": [float(test[i, best[i]].mean()) for i in range(B)],
        "scaling": fit,
        "members": res.num_members,
    }
    results.write_json(out / "summary.json", summary)
    results.write_timings(out, {f"one run of {res.num_members} members": seconds})
    return _report(config, summary, table)


def _figures(config, out, mean, best, bss, lrs, best_lrs, fit) -> None:
    fig = Figure(figsize=(13.0, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    figures.plot_heatmap(
        mean,
        [str(b) for b in bss],
        [f"{v:.2g}" for v in lrs],
        ax=left,
        xlabel="peak learning rate",
        title=f"validation accuracy after {config['num_steps']} steps (box: best per batch size)",
        marks=[(i, int(b)) for i, b in enumerate(best)],
        vmin=max(0.1, float(np.nanmin(mean))) if np.isfinite(mean).any() else None,
    )
    ref = config["reference_batch_size"]
    figures.plot_scaling(
        bss,
        best_lrs,
        {f"linear rule (from B={ref})": fit["linear"], f"sqrt rule (from B={ref})": fit["sqrt"]},
        ax=right,
        title=f"best LR vs batch size (fitted exponent {fit['slope']:.2f})",
    )
    plotting.save(fig, out / "batch_size_lr.png", dpi=config["dpi"])


def conclusion(config: dict[str, Any], summary: dict[str, Any]) -> str:
    """Which scaling rule fits the measured best LRs, from the config and `summary.json` alone.

    The noise is the LR grid's resolution: a best LR read off the grid is uncertain by half a
    grid step, so a rule is called better only when its mean error is smaller by more than that.
    """
    fit, lrs = summary["scaling"], np.asarray(summary["learning_rates"])
    half_step = float(np.log10(lrs[1] / lrs[0])) / 2
    lin, sqrt = fit["log10_error_linear"], fit["log10_error_sqrt"]
    if abs(lin - sqrt) > half_step:
        closer = "linear" if lin < sqrt else "square-root"
        verdict = f"the {closer} rule fits better here, by more than the noise"
    else:
        verdict = "neither rule fits better by more than the noise"
    return (
        f"**Scaling rules** (from the measured best LR at B = {config['reference_batch_size']}): "
        f"the fitted exponent of best LR ∝ B^k is **k = {fit['slope']:.2f}** (linear rule: 1, "
        f"square-root rule: 0.5). Mean error: linear rule {lin:.2f} decades, square-root rule "
        f"{sqrt:.2f} decades: {verdict}. Noise: the grid's resolution, half a step of "
        f"{2 * half_step:.2f} decades = {half_step:.2f} decades."
    )


def _report(config, summary, table) -> str:
    T, members = config["num_steps"], summary["members"]
    lrs = config["learning_rates"]
    return "\n".join(
        [
            f"MLP on MNIST-1D, SGD with momentum {config['momentum']} and warmup + cosine, "
            f"batch sizes {config['batch_sizes']} × {len(lrs)} peak LRs ({lrs[0]:g} to "
            f"{lrs[-1]:g}, a quarter decade apart) × {len(config['seeds'])} seeds = {members} "
            f"members in ONE run: batches of {max(config['batch_sizes'])} are "
            "drawn and each member's loss is masked to its first B examples. All members take "
            f"the same T = {T} steps, so smaller batches see fewer examples (B = 16 sees "
            f"{16 * T / 3500:.1f} epochs, B = 256 {256 * T / 3500:.0f}).",
            "",
            conclusion(config, summary),
            "",
            "![batch size × LR](batch_size_lr.png)",
            "",
            table,
        ]
    )
