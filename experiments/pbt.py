"""The PBT part: population-based training vs the best fixed schedule, same compute, one run.

Per seed, two groups of members train in ONE compiled program: a PBT population (constant LR
and momentum, both explored by `lrjax.PBT` every `ready` steps on validation accuracy; each seed
is its own population) and the fixed schedule's grid (the CNN's best family of part 3, or the
fallback, at the same peak LRs). Both cost population × steps. Each seed's answer is its best
member on final validation accuracy; test accuracy is computed once, for it. See
`experiments/configs/pbt.py`.
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
from lrjax import plotting


def reference(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """The fixed family to compare with: part 3's best for the model, or the fallback and why.

    Part 3's family is used at this part's step budget (its shape scales with T)."""
    _, m, reason = results.compared_part(config, out, config["model"])
    if m is None:
        return {"family": config["fallback_family"], "from_part3": False, "reason": reason}
    best = m["best_family"]
    return {
        "family": best,
        "from_part3": True,
        "part3_best_lr": m["families"][best]["best_lr"],
        "part3_test_acc_mean": m["families"][best]["test_acc_mean"],
    }


def make_pbt(config: dict[str, Any], population: np.ndarray) -> lrjax.PBT:
    """The config's PBT hook over the members' `peak` LR and momentum."""
    p = config["pbt"]
    space = {name: lrjax.Range(r["low"], r["high"], r["log"]) for name, r in p["space"].items()}
    return lrjax.PBT(
        space, metric=p["metric"], mode="max", ready=p["ready"], fraction=p["fraction"],
        resample_probability=p["resample_probability"], factors=p["factors"], seed=p["seed"],
        population=population,
    )  # fmt: skip


def describe(schedule: Any, edge: float = 0.1, ratio: float = 0.5) -> dict[str, Any]:
    """The shape of a discovered LR schedule ``[T]``: does it warm up, does it decay?

    Warmup: the mean LR of the first ``edge`` of the run is below ``ratio`` times the peak,
    reached after that stretch. Decay: the mean LR of the last ``edge`` is below ``ratio``
    times the peak.

    Examples:
      >>> describe(np.r_[np.full(10, 0.1), np.ones(70), np.full(20, 0.2)])["shape"]
      'warmup, then decay'
      >>> describe(np.ones(100))["shape"]
      'flat (within 2x of its peak)'
    """
    lr = np.asarray(schedule, np.float64)
    n = max(1, round(edge * len(lr)))
    peak = float(lr.max())
    start, end = float(lr[:n].mean()), float(lr[-n:].mean())
    warmup = start < ratio * peak and int(np.argmax(lr)) >= n
    decay = end < ratio * peak
    if warmup and decay:
        shape = "warmup, then decay"
    elif decay:
        shape = "decay"
    elif warmup:
        shape = "warmup, no decay"
    else:
        shape = f"flat (within {1 / ratio:g}x of its peak)"
    return {
        "shape": shape,
        "warmup": bool(warmup),
        "decay": bool(decay),
        "start_over_peak": start / peak,
        "end_over_peak": end / peak,
        "peak": peak,
        "peak_step": int(np.argmax(lr)),
    }


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Trains the PBT populations and the fixed grid in one run; returns the report body."""
    out = Path(out_dir)
    ds = load_data(config)
    model = study.make_model(config["model"], ds.x_train)
    ref = reference(config, out)
    families = list(dict.fromkeys([ref["family"], "constant"]))
    lrs = np.asarray(config["learning_rates"], np.float32)
    seeds, T = config["seeds"], config["num_steps"]
    S, L = len(seeds), len(lrs)
    # Member k = (method * S + s) * L + l; method 0: the fixed schedule, 1: PBT.
    m_idx, s_idx, l_idx = study.member_grid(2, S, L)
    family = np.where(m_idx == 0, 0, families.index("constant")).astype(np.int32)
    population = np.where(m_idx == 1, s_idx, -1)
    hook = make_pbt(config, population)
    build = study.family_schedules(families, T)

    def optimizer_kwargs(hp):
        return {"learning_rate": build(hp["family"], hp["peak"]), "momentum": hp["momentum"]}

    start = time.perf_counter()
    res = study.train_members(
        model, ds, member_seeds=np.asarray(seeds, np.int32)[s_idx], optimizer=optax.sgd,
        hparams={"family": family, "peak": lrs[l_idx],
                 "momentum": np.full(len(m_idx), config["momentum"], np.float32)},
        optimizer_kwargs=optimizer_kwargs, num_steps=T, batch_size=config["batch_size"],
        eval_every=config["pbt"]["ready"], pbt=hook,
    )  # fmt: skip
    seconds = time.perf_counter() - start

    labels = [
        {"method": "pbt" if m else ref["family"], "initial_lr": float(lrs[lr]), "seed": seeds[s]}
        for m, s, lr in zip(m_idx, s_idx, l_idx, strict=True)
    ]
    rows = results.member_rows(res, labels)
    for k, row in enumerate(rows):
        row["momentum"] = [round(float(v), 5) for v in res.opt_hparams["momentum"][k]]
        row["parents"] = hook.parents[k].tolist()
    results.write_jsonl(out / "metrics.jsonl", rows)

    val = res.eval_metrics["accuracy"][:, -1].reshape(2, S, L)
    ok = ~res.diverged.reshape(2, S, L)
    test = study.evaluate(model, res.params, ds.x_test, ds.y_test)["accuracy"].reshape(2, S, L)
    best = np.argmax(np.where(ok, val, -np.inf), axis=-1)  # [2, S]: each seed's answer
    methods = {}
    for m, name in enumerate(["fixed", "pbt"]):
        acc = [float(test[m, s, best[m, s]]) for s in range(S)]
        methods[name] = {
            "label": "PBT (constant LR + momentum, explored)"
            if m
            else f"{study.FAMILY_LABELS[ref['family']]} (fixed, best of {L} peak LRs)",
            "test_acc_seeds": acc,
            "test_acc_mean": float(np.mean(acc)),
            "test_acc_std": float(np.std(acc)),
            "val_acc_mean": float(np.mean([val[m, s, best[m, s]] for s in range(S)])),
            "best_initial_lr": [float(lrs[b]) for b in best[m]],
            "diverged_members": int((~ok[m]).sum()),
        }
    discovered = []
    for s in range(S):
        k = int((S + s) * L + best[1, s])  # the seed's best PBT member
        lr = hook.schedule("peak", k, T)
        momentum = hook.schedule("momentum", k, T)
        members = np.flatnonzero(population == s)
        discovered.append({
            "seed": seeds[s],
            "member": k,
            "lr": lr.tolist(),
            "momentum": momentum.tolist(),
            "ancestry": hook.ancestry(k).tolist(),
            "replacements": int((hook.parents[members] != members[:, None]).sum()),
            **describe(lr),
        })  # fmt: skip
    summary = {
        "model": config["model"],
        "num_steps": T,
        "population": L,
        "seeds": seeds,
        "reference": ref,
        "methods": methods,
        "discovered": discovered,
        "pbt_steps": hook.steps.tolist(),
        "parents": hook.parents.tolist(),
        "values": {name: v.tolist() for name, v in hook.values.items()},
        "members": res.num_members,
    }
    results.write_json(out / "summary.json", summary)
    results.write_timings(out, {f"one run of {res.num_members} members": seconds,
                                "compiling": res.metadata["compile_seconds"]})  # fmt: skip
    table = _table(summary)
    (out / "table.md").write_text(table)
    _figure(config, out, summary, res, hook, best)
    return _report(config, summary, table)


