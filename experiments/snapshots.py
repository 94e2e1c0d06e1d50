"""The snapshot-ensemble part: snapshot ensembles vs the fair baselines, at equal total steps.

Every method spends the same T updates (per seed and peak LR):

* snapshot ensemble: M cycles of cosine (`lrjax.snapshot_ensemble`), the parameters captured
  after each cycle inside the compiled loop (`snapshot_steps`); it predicts the mean softmax of
  the last m snapshots (`lrjax.evaluate_snapshots`);
* single model: cosine decay to 0 over T;
* SWA: the same cosine until S = 0.75 T, then `lrjax.swa_schedule` (SWALR) to a constant SWA LR,
  with the equal average of the parameters every c updates from S (`swa_start`, `swa_every`);
* EMA of the parameters (`ema_decay`), read off the cosine run and the SWA run;
* independent ensemble: M models from different seeds, each trained T/M updates with cosine.

The first three are members of ONE `lrjax.sweep.train` run (the schedule is picked per member by
`schedule_family_switch`; every member also carries snapshots, the SWA average and the EMA,
which the methods read as they need); the independent models are a second run of T/M steps.
Each method's peak LR is chosen on validation accuracy (mean over seeds; an LR where any seed
diverged is not eligible); test accuracy and NLL are computed once, at that LR. See
`experiments/configs/snapshots.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from matplotlib.figure import Figure

import lrjax
from experiments import figures, results, study
from experiments.schedule_comparison import choose, load_data
from lrjax import plotting, schedules, sweep

SCHEDULES = ("snapshot", "cosine", "swa")  # the schedules of the main run, in member order

# Rows of the table: (key, label); keys index the score arrays built by `run`.
METHODS = (
    ("snapshot_ensemble", "snapshot ensemble (all M snapshots)"),
    ("last_snapshot", "last snapshot alone"),
    ("cosine", "single model, cosine"),
    ("swa", "SWA (average)"),
    ("swa_final", "SWA schedule, last iterate (no average)"),
    ("ema_cosine", "EMA of the cosine run"),
    ("ema_swa", "EMA of the SWA run"),
    ("independent", "independent ensemble of M models × T/M steps"),
    ("independent_single", "one of those models alone (mean of M)"),
)

# For a model with batch statistics, SWA is also scored with the averaged (stale) statistics.
STALE_BN = ("swa_stale_bn", "SWA with averaged BN statistics (not recomputed)")


def methods_of(model: sweep.Model) -> tuple[tuple[str, str], ...]:
    """The rows of the table for this model."""
    return (*METHODS, STALE_BN) if model.stateful else METHODS


# The baselines drawn as horizontal lines and checked against the snapshot ensemble.
BASELINES = ("cosine", "swa", "ema_cosine", "ema_swa", "independent")


def swa_start(config: dict[str, Any]) -> int:
    """The update count S at which SWA's schedule takes over and averaging starts."""
    return round(config["swa"]["start_fraction"] * config["num_steps"])


def make_schedules(config: dict[str, Any]):
    """``fn(index, peak) -> schedule``: member schedule ``SCHEDULES[index]`` at a traced peak."""
    T, M, swa = config["num_steps"], config["num_cycles"], config["swa"]
    start = swa_start(config)

    def build(index, peak):
        cosine = schedules.cosine_decay(peak, T)
        return sweep.schedule_family_switch(
            index,
            [
                schedules.snapshot_ensemble(peak, T, M),
                cosine,
                schedules.swa_schedule(cosine, start, swa["lr_factor"] * peak, swa["anneal_steps"]),
            ],
        )

    return build


def check(config: dict[str, Any]) -> None:
    """Raises ValueError unless M cycles and M independent models split T exactly."""
    T, M = config["num_steps"], config["num_cycles"]
    if T % M:
        raise ValueError(f"num_cycles {M} must divide num_steps {T} (equal budgets)")
    if not 0 < swa_start(config) < T:
        raise ValueError(f"swa start_fraction must be in (0, 1), got {config['swa']}")


