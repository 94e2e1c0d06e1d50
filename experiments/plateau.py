"""The reduce-on-plateau part: a constant LR cut by a plateau controller vs fixed schedules.

Run 1: a constant LR × seeds, with `lrjax.reduce_on_plateau` on the validation loss. The
controller acts at each evaluation inside the compiled loop, independently per member, and its
scale multiplies the member's LR; the result records the LR each update actually used. Run 2:
the best fixed schedule of part 3 (read from its summary.json; warmup + cosine when that is
absent or for another step budget) and plain constant, over the same LRs and seeds. Each
method's LR is chosen on final validation accuracy (mean over seeds; an LR where any seed
diverged is not eligible); test accuracy is computed once, at that LR. See
`experiments/configs/plateau.py`.
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
from experiments.schedule_comparison import choose, load_data
from lrjax import plotting, schedules, sweep


def reference(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """The fixed schedule to compare with: part 3's best family, or the fallback and why."""
    fallback = {"family": config["fallback_family"], "from_part3": False}
    summary, m, reason = results.compared_part(config, out, config["model"])
    if m is None:
        return {**fallback, "reason": reason}
    if summary.get("num_steps") != config["num_steps"]:
        return {
            **fallback,
            "reason": f"{config['compare_with']} used {summary.get('num_steps')} steps, "
            f"not {config['num_steps']}",
        }
    best = m["best_family"]
    return {
        "family": best,
        "from_part3": True,
        "part3_best_lr": m["families"][best]["best_lr"],
        "part3_test_acc_mean": m["families"][best]["test_acc_mean"],
        "part3_test_acc_std": m["families"][best]["test_acc_std"],
    }


def make_plateau(config: dict[str, Any]) -> lrjax.ReduceOnPlateau:
    """The config's reduce-on-plateau controller."""
    return lrjax.reduce_on_plateau(**config["plateau"])


def train_plateau(config: dict[str, Any], model: sweep.Model, ds: Any) -> sweep.SweepResult:
    """Constant LR × seeds with the plateau controller, one run (members [L, S])."""
    lrs, seeds = np.asarray(config["learning_rates"], np.float32), config["seeds"]
    l_idx, s_idx = study.member_grid(len(lrs), len(seeds))
    member_seeds = np.asarray(seeds, np.int32)[s_idx]
    momentum = config["momentum"]

    def optimizer_kwargs(hp):
        return {"learning_rate": schedules.constant(hp["lr"]), "momentum": momentum}

    return study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=optax.sgd,
        hparams={"lr": lrs[l_idx]},
        optimizer_kwargs=optimizer_kwargs,
        num_steps=config["num_steps"],
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
        plateau=(make_plateau(config), config["plateau_metric"]),
    )


def train_fixed(
    config: dict[str, Any], families: list[str], model: sweep.Model, ds: Any
) -> sweep.SweepResult:
    """Fixed schedule families × LRs × seeds, one run (members [F, L, S])."""
    lrs, seeds = np.asarray(config["learning_rates"], np.float32), config["seeds"]
    f_idx, l_idx, s_idx = study.member_grid(len(families), len(lrs), len(seeds))
    member_seeds = np.asarray(seeds, np.int32)[s_idx]
    build = study.family_schedules(families, config["num_steps"])
    momentum = config["momentum"]

    def optimizer_kwargs(hp):
        return {"learning_rate": build(hp["family"], hp["peak"]), "momentum": momentum}

    return study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=optax.sgd,
        hparams={"family": f_idx.astype(np.int32), "peak": lrs[l_idx]},
        optimizer_kwargs=optimizer_kwargs,
        num_steps=config["num_steps"],
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
    )


