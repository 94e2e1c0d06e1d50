"""The halving part: the full LR × schedule grid against successive halving and Hyperband.

Per seed, the same grid (families × peak LRs, K members) trains three times with
:func:`lrjax.sweep.train`: every member to the end; with :class:`lrjax.SuccessiveHalving`
(validation accuracy at each rung, the best 1/η continue re-packed into a smaller program);
and with Hyperband's brackets (the same hook, ``bracket=k % B``). Each run's answer is its best
member on final validation accuracy among those trained to the end; its test accuracy is
computed once. See `experiments/configs/halving.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import optax
from matplotlib.figure import Figure

import lrjax
from experiments import results, study
from experiments.schedule_comparison import load_data
from lrjax import plotting, sweep

METHODS = ("full", "halving", "hyperband")
LABELS = {
    "full": "full grid",
    "halving": "successive halving",
    "hyperband": "Hyperband (brackets)",
}


def verdict(summary: dict[str, Any], method: str = "halving", floor: float = 0.01) -> str:
    """The verdict sentence, chosen from the test accuracies of the chosen configurations and
    the member-steps spent: ``method`` "matches" the full grid when the gap of the mean test
    accuracies is within the noise (the larger seed standard deviation, at least ``floor``).

    Examples:
      >>> def s(h, f, steps):
      ...     return {"methods": {"halving": {"test_acc_seeds": h, "member_steps": steps},
      ...                         "full": {"test_acc_seeds": f, "member_steps": 100}}}
      >>> verdict(s([0.90, 0.91], [0.905, 0.91], 16)).split(":")[0]
      '**Successive halving matches the full grid at 16% of its member-steps**'
      >>> verdict(s([0.80, 0.81], [0.90, 0.91], 16)).split(":")[0]
      '**Successive halving loses to the full grid at 16% of its member-steps**'
    """
    h, f = summary["methods"][method], summary["methods"]["full"]
    a, b = np.asarray(h["test_acc_seeds"]), np.asarray(f["test_acc_seeds"])
    gap = float(a.mean() - b.mean())
    spread = max(float(a.std()), float(b.std()), floor)
    share = 100 * h["member_steps"] / f["member_steps"]
    if abs(gap) <= spread:
        outcome = "matches"
    elif gap > 0:
        outcome = "beats"
    else:
        outcome = "loses to"
    return (
        f"**{LABELS[method].capitalize()} {outcome} the full grid at {share:.0f}% of its "
        f"member-steps**: test accuracy of the chosen configuration {a.mean():.3f} ± "
        f"{a.std():.3f} vs {b.mean():.3f} ± {b.std():.3f} ({gap * 100:+.1f} points; noise "
        f"±{spread * 100:.1f} points: the seed spread, at least 1)."
    )


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Trains the grid three ways per seed; returns the report body."""
    out = Path(out_dir)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train)
    families, T = list(config["families"]), config["num_steps"]
    lrs = np.geomspace(*config["lr_range"], config["num_lrs"]).astype(np.float32)
    f_idx, l_idx = study.member_grid(len(families), len(lrs))
    k = len(f_idx)
    build = study.family_schedules(families, T)

    def optimizer_kwargs(hp):
        return {"learning_rate": build(hp["family"], hp["peak"]), "momentum": config["momentum"]}

    def hook(method):
        if method == "full":
            return None
        bracket = None if method == "halving" else np.arange(k) % config["brackets"]
        return lrjax.SuccessiveHalving(
            "accuracy", eta=config["eta"], min_steps=config["min_steps"], mode="max",
            bracket=bracket,
        )  # fmt: skip

    runs, timings, rows = {m: [] for m in METHODS}, {}, []
    for seed in config["seeds"]:
        for method in METHODS:
            h = hook(method)
            start = time.perf_counter()
            res = study.train_members(
                model, ds, member_seeds=np.full(k, seed, np.int32), optimizer=optax.sgd,
                hparams={"family": f_idx.astype(np.int32), "peak": lrs[l_idx]},
                optimizer_kwargs=optimizer_kwargs, num_steps=T, batch_size=config["batch_size"],
                eval_every=config["eval_every"],
                options=sweep.Options(progress=False, hooks=[] if h is None else [h]),
            )  # fmt: skip
            seconds = time.perf_counter() - start
            timings[f"{method}, seed {seed}"] = seconds
            stopped = np.full(k, -1) if h is None else h.stopped_step
            spent = k * T if h is None else h.member_steps
            val = res.eval_metrics["accuracy"]
            final = np.where((stopped < 0) & ~res.diverged, val[:, -1], -np.inf)
            chosen = int(np.argmax(final))
            test = study.evaluate(model, res.params, ds.x_test, ds.y_test)["accuracy"]
            runs[method].append({
                "seed": seed, "member_steps": int(spent), "chosen": chosen,
                "family": families[f_idx[chosen]], "peak_lr": float(lrs[l_idx[chosen]]),
                "val_acc": float(val[chosen, -1]), "test_acc": float(test[chosen]),
                "stopped_step": stopped.tolist(),
                "final_val_acc": [None if not np.isfinite(v) else float(v) for v in val[:, -1]],
                "seconds": seconds, "compile_seconds": res.metadata["compile_seconds"],
            })  # fmt: skip
            for m in range(k):
                rows.append({
                    "method": method, "seed": seed, "family": families[f_idx[m]],
                    "peak_lr": float(lrs[l_idx[m]]), "stopped_step": int(stopped[m]),
                    "eval_steps": res.eval_steps, "val_acc": val[m],
                })  # fmt: skip
    results.write_jsonl(out / "metrics.jsonl", rows)
    methods = {}
    for method in METHODS:
        seeds = runs[method]
        acc = [r["test_acc"] for r in seeds]
        methods[method] = {
            "label": LABELS[method],
            "member_steps": seeds[0]["member_steps"],
            "test_acc_seeds": acc,
            "test_acc_mean": float(np.mean(acc)),
            "test_acc_std": float(np.std(acc)),
            "chosen": [f"{r['family']} @ {r['peak_lr']:.3g}" for r in seeds],
            "same_as_full": [
                r["chosen"] == f["chosen"] for r, f in zip(seeds, runs["full"], strict=True)
            ],
        }
    summary = {
        "model": config["model"], "num_steps": T, "members": k, "families": families,
        "peak_lrs": lrs.tolist(), "seeds": config["seeds"], "eta": config["eta"],
        "rungs": lrjax.halving.geometric_rungs(config["min_steps"], config["eta"], T),
        "methods": methods,
        "runs": {m: [{key: v for key, v in r.items() if "seconds" not in key} for r in runs[m]]
                 for m in METHODS},
    }  # fmt: skip
    results.write_json(out / "summary.json", summary)
    train = {m: [r["seconds"] - r["compile_seconds"] for r in runs[m]] for m in METHODS}
    results.write_timings(out, {
        **timings, **{f"{m}: training (median over seeds, compile excluded)": np.median(t)
                      for m, t in train.items()},
    })  # fmt: skip
    table = _table(summary)
    (out / "table.md").write_text(table)
    _figure(config, out, summary)
    return "\n".join([
        f"{config['model_title']} on MNIST-1D, SGD (momentum {config['momentum']:g}), batch "
        f"{config['batch_size']}, T = {T} steps, {len(config['seeds'])} seeds. The grid: "
        f"{len(families)} schedule families ({', '.join(families)}) × {len(lrs)} peak LRs "
        f"{lrs[0]:.3g}…{lrs[-1]:.3g} = {k} members, one vectorized run per method and seed. "
        f"**Successive halving**: at rungs {summary['rungs']} the members are ranked on "
        f"validation accuracy and the best 1/{config['eta']} continue, re-packed into a smaller "
        f"compiled program (the others stop costing compute). **Hyperband**: the grid split "
        f"round-robin into {config['brackets']} brackets that halve from the first rung, the "
        "second, or never. Each run's answer is its best member on final validation accuracy "
        "among those trained to the end; test is scored once, for it. In a lockstep run every "
        "member reaches a rung together, so ASHA's promotions are exactly synchronous halving's.",
        "",
        verdict(summary) + " " + verdict(summary, "hyperband") + " " + _bias(summary),
        "",
        table,
        "![members training and final validation accuracy](halving.png)",
        "",
    ])  # fmt: skip


