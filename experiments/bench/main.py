"""The benchmark run: every row of every workload, the checks, the report (see
:mod:`experiments.bench`)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import jax

import lrjax
from experiments.bench import report, rows, torch_ports
from experiments.bench.workloads import Workload, workloads

SEQUENTIAL = ("sequential JAX", "PyTorch loop")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax", "optax", "numpy", "torch"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _relative_gap(a, b) -> float:
    import numpy as np

    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def _gaps(losses, reference) -> dict:
    steps = report.AGREE_STEPS
    return {
        "first_steps": _relative_gap(losses[:, :steps], reference[:, :steps]),
        "final_step": _relative_gap(losses[:, -1], reference[:, -1]),
    }


def timed(fn, *args, **kwargs) -> dict:
    """``fn(*args, **kwargs)``, with the wall seconds of the whole call (compiles included)."""
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out | {"wall_s": time.perf_counter() - t}


def bench_workload(
    w: Workload, peak: float, has_torch: bool, execution, log, reps: int = 3
) -> tuple:
    """Every row of one workload, plus its compile, guard, agreement and memory checks."""
    data = w.load()
    flops = 3 * rows.forward_flops(w, data, w.batch)
    t0 = time.perf_counter()
    log(f"\n## {w.name}: {w.title}; batch {w.batch}, {w.steps} steps, K = {list(w.ks)}; "
        f"{flops / 1e6:.1f} MFLOP per model-step")  # fmt: skip
    user = rows.sequential(w, data)  # the user's step and init, compiled (and timed) once
    # The user's own loop is timed beside lrjax at every K (rows.paired); PyTorch's once.
    torch = {}
    torch_port = has_torch and w.torch_model is not None
    if torch_port:
        torch["PyTorch loop"] = timed(torch_ports.run_torch_loop, w, data, w.seq_members)
    checks = {
        "flops_per_model_step": flops,
        "single_compile_s": user["step_compile_s"],
        "single_init_compile_s": user["init_compile_s"],
        "lrjax_compile_s": {},
        "lrjax_init_compile_s": {},
    }
    out, lrjax_losses, vmap_losses = [], {}, {}
    for k in w.ks:
        t = time.perf_counter()
        lr, seq_k = rows.paired(w, data, k, reps, execution=execution)
        lr["wall_s"] = seq_k["wall_s"] = time.perf_counter() - t
        lr["how"] = f"{lr['execution']}, {lr['devices']} dev"
        program_s = lr["program_compile_s"]
        checks["lrjax_compile_s"][k] = lr["compile_s"] if program_s is None else program_s
        checks["lrjax_init_compile_s"][k] = lr["init_compile_s"]
        measured = [("lrjax", lr)]
        if lr["num_groups"] > 1 and k >= 128:  # all K members in one program
            one = timed(rows.run_lrjax, w, data, k, execution=execution, group_size=None)
            one["how"] = f"{one['execution']}, {one['devices']} dev"
            measured.append(("lrjax one group", one))
        lrjax_losses[k] = lr["losses"]
        measured += [("sequential JAX", seq_k), *torch.items()]
        # A CPU-only torch next to a GPU would take minutes for the MLP's K > 128: skipped.
        if torch_port and (k <= 128 or torch_ports.setup()[1] == "cuda"):
            try:
                measured.append(("PyTorch vmap", timed(torch_ports.run_torch_vmap, w, data, k)))
                vmap_losses[k] = measured[-1][1]["losses"]
            except Exception as e:  # a model torch.func cannot vmap: say so, keep the others
                log(f"PyTorch vmap failed at K={k}: {type(e).__name__}: {e}")
        bound = timed(rows.run_bound, w, data, k)
        bound["how"] = bound["layout"]
        measured.append((report.BOUND, bound))
        speed = {name: m["model_steps_per_s"] for name, m in measured}
        for name, m in measured:
            row = {
                "workload": w.name, "k": k, "engine": name, "how": m.get("how"),
                "model_steps_per_s": m["model_steps_per_s"],
                # lrjax: the median of the speed ratios of runs side by side with the loop.
                "vs_sequential_jax": m.get(
                    "paired_ratio", m["model_steps_per_s"] / speed["sequential JAX"]
                ),
                "paired_ratios": m.get("paired_ratios"),
                "vs_torch": m["model_steps_per_s"] / speed.get("PyTorch loop", math.nan),
                "efficiency": m["model_steps_per_s"] / speed[report.BOUND],
                "mfu": m["model_steps_per_s"] * flops / peak,
                "compile_s": m.get("compile_s"),
                "num_groups": m.get("num_groups"),
                "bound_layouts": m.get("layouts"),
                "measured_members": w.seq_members if name in SEQUENTIAL else k,
                "wall_s": m["wall_s"],
            }  # fmt: skip
            out.append(row)
            paired = m.get("paired_ratios")
            side = "" if paired is None else "; paired " + ", ".join(f"{r:.2f}" for r in paired)
            log(report.format_row(row) + f" ({m['wall_s']:.0f} s{side})")
    guard_k = min((k for k in w.ks if k >= 8), default=max(w.ks))
    # A 3% cost needs more alternations than the rows' speeds: runs on a CPU vary by 5-10%.
    guard_reps = 1 if len(w.ks) == 1 else 2 * reps + 1
    checks["guard"] = timed(rows.guard_cost, w, data, guard_k, reps=guard_reps)
    guard = checks["guard"]
    log(f"guard at K={guard_k}: {100 * guard['cost']:+.1f}% of a step "
        f"(paired ratios {guard['ratios']}; {guard['wall_s']:.0f} s)")  # fmt: skip
    # Agreement: the sequential rows ran members 0..M-1 of the K=M sweep (same peaks).
    m = w.seq_members
    if m in lrjax_losses:
        reference = lrjax_losses[m]
        # The user's loop trains the same M members at every K: its last run's losses serve.
        seq = {"sequential JAX": seq_k, **torch}
        gaps = {name: _gaps(r["losses"], reference) for name, r in seq.items()}
        if m in vmap_losses:
            gaps["PyTorch vmap"] = _gaps(vmap_losses[m], reference)
        first = min(w.steps, report.AGREE_STEPS)
        checks["agreement"] = {"members": m, "steps": first, "max_relative_gap": gaps}
        log(f"loss agreement with lrjax (K={m}; max relative gap over the first {first} steps, "
            f"at the last step {w.steps}): "
            + ", ".join(f"{n} {g['first_steps']:.1e}, {g['final_step']:.1e}"
                        for n, g in gaps.items()))  # fmt: skip
    if 128 in w.ks and w.name == "mlp":
        many, one = rows.member_bytes(w, data, 128)
        if many and one:
            checks["memory"] = {"k": 128, "bytes_k": many, "bytes_1": one,
                                "per_member_ratio": many / 128 / one}  # fmt: skip
            log(f"memory: K=128 one group {many / 2**20:.1f} MiB, one member "
                f"{one / 2**20:.2f} MiB: per member {many / 128 / one:.2f}x")  # fmt: skip
    checks["seconds"] = time.perf_counter() - t0
    checks["peak_rss_bytes"] = peak_rss_bytes()
    log(f"{w.name}: {checks['seconds']:.0f} s, peak host RSS so far "
        f"{checks['peak_rss_bytes'] / 2**20:.0f} MiB")  # fmt: skip
    return out, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny steps and K")
    parser.add_argument("--workloads", default="mlp,resnet,transformer,cnn,resblocks,bilstm")
    parser.add_argument("--torch", choices=["auto", "no"], default="auto")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every workload's steps")
    parser.add_argument(
        "--reps", type=int, default=3,
        help="lrjax and the user's loop timed alternately this many times at every K",
    )  # fmt: skip
    parser.add_argument(
        "--gpu", action="store_true",
        help="the GPU workloads (K up to 1024); on a CPU with --quick or --scale, a dry run",
    )  # fmt: skip
    parser.add_argument(
        "--execution", default=None,
        help="force lrjax.vectorize's execution (default: its own, 'auto')",
    )  # fmt: skip
    parser.add_argument(
        "--lrjax-from", default=None,
        help="import lrjax from this checkout (the 'before' figures of an older lrjax)",
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="default results/bench (--gpu: .../gpu)")
    args = parser.parse_args(argv)
    gpu = args.gpu or jax.default_backend() == "gpu"
    table_of = workloads(args.quick, gpu, args.scale)
    names = args.workloads.split(",")
    unknown = sorted(set(names) - set(table_of))
    if unknown:
        raise ValueError(f"--workloads must name some of {sorted(table_of)}, got {unknown}")
    has_torch = args.torch == "auto" and importlib.util.find_spec("torch") is not None
    out_dir = Path(args.out or ("results/bench/gpu" if gpu else "results/bench"))
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    t_start, load_before = time.perf_counter(), os.getloadavg()
    peak = rows.matmul_peak(4096 if jax.default_backend() == "gpu" else 1024)
    device = jax.devices()[0].device_kind
    log(f"{device}: float32 matmul peak {peak / 1e9:.1f} GFLOP/s; load average {load_before}; "
        f"lrjax from {os.path.dirname(os.path.dirname(lrjax.__file__))}")  # fmt: skip
    if not args.quick and not gpu:
        log(f"expected run time on 2 quiet CPU cores: about {17 * args.scale * args.reps / 3:.0f} "
            "minutes (17 measured at --reps 3; compile times do not scale)")  # fmt: skip
    all_rows, checks = [], {}
    for name in names:
        w_rows, checks[name] = bench_workload(
            table_of[name], peak, has_torch, args.execution, log, args.reps
        )
        all_rows += w_rows
    meta = {
        "command": " ".join(["python -m experiments.bench", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "gpu": gpu,
        "execution": args.execution,
        "reps": args.reps,
        "lrjax": os.path.dirname(os.path.dirname(lrjax.__file__)),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} usable CPUs, {platform.system()} {platform.release()}",
        "device": device,
        "num_devices": jax.device_count(),
        "versions": versions(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "matmul_peak_flops": peak,
        "peak_rss_bytes": peak_rss_bytes(),
        "seconds": time.perf_counter() - t_start,
        "workloads": {n: dataclasses.asdict(table_of[n]) | {"module": repr(table_of[n].module)}
                      for n in names},
    }  # fmt: skip
    for n in names:
        del meta["workloads"][n]["load"]
    found = report.targets(all_rows, checks, gpu, has_torch)
    text = report.report(meta, all_rows, checks, found, table_of, names, has_torch)
    print("\n" + text)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.md").write_text(text + "\n")
    payload = {"meta": meta, "rows": all_rows, "checks": checks, "targets": found, "log": lines}
    (out_dir / "bench.json").write_text(json.dumps(payload, indent=1, default=float))
    return 0