def reductions(learning_rate: np.ndarray, rtol: float = 1e-4) -> np.ndarray:
    """Number of LR cuts per member of a constant-LR run: steps where the LR drops (``[K]``).

    Examples:
      >>> reductions(np.array([[1.0, 1.0, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0, np.nan]]))
      array([2, 0])
    """
    lr = np.asarray(learning_rate, np.float64)
    with np.errstate(invalid="ignore"):
        drops = lr[:, 1:] < lr[:, :-1] * (1.0 - rtol)
    return drops.sum(axis=-1)


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Trains both runs into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train)
    ref = reference(config, out)
    families = list(dict.fromkeys([ref["family"], "constant"]))
    lrs, seeds = config["learning_rates"], config["seeds"]
    L, S = len(lrs), len(seeds)

    start = time.perf_counter()
    plat = train_plateau(config, model, ds)
    plat_s = time.perf_counter() - start
    start = time.perf_counter()
    fixed = train_fixed(config, families, model, ds)
    fixed_s = time.perf_counter() - start

    l_idx, s_idx = study.member_grid(L, S)
    labels = [{"method": "plateau", "learning_rate": lrs[i], "seed": seeds[j]}
              for i, j in zip(l_idx, s_idx, strict=True)]  # fmt: skip
    results.write_jsonl(out / "metrics_plateau.jsonl", results.member_rows(plat, labels))
    f_idx, l_idx, s_idx = study.member_grid(len(families), L, S)
    labels = [{"method": families[f], "learning_rate": lrs[i], "seed": seeds[j]}
              for f, i, j in zip(f_idx, l_idx, s_idx, strict=True)]  # fmt: skip
    results.write_jsonl(out / "metrics_fixed.jsonl", results.member_rows(fixed, labels))

    # Methods stacked as [R, L, S]: plateau, then the fixed families.
    names = ["plateau", *families]
    shape = (len(families), L, S)

    def stack(plateau_values, fixed_values):
        return np.concatenate(
            [np.asarray(plateau_values).reshape(1, L, S), np.asarray(fixed_values).reshape(shape)]
        )

    val = stack(plat.eval_metrics["accuracy"][:, -1], fixed.eval_metrics["accuracy"][:, -1])
    diverged = stack(plat.diverged, fixed.diverged)
    test_plat = study.evaluate(model, plat.params, ds.x_test, ds.y_test)
    test_fixed = study.evaluate(model, fixed.params, ds.x_test, ds.y_test)
    test_acc = stack(test_plat["accuracy"], test_fixed["accuracy"])
    test_nll = stack(test_plat["loss"], test_fixed["loss"])
    cuts = reductions(plat.learning_rate).reshape(L, S)
    final_lr = plat.learning_rate[:, -1].reshape(L, S)
    best = choose(val, diverged)

    methods = {}
    for r, name in enumerate(names):
        b = int(best[r])
        grid = np.where(diverged[r].any(axis=-1), np.nan, val[r].mean(axis=-1))
        width, low, high = study.lr_sensitivity(lrs, grid, tol=config["tolerance"])
        entry = {
            "label": _label(name),
            "best_lr": lrs[b],
            "val_acc_mean": float(val[r, b].mean()),
            "test_acc_mean": float(test_acc[r, b].mean()),
            "test_acc_std": float(test_acc[r, b].std()),
            "test_nll_mean": float(test_nll[r, b].mean()),
            "test_acc_seeds": test_acc[r, b].tolist(),
            "val_acc_grid": [float(v) if np.isfinite(v) else None for v in grid],
            "width_decades": width,
            "range": [low, high],
            "diverged_members": int(diverged[r].sum()),
        }
        if name == "plateau":
            entry["reductions_at_best"] = cuts[b].tolist()
            entry["final_lr_at_best"] = final_lr[b].tolist()
        methods[name] = entry
    summary = {
        "num_steps": config["num_steps"],
        "eval_every": config["eval_every"],
        "plateau": config["plateau"],
        "reference": ref,
        "methods": methods,
        "reductions": cuts.tolist(),
        "members": {"plateau": plat.num_members, "fixed": fixed.num_members},
        "test_examples": len(ds.y_test),
    }
    results.write_json(out / "summary.json", summary)
    compile_s = plat.metadata["compile_seconds"] + fixed.metadata["compile_seconds"]
    results.write_timings(
        out, {"plateau run": plat_s, "fixed run": fixed_s, "compiling, in both": compile_s}
    )
    table = _table(config, methods)
    (out / "table.md").write_text(table)
    _figure(config, out, plat, fixed, families, val, diverged, methods)
    return _report(config, summary, table)