def train_main(config: dict[str, Any], model: sweep.Model, ds: Any) -> sweep.SweepResult:
    """Snapshot, cosine and SWA schedules × peak LRs × seeds in one run (members [3, L, S])."""
    lrs, seeds = np.asarray(config["peak_lrs"], np.float32), config["seeds"]
    T, M, momentum = config["num_steps"], config["num_cycles"], config["momentum"]
    m_idx, l_idx, s_idx = study.member_grid(len(SCHEDULES), len(lrs), len(seeds))
    member_seeds = np.asarray(seeds, np.int32)[s_idx]
    build = make_schedules(config)

    def optimizer_kwargs(hp):
        return {"learning_rate": build(hp["schedule"], hp["peak"]), "momentum": momentum}

    return study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=optax.sgd,
        hparams={"schedule": m_idx.astype(np.int32), "peak": lrs[l_idx]},
        optimizer_kwargs=optimizer_kwargs,
        num_steps=T,
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
        trackers={
            "snapshots": lrjax.Snapshots(schedules.snapshot_steps(T, M)),
            "swa": lrjax.SWA(swa_start(config), config["swa"]["every"]),
            "ema": lrjax.EMA(config["ema_decay"]),
        },
    )


def train_independent(config: dict[str, Any], model: sweep.Model, ds: Any) -> sweep.SweepResult:
    """M models per (peak LR, seed), each T/M steps of cosine, in one run (members [L, S, M])."""
    lrs, seeds = np.asarray(config["peak_lrs"], np.float32), config["seeds"]
    M, momentum = config["num_cycles"], config["momentum"]
    steps = config["num_steps"] // M
    l_idx = study.member_grid(len(lrs), len(seeds), M)[0]
    member_seeds = independent_seeds(config)

    def optimizer_kwargs(hp):
        return {"learning_rate": schedules.cosine_decay(hp["peak"], steps), "momentum": momentum}

    return study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=optax.sgd,
        hparams={"peak": lrs[l_idx]},
        optimizer_kwargs=optimizer_kwargs,
        num_steps=steps,
        batch_size=config["batch_size"],
        eval_every=min(config["eval_every"], steps),
    )


def independent_seeds(config: dict[str, Any]) -> np.ndarray:
    """Seeds of the independent models, ``[L, S, M]`` flattened: model j of seed s is s M + j.

    So each ensemble has M distinct inits and data orders, and no two ensembles share a model.
    """
    M = config["num_cycles"]
    _, s_idx, j_idx = study.member_grid(len(config["peak_lrs"]), len(config["seeds"]), M)
    return (np.asarray(config["seeds"], np.int32)[s_idx] * M + j_idx).astype(np.int32)


def ensemble_scores(model: sweep.Model, stacked: Any, x: Any, y: Any) -> dict[str, np.ndarray]:
    """`lrjax.evaluate_snapshots` of every member: stacked params ``[K, M, ...]`` -> ``[K, M]``.

    Keys: ``single_acc``/``single_nll`` (snapshot i alone) and ``ensemble_acc``/``ensemble_nll``
    (mean softmax of the last m = i + 1 snapshots).
    """

    def one(snapshots, xb, yb):
        return lrjax.evaluate_snapshots(model.predict, snapshots, xb, yb)

    score = jax.jit(jax.vmap(one, in_axes=(0, None, None)))
    ev = score(stacked, np.asarray(x), np.asarray(y))
    return {
        "single_acc": np.asarray(ev.single_accuracy, np.float64),
        "single_nll": np.asarray(ev.single_loss, np.float64),
        "ensemble_acc": np.asarray(ev.ensemble_accuracy, np.float64),
        "ensemble_nll": np.asarray(ev.ensemble_loss, np.float64),
    }


