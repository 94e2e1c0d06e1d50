"""The finetune part: warmup + decay on a pretrained model, LLRD, frozen backbone, scratch.

Pretrain an MLP on the source classes, save it, read it back; fine-tune it on the target
classes (relabelled) with every member of recipe × warmup × peak LR × {LLRD factors, frozen
backbone} × seed in one `lrjax.sweep.train` run (`lrjax.discriminative` holds the decay and the
backbone's LR multiplier in the optimizer state, so they are traced per member); train the
same model from scratch over recipe × warmup × LR × seed in a second run. Choices are made on
validation accuracy, reported on test with the seed spread. See `experiments/configs/finetune.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import lrjax
from experiments import figures, results, study
from experiments.schedule_comparison import load_data
from lrjax import data, models, param_groups, plotting, sweep

MIN_GAP = 0.01  # one accuracy point: the smallest gap a verdict counts
RECIPE_LABELS = {"linear": "HF warmup + linear", "cosine": "HF warmup + cosine"}


# ---------------------------------------------------------------------------------------------
# Tasks and the pretrained model


def split_tasks(ds: data.Dataset, config: dict[str, Any]) -> tuple[data.Dataset, data.Dataset]:
    """The source task (every example of the source classes) and the small target task
    (`per_class` training examples of each target class; all its validation and test
    examples), labels renumbered 0..C-1 in the order the config lists the classes."""

    def pick(x, y, classes, per_class=None):
        rows = []
        for c in classes:
            idx = np.flatnonzero(y == c)
            rows.append(idx if per_class is None else idx[:per_class])
        rows = np.sort(np.concatenate(rows))
        relabel = np.full(int(y.max()) + 1, -1, np.int32)
        relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
        return x[rows], relabel[y[rows]]

    def task(name, classes, per_class):
        train = pick(ds.x_train, ds.y_train, classes, per_class)
        val = pick(ds.x_val, ds.y_val, classes)
        test = pick(ds.x_test, ds.y_test, classes)
        return data.Dataset(name, *train, *val, *test, num_classes=len(classes))

    source = task(f"{ds.name}[{config['source_classes']}]", config["source_classes"], None)
    target = task(
        f"{ds.name}[{config['target_classes']}]", config["target_classes"], config["per_class"]
    )
    return source, target


def make_model(config: dict[str, Any], ds: data.Dataset) -> sweep.Model:
    module = models.MLP(hidden=tuple(config["hidden"]), num_classes=ds.num_classes)
    return study.classifier(module, ds.x_train)


def head_name(config: dict[str, Any]) -> str:
    return f"Dense_{len(config['hidden'])}"


def pretrain(config: dict[str, Any], source: data.Dataset, path: Path) -> dict[str, Any]:
    """Trains one MLP on the source task (AdamW, HF warmup + cosine), saves its parameters to
    `path` (.npz, one array per "module/name") and returns the test accuracy and the file."""
    model = make_model(config, source)
    T = config["pretrain_steps"]
    res = study.train_members(
        model,
        source,
        member_seeds=np.array([0], np.int32),
        optimizer=optax.adamw,
        hparams={"learning_rate": np.array([config["pretrain_lr"]], np.float32)},
        optimizer_kwargs=lambda hp: {
            "learning_rate": lrjax.get(
                "cosine",
                learning_rate=hp["learning_rate"],
                num_warmup_steps=T // 10,
                num_training_steps=T,
            ),
            "weight_decay": config["weight_decay"],
        },
        num_steps=T,
        batch_size=config["batch_size"] * 2,
    )
    params = res.member_params(0)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    np.savez(path, **{param_groups.path_name(p): np.asarray(v) for p, v in flat})
    test = study.evaluate(model, res.params, source.x_test, source.y_test)
    return {"test_acc": float(test["accuracy"][0]), "file": path.name}


def load_pretrained(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The parameter tree saved by :func:`pretrain`."""
    tree: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path) as z:
        for name in z.files:
            module, leaf = name.split("/")
            tree.setdefault(module, {})[leaf] = z[name]
    return tree