def _label(name: str) -> str:
    if name == "plateau":
        return "constant + reduce-on-plateau (val loss)"
    if name == "constant":
        return "constant (no plateau)"
    return f"{study.FAMILY_LABELS[name]} (fixed)"


def _table(config, methods) -> str:
    rows = []
    for name, m in sorted(methods.items(), key=lambda kv: -kv[1]["val_acc_mean"]):
        extra = "—"
        if name == "plateau":
            extra = (
                f"{np.mean(m['reductions_at_best']):.1f} cuts, final LR "
                f"{np.mean(m['final_lr_at_best']):.2g}"
            )
        rows.append(
            [
                f"**{m['label']}**" if name == "plateau" else m["label"],
                f"{m['best_lr']:.3g}",
                round(m["val_acc_mean"], 3),
                f"{m['test_acc_mean']:.3f} ± {m['test_acc_std']:.3f}",
                round(m["test_nll_mean"], 3),
                f"{m['width_decades']:.2f} ({m['range'][0]:.2g}–{m['range'][1]:.2g})",
                extra,
                f"{m['diverged_members']}/{len(config['learning_rates']) * len(config['seeds'])}",
            ]
        )
    return results.markdown_table(
        [
            "method",
            "best initial / peak LR (val)",
            "val acc",
            f"test acc (mean ± std, {len(config['seeds'])} seeds)",
            "test NLL",
            f"LR range within {config['tolerance'] * 100:g} val point of its best (decades)",
            "plateau at the best LR (mean over seeds)",
            "diverged members",
        ],
        rows,
    )