def _bias(summary: dict[str, Any]) -> str:
    """Which families survive halving's first rung (summed over seeds), against the families
    the full grid chose: the short-horizon bias of ranking early, in numbers."""
    families, first = summary["families"], summary["rungs"][0]
    per = len(summary["peak_lrs"])
    kept = {f: 0 for f in families}
    for r in summary["runs"]["halving"]:
        stopped = np.asarray(r["stopped_step"]).reshape(len(families), per)
        for i, f in enumerate(families):
            kept[f] += int(np.sum((stopped[i] < 0) | (stopped[i] > first)))
    chosen = [r["family"] for r in summary["runs"]["full"]]
    n = len(chosen)
    return (
        f"Survivors of halving's first rung (step {first}), by family over {n} seeds: "
        + ", ".join(f"{f} {kept[f]}" for f in families)
        + "; the full grid chose "
        + ", ".join(f"{f} {chosen.count(f)}×" for f in families if chosen.count(f))
        + " (of its seeds)."
    )


def _training(stopped: np.ndarray, num_steps: int) -> np.ndarray:
    """``[T]`` the number of members still training at each step."""
    ends = np.where(stopped < 0, num_steps, stopped)
    return (np.arange(num_steps)[None, :] < ends[:, None]).sum(axis=0)


def _table(summary: dict[str, Any]) -> str:
    full = summary["methods"]["full"]["member_steps"]
    rows = []
    for method in METHODS:
        m = summary["methods"][method]
        rows.append([
            m["label"], m["member_steps"], f"{100 * m['member_steps'] / full:.0f}%",
            f"{m['test_acc_mean']:.3f} ± {m['test_acc_std']:.3f}",
            ", ".join(f"{a:.3f}" for a in m["test_acc_seeds"]), "; ".join(m["chosen"]),
            f"{sum(m['same_as_full'])} of {len(m['same_as_full'])}",
        ])  # fmt: skip
    n = len(summary["seeds"])
    return results.markdown_table(
        ["method", "member-steps", "of the full grid", f"test acc (mean ± std, {n} seeds)",
         "per seed", "chosen (family @ peak LR) per seed", "same choice as the full grid"],
        rows,
    )  # fmt: skip