def finetuned_model(config, target, pretrained) -> sweep.Model:
    """The target model: the pretrained backbone and a zero-initialized head (as BiT does,
    Kolesnikov et al., arXiv:1912.11370): every member starts from the same point, and its
    seed only orders its batches. (No random draw in the init also saves its compile.)"""
    base = make_model(config, target)
    head = head_name(config)
    shapes = jax.eval_shape(base.init, jax.random.key(0))[head]
    params = {m: {k: jnp.asarray(v) for k, v in p.items()} for m, p in pretrained.items()}
    params[head] = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}

    def init(key):
        del key
        return params

    return sweep.Model(init, base.apply)


# ---------------------------------------------------------------------------------------------
# The two runs


def _schedules(config):
    """The recipe × warmup families, as `fn(index, peak) -> schedule` with both traced."""
    T = config["num_steps"]
    specs = [(r, w) for r in config["recipes"] for w in config["warmup_fractions"]]

    def build(index, peak):
        candidates = [
            lrjax.get(r, learning_rate=peak, num_warmup_steps=round(w * T), num_training_steps=T)
            for r, w in specs
        ]
        return sweep.schedule_family_switch(index, candidates)

    return specs, build


def finetune_grid(config, target, pretrained) -> dict[str, Any]:
    """One run: family × LR × variant × seed, variants = the LLRD factors, then frozen."""
    specs, build = _schedules(config)
    lrs, decays, seeds = config["learning_rates"], config["layer_decays"], config["seeds"]
    variants = [(d, 1.0) for d in decays] + [(1.0, 0.0)]  # (layer_decay, backbone_lr_mult)
    F, L, V, S = len(specs), len(lrs), len(variants), len(seeds)
    f_idx, l_idx, v_idx, s_idx = study.member_grid(F, L, V, S)
    model = finetuned_model(config, target, pretrained)
    params = jax.eval_shape(model.init, jax.random.key(0))
    depth = len(config["hidden"])
    optimizer = lrjax.discriminative(
        optax.adamw,
        params,
        groups={"head": f"^{head_name(config)}/"},
        default_group="backbone",
        order=[f"^Dense_{d}/" for d in range(depth + 1)],  # eval_shape sorted the keys
    )
    wd = config["weight_decay"]

    def optimizer_kwargs(hp):
        return {
            "learning_rate": build(hp["family"], hp["lr"]),
            "weight_decay": wd,
            "layer_decay": hp["layer_decay"],
            "backbone_lr_mult": hp["backbone_lr_mult"],
        }

    res = study.train_members(
        model,
        target,
        member_seeds=np.asarray(seeds, np.int32)[s_idx],
        optimizer=optimizer,
        hparams={
            "family": f_idx.astype(np.int32),
            "lr": np.asarray(lrs, np.float32)[l_idx],
            "layer_decay": np.asarray([v[0] for v in variants], np.float32)[v_idx],
            "backbone_lr_mult": np.asarray([v[1] for v in variants], np.float32)[v_idx],
        },
        optimizer_kwargs=optimizer_kwargs,
        num_steps=config["num_steps"],
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
    )
    names = [f"LLRD γ={d:g}" for d in decays] + ["frozen backbone"]
    labels = [
        {"run": "finetune", "recipe": specs[f][0], "warmup": specs[f][1], "learning_rate": lrs[i],
         "variant": names[v], "seed": seeds[s]}
        for f, i, v, s in zip(f_idx, l_idx, v_idx, s_idx, strict=True)
    ]  # fmt: skip
    return _grid(res, model, target, labels, (F, L, V, S))