def verdict(summary: dict[str, Any], floor: float = 0.01) -> str:
    """The verdict sentence, chosen from the summary's test accuracies and their seed spread.

    PBT "ties" when the gap of the mean test accuracies is within the noise: the larger of the
    two seed standard deviations, and at least ``floor`` (one point: the binomial standard
    error of an accuracy near 0.9 on 1000 test examples); otherwise it beats or loses, said
    plainly.

    Examples:
      >>> def s(p, f):
      ...     return {"methods": {"pbt": {"test_acc_seeds": p, "label": "PBT"},
      ...                         "fixed": {"test_acc_seeds": f, "label": "cosine"}}}
      >>> verdict(s([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])).split(":")[0]
      '**PBT beats cosine**'
      >>> verdict(s([0.80, 0.81, 0.82], [0.90, 0.91, 0.92])).split(":")[0]
      '**PBT loses to cosine**'
    """
    pbt, fixed = summary["methods"]["pbt"], summary["methods"]["fixed"]
    p, f = np.asarray(pbt["test_acc_seeds"]), np.asarray(fixed["test_acc_seeds"])
    gap = float(p.mean() - f.mean())
    spread = max(float(p.std()), float(f.std()), floor)
    wins = int(np.sum(p > f))
    if abs(gap) <= spread:
        outcome = f"PBT ties with {fixed['label']}"
        why = f"the gap is within the noise (±{spread * 100:.1f} points: seed spread, at least 1)"
    elif gap > 0:
        outcome = f"PBT beats {fixed['label']}"
        why = f"the gap exceeds the noise (±{spread * 100:.1f} points: seed spread, at least 1)"
    else:
        outcome = f"PBT loses to {fixed['label']}"
        why = (
            f"the gap exceeds the noise (±{spread * 100:.1f} points: seed spread, at least 1): "
            "it loses here"
        )
    return (
        f"**{outcome}**: test accuracy {p.mean():.3f} ± {p.std():.3f} vs {f.mean():.3f} ± "
        f"{f.std():.3f} ({gap * 100:+.1f} points; PBT is ahead on {wins} of {len(p)} seeds); "
        f"{why}."
    )


