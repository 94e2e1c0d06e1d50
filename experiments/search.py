"""The search part: grid, random and Bayesian (TPE) search with `lrjax.search` (optuna).

Each method runs `rounds` rounds; each round asks `batch` configurations of optuna at once and
trains them as the K members of ONE `lrjax.fit` of a hand-written AdamW step (the MLP on
MNIST-1D), whose learning-rate schedule and weight decay the controller (`lrjax.control`) sets
from each member's settings; the final validation accuracies are told back. The three methods
are the same call with another sampler: optuna's GridSampler (the config's grid), RandomSampler,
and TPESampler with `constant_liar` (the K asks of a round are pending together). Every round
has the same shapes, so the program compiles once for all methods. The search space is (peak
LR, warmup fraction, weight decay) of AdamW with linear warmup then cosine decay
(`lrjax.schedules.warmup_cosine_fraction`, whose warmup fraction is traced). optuna is optional
(the `experiments` extra): without it this part writes a note and is skipped. See
`experiments/configs/search.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from experiments import results, study
from experiments.schedule_comparison import load_data
from lrjax import hooks, optuna_search, plotting


def make_sampler(optuna: Any, method: str, config: dict[str, Any]):
    """The optuna sampler of `method` ("grid", "random" or "tpe")."""
    seed = config["search_seed"]
    if method == "grid":
        return optuna.samplers.GridSampler(dict(config["grid"]), seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=config["batch"], constant_liar=True
        )
    raise ValueError(f"method must be grid, random or tpe, got {method!r}")


def space(optuna: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The search space: log-uniform peak LR and weight decay, uniform warmup fraction."""
    s, dist = config["space"], optuna.distributions
    return {
        "lr": dist.FloatDistribution(*s["lr"], log=True),
        "warmup": dist.FloatDistribution(*s["warmup"]),
        "wd": dist.FloatDistribution(*s["wd"], log=True),
    }


def make_program(model: lrjax.Model, num_steps: int) -> lrjax.Vectorized:
    """The user's AdamW step on `model`, its LR schedule and weight decay set by the controller
    from the member's `lr`, `warmup`, `wd`; diverging members frozen."""
    tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
        learning_rate=0.0, weight_decay=0.0
    )

    def init(member):
        params = model.init(jax.random.key(member["seed"]))
        with jax.numpy_dtype_promotion("standard"):  # see step
            return params, tx.init(params)

    def step(state, batch, member):
        params, opt_state = state
        x, y = batch
        loss_fn = lambda p: jnp.mean(study.LOSS(model.apply(p, x), y))  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(params)
        # optax's Adam bias correction computes `b1 ** count` with an int32 count, which strict
        # dtype promotion (the tests') rejects: the optimizer runs under standard promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), {"loss": loss}

    rules = {
        "learning_rate": lambda m: study.warmup_cosine_fraction(m["lr"], m["warmup"], num_steps),
        "weight_decay": lambda m: m["wd"],
    }
    return lrjax.vectorize(*lrjax.freeze_on_divergence(*lrjax.control(step, init, rules)))


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
    program = make_program(model, T)  # one program object: every round reuses the compiled chunk

    def evaluate(state, member, data):
        logits = model.apply(lrjax.unwrap(state)[0], data[0])
        return {"accuracy": jnp.mean((jnp.argmax(logits, -1) == data[1]).astype(jnp.float32))}

    evaluation = hooks.Evaluate(evaluate, (ds.x_val, ds.y_val))
    trials, summary, rows, seconds = [], {}, [], {}
    for method in config["methods"]:
        start = time.perf_counter()

        def on_round(r, asked, fitted, method=method):
            val, diverged = optuna_search.objectives(fitted, "accuracy")
            test = study.evaluate(model, lrjax.unwrap(fitted.state)[0], ds.x_test, ds.y_test)
            for k, (_, p) in enumerate(asked):
                score = 0.0 if diverged[k] else float(val[k])
                trials.append({"method": method, "round": r, **p, "val_acc": score,
                               "test_acc": float(test["accuracy"][k]),
                               "diverged": bool(diverged[k])})  # fmt: skip

        lrjax.search(
            program, None, (ds.x_train, ds.y_train), space(optuna, config),
            rounds=config["rounds"], per_round=K, num_steps=T, metric="accuracy",
            direction="maximize", sampler=make_sampler(optuna, method, config),
            fixed={"seed": config["init_seed"]}, diverged_value=0.0,  # chance or worse
            batch_size=config["batch_size"], hooks=[evaluation], on_round=on_round,
        )  # fmt: skip
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
            f"each round ONE `lrjax.fit` of {K} members of a hand-written AdamW step "
            f"(`lrjax.search`), scores (final validation accuracy; a diverged member 0) told "
            f"back. Grid: optuna's GridSampler over {grid} points; random: optuna's "
            f"RandomSampler; Bayesian: TPE with `constant_liar` after {K} random start-up "
            "trials. "
            f"Init seed {config['init_seed']} for every trial; search seed "
            f"{config['search_seed']}.",
            "",
            conclusion(summary),
            "",
            table,
            "![best found vs trials](best_so_far.png)",
        ]
    )
