"""Benchmark: a whole LR sweep as one program (lrjax.sweep) vs the same runs one by one.

Command: ``make bench`` (``python -m experiments.bench [--ks 1,8,32,128] [--steps 500]``).
Workload (issue 3): MLP 40-256-256-10 on MNIST-1D (4000 training sequences, generated offline by
``mnist1d``), batch 128, 500 steps, linear warmup (50 steps) + cosine decay, SGD with momentum 0.9,
K members with peak learning rates log-spaced in [10^-2.5, 10^-0.5].

On CPU the benchmark exposes each core as an XLA device
(``--xla_force_host_platform_device_count``), so ``lrjax`` shards members over all cores; the
sequential baselines run as a user would write them, on the default device.

Rows: ``lrjax`` (the engine's defaults: on CPU, groups of ``CPU_MEMBERS_PER_DEVICE`` members per
device run one after another, for cache locality), ``lrjax one group`` (all K members in one
program, ``group_size=K``), and ``sequential JAX`` (a Python loop over members and
steps around one jitted step, the usual hand-written baseline). PyTorch is not measured (not
installed here). Columns: model-steps/s (members x steps / wall seconds, compile excluded), the
ratio to sequential JAX, compile seconds, XLA's memory estimate for the compiled program, and
model FLOP utilization against a float32 matmul measured on the same machine. Memory is XLA's
buffer assignment for the compiled program, summed over devices.

Expected runtime: about 6 minutes on 2 CPU cores. Writes ``results/bench/bench.{md,json}``.
"""

from __future__ import annotations

import os

# XLA runs a CPU program on one core unless its ops are big enough to split; exposing each core as
# a device lets lrjax shard the member axis over all of them. This must happen before JAX starts.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={len(os.sched_getaffinity(0))}"
    ).strip()

import argparse
import importlib.util
import itertools
import json
import math
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from lrjax import sweep

SIZES = (40, 256, 256, 10)
WARMUP = 50
LOSS = optax.softmax_cross_entropy_with_integer_labels


def load_mnist1d() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D's 4000 training examples from the ``mnist1d`` generator (never its downloader)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lrjax"
    path = cache / "bench_mnist1d_seed42.npz"
    if not path.exists():
        from mnist1d.data import get_dataset_args, make_dataset

        raw = make_dataset(get_dataset_args())  # 5000 samples, 80% train, seed 42
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=raw["x"].astype(np.float32), y=raw["y"].astype(np.int32))
        os.replace(tmp, path)
    with np.load(path) as z:
        return z["x"], z["y"]


def mlp_init(key):
    keys = jax.random.split(key, len(SIZES) - 1)
    return [
        {"w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": jnp.zeros((b,))}
        for k, a, b in zip(keys, SIZES[:-1], SIZES[1:], strict=True)
    ]


def mlp_apply(params, h):
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"][None, :]
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def flops_per_model_step(batch: int) -> float:
    """Matmul FLOPs of one training step: forward 2*B*sum(fan_in*fan_out), backward twice that."""
    return 3 * 2 * batch * sum(a * b for a, b in itertools.pairwise(SIZES))