def scratch_grid(config, target) -> dict[str, Any]:
    """One run: family × LR × seed from a random initialization, plain AdamW."""
    specs, build = _schedules(config)
    lrs, seeds = config["learning_rates"], config["seeds"]
    F, L, S = len(specs), len(lrs), len(seeds)
    f_idx, l_idx, s_idx = study.member_grid(F, L, S)
    model = make_model(config, target)
    wd = config["weight_decay"]
    res = study.train_members(
        model,
        target,
        member_seeds=np.asarray(seeds, np.int32)[s_idx],
        optimizer=optax.adamw,
        hparams={"family": f_idx.astype(np.int32), "lr": np.asarray(lrs, np.float32)[l_idx]},
        optimizer_kwargs=lambda hp: {
            "learning_rate": build(hp["family"], hp["lr"]),
            "weight_decay": wd,
        },
        num_steps=config["num_steps"],
        batch_size=config["batch_size"],
        eval_every=config["eval_every"],
    )
    labels = [
        {"run": "scratch", "recipe": specs[f][0], "warmup": specs[f][1], "learning_rate": lrs[i],
         "variant": "scratch", "seed": seeds[s]}
        for f, i, s in zip(f_idx, l_idx, s_idx, strict=True)
    ]  # fmt: skip
    return _grid(res, model, target, labels, (F, L, 1, S))


def _grid(res, model, target, labels, shape) -> dict[str, Any]:
    test = study.evaluate(model, res.params, target.x_test, target.y_test)["accuracy"]
    val = np.where(res.diverged, np.nan, res.eval_metrics["accuracy"][:, -1])
    return {
        "result": res,
        "labels": labels,
        "val": val.reshape(shape),  # [F, L, V, S]
        "test": np.where(res.diverged, np.nan, test).reshape(shape),
    }


# ---------------------------------------------------------------------------------------------
# Summary and verdicts (pure functions of arrays / of the summary)


def best_setting(val, test, where=None) -> dict[str, Any]:
    """The grid point (all axes but the last, seeds) with the best mean validation accuracy
    among `where` (a boolean mask over those axes); its test accuracies over seeds."""
    mean = np.mean(val, axis=-1)
    ok = np.isfinite(mean) if where is None else np.isfinite(mean) & where
    if not ok.any():
        return {"index": None, "val_mean": None, "test_mean": None, "test_std": None, "test": []}
    idx = np.unravel_index(int(np.argmax(np.where(ok, mean, -np.inf))), mean.shape)
    t = test[idx]
    return {
        "index": [int(i) for i in idx],
        "val_mean": float(mean[idx]),
        "test_mean": float(np.mean(t)),
        "test_std": float(np.std(t)),
        "test": [float(v) for v in t],
    }


def summarize(config, ft, sc) -> dict[str, Any]:
    """Best settings per comparison, chosen on validation, scored on test."""
    specs = [(r, w) for r in config["recipes"] for w in config["warmup_fractions"]]
    decays = config["layer_decays"]
    V = len(decays) + 1
    val, test = ft["val"], ft["test"]  # [F, L, V, S]
    F, L = val.shape[:2]
    variant = np.broadcast_to(np.arange(V)[None, None, :], (F, L, V))
    recipe = np.broadcast_to(np.array([r for r, _ in specs])[:, None, None], (F, L, V))
    warm = np.broadcast_to(np.array([w for _, w in specs])[:, None, None], (F, L, V))
    tuned = variant < len(decays)
    decay = np.asarray([*decays, np.nan])[variant]  # NaN for the frozen backbone
    settings = {
        "finetune": best_setting(val, test, tuned),
        "frozen": best_setting(val, test, ~tuned),
        "scratch": best_setting(sc["val"], sc["test"]),
        "no_llrd": best_setting(val, test, tuned & (decay == 1.0)),
        "llrd": best_setting(val, test, tuned & (decay != 1.0)),
        "no_warmup": best_setting(val, test, tuned & (warm == 0)),
        "warmup": best_setting(val, test, tuned & (warm > 0)),
    }
    for r in config["recipes"]:
        settings[r] = best_setting(val, test, tuned & (recipe == r))
    for name, s in settings.items():
        if s["index"] is not None:
            f, lr_i = s["index"][0], s["index"][1]
            s["recipe"], s["warmup"] = specs[f]
            s["learning_rate"] = config["learning_rates"][lr_i]
            if name != "scratch":
                v = s["index"][2]
                s["variant"] = "frozen" if v == len(decays) else f"γ={decays[v]:g}"
    mean_val = np.mean(val, axis=-1)  # [F, L, V]
    # LR tolerance per variant: the best recipe/warmup at each LR, then the width in decades
    # of the peak-LR range within one accuracy point of that variant's best.
    names = [f"γ={d:g}" for d in decays] + ["frozen"]
    per_lr = np.nanmax(np.where(np.isfinite(mean_val), mean_val, -np.inf), axis=0)  # [L, V]
    widths = {
        name: study.lr_sensitivity(config["learning_rates"], per_lr[:, v], MIN_GAP)[0]
        for v, name in enumerate(names)
    }
    return {
        "settings": settings,
        "lr_width_decades": widths,
        "val_acc_grid": {
            f"{specs[f][0]}, warmup {specs[f][1]:g}": {
                (f"γ={decays[v]:g}" if v < len(decays) else "frozen"): _list(mean_val[f, :, v])
                for v in range(V)
            }
            for f in range(F)
        },
        "scratch_val_acc_grid": {
            f"{specs[f][0]}, warmup {specs[f][1]:g}": _list(np.mean(sc["val"][f, :, 0], -1))
            for f in range(F)
        },
        "num_seeds": len(config["seeds"]),
        "grid_decades": float(
            np.log10(max(config["learning_rates"]) / min(config["learning_rates"]))
        ),
    }


