"""The lr_free part: learning-rate-free optimizers, each knob on a log grid, vs a tuned schedule.

ONE vectorized run per model: every member is (method, knob value, seed), the method picked
inside the compiled program by `lrjax.lr_free.switch` and its knob injected per member; the
tuned baseline (SGD + momentum with the schedule comparison's best family, peak LR on a grid)
is one more method of the same switch. Validation and test are scored at
`lrjax.lr_free.eval_params` (the averaged point of the schedule-free methods). The verdict per
method is `verdicts(summary)`, a pure function of summary.json. See
`experiments/configs/lr_free.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from matplotlib.figure import Figure

from experiments import results, study
from experiments.schedule_comparison import load_data
from lrjax import lr_free, plotting

NO_TUNING = "needs no tuning here"
KNOB_TUNED = "reaches the tuned schedule only with its knob tuned"
BELOW = "below the tuned schedule even with its knob tuned"


def baseline_family(config: dict[str, Any], out: Path, model_name: str) -> dict[str, Any]:
    """The baseline's schedule family: the schedule comparison's best for this model (its peak
    LR is re-tuned here, at this part's budget), or the fallback and why."""
    summary, m, reason = results.compared_part(config, out, model_name)
    if m is None:
        return {"family": config["fallback_family"], "from_comparison": False, "reason": reason}
    best = m["families"][m["best_family"]]
    return {
        "family": m["best_family"],
        "from_comparison": True,
        "comparison_num_steps": summary.get("num_steps"),
        "comparison_test_acc_mean": best["test_acc_mean"],
        "comparison_best_lr": best["best_lr"],
    }


def baseline_method(family: str, momentum: float, total_steps: int) -> lr_free.Method:
    """SGD + momentum with `family`'s schedule, its knob the peak LR (a switch branch)."""

    def sgd_schedule(peak=0.1):
        return optax.sgd(study.schedule_family(family, peak, total_steps), momentum=momentum)

    return lr_free.Method(f"tuned {family}", sgd_schedule, "peak", float("nan"), "baseline")


def train_model(config, model_name, ds, family) -> dict[str, Any]:
    """One run of every method × knob × seed plus the baseline's peak LRs × seeds."""
    names, seeds = config["methods"], config["seeds"]
    factors = config["knob_factors"][model_name]
    T, M, G, S = config["num_steps"], len(config["methods"]), len(factors), len(seeds)
    peaks = config["baseline_peak_lrs"][model_name]
    method_idx, knob_idx, seed_idx = study.member_grid(M, G, S)
    defaults = np.asarray([lr_free.METHODS[n].default for n in names], np.float64)
    knobs = defaults[method_idx] * np.asarray(factors)[knob_idx]
    b_peak, b_seed = study.member_grid(len(peaks), S)
    method = np.concatenate([method_idx, np.full(b_peak.shape, M)]).astype(np.int32)
    knob = np.concatenate([knobs, np.asarray(peaks)[b_peak]]).astype(np.float32)
    member_seeds = np.asarray(seeds, np.int32)[np.concatenate([seed_idx, b_seed])]
    base = baseline_method(family["family"], config["baseline_momentum"], T)
    model = study.make_model(model_name, ds.x_train)
    res = study.train_members(
        model,
        ds,
        member_seeds=member_seeds,
        optimizer=lr_free.switch([*names, base]),
        hparams={"method": method, "knob": knob},
        optimizer_kwargs=lambda hp: {"method": hp["method"], "knob": hp["knob"]},
        num_steps=T,
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
        eval_params=lr_free.eval_params,
    )
    variables = jax.vmap(lr_free.eval_params)(res.opt_state, res.params)
    test = study.evaluate(model, variables, ds.x_test, ds.y_test)["accuracy"]
    val = np.where(res.diverged, np.nan, res.eval_metrics["accuracy"][:, -1])
    n = M * G * S
    labels = [{"model": model_name, "method": names[m], "knob": lr_free.METHODS[names[m]].knob,
               "knob_value": float(knob[k]), "seed": seeds[s]}
              for k, (m, s) in enumerate(zip(method_idx, seed_idx, strict=True))]  # fmt: skip
    labels += [{"model": model_name, "method": base.name, "knob": "peak",
                "knob_value": float(knob[n + k]), "seed": seeds[s]}
               for k, s in enumerate(b_seed)]  # fmt: skip
    return {
        "result": res,
        "labels": labels,
        "val": val[:n].reshape(M, G, S),
        "test": test[:n].reshape(M, G, S),
        "base_val": val[n:].reshape(len(peaks), S),
        "base_test": test[n:].reshape(len(peaks), S),
    }


def _mean(v: np.ndarray) -> np.ndarray:
    """Mean over seeds (last axis); NaN where any seed diverged."""
    return np.where(np.isnan(v).any(axis=-1), np.nan, np.nan_to_num(v).mean(axis=-1))


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def summarize(config, grid, family) -> dict[str, Any]:
    """The model's summary: the tuned baseline and each method's grid, default and best."""
    model_name = grid["labels"][0]["model"]
    factors, tol = np.asarray(config["knob_factors"][model_name]), config["tolerance"]
    base_mean = _mean(grid["base_val"])
    b = int(np.nanargmax(np.where(np.isnan(base_mean), -np.inf, base_mean)))
    peaks = config["baseline_peak_lrs"][model_name]
    tuned = {
        **family,
        "best_peak_lr": peaks[b],
        "val_acc_mean": _num(base_mean[b]),
        "val_acc_seeds": grid["base_val"][b].tolist(),
        "test_acc_mean": float(grid["base_test"][b].mean()),
        "test_acc_std": float(grid["base_test"][b].std()),
        "val_acc_grid": [_num(v) for v in base_mean],
    }
    methods = {}
    d = int(np.flatnonzero(factors == 1.0)[0])
    for i, name in enumerate(config["methods"]):
        m = lr_free.METHODS[name]
        mean = _mean(grid["val"][i])
        best = int(np.argmax(np.where(np.isnan(mean), -np.inf, mean)))
        width, lo, hi = study.lr_sensitivity(factors, mean, tol)
        methods[name] = {
            "knob": m.knob,
            "default": m.default,
            "knob_values": (m.default * factors).tolist(),
            "val_acc_grid": [_num(v) for v in mean],
            "default_val_acc_mean": _num(mean[d]),
            "default_val_acc_seeds": [_num(v) for v in grid["val"][i, d]],
            "default_test_acc_mean": float(np.nanmean(grid["test"][i, d])),
            "default_test_acc_std": float(np.nanstd(grid["test"][i, d])),
            "best_knob": float(m.default * factors[best]),
            "best_val_acc_mean": _num(mean[best]),
            "best_test_acc_mean": float(np.nanmean(grid["test"][i, best])),
            "best_test_acc_std": float(np.nanstd(grid["test"][i, best])),
            "width_decades": width,
            "range_factors": [lo, hi],
            "diverged_members": int(np.isnan(grid["val"][i]).sum()),
            "members": int(grid["val"][i].size),
            "reference": m.reference,
        }
    return {"tuned": tuned, "methods": methods}


def verdicts(summary: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per model and method: NO_TUNING only if the default knob's mean validation accuracy is
    within `tolerance` (one point) of the tuned schedule's best; KNOB_TUNED if only its best
    knob is; BELOW otherwise (a diverged default or best counts as below)."""
    tol = summary["tolerance"]
    out = {}
    for model_name, m in summary["models"].items():
        bar = m["tuned"]["val_acc_mean"] - tol
        out[model_name] = {}
        for name, s in m["methods"].items():
            default, best = s["default_val_acc_mean"], s["best_val_acc_mean"]
            if default is not None and default >= bar:
                out[model_name][name] = NO_TUNING
            elif best is not None and best >= bar:
                out[model_name][name] = KNOB_TUNED
            else:
                out[model_name][name] = BELOW
    return out


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Runs every model of the config into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    ds = load_data(config)
    summary: dict[str, Any] = {
        "num_steps": config["num_steps"],
        "tolerance": config["tolerance"],
        "knob_factors": config["knob_factors"],
        "models": {},
    }
    grids, timings = {}, {}
    for model_name in config["models"]:
        family = baseline_family(config, out, model_name)
        start = time.perf_counter()
        grid = train_model(config, model_name, ds, family)
        res = grid["result"]
        timings[f"{model_name}, one run of {res.num_members} members"] = time.perf_counter() - start
        timings[f"{model_name}, compiling"] = res.metadata["compile_seconds"]
        summary["models"][model_name] = {
            **summarize(config, grid, family),
            "members": res.num_members,
        }
        _write_metrics(out / f"metrics_{model_name}.jsonl", res, grid["labels"])
        grids[model_name] = grid
    summary["verdicts"] = verdicts(summary)
    results.write_json(out / "summary.json", summary)
    results.write_timings(out, timings)
    tables = {m: _table(config, summary, m) for m in config["models"]}
    for model_name, table in tables.items():
        (out / f"table_{model_name}.md").write_text(table)
    _figure(config, out, summary, grids)
    return _report(config, summary, tables)


def _write_metrics(path, res, labels) -> None:
    rows = []
    for k, label in enumerate(labels):
        row = dict(label)
        row["loss"] = res.loss[k]
        row["eval_steps"] = res.eval_steps
        for name, values in res.eval_metrics.items():
            row[f"val_{name}"] = values[k]
        row["diverged_step"] = int(res.diverged_step[k])
        rows.append(row)
    results.write_jsonl(path, rows)


def _fmt(v: float | None) -> str:
    return "diverged" if v is None else f"{v:.3f}"


def _table(config, summary, model_name) -> str:
    m, verdict = summary["models"][model_name], summary["verdicts"][model_name]
    t = m["tuned"]
    rows = [
        [
            f"**SGD + momentum, {study.FAMILY_LABELS[t['family']]} (tuned)**",
            f"peak LR {t['best_peak_lr']:.3g} (tuned)",
            _fmt(t["val_acc_mean"]),
            f"{t['test_acc_mean']:.3f} ± {t['test_acc_std']:.3f}",
            "—",
            "—",
            "—",
        ]
    ]
    order = sorted(m["methods"], key=lambda n: -(m["methods"][n]["best_val_acc_mean"] or 0.0))
    for name in order:
        s = m["methods"][name]
        rows.append(
            [
                name,
                f"{s['knob']} = {s['default']:g}",
                _fmt(s["default_val_acc_mean"]),
                f"{s['default_test_acc_mean']:.3f} ± {s['default_test_acc_std']:.3f}",
                f"{_fmt(s['best_val_acc_mean'])} at {s['best_knob']:.3g}"
                + (
                    " (grid edge)"
                    if s["best_knob"] in (s["knob_values"][0], s["knob_values"][-1])
                    else ""
                ),
                f"{s['width_decades']:.2f}",
                verdict[name],
            ]
        )
    n = len(config["seeds"])
    return results.markdown_table(
        [
            "method",
            "knob (default)",
            "val acc at default",
            f"test acc at default (mean ± std, {n} seeds)",
            "best val acc (knob)",
            f"knob range within {config['tolerance'] * 100:g} pt of its best (decades)",
            "verdict",
        ],
        rows,
    )


def _figure(config, out, summary, grids) -> None:
    models = config["models"]
    fig = Figure(figsize=(6.5 * len(models), 5.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    for ax, model_name in zip(axes, models, strict=True):
        grid, tuned = grids[model_name], summary["models"][model_name]["tuned"]
        factors = np.asarray(config["knob_factors"][model_name])
        curves = {name: grid["val"][i].T for i, name in enumerate(config["methods"])}
        plotting.plot_lr_sweep(
            factors,
            curves,
            ax=ax,
            title=f"{config['model_titles'][model_name]}: validation accuracy vs knob",
            legend_fontsize="x-small",
        )
        seeds = np.asarray(tuned["val_acc_seeds"], float)
        ax.axhline(tuned["val_acc_mean"], color="black", linewidth=1.6,
                   label=f"tuned {tuned['family']} (best peak LR)")  # fmt: skip
        ax.axhspan(seeds.min(), seeds.max(), color="black", alpha=0.08)
        ax.axvline(1.0, color="gray", linestyle=":", linewidth=1.0)
        ax.set_xlabel("knob / its default (dotted: the default)")
        ax.legend(fontsize="x-small", loc="lower left")
    plotting.save(fig, out / "acc_vs_knob.png", dpi=config["dpi"])


def _claims(config, summary) -> str:
    """Where the claim of tuning-free training held here, and where it did not."""
    v = summary["verdicts"]
    where = {n: [m for m in v if v[m][n] == NO_TUNING] for n in config["methods"]}
    held = [n for n, ms in where.items() if len(ms) == len(v)]
    some = [f"{n} ({', '.join(ms)} only)" for n, ms in where.items() if 0 < len(ms) < len(v)]
    failed = [n for n, ms in where.items() if not ms]
    T = config["num_steps"]
    parts = [
        "**Published claims vs here.** Each paper claims its default needs no tuning (the "
        "schedule-free paper: matching or beating tuned cosine/linear-decay schedules). At this "
        f"budget (T = {T}, batch {config['batch_size']}), within {config['tolerance'] * 100:g} "
        "validation point of the tuned schedule at the default knob:"
    ]
    parts.append(f"on every model: {', '.join(held) if held else 'none'};")
    if some:
        parts.append(f"on some models: {'; '.join(some)};")
    parts.append(f"on none (the claim did not reproduce here): {', '.join(failed) or 'none'}.")
    if failed:
        parts.append(
            "(Untested here: a longer budget may favour the methods that start from a tiny step "
            "and grow it: DoG, DoWG, Mechanic, and Prodigy and D-Adaptation from d0 = 1e-6.)"
        )
    return " ".join(parts)


def _report(config, summary, tables) -> str:
    T, S, tol = config["num_steps"], len(config["seeds"]), config["tolerance"]
    lines = [
        f"{len(config['methods'])} `optax.contrib` methods that claim to remove learning-rate "
        f"tuning, each with its one remaining knob at its default × a log grid of factors "
        f"× {S} seed{'s' if S > 1 else ''}, against SGD + momentum "
        f"{config['baseline_momentum']} with a schedule "
        f"whose peak LR is tuned on a grid; all on MNIST-1D, batch {config['batch_size']}, "
        f"T = {T} steps each. Per model ONE compiled run (`lrjax.lr_free.switch`: the method "
        "is a traced per-member index, the knob an injected hyperparameter); validation and "
        "test are scored at `lrjax.lr_free.eval_params` (the averaged point x for "
        f"schedule-free). Verdict: **{NO_TUNING}** only if the default's mean validation "
        f"accuracy is within {tol * 100:g} point of the tuned schedule's best; otherwise "
        f"*{KNOB_TUNED}* or *{BELOW}*. A knob value at which any seed diverged counts as "
        "diverged. With 500 validation examples one point is 5 examples.",
        "",
    ]
    for model_name in config["models"]:
        m = summary["models"][model_name]
        t, v = m["tuned"], summary["verdicts"][model_name]
        free = [n for n, x in v.items() if x == NO_TUNING]
        source = (
            f"the schedule comparison's best family (there, at T = {t['comparison_num_steps']} "
            f"and peak LR {t['comparison_best_lr']:.3g}: test "
            f"{t['comparison_test_acc_mean']:.3f})"
            if t["from_comparison"]
            else f"the fallback family ({t['reason']})"
        )
        lines += [
            f"### {config['model_titles'][model_name]}",
            "",
            f"Knob factors {config['knob_factors'][model_name]}; "
            f"{m['members']} members in one run. Baseline schedule: "
            f"{study.FAMILY_LABELS[t['family']]}, {source}; its peak LR re-tuned at T = {T}: "
            f"{t['best_peak_lr']:.3g}, validation {t['val_acc_mean']:.3f} (seeds "
            f"{min(t['val_acc_seeds']):.3f}–{max(t['val_acc_seeds']):.3f}), test "
            f"{t['test_acc_mean']:.3f} ± {t['test_acc_std']:.3f}. "
            f"**Needs no tuning here**: {', '.join(free) if free else 'none'} "
            f"({len(free)} of {len(v)}).",
            "",
            tables[model_name],
        ]
    lines += [
        "![validation accuracy vs each method's knob](acc_vs_knob.png)",
        "",
        "Knobs and papers: "
        + "; ".join(
            f"{n}: `{lr_free.METHODS[n].knob}` (default {lr_free.METHODS[n].default:g}), "
            f"{lr_free.METHODS[n].reference}"
            for n in config["methods"]
        )
        + ".",
        "",
        _claims(config, summary),
    ]
    return "\n".join(lines)
