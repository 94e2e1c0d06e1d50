"""The search part: grid, random and Bayesian (TPE) search with optuna's ask/tell interface.

Each method proposes `batch` trials at a time (`study.ask()` K times); the K trials are trained
as the K members of ONE `lrjax.sweep.train` run and their validation accuracies are told back
(`study.tell`). Every round has the same shapes, so the engine compiles once for all methods.
The search space is (peak LR, warmup fraction, weight decay) of AdamW with linear warmup then
cosine decay (`experiments.study.warmup_cosine_fraction`, whose warmup fraction is traced).
optuna is optional (the `experiments` extra): without it this part writes a note and is
skipped. See `experiments/configs/search.py`.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optax

from experiments import results, study
from experiments.schedule_comparison import load_data
from lrjax import plotting, sweep


def make_sampler(optuna: Any, method: str, config: dict[str, Any]):
    """The optuna sampler of `method` ("grid", "random" or "tpe")."""
    seed = config["search_seed"]
    if method in ("grid", "random"):  # grid points are enqueued, see `grid_points`
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config["batch"])
    raise ValueError(f"method must be grid, random or tpe, got {method!r}")


def grid_points(config: dict[str, Any]) -> list[dict[str, float]]:
    """Every point of the config's grid, in a shuffled order (seeded by `search_seed`).

    optuna's GridSampler stops its study when the grid is exhausted, which only works inside
    `study.optimize`; with ask/tell the points are enqueued instead (`study.enqueue_trial`).
    """
    names = list(config["grid"])
    mesh = np.meshgrid(*[config["grid"][n] for n in names], indexing="ij")
    flat = np.stack([m.ravel() for m in mesh], axis=1)
    points = [dict(zip(names, map(float, row), strict=True)) for row in flat]
    order = np.random.default_rng(config["search_seed"]).permutation(len(points))
    return [points[i] for i in order]


def suggest(trial: Any, config: dict[str, Any]) -> dict[str, float]:
    """Samples one point of the search space (log-uniform LR and weight decay)."""
    s = config["space"]
    return {
        "lr": trial.suggest_float("lr", *s["lr"], log=True),
        "warmup": trial.suggest_float("warmup", *s["warmup"]),
        "wd": trial.suggest_float("wd", *s["wd"], log=True),
    }


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Runs every search method into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    try:
        import optuna
    except ImportError:
        note = (
            "**Skipped**: optuna is not installed. It is an optional dependency of this part; "
            "install it with `pip install 'lrjax[experiments]'` (or `pip install optuna`) and "
            "re-run `make experiment CONFIG=search`."
        )
        results.write_json(out / "summary.json", {"skipped": "optuna is not installed"})
        return note
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train)
    T, K = config["num_steps"], config["batch"]

    def optimizer_kwargs(hp):  # one function object: every round reuses the compiled program
        lr = study.warmup_cosine_fraction(hp["lr"], hp["warmup"], T)
        return {"learning_rate": lr, "weight_decay": hp["wd"]}

    trials, summary, rows, seconds = [], {}, [], {}
    for method in config["methods"]:
        start = time.perf_counter()
        with warnings.catch_warnings():
            # optuna flags some samplers' options as experimental; the study does not rely on
            # their stability across optuna versions.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = make_sampler(optuna, method, config)
            search = optuna.create_study(direction="maximize", sampler=sampler)
            if method == "grid":
                for point in grid_points(config):
                    search.enqueue_trial(point)
            for r in range(config["rounds"]):
                asked = [search.ask() for _ in range(K)]
                points = [suggest(t, config) for t in asked]
                val, test, diverged = _evaluate(config, model, ds, points, optimizer_kwargs)
                for t, p, v, te, d in zip(asked, points, val, test, diverged, strict=True):
                    score = 0.0 if d else float(v)  # a diverged trial scores like chance or worse
                    search.tell(t, score)
                    trials.append({"method": method, "round": r, **p, "val_acc": score,
                                   "test_acc": float(te), "diverged": bool(d)})  # fmt: skip
        seconds[method] = round(time.perf_counter() - start, 1)
        mine = [t for t in trials if t["method"] == method]
        best = max(mine, key=lambda t: t["val_acc"])
        summary[method] = {
            "best": best,
            "best_so_far": study.best_so_far([t["val_acc"] for t in mine]).tolist(),
            "trials": len(mine),
        }
        rows.append([
            method_label(method),
            len(mine),
            f"{best['lr']:.3g}",
            f"{best['warmup']:.2f}",
            f"{best['wd']:.2g}",
            round(best["val_acc"], 3),
            round(best["test_acc"], 3),
            sum(t["diverged"] for t in mine),
        ])  # fmt: skip
    results.write_jsonl(out / "trials.jsonl", trials)
    table = results.markdown_table(
        [
            "method",
            "trials",
            "peak LR",
            "warmup fraction",
            "weight decay",
            "best val acc",
            "its test acc",
            "diverged",
        ],
        rows,
    )
    (out / "table.md").write_text(table)
    n = config["rounds"] * K
    ax = plotting.plot_curves(
        np.arange(1, n + 1),
        {method_label(m): np.asarray(summary[m]["best_so_far"]) for m in config["methods"]},
        xlabel="trials evaluated",
        ylabel="best validation accuracy so far",
        title=f"search for AdamW (peak LR, warmup, weight decay), {K} trials per vectorized run",
        drawstyle="steps-post",
        ax=plotting.new_axes((7.5, 4.5)),
    )
    for r in range(1, config["rounds"]):
        ax.axvline(r * K + 0.5, color="0.7", linewidth=0.8, linestyle=":")
    plotting.save(ax, out / "best_so_far.png", dpi=config["dpi"])
    summary = {"methods": summary, "val_examples": len(ds.y_val)}
    results.write_json(out / "summary.json", summary)
    results.write_timings(out, seconds)
    return _report(config, summary, table)


def method_label(method: str) -> str:
    return {"grid": "grid", "random": "random (log-uniform)", "tpe": "Bayesian (optuna TPE)"}[
        method
    ]


def _evaluate(config, model, ds, points, optimizer_kwargs):
    hp = {k: np.asarray([p[k] for p in points], np.float32) for k in ("lr", "warmup", "wd")}
    res = sweep.train(
        model,
        study.LOSS,
        (ds.x_train, ds.y_train),
        optimizer=optax.adamw,
        hparams=hp,
        optimizer_kwargs=optimizer_kwargs,
        num_steps=config["num_steps"],
        batch_size=config["batch_size"],
        seeds=config["init_seed"],
        evaluation=sweep.Evaluation((ds.x_val, ds.y_val), metrics={"accuracy": sweep.accuracy}),
    )
    test = study.evaluate(model, res.params, ds.x_test, ds.y_test)["accuracy"]
    return res.eval_metrics["accuracy"][:, -1], test, res.diverged


def conclusion(summary: dict[str, Any]) -> str:
    """Which search method found the best trial, from `summary.json` alone.

    One search seed gives no spread between searches, so the noise is the validation set's own:
    the binomial standard error sqrt(p (1 - p) / n) of the best accuracy p on n examples. The
    first method is called better only when it leads the runner-up by more than that.
    """
    methods, n = summary["methods"], summary["val_examples"]
    first, second, *_, last = sorted(methods, key=lambda m: -methods[m]["best"]["val_acc"])
    best = methods[first]["best"]
    gap = best["val_acc"] - methods[second]["best"]["val_acc"]
    level = float(np.sqrt(best["val_acc"] * (1 - best["val_acc"]) / n))
    if gap > level:
        verdict = f"{method_label(first)} found the best trial"
    else:
        verdict = "no method found a clearly better trial"
    return (
        f"**Best found**: {method_label(first)} (val {best['val_acc']:.3f}, test "
        f"{best['test_acc']:.3f}), {gap * 100:.1f} points ahead of {method_label(second)}; "
        f"**last**: {method_label(last)} (val {methods[last]['best']['val_acc']:.3f}). "
        f"The lead is {results.beyond(gap, level)}: {verdict}. Noise: the binomial standard "
        f"error of the best validation accuracy on {n} examples ({level * 100:.1f} points); "
        "with one search seed, a second search could rank the methods differently."
    )


def _report(config, summary, table) -> str:
    K, R = config["batch"], config["rounds"]
    s = config["space"]
    grid = " × ".join(f"{len(v)} {k}" for k, v in config["grid"].items())
    return "\n".join(
        [
            f"AdamW on the MLP (MNIST-1D), batch {config['batch_size']}, T = "
            f"{config['num_steps']} steps, linear warmup over a fraction of T then cosine decay. "
            f"Space: peak LR in [{s['lr'][0]:g}, {s['lr'][1]:g}] (log), warmup fraction in "
            f"[{s['warmup'][0]:g}, {s['warmup'][1]:g}], weight decay in [{s['wd'][0]:g}, "
            f"{s['wd'][1]:g}] (log). Each method: {R} rounds of {K} trials asked from optuna, "
            f"each round ONE `sweep.train` run of {K} members, scores (final validation "
            f"accuracy) told back. Grid: {grid} points in a shuffled order, enqueued; "
            f"random: optuna's RandomSampler; Bayesian: TPE after {K} random start-up trials. "
            f"Init seed {config['init_seed']} for every trial; search seed "
            f"{config['search_seed']}.",
            "",
            conclusion(summary),
            "",
            table,
            "![best found vs trials](best_so_far.png)",
        ]
    )