def _list(a) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(a)]


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, float]:
    """ "better", "worse" or "tie" for setting `a` against `b` on test accuracy, and the gap
    in points. A gap counts only when it exceeds both the seed spread (the sum of the two
    standard deviations over seeds) and one accuracy point (a few test examples: seeds that
    share an initialization can agree more closely than the test set's sampling noise)."""
    gap = a["test_mean"] - b["test_mean"]
    noise = max(a["test_std"] + b["test_std"], MIN_GAP)
    return ("better" if gap > noise else "worse" if gap < -noise else "tie"), 100 * gap


def verdicts(summary: dict[str, Any]) -> list[str]:
    """The report's verdict sentences, chosen from the numbers (a pure function of the
    summary)."""
    s = summary["settings"]

    def acc(x):
        return f"{x['test_mean']:.3f} ± {x['test_std']:.3f}"

    def sentence(a, b, better, worse, tie):
        if s.get(a, {}).get("index") is None or s.get(b, {}).get("index") is None:
            return None  # the grid holds no such setting (e.g. no warmup fraction > 0)
        outcome, gap = compare(s[a], s[b])
        text = {"better": better, "worse": worse, "tie": tie}[outcome]
        return f"{text} ({acc(s[a])} vs {acc(s[b])} test accuracy, {gap:+.1f} points)."

    out = [
        sentence("finetune", "scratch",
                 "**Pretraining helps**: the best fine-tuned model beats the best model trained "
                 "from scratch by more than the noise",
                 "**Pretraining hurts here**: training from scratch beats fine-tuning by more "
                 "than the noise",
                 "**Pretraining does not clearly help**: fine-tuning and training from scratch "
                 "are within the noise"),
        sentence("finetune", "frozen",
                 "**Fine-tuning the whole network beats freezing the backbone**",
                 "**Freezing the backbone beats fine-tuning it**",
                 "**Freezing the backbone costs nothing measurable**: full fine-tuning and a "
                 "frozen backbone are within the noise"),
        sentence("llrd", "no_llrd",
                 f"**Layer-wise LR decay helps**, best at {s['llrd'].get('variant', '')}",
                 "**Layer-wise LR decay hurts here**: one LR for every layer is better",
                 f"**Layer-wise LR decay makes no measurable difference**: best at "
                 f"{s['llrd'].get('variant', '')}, against γ=1"),
        sentence("warmup", "no_warmup",
                 "**Warmup helps**", "**Warmup hurts here**",
                 "**Warmup makes no measurable difference**"),
    ]  # fmt: skip
    widths = summary.get("lr_width_decades", {})
    tuned = {k: w for k, w in widths.items() if k != "frozen"}
    if len(tuned) > 1:
        wide, narrow = max(tuned, key=tuned.get), min(tuned, key=tuned.get)
        if tuned[wide] > tuned[narrow]:
            whole = tuned[wide] >= summary.get("grid_decades", np.inf)
            out.append(
                f"**LR tolerance**: within one validation point of its best, {wide} tolerates "
                f"{tuned[wide]:.2f} decades of peak LR and {narrow} {tuned[narrow]:.2f}"
                f"{' (the whole grid)' if whole else ''}."
            )
    if "linear" in s and "cosine" in s:
        out.append(
            sentence(
                "linear",
                "cosine",
                "**Linear decay beats cosine**",
                "**Cosine decay beats linear**",
                "**Linear and cosine decay are within the noise**",
            )
        )
    return [v for v in out if v is not None]