def _figure(config, out, plat, fixed, families, val, diverged, methods) -> None:
    lrs = np.asarray(config["learning_rates"])
    L, S, T = len(lrs), len(config["seeds"]), config["num_steps"]
    s = config["seeds"].index(config["show_seed"])
    fig = Figure(figsize=(13.0, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    # Every other initial LR, so the steps of each curve stay readable.
    curves = {f"plateau from {lrs[i]:.3g}": plat.learning_rate[i * S + s] for i in range(0, L, 2)}
    ref = families[0]
    b = lrs.tolist().index(methods[ref]["best_lr"])
    curves[f"{_label(ref)} @ {lrs[b]:.3g}"] = fixed.learning_rate[b * S + s]
    plotting.plot_schedules(
        np.arange(T),
        curves,
        ax=left,
        log_y=True,
        legend_fontsize="x-small",
        title=f"LR each update used (seed {config['show_seed']}; the plateau controller "
        f"checks every {config['eval_every']} steps)",
    )
    shown = np.where(diverged, np.nan, val)  # [R, L, S]
    plotting.plot_lr_sweep(
        lrs,
        {methods[n]["label"]: shown[r].T for r, n in enumerate(["plateau", *families])},
        ax=right,
        ylabel=f"validation accuracy after {T} steps",
        title=f"validation accuracy vs initial LR ({S} seeds; band: min–max)",
        legend_fontsize="x-small",
    )
    right.set_xlabel("initial (plateau, constant) or peak (schedule) learning rate")
    plotting.save(fig, out / "plateau.png", dpi=config["dpi"])


def verdict(config: dict[str, Any], summary: dict[str, Any]) -> str:
    """The report's verdict, from the config and `summary.json` alone.

    A gap in test accuracy is a win or a loss only beyond the noise: the larger seed standard
    deviation of the two methods, at least one test example.
    """
    ms, n = summary["methods"], summary["test_examples"]
    fam = summary["reference"]["family"]
    plat, fixed, const = ms["plateau"], ms[fam], ms.get("constant", ms[fam])
    gap = plat["test_acc_mean"] - fixed["test_acc_mean"]
    level = results.noise(plat["test_acc_std"], fixed["test_acc_std"], examples=n)
    outcome = "ties with" if abs(gap) <= level else "beats" if gap > 0 else "loses to"
    verdict = (
        f"**Reduce-on-plateau {outcome} {fixed['label']}** on test accuracy "
        f"({gap * 100:+.1f} points, {results.beyond(gap, level)} of {level * 100:.1f} points: "
        f"{plat['test_acc_mean']:.3f} ± {plat['test_acc_std']:.3f} vs "
        f"{fixed['test_acc_mean']:.3f} ± {fixed['test_acc_std']:.3f})"
    )
    if fam != "constant":
        gain = plat["test_acc_mean"] - const["test_acc_mean"]
        level_c = results.noise(plat["test_acc_std"], const["test_acc_std"], examples=n)
        const_text = f"{const['test_acc_mean']:.3f} ± {const['test_acc_std']:.3f}"
        if abs(gain) <= level_c:
            verdict += (
                f"; it is within the noise ({level_c * 100:.1f} points) of the same constant LR "
                f"without the controller ({const_text}, {gain * 100:+.1f} points)"
            )
        else:
            verdict += (
                f"; against the same constant LR without the controller ({const_text}) it "
                f"{'gains' if gain > 0 else 'loses'} {abs(gain) * 100:.1f} points, more than the "
                f"noise ({level_c * 100:.1f} points)"
            )
    plat_width, fixed_width = plat["width_decades"], fixed["width_decades"]
    return verdict + (
        f". At its best initial LR ({plat['best_lr']:.3g}) the controller cut the LR "
        f"{np.mean(plat['reductions_at_best']):.1f} times on average. Sensitivity to the LR: "
        f"the range of LRs within {config['tolerance'] * 100:g} validation point of the best "
        f"is {plat_width:.2f} decades wide with the controller, {fixed_width:.2f} for "
        f"{fixed['label']} and {const['width_decades']:.2f} for plain constant. Noise: the "
        f"larger seed standard deviation of the two methods compared ({len(config['seeds'])} "
        f"seeds), at least one of the {n} test examples ({100 / n:.1f} points)."
    )


def _report(config, summary, table) -> str:
    p, ref = config["plateau"], summary["reference"]
    fam = ref["family"]
    if ref["from_part3"]:
        source = (
            f"the best family of part 3 on validation, {study.FAMILY_LABELS[fam]} (part 3: "
            f"peak LR {ref['part3_best_lr']:.3g}, test {ref['part3_test_acc_mean']:.3f} ± "
            f"{ref['part3_test_acc_std']:.3f}; retrained here over this "
            "part's LR grid and seeds)"
        )
    else:
        source = (
            f"{study.FAMILY_LABELS[fam]}, because part 3's choice is not available "
            f"({ref['reason']}; run `make experiment CONFIG=schedule_comparison,plateau` to "
            "compare with its winner)"
        )
    lrs = config["learning_rates"]
    return "\n".join(
        [
            f"{config['model_title']} on MNIST-1D, SGD with momentum {config['momentum']}, batch "
            f"{config['batch_size']}, T = {config['num_steps']} steps, {len(lrs)} LRs from "
            f"{lrs[0]:g} to {lrs[-1]:g} × {len(config['seeds'])} seeds. **Plateau**: a constant "
            f"LR with `lrjax.reduce_on_plateau` on the validation loss every "
            f"{config['eval_every']} steps (mode {p['mode']}, factor {p['factor']:g}, patience "
            f"{p['patience']} evaluations, threshold {p['threshold']:g} {p['threshold_mode']}, "
            f"cooldown {p['cooldown']}, min LR {p['min_lr']:g}; PyTorch `ReduceLROnPlateau` "
            f"semantics), one controller per member inside the compiled loop: "
            f"{summary['members']['plateau']} members in ONE run. "
            f"**Fixed schedule**: {source}, and plain constant, "
            f"{summary['members']['fixed']} members in a second run. The "
            "LR is chosen on **validation** accuracy after T steps; test is reported once. The "
            "plateau controller itself watches the validation loss, as it is used in practice.",
            "",
            verdict(config, summary),
            "",
            table,
            "![plateau LRs and validation accuracy vs initial LR](plateau.png)",
            "",
        ]
    )