def score_methods(config, model, ds, main, indep) -> tuple[dict, dict, np.ndarray]:
    """Scores of every method on val and test, each ``[L, S]``; snapshot curves ``[L, S, M]``.

    Returns ``(scores, curves, diverged)``: ``scores[method][split_metric]``, with split_metric
    one of ``val_acc, val_nll, test_acc, test_nll``; ``curves[split_metric]`` the snapshot
    ensemble of the last m snapshots (and ``single_*`` of snapshot m alone); ``diverged[method]``.
    """
    L, S, M = len(config["peak_lrs"]), len(config["seeds"]), config["num_cycles"]
    shape = (len(SCHEDULES), L, S)
    # What evaluation needs: the params, and the batch statistics of a model that has them.
    main_final = model.variables(main.params, main.model_state)
    indep_final = model.variables(indep.params, indep.model_state)
    k = {name: np.flatnonzero(main.hparams["schedule"] == i) for i, name in enumerate(SCHEDULES)}

    def take(tree, idx):
        return jax.tree.map(lambda a: a[idx], tree)

    splits = {"val": (ds.x_val, ds.y_val), "test": (ds.x_test, ds.y_test)}
    scores = {key: {} for key, _ in methods_of(model)}
    swa = main.swa_params
    if model.stateful:
        # Averaged weights never produced the averaged statistics: recompute them (update_bn).
        batches = [ds.x_train[i : i + 500] for i in range(0, len(ds.x_train), 500)]
        swa = lrjax.recompute_batch_stats(model, swa, batches, stacked=True)
    curves = {}
    for split, (x, y) in splits.items():
        # One call (one compile) per split for all ensembles, and one for all single models.
        indep_params = jax.tree.map(lambda a: a.reshape(L * S, M, *a.shape[1:]), indep_final)
        stacked = _concat(take(main.snapshots, k["snapshot"]), indep_params)
        both = ensemble_scores(model, stacked, x, y)
        snap = {name: v[: L * S] for name, v in both.items()}
        ind = {name: v[L * S :] for name, v in both.items()}
        singles = {
            "cosine": take(main_final, k["cosine"]),
            "swa": take(swa, k["swa"]),
            "swa_final": take(main_final, k["swa"]),
            "ema_cosine": take(main.ema_params, k["cosine"]),
            "ema_swa": take(main.ema_params, k["swa"]),
        }
        if model.stateful:
            singles["swa_stale_bn"] = take(main.swa_params, k["swa"])
        ev = study.evaluate(model, _concat(*singles.values()), x, y)
        per = {
            "snapshot_ensemble": (snap["ensemble_acc"][:, -1], snap["ensemble_nll"][:, -1]),
            "last_snapshot": (snap["single_acc"][:, -1], snap["single_nll"][:, -1]),
            "independent": (ind["ensemble_acc"][:, -1], ind["ensemble_nll"][:, -1]),
            "independent_single": (ind["single_acc"].mean(-1), ind["single_nll"].mean(-1)),
        }
        for i, name in enumerate(singles):
            part = slice(i * L * S, (i + 1) * L * S)
            per[name] = (ev["accuracy"][part], ev["loss"][part])
        for name, (acc, nll) in per.items():
            scores[name][f"{split}_acc"] = np.asarray(acc).reshape(L, S)
            scores[name][f"{split}_nll"] = np.asarray(nll).reshape(L, S)
        for key, values in snap.items():
            curves[f"{split}_{key}"] = values.reshape(L, S, M)
    div = main.diverged.reshape(shape)
    indep_div = indep.diverged.reshape(L, S, M).any(axis=-1)
    diverged = {
        "snapshot_ensemble": div[0],
        "last_snapshot": div[0],
        "cosine": div[1],
        "swa": div[2],
        "swa_final": div[2],
        "ema_cosine": div[1],
        "ema_swa": div[2],
        "independent": indep_div,
        "independent_single": indep_div,
        "swa_stale_bn": div[2],
    }
    return scores, curves, diverged


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Trains and scores every method into `out_dir`; returns the report section body."""
    check(config)
    out = Path(out_dir)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train, **config.get("resnet", {}))
    lrs, seeds = config["peak_lrs"], config["seeds"]
    L, S = len(lrs), len(seeds)

    start = time.perf_counter()
    main = train_main(config, model, ds)
    main_s = time.perf_counter() - start
    start = time.perf_counter()
    indep = train_independent(config, model, ds)
    indep_s = time.perf_counter() - start
    start = time.perf_counter()
    scores, curves, diverged = score_methods(config, model, ds, main, indep)
    eval_s = time.perf_counter() - start

    m_idx, l_idx, s_idx = study.member_grid(len(SCHEDULES), L, S)
    labels = [
        {"schedule": SCHEDULES[m], "peak_lr": lrs[lr], "seed": seeds[s]}
        for m, lr, s in zip(m_idx, l_idx, s_idx, strict=True)
    ]
    results.write_jsonl(out / "metrics.jsonl", results.member_rows(main, labels))
    l_idx, s_idx, j_idx = study.member_grid(L, S, config["num_cycles"])
    labels = [
        {"peak_lr": lrs[lr], "seed": seeds[s], "model": int(j), "init_seed": int(seed)}
        for lr, s, j, seed in zip(l_idx, s_idx, j_idx, independent_seeds(config), strict=True)
    ]
    results.write_jsonl(out / "metrics_independent.jsonl", results.member_rows(indep, labels))
    results.write_jsonl(out / "evaluations.jsonl", _evaluation_rows(config, scores, curves))

    keys = [key for key, _ in methods_of(model)]
    best = choose(
        np.stack([scores[k]["val_acc"] for k in keys]), np.stack([diverged[k] for k in keys])
    )
    methods = {}
    for (key, label), b in zip(methods_of(model), best, strict=True):
        s, b = scores[key], int(b)
        methods[key] = {
            "label": label,
            "best_lr": lrs[b],
            "val_acc_mean": float(s["val_acc"][b].mean()),
            "val_nll_mean": float(s["val_nll"][b].mean()),
            "test_acc_mean": float(s["test_acc"][b].mean()),
            "test_acc_std": float(s["test_acc"][b].std()),
            "test_nll_mean": float(s["test_nll"][b].mean()),
            "test_nll_std": float(s["test_nll"][b].std()),
            "test_acc_seeds": s["test_acc"][b].tolist(),
            "test_nll_seeds": s["test_nll"][b].tolist(),
            "val_acc_grid": _nan_to_none(
                np.where(diverged[key].any(-1), np.nan, s["val_acc"].mean(-1))
            ),
            "diverged_members": int(diverged[key].sum()),
        }
    b = lrs.index(methods["snapshot_ensemble"]["best_lr"])
    curve = {name: curves[f"test_{name}"][b] for name in ("ensemble_acc", "ensemble_nll")}
    curve.update({name: curves[f"test_{name}"][b] for name in ("single_acc", "single_nll")})
    swa_counts = np.asarray(main.swa_count).reshape(len(SCHEDULES), L, S)[2]
    summary = {
        "num_steps": config["num_steps"],
        "num_cycles": config["num_cycles"],
        "snapshot_steps": list(schedules.snapshot_steps(config["num_steps"], config["num_cycles"])),
        "swa_start": swa_start(config),
        "swa_count": int(swa_counts.max()),
        "methods": methods,
        "ranking_test_acc": sorted(methods, key=lambda k: -methods[k]["test_acc_mean"]),
        "snapshot_curve_test": {
            "peak_lr": methods["snapshot_ensemble"]["best_lr"],
            **{k: v.tolist() for k, v in curve.items()},
        },
        "members": {"main": main.num_members, "independent": indep.num_members},
        "dataset": ds.name,
        "test_examples": len(ds.y_test),
        "batch_norm": model.stateful,
    }
    results.write_json(out / "summary.json", summary)
    compile_s = main.metadata["compile_seconds"] + indep.metadata["compile_seconds"]
    results.write_timings(
        out,
        {
            "main run": main_s,
            "independent models": indep_s,
            "evaluation": eval_s,
            "compiling, in both runs": compile_s,
        },
    )
    table = _table(config, methods)
    (out / "table.md").write_text(table)
    _figures(config, out, methods, curve, main)
    return _report(config, summary, table)


def _concat(*trees: Any) -> Any:
    """Parameter pytrees with a leading member axis, concatenated along it."""
    return jax.tree.map(lambda *a: np.concatenate(a), *trees)


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def _evaluation_rows(config, scores, curves) -> list[dict[str, Any]]:
    """One row per (method, peak LR, seed) with its val/test scores; snapshot rows add curves."""
    rows = []
    for key in scores:
        for i, lr in enumerate(config["peak_lrs"]):
            for j, seed in enumerate(config["seeds"]):
                row = {"method": key, "peak_lr": lr, "seed": seed}
                row.update({name: float(v[i, j]) for name, v in scores[key].items()})
                if key == "snapshot_ensemble":
                    row.update({name: v[i, j] for name, v in curves.items()})
                rows.append(row)
    return rows


def _table(config, methods) -> str:
    S = len(config["seeds"])
    rows = []
    for key, m in sorted(methods.items(), key=lambda kv: -kv[1]["test_acc_mean"]):
        label = f"**{m['label']}**" if key == "snapshot_ensemble" else m["label"]
        rows.append(
            [
                label,
                f"{m['best_lr']:.3g}",
                round(m["val_acc_mean"], 3),
                f"{m['test_acc_mean']:.3f} ± {m['test_acc_std']:.3f}",
                f"{m['test_nll_mean']:.3f} ± {m['test_nll_std']:.3f}",
            ]
        )
    return results.markdown_table(
        [
            "method (T updates in all)",
            "peak LR (val)",
            "val acc",
            f"test acc (mean ± std, {S} seeds)",
            "test NLL (mean ± std)",
        ],
        rows,
    )


def _figures(config, out, methods, curve, main) -> None:
    M, T = config["num_cycles"], config["num_steps"]
    snap_lr = methods["snapshot_ensemble"]["best_lr"]
    # Top: the ensemble of the last m snapshots against m = 1..M with the baselines; bottom:
    # each snapshot alone in training order (snapshot 1 first), so both axes read left to right.
    fig = Figure(figsize=(13.0, 9.0), layout="constrained")
    axes = fig.subplots(2, 2)
    metrics = (("acc", "test accuracy"), ("nll", "test NLL"))
    for col, (metric, ylabel) in enumerate(metrics):
        ensemble = curve[f"ensemble_{metric}"]
        figures.plot_ensemble_sizes(
            np.arange(1, M + 1),
            {f"snapshot ensemble: last m of {M} snapshots (peak {snap_lr:.3g})": ensemble},
            {
                f"{methods[k]['label']} ({methods[k]['best_lr']:.3g})": methods[k][
                    f"test_{metric}_seeds"
                ]
                for k in BASELINES
            },
            ax=axes[0, col],
            ylabel=ylabel,
            title=f"{ylabel} vs ensemble size, T = {T} updates per method",
        )
        figures.plot_ensemble_sizes(
            np.arange(1, M + 1),
            {"snapshot k alone": curve[f"single_{metric}"]},
            {f"ensemble of all {M} snapshots": np.asarray(ensemble)[..., -1]},
            ax=axes[1, col],
            xlabel=f"snapshot k (taken after update k·T/{M}, in training order)",
            ylabel=ylabel,
            title=f"{ylabel} of each snapshot alone (peak {snap_lr:.3g})",
        )
    plotting.save(fig, out / "ensemble_size.png", dpi=config["dpi"])

    fig = Figure(figsize=(13.0, 5.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    picked = {}
    keys = ("snapshot_ensemble", "cosine", "swa")  # the methods read off each schedule
    for i, (name, key) in enumerate(zip(SCHEDULES, keys, strict=True)):
        lr = methods[key]["best_lr"]
        member = (main.hparams["schedule"] == i) & np.isclose(main.hparams["peak"], lr)
        picked[f"{name} @ {lr:.3g}"] = np.flatnonzero(member)
    plotting.plot_schedules(
        np.arange(T),
        {label: main.learning_rate[k[0]] for label, k in picked.items()},
        ax=left,
        log_y=True,
        vlines=[n - 1 for n in schedules.snapshot_steps(T, M)],
        vlines_label="snapshot taken after this update",
        title=f"LR each update used (SWA averages every {config['swa']['every']} updates "
        f"from {swa_start(config)})",
        legend_fontsize="x-small",
    )
    plotting.plot_curves(
        main.eval_steps,
        {label: main.eval_metrics["accuracy"][k] for label, k in picked.items()},
        ax=right,
        ylabel="validation accuracy of the current parameters",
        title="validation accuracy during training (band: seeds)",
        legend_fontsize="x-small",
    )
    plotting.save(fig, out / "schedules.png", dpi=config["dpi"])


def curve_text(curve: dict[str, Any], test_examples: int) -> str:
    """What the ensemble-size curve shows (means over seeds, at the chosen peak LR).

    `curve` is `summary["snapshot_curve_test"]`. The change from m = 1 to m = M counts only
    beyond the noise: the seeds' standard deviation of that change, for accuracy at least one
    test example.
    """
    acc_seeds, nll_seeds = np.asarray(curve["ensemble_acc"]), np.asarray(curve["ensemble_nll"])
    acc, nll = acc_seeds.mean(0), nll_seeds.mean(0)
    M = acc.size
    first = np.mean(curve["single_acc"], 0)[0]
    acc_change = acc_seeds[:, -1] - acc_seeds[:, 0]
    nll_change = nll_seeds[:, -1] - nll_seeds[:, 0]
    acc_noise = results.noise(acc_change.std(), examples=test_examples)
    nll_noise = results.noise(nll_change.std())
    acc_gain, nll_drop = float(acc_change.mean()), -float(nll_change.mean())
    acc_text = (
        f"Ensembling {'adds' if acc_gain >= 0 else 'costs'} {abs(acc_gain) * 100:.1f} points of "
        f"accuracy ({results.beyond(acc_gain, acc_noise)}: {acc_noise * 100:.1f} points) and "
        f"{'lowers' if nll_drop >= 0 else 'raises'} NLL by {abs(nll_drop):.3f} "
        f"({results.beyond(nll_drop, nll_noise)}: {nll_noise:.3f})"
    )
    acc_up, acc_down = acc_gain > acc_noise, acc_gain < -acc_noise
    nll_down, nll_up = nll_drop > nll_noise, nll_drop < -nll_noise
    if acc_up and nll_up:
        gist = ": more accurate but less well calibrated, a mixed result."
    elif acc_up:
        gist = ": ensembling helps here."
    elif nll_down and not acc_down:
        gist = ": the gain is in calibration, not accuracy."
    elif acc_down or nll_up:
        gist = ": ensembling hurts here."
    else:
        gist = ": ensembling changes nothing measurable here."
    return (
        f"Ensembling the last m snapshots (test, mean over seeds): accuracy {acc[0]:.3f} at "
        f"m = 1 to {acc[-1]:.3f} at m = {M} (highest {acc.max():.3f} at m = "
        f"{int(acc.argmax()) + 1}); NLL {nll[0]:.3f} to {nll[-1]:.3f} (lowest {nll.min():.3f} "
        f"at m = {int(nll.argmin()) + 1}). {acc_text}{gist} Noise: the seeds' standard "
        f"deviation of the change from m = 1 to m = {M}, for accuracy at least one of the "
        f"{test_examples} test examples. Snapshot 1 alone reaches {first:.3f} test accuracy."
    )


def verdict(summary: dict[str, Any]) -> str:
    """Whether the snapshot ensemble beats the baselines, from `summary.json` alone.

    A baseline is better or worse only by more than the noise: the larger seed standard
    deviation of the two methods, for accuracy at least one test example.
    """
    ms, n = summary["methods"], summary["test_examples"]
    snap = ms["snapshot_ensemble"]
    better, worse = {"acc": [], "nll": []}, {"acc": [], "nll": []}
    for k in BASELINES:
        m = ms[k]
        acc_gap = snap["test_acc_mean"] - m["test_acc_mean"]
        if abs(acc_gap) > results.noise(snap["test_acc_std"], m["test_acc_std"], examples=n):
            (better if acc_gap > 0 else worse)["acc"].append(m["label"])
        nll_gap = m["test_nll_mean"] - snap["test_nll_mean"]
        if abs(nll_gap) > results.noise(snap["test_nll_std"], m["test_nll_std"]):
            (better if nll_gap > 0 else worse)["nll"].append(m["label"])
    names = {"acc": "test accuracy", "nll": "test NLL"}
    if worse["acc"] or worse["nll"]:
        text = "**Snapshot ensembles lose here**, by more than the noise, " + "; ".join(
            f"on {names[k]} to: {', '.join(worse[k])}" for k in names if worse[k]
        )
    elif all(len(better[k]) == len(BASELINES) for k in names):
        text = (
            "**The snapshot ensemble beats every baseline** on both test accuracy and test NLL, "
            "by more than the noise"
        )
    elif any(len(better[k]) == len(BASELINES) for k in names):
        k = next(k for k in names if len(better[k]) == len(BASELINES))
        text = (
            f"**The snapshot ensemble beats every baseline on {names[k]}** by more than the "
            "noise; on the other metric some baselines are within the noise of it"
        )
    else:
        ties = [
            ms[k]["label"] for k in BASELINES if ms[k]["label"] not in better["acc"] + better["nll"]
        ]
        text = (
            "**The snapshot ensemble ties with the best baselines**: no baseline is better by "
            "more than the noise"
            + (
                f", and {', '.join(ties)} are within the noise of it on both metrics"
                if ties
                else ""
            )
        )
    seeds = len(snap["test_acc_seeds"])
    return (
        f"{text}. Noise: the larger seed standard deviation of the two methods compared "
        f"({seeds} seeds), for accuracy at least one of the {n} test examples "
        f"({100 / n:.1f} points)."
    )


def _batch_norm_text(batch_norm: bool) -> str:
    if not batch_norm:
        return (
            "The model has no batch norm, so the averaged weights need no recomputed statistics "
            "(`lrjax.recompute_batch_stats` returns them unchanged)."
        )
    return (
        "The model has batch norm: each snapshot keeps the running statistics of its moment, "
        "the EMA averages them with the weights (as timm does), and SWA's statistics are "
        "recomputed on the training data under the averaged weights "
        "(`lrjax.recompute_batch_stats`, PyTorch's `update_bn`); the row with averaged "
        "statistics shows what skipping that step costs."
    )


def _report(config, summary, table) -> str:
    M, T = config["num_cycles"], config["num_steps"]
    ms = summary["methods"]
    snap, cos, ind = ms["snapshot_ensemble"], ms["cosine"], ms["independent"]
    last = ms["last_snapshot"]
    swa = config["swa"]
    lines = [
        f"{config['model_title']} on {summary['dataset']}, SGD with momentum "
        f"{config['momentum']}, batch "
        f"{config['batch_size']}: every method spends **T = {T} updates** per seed. Snapshot "
        f"ensemble: M = {M} cosine cycles of {T // M} updates, a snapshot after each "
        f"({summary['snapshot_steps']}), captured inside the compiled loop. Single model: cosine "
        f"to 0 over T. SWA: the same cosine until S = {summary['swa_start']}, then SWALR "
        f"(cosine anneal over {swa['anneal_steps']} updates) to {swa['lr_factor']:g} × peak, "
        f"averaging every {swa['every']} updates from S ({summary['swa_count']} samples). EMA: "
        f"decay {config['ema_decay']} from the initial parameters, on the cosine run and on the "
        f"SWA run. Independent ensemble: M = {M} models of {T // M} updates each (different "
        f"seeds and data orders). {_batch_norm_text(summary['batch_norm'])}",
        "",
        f"Snapshot, cosine and SWA schedules × {len(config['peak_lrs'])} peak LRs × "
        f"{len(config['seeds'])} seeds are {summary['members']['main']} members of ONE run, "
        f"the independent models {summary['members']['independent']} members of a second. "
        "Each method's peak LR is chosen on **validation** accuracy; test accuracy and NLL are "
        "reported once, at that LR.",
        "",
        f"{verdict(summary)} Snapshot ensemble: test accuracy {snap['test_acc_mean']:.3f} ± "
        f"{snap['test_acc_std']:.3f}, NLL {snap['test_nll_mean']:.3f}; its last snapshot alone "
        f"{last['test_acc_mean']:.3f} (NLL {last['test_nll_mean']:.3f}); single cosine model "
        f"{cos['test_acc_mean']:.3f} (NLL {cos['test_nll_mean']:.3f}); independent ensemble "
        f"{ind['test_acc_mean']:.3f} (NLL {ind['test_nll_mean']:.3f}).",
        "",
        curve_text(summary["snapshot_curve_test"], summary["test_examples"]),
        "",
        table,
        "![accuracy and NLL vs number of snapshots](ensemble_size.png)",
        "",
        "Top: the ensemble of the last m snapshots; bottom: each snapshot alone, in training "
        "order. The snapshot curves are at the peak LR chosen for the full ensemble (m = M); the "
        "horizontal lines are the baselines at their own chosen LRs (band: seed min–max). "
        "Nothing is chosen from this test-set figure.",
        "",
        "![schedules and validation accuracy](schedules.png)",
        "",
    ]
    return "\n".join(lines)