# ---------------------------------------------------------------------------------------------
# The part


def run(config: dict[str, Any], out_dir: str | Path) -> str:
    """Runs the part into `out_dir`; returns the report section body."""
    out = Path(out_dir)
    source, target = split_tasks(load_data(config), config)
    seconds = {}
    start = time.perf_counter()
    pre = pretrain(config, source, out / "pretrained.npz")
    pretrained = load_pretrained(out / "pretrained.npz")
    seconds["pretraining"] = time.perf_counter() - start
    start = time.perf_counter()
    ft = finetune_grid(config, target, pretrained)
    seconds["fine-tuning"] = time.perf_counter() - start
    start = time.perf_counter()
    sc = scratch_grid(config, target)
    seconds["training from scratch"] = time.perf_counter() - start
    results.write_jsonl(
        out / "metrics.jsonl",
        results.member_rows(ft["result"], ft["labels"])
        + results.member_rows(sc["result"], sc["labels"]),
    )
    summary = summarize(config, ft, sc)
    summary.update(pretrain=pre, members=ft["val"].size + sc["val"].size)
    results.write_json(out / "summary.json", summary)
    results.write_timings(out, seconds)
    table = _table(config, summary)
    (out / "table.md").write_text(table)
    _figure(config, out, ft, sc)
    return _report(config, source, target, summary, table)


def _table(config, summary) -> str:
    rows = []
    names = {
        "scratch": "from scratch", "frozen": "frozen backbone", "finetune": "fine-tune (best)",
        "no_llrd": "fine-tune, γ = 1", "llrd": "fine-tune, γ < 1",
        "no_warmup": "fine-tune, no warmup", "warmup": "fine-tune, warmup",
        **{r: f"fine-tune, {RECIPE_LABELS[r]}" for r in config["recipes"]},
    }  # fmt: skip
    for key, label in names.items():
        s = summary["settings"][key]
        if s["index"] is None:
            continue
        rows.append([
            label, RECIPE_LABELS[s["recipe"]], f"{s['warmup']:g}", f"{s['learning_rate']:g}",
            s.get("variant", "-"), round(s["val_mean"], 3),
            f"{s['test_mean']:.3f} ± {s['test_std']:.3f}",
        ])  # fmt: skip
    n = len(config["seeds"])
    return results.markdown_table(
        ["setting", "recipe", "warmup", "peak LR", "LLRD", "val acc",
         f"test acc (mean ± std, {n} seed{'s' if n > 1 else ''})"],
        rows,
    )  # fmt: skip