def _shapes_sentence(discovered: list[dict[str, Any]]) -> str:
    n = len(discovered)
    decays = sum(d["decay"] for d in discovered)
    warms = sum(d["warmup"] for d in discovered)
    ends = ", ".join(f"{d['end_over_peak']:.2f}" for d in discovered)
    resembles = (
        "warmup then decay" if warms > n / 2 and decays > n / 2
        else "a decay schedule" if decays > n / 2
        else "a warmup" if warms > n / 2
        else "neither warmup nor decay"
    )  # fmt: skip
    return (
        f"Along the line of each seed's best member, the LR schedule PBT discovered decays in "
        f"{decays} of {n} seeds and warms up in {warms} of {n} (final LR / peak LR: {ends}): on "
        f"the whole it resembles {resembles}."
    )


def _table(summary: dict[str, Any]) -> str:
    rows = []
    for name in ("pbt", "fixed"):
        m = summary["methods"][name]
        rows.append([
            f"**{m['label']}**" if name == "pbt" else m["label"],
            f"{m['test_acc_mean']:.3f} ± {m['test_acc_std']:.3f}",
            ", ".join(f"{a:.3f}" for a in m["test_acc_seeds"]),
            round(m["val_acc_mean"], 3),
            ", ".join(f"{v:.3g}" for v in m["best_initial_lr"]),
            m["diverged_members"],
        ])  # fmt: skip
    n = len(summary["seeds"])
    table = results.markdown_table(
        [
            "method",
            f"test acc (mean ± std, {n} seeds)",
            "per seed",
            "val acc",
            "best member's initial / peak LR per seed",
            "diverged members (final)",
        ],
        rows,
    )
    shapes = [
        [d["seed"], d["shape"], f"{d['peak']:.3g}", d["peak_step"], f"{d['lr'][-1]:.3g}",
         f"{d['momentum'][0]:.2f} → {d['momentum'][-1]:.2f}", d["replacements"]]
        for d in summary["discovered"]
    ]  # fmt: skip
    shape_table = results.markdown_table(
        ["seed", "discovered LR schedule", "peak LR", "at step", "final LR", "momentum",
         "replacements in the population"],
        shapes,
    )  # fmt: skip
    return table + "\n" + shape_table