def _figure(config: dict[str, Any], out: Path, summary: dict[str, Any]) -> None:
    fig = Figure(figsize=(12.0, 4.5), layout="constrained")
    a, b = fig.subplots(1, 2)
    for method in METHODS:
        stopped = np.asarray(summary["runs"][method][0]["stopped_step"])
        a.plot(_training(stopped, summary["num_steps"]), label=LABELS[method],
               drawstyle="steps-post")  # fmt: skip
    a.set(xlabel="step", ylabel="members training",
          title=f"members still training (seed {summary['seeds'][0]})")  # fmt: skip
    a.legend(fontsize="small")
    lrs, families = np.asarray(summary["peak_lrs"]), summary["families"]
    full = summary["runs"]["full"][0]
    halved = summary["runs"]["halving"][0]
    acc = np.asarray([np.nan if v is None else v for v in full["final_val_acc"]]).reshape(
        len(families), len(lrs)
    )
    survivors = (np.asarray(halved["stopped_step"]) < 0).reshape(len(families), len(lrs))
    for f, family in enumerate(families):
        (line,) = b.plot(lrs, acc[f], marker=".", label=family)
        b.plot(
            lrs[survivors[f]], acc[f][survivors[f]], "o", mfc="none", ms=10, color=line.get_color()
        )
    b.set(xscale="log", xlabel="peak LR", ylabel="final validation accuracy (full grid)",
          title="circled: the members halving trained to the end")  # fmt: skip
    b.legend(fontsize="small")
    plotting.save(fig, out / "halving.png", dpi=config["dpi"])