def _figure(config, out, ft, sc) -> None:
    lrs = np.asarray(config["learning_rates"])
    decays = config["layer_decays"]
    W = len(config["warmup_fractions"])
    fig = Figure(figsize=(6.0 * len(config["recipes"]), 4.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(config["recipes"]), sharey=True))
    for r, (ax, recipe) in enumerate(zip(axes, config["recipes"], strict=True)):
        fams = slice(r * W, (r + 1) * W)
        # best warmup fraction per (LR, variant, seed) family row: max over warmup of the mean
        val, scratch = ft["val"][fams], sc["val"][fams, :, 0]  # [W, L, V, S], [W, L, S]
        pick = np.argmax(np.nan_to_num(val.mean(-1), nan=-1.0), axis=0)  # [L, V]
        best = np.take_along_axis(val, pick[None, ..., None], axis=0)[0]  # [L, V, S]
        pick_s = np.argmax(np.nan_to_num(scratch.mean(-1), nan=-1.0), axis=0)  # [L]
        best_s = np.take_along_axis(scratch, pick_s[None, :, None], axis=0)[0]  # [L, S]
        figures.plot_finetune_sweep(
            lrs, decays, best[:, : len(decays)].transpose(1, 2, 0),
            references={"frozen backbone": best[:, -1].T, "from scratch": best_s.T},
            ax=ax, title=f"{RECIPE_LABELS[recipe]} (best warmup per point)",
        )  # fmt: skip
    plotting.save(fig, out / "acc_vs_lr.png", dpi=config["dpi"])


def _report(config, source, target, summary, table) -> str:
    s = summary["settings"]
    T, n = config["num_steps"], len(config["seeds"])
    depth = len(config["hidden"])
    return "\n".join([
        f"An MLP {source.input_shape[0]} → {' → '.join(map(str, config['hidden']))} → "
        f"{target.num_classes} is pretrained on {source.name} ({len(source.y_train)} examples, "
        f"{config['pretrain_steps']} steps; test accuracy {summary['pretrain']['test_acc']:.3f}), "
        f"saved to `{summary['pretrain']['file']}` and read back, then fine-tuned with a fresh "
        f"head on {target.name} relabelled, from only {config['per_class']} examples per class "
        f"({len(target.y_train)} in all; {len(target.y_val)} validation, {len(target.y_test)} "
        f"test), AdamW (weight decay {config['weight_decay']:g}), T = {T} steps, batch "
        f"{config['batch_size']}. One `sweep.train` run holds "
        f"{len(config['recipes'])} recipes × {len(config['warmup_fractions'])} warmup fractions "
        f"× {len(config['learning_rates'])} peak LRs × ({len(config['layer_decays'])} LLRD "
        f"factors + frozen backbone) × {n} seeds; the decay γ and the backbone's LR multiplier "
        f"are traced optimizer hyperparameters (`lrjax.discriminative`): block d of "
        f"{depth} gets peak · γ^({depth} − d), the head the peak, a frozen backbone a "
        f"multiplier 0. Training from scratch (same model, recipes, LRs, steps) is a second "
        f"run ({summary['members']} members in all). Every choice is made on "
        f"validation accuracy; test accuracy is mean ± std over seeds at that choice, and a "
        f"difference counts only when it exceeds the noise: both the sum of the two seed "
        f"standard deviations and one accuracy point ({len(target.y_test) // 100} test examples).",
        "",
        *(["With one seed there is no seed spread: the verdicts compare single runs."]
          if n == 1 else []),
        *[f"- {v}" for v in verdicts(summary)],
        "",
        table,
        "![validation accuracy vs peak LR per LLRD factor](acc_vs_lr.png)",
        "",
        f"Best fine-tuning: {RECIPE_LABELS[s['finetune']['recipe']]}, warmup "
        f"{s['finetune']['warmup']:g}, peak LR {s['finetune']['learning_rate']:g}, "
        f"{s['finetune']['variant']}. Published LLRD factors (ELECTRA 0.8, BEiT 0.65-0.9) were "
        f"tuned for 12-24-block transformers; with {depth} blocks below the head the factor "
        f"changes the first block's LR by γ^{depth}.{_edge_note(config, s)}",
    ])  # fmt: skip


def _edge_note(config, s) -> str:
    """A sentence when the best LLRD factor is the smallest on the grid (the best may lie
    below it)."""
    smallest = f"γ={min(config['layer_decays']):g}"
    if s["llrd"].get("variant") != smallest or len(config["layer_decays"]) < 3:
        return ""
    return (
        f" The best factor, {smallest}, is the smallest on the grid: the pretrained backbone "
        "wants far less LR than the new head here, far from the published range, and a "
        "smaller factor might do better still."
    )