def _figure(config, out, summary, res, hook, best) -> None:
    T, S, L = config["num_steps"], len(config["seeds"]), len(config["learning_rates"])
    fig = Figure(figsize=(13.0, 9.0), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    lines = {f"PBT, seed {x['seed']}": x["member"] for x in summary["discovered"]}
    fixed_k = {s: s * L + int(best[0, s]) for s in range(S)}
    reference = {f"{summary['reference']['family']} (fixed), seed {config['seeds'][0]}":
                 res.learning_rate[fixed_k[0]]}  # fmt: skip
    plotting.plot_pbt_schedules(
        hook.steps, hook.parents, hook.values["peak"], T, lines, ax=a, reference=reference,
        title="LR along the line of each seed's best PBT member", legend_fontsize="x-small",
    )  # fmt: skip
    plotting.plot_pbt_schedules(
        hook.steps, hook.parents, hook.values["momentum"], T, lines, ax=b, log_y=False,
        ylabel="momentum", title="momentum along the same lines", legend_fontsize="x-small",
    )  # fmt: skip
    members = np.flatnonzero(np.asarray(hook.population) == 0)
    local = np.searchsorted(members, hook.parents[members])
    plotting.plot_pbt_lineage(
        hook.steps, local, hook.values["peak"][members], T, ax=c,
        highlight=[int(best[1, 0])],
        title=f"lineage, seed {config['seeds'][0]} (arrows: copied from; black: the best line)",
    )  # fmt: skip
    steps = res.eval_steps
    acc = res.eval_metrics["accuracy"].reshape(2, S, L, -1)
    plotting.plot_curves(
        steps,
        {"PBT: best member of the population": acc[1].max(axis=1),
         f"{summary['reference']['family']} (fixed): best of the grid": acc[0].max(axis=1)},
        ax=d, ylabel="validation accuracy", drawstyle="steps-post",
        title=f"validation accuracy of the best member ({S} seeds; band min–max)",
    )  # fmt: skip
    plotting.save(fig, out / "pbt.png", dpi=config["dpi"])


def _report(config, summary, table) -> str:
    ref, p = summary["reference"], config["pbt"]
    if ref["from_part3"]:
        source = (
            f"the best family of part 3 for this model, {study.FAMILY_LABELS[ref['family']]} "
            f"(part 3 trained it for its own budget; here it is rescaled to T = "
            f"{summary['num_steps']} and searched over the same {summary['population']} peak LRs)"
        )
    else:
        source = (
            f"{study.FAMILY_LABELS[ref['family']]}, because part 3's choice is not available "
            f"({ref['reason']}; run `make experiment CONFIG=schedule_comparison,pbt` to compare "
            "with its winner)"
        )
    space = ", ".join(
        f"{n} in [{r['low']:g}, {r['high']:g}]{' (log)' if r['log'] else ''}"
        for n, r in p["space"].items()
    )
    return "\n".join([
        f"{config['model_title']} on MNIST-1D, SGD, batch {config['batch_size']}, T = "
        f"{summary['num_steps']} steps, {len(summary['seeds'])} seeds. **PBT** (Jaderberg et "
        f"al. 2017): per seed a population of {summary['population']} members starting from "
        f"constant LRs {config['learning_rates'][0]:g}…{config['learning_rates'][-1]:g} and "
        f"momentum {config['momentum']:g}; every {p['ready']} steps the bottom "
        f"{p['fraction']:.0%} by validation accuracy copy a top-{p['fraction']:.0%} member "
        f"(parameters, momentum buffers: a gather on the member axis inside the run) and "
        f"perturb its hyperparameters (×{p['factors'][0]:g} or ×{p['factors'][1]:g}, or "
        f"resampled with probability {p['resample_probability']:g}; {space}). **Fixed**: "
        f"{source}. Same compute: {summary['population']} members × {summary['num_steps']} "
        f"steps per seed for each. Each seed's answer is its best member on validation "
        f"accuracy; test is reported once. Everything is ONE compiled run of "
        f"{summary['members']} members; "
        "the hyperparameters live in the optimizer state and member settings, so nothing "
        "recompiles.",
        "",
        verdict(summary) + " " + _shapes_sentence(summary["discovered"]) + " PBT selects on the "
        "validation set it is ranked on, so its validation accuracy is optimistic; test is not.",
        "",
        table,
        "![PBT schedules, lineage and accuracy](pbt.png)",
        "",
    ])  # fmt: skip