def matmul_peak(n: int = 1024, reps: int = 16) -> float:
    """Best measured float32 matmul FLOP/s (n x n x n, chained in one program)."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)).astype(np.float32) / np.sqrt(n))

    @jax.jit
    def chain(x):
        return jax.lax.fori_loop(0, reps, lambda _, y: y @ a, x)

    chain(a).block_until_ready()
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        chain(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 * reps / best


def peaks_for(k: int) -> np.ndarray:
    return np.logspace(-2.5, -0.5, k).astype(np.float32) if k > 1 else np.array([0.03], np.float32)


def run_lrjax(x, y, k, steps, batch, group_size=None):
    def optimizer_kwargs(hp):
        lr = lrjax.warmup_cosine_decay(hp["peak"], warmup_steps=WARMUP, total_steps=steps)
        return {"learning_rate": lr, "momentum": 0.9}

    def train():
        return sweep.train(
            sweep.Model(mlp_init, mlp_apply),
            LOSS,
            (x, y),
            optimizer=optax.sgd,
            optimizer_kwargs=optimizer_kwargs,
            hparams={"peak": peaks_for(k)},
            num_steps=steps,
            batch_size=batch,
            options=sweep.Options(group_size=group_size, progress=False),
        )

    first = train()  # compiles (unless an identical program already ran)
    t = time.perf_counter()
    second = train()
    seconds = time.perf_counter() - t
    assert second.metadata["num_compiles"] == 0, second.metadata
    return {
        "model_steps_per_s": k * steps / seconds,
        "compile_s": first.metadata["compile_seconds"],
        # XLA reports one device's share of the sharded program; all devices hold as much.
        "memory_bytes": first.metadata["program_bytes"] * first.metadata["devices"],
        "final_loss": float(np.nanmin(second.loss[:, -1])),
        "num_groups": first.metadata["num_groups"],
    }


def run_sequential(x, y, k, steps, batch):
    """The hand-written baseline: for each member, a Python loop over a jitted step."""
    xd, yd = jnp.asarray(x), jnp.asarray(y)

    def make_tx(peak):
        lr = lrjax.warmup_cosine_decay(peak, warmup_steps=WARMUP, total_steps=steps)
        return optax.sgd(lr, momentum=0.9)

    @jax.jit
    def step(params, opt_state, idx, peak):
        def objective(p):
            return jnp.mean(LOSS(mlp_apply(p, xd[idx]), yd[idx]))

        loss, grads = jax.value_and_grad(objective)(params)
        updates, opt_state = make_tx(peak).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    init = jax.jit(mlp_init)
    per_epoch = len(x) // batch

    def member(seed, peak, num_steps):
        params = init(jax.random.key(seed))
        opt_state = make_tx(peak).init(params)
        rng = np.random.default_rng(seed)
        loss = None
        for t in range(num_steps):
            if t % per_epoch == 0:
                order = rng.permutation(len(x))[: per_epoch * batch].reshape(per_epoch, batch)
            params, opt_state, loss = step(params, opt_state, order[t % per_epoch], peak)
        return float(loss)

    t = time.perf_counter()
    member(0, jnp.float32(0.03), 1)  # compile
    compile_s = time.perf_counter() - t
    losses = []
    t = time.perf_counter()
    for i, peak in enumerate(peaks_for(k)):
        losses.append(member(i, jnp.float32(peak), steps))
    seconds = time.perf_counter() - t
    params = init(jax.random.key(0))
    args = (params, make_tx(0.1).init(params), jnp.zeros((batch,), jnp.int32), jnp.float32(0.1))
    stats = step.lower(*args).compile().memory_analysis()
    memory = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    return {
        "model_steps_per_s": k * steps / seconds,
        "compile_s": compile_s,
        "memory_bytes": memory - stats.alias_size_in_bytes,
        "final_loss": float(np.nanmin(losses)),
    }


def run_torch(x, y, k, steps, batch):
    """PyTorch on CPU, one member after another, LR from ``torch.optim.lr_scheduler``."""
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    per_epoch = len(x) // batch

    def factor(t):  # warmup_cosine_decay(peak, WARMUP, steps) / peak
        if t < WARMUP:
            return t / WARMUP
        return 0.5 * (1 + math.cos(math.pi * min(t - WARMUP, steps - WARMUP) / (steps - WARMUP)))

    def member(seed, peak, num_steps):
        torch.manual_seed(seed)
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
            layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(SIZES) - 2 else [])
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=float(peak), momentum=0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        rng = np.random.default_rng(seed)
        loss = None
        for t in range(num_steps):
            if t % per_epoch == 0:
                order = rng.permutation(len(x))[: per_epoch * batch].reshape(per_epoch, batch)
            idx = torch.from_numpy(order[t % per_epoch])
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        return float(loss)

    member(0, 0.03, 2)  # warm up the allocator and kernels
    t = time.perf_counter()
    losses = [member(i, peak, steps) for i, peak in enumerate(peaks_for(k))]
    seconds = time.perf_counter() - t
    return {
        "model_steps_per_s": k * steps / seconds,
        "compile_s": 0.0,
        "memory_bytes": None,
        "final_loss": float(np.nanmin(losses)),
    }


def stacked_state_bytes(k: int, batch: int) -> int:
    """Parameters + SGD momentum of K members, plus one batch of activations per member."""
    params = sum(a * b + b for a, b in itertools.pairwise(SIZES))
    activations = batch * sum(SIZES)
    return 4 * k * (2 * params + activations)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,8,32,128", help="comma-separated member counts")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--data", default=None, help="an .npz with x, y (default: generate)")
    parser.add_argument("--torch", choices=["auto", "no"], default="auto")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    if args.data:
        with np.load(args.data) as z:
            x, y = z["x"], z["y"]
    else:
        x, y = load_mnist1d()
    has_torch = args.torch == "auto" and importlib.util.find_spec("torch") is not None
    load_before = os.getloadavg()
    peak = matmul_peak(4096 if jax.default_backend() == "gpu" else 1024)
    flops = flops_per_model_step(args.batch)
    print(f"{jax.devices()[0].device_kind}: float32 matmul peak {peak / 1e9:.1f} GFLOP/s; "
          f"{flops / 1e6:.1f} MFLOP per model-step; load average {load_before}")  # fmt: skip

    rows = []
    for k in ks:
        measured = [("lrjax", run_lrjax(x, y, k, args.steps, args.batch))]
        if measured[0][1]["num_groups"] > 1:
            one_group = run_lrjax(x, y, k, args.steps, args.batch, group_size=k)
            measured.append(("lrjax one group", one_group))
        measured.append(("sequential JAX", run_sequential(x, y, k, args.steps, args.batch)))
        if has_torch:
            measured.append(("PyTorch CPU seq.", run_torch(x, y, k, args.steps, args.batch)))
        speeds = {engine: m["model_steps_per_s"] for engine, m in measured}
        for engine, m in measured:
            row = dict(k=k, engine=engine, **m)
            row["vs_sequential_jax"] = m["model_steps_per_s"] / speeds["sequential JAX"]
            row["vs_torch"] = m["model_steps_per_s"] / speeds.get("PyTorch CPU seq.", math.nan)
            row["mfu"] = m["model_steps_per_s"] * flops / peak
            rows.append(row)
            print(_format_row(row), flush=True)

    meta = {
        "command": "python -m experiments.bench " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} usable CPUs",
        "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "matmul_peak_flops": peak,
        "flops_per_model_step": flops,
    }
    text = "\n".join(
        [
            f"{meta['device']} ({meta['machine']}), jax {meta['jax']}, matmul peak "
            f"{peak / 1e9:.0f} GFLOP/s, load average {load_before[0]:.1f} -> "
            f"{meta['load_average_after'][0]:.1f}",
            "",
            _table(rows),
            "",
            *_targets(rows, ks, args.batch, has_torch),
        ]
    )
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(text + "\n")
    (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


def _format_row(row) -> str:
    memory = "-" if row["memory_bytes"] is None else f"{row['memory_bytes'] / 2**20:.1f}"
    vs_torch = "-" if math.isnan(row["vs_torch"]) else f"{row['vs_torch']:.2f}x"
    return (
        f"| {row['k']:>4} | {row['engine']:<18} | {row['model_steps_per_s']:>8.0f} | "
        f"{row['vs_sequential_jax']:>5.2f}x | {vs_torch:>6} | "
        f"{row['compile_s']:>5.1f} | {memory:>7} | {100 * row['mfu']:>5.1f}% |"
    )


def _table(rows) -> str:
    head = (
        "|    K | engine             | model-steps/s | vs seq. JAX | vs PyTorch | compile s "
        "| memory MiB | MFU |\n|-----:|:---|---:|---:|---:|---:|---:|---:|"
    )
    return "\n".join([head, *(_format_row(r) for r in rows)])


def _targets(rows, ks, batch, has_torch) -> list[str]:
    """The issue's targets, each with the value measured in this run and PASS/MISS."""
    lines = ["Targets (issue 3), measured in this run:"]

    def check(name, value, ok):
        lines.append(f"- {name}: {value} -> {'PASS' if ok else 'MISS'}")

    best = {}
    for k in ks:
        candidates = [r for r in rows if r["k"] == k and r["engine"].startswith("lrjax")]
        best[k] = max(candidates, key=lambda r: r["model_steps_per_s"])
    if 8 in best:
        base = best[8]["model_steps_per_s"]
        for k in (32, 128):
            if k in best:
                ratio = best[k]["model_steps_per_s"] / base
                name = f"K={k} / K=8 model-steps/s ({best[k]['engine']}) >= 0.95"
                check(name, f"{ratio:.2f}", ratio >= 0.95)
    if 32 in best:
        ratio = best[32]["vs_sequential_jax"]
        check(f"K=32 ({best[32]['engine']}) vs sequential JAX >= 2x", f"{ratio:.2f}x", ratio >= 2)
        if has_torch:
            ratio = best[32]["vs_torch"]
            check(f"K=32 ({best[32]['engine']}) vs PyTorch >= 2.5x", f"{ratio:.2f}x", ratio >= 2.5)
    for k in ks:
        if k >= 8:
            mfu = best[k]["mfu"]
            check(f"MFU at K={k} ({best[k]['engine']}) >= 70%", f"{100 * mfu:.1f}%", mfu >= 0.7)
    one = [r for r in rows if r["k"] == 128 and r.get("num_groups") == 1]
    if one and one[0]["memory_bytes"] is not None:
        ratio = one[0]["memory_bytes"] / stacked_state_bytes(128, batch)
        name = "memory at K=128 (one group) / (stacked params + momentum + one batch) <= 1.5"
        check(name, f"{ratio:.2f}", ratio <= 1.5)
    if not has_torch:
        lines.append("- PyTorch sequential: not measured (torch not installed, or --torch no).")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
