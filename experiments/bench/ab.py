"""Interleaved A/B measurements behind the engine's design choices (issue 17).

Command: ``python -m experiments.bench.ab executions --workload cnn --k 8`` or ``... guard
--workload mlp --k 8``. Runtime: minutes on 2 CPU cores (the scanned conv chunk alone takes a
minute per repetition). Variants run alternately (A, B, C, A, B, C, ...) in one process and the
median of the paired time ratios against the first variant is reported, so a shared, noisy
machine moves every variant alike. Prints a Markdown block to paste into
``docs/results/bench/measurements.md``.

* ``executions``: the user's own loop (a jitted step per member and step) against
  ``lrjax.fit`` with each ``execution`` of ``lrjax.vectorize`` (guarded as in the benchmark).
* ``init``: ``program.init`` of K members (on a CPU one member's compiled init per member,
  then stacked) against the vmapped init it replaced (``jax.jit(jax.vmap(init))``).
* ``placement``: the user's loop against ``lrjax.fit`` of members run one at a time
  (``execution="members"``) on the first device alone and split over every device (each device
  runs its own members' steps).
* ``one``: one member (K = 1), steps scanned in one program: the user's step scanned as it is
  against the same step vmapped over a batch of one member (what the engine ran at K = 1
  before), beside the user's loop (each from a fresh init).
* ``pipeline``: ``lrjax.fit`` (chunks of a fifth of the steps) as it runs without hooks (the
  next chunk queued before this chunk's metrics are read) against the same fit with a hook
  that does nothing between chunks (which makes it read each chunk's metrics first), beside
  the user's loop.
* ``guard``: ``lrjax.fit`` of the user step without a guard, with ``freeze_on_divergence``
  (loss and gradient norm), and with the full state scan (``finite=lambda s: s``); plus the
  fusion counts of the compiled programs.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={len(os.sched_getaffinity(0))}"
    ).strip()

import argparse
import dataclasses
import time

import jax
import numpy as np

import lrjax
from experiments.bench import rows
from experiments.bench.workloads import members_for, workloads
from lrjax import engine


def _fit_seconds(program, w, data, k) -> float:
    t = time.perf_counter()
    lrjax.fit(program, members_for(w, k), data, num_steps=w.steps, batch_size=w.batch)
    return time.perf_counter() - t


def variants_executions(w, data, k, executions) -> dict:
    out = {"user loop": lambda: rows.run_sequential_jax(w, data, k)["seconds"]}
    for execution in executions:
        program = rows.program(w, data, execution=execution)
        out[f"lrjax {execution}"] = lambda p=program: _fit_seconds(p, w, data, k)
    return out


def variants_placement(w, data, k) -> dict:
    program = rows.program(w, data, execution="members")
    alone = program.on(jax.devices()[:1])
    return {
        "user loop": lambda: rows.run_sequential_jax(w, data, k)["seconds"],
        "lrjax members, one device": lambda: _fit_seconds(alone, w, data, k),
        f"lrjax members, {jax.device_count()} devices": lambda: _fit_seconds(program, w, data, k),
    }


def variants_one(w, data) -> dict:
    init, step, jinit = rows.user_task(w, data)
    member = engine.member_slice(members_for(w, 1), 0)
    device_data = tuple(jax.numpy.asarray(a) for a in data)
    table = jax.numpy.asarray(rows.batch_table(w, len(data[0])))

    def one(state, idx):
        state, metrics = step(state, tuple(a[idx] for a in device_data), member)
        return state, metrics["loss"]

    scanned = jax.jit(lambda s: jax.lax.scan(one, s, table))
    batch_of_one = jax.jit(lambda s: jax.lax.scan(jax.vmap(one, (0, None)), s, table))
    stacked_init = jax.jit(lambda m: jax.tree.map(lambda a: a[None], init(m)))
    return {
        "user loop": lambda: rows.run_sequential_jax(w, data, 1)["seconds"],
        "scan of the step": lambda: _seconds(lambda: scanned(jinit(member))),
        "scan of vmap(step), one member": lambda: _seconds(
            lambda: batch_of_one(stacked_init(member))
        ),
    }


class _Between:
    """A hook that does nothing between chunks (so fit reads each chunk's metrics first)."""

    def on_chunk_end(self, loop):
        del loop


def variants_pipeline(w, data, k) -> dict:
    program = rows.program(w, data)
    group = rows.default_group(k)

    def fit(hooks):
        t = time.perf_counter()
        rows._fit(program, w, data, k, w.steps, group, hooks)
        return time.perf_counter() - t

    return {
        "user loop": lambda: rows.run_sequential_jax(w, data, k)["seconds"],
        "fit, a hook between chunks": lambda: fit([_Between()]),
        "fit, no hook (pipelined)": lambda: fit(()),
    }


def variants_init(w, data, k) -> dict:
    program = rows.program(w, data)
    members = members_for(w, k)
    vmapped = jax.jit(jax.vmap(program.init_fn))
    return {
        "vmapped init": lambda: _seconds(lambda: vmapped(members)),
        "program.init": lambda: _seconds(lambda: program.init(members)),
    }


def _seconds(fn) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def variants_guard(w, data, k) -> dict:
    init, step, _ = rows.user_task(w, data)
    programs = {
        "no guard": lrjax.vectorize(step, init),
        "loss + grad_norm": lrjax.vectorize(*lrjax.freeze_on_divergence(step, init)),
        "full state scan": lrjax.vectorize(
            *lrjax.freeze_on_divergence(step, init, finite=lambda s: s)
        ),
    }
    return {n: (lambda p=p: _fit_seconds(p, w, data, k)) for n, p in programs.items()}


def interleave(variants: dict, reps: int) -> dict:
    first = {}
    for name, fn in variants.items():  # compiles and warms up
        t = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t
    times = {n: [] for n in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            times[name].append(fn())
    return {"first": first, "times": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["executions", "init", "placement", "one", "pipeline", "guard"]
    )
    parser.add_argument("--workload", default="cnn")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--executions", default="scan,steps,members")
    args = parser.parse_args(argv)
    w = dataclasses.replace(workloads(False, False)[args.workload], steps=args.steps)
    data = w.load()
    if args.what == "executions":
        variants = variants_executions(w, data, args.k, args.executions.split(","))
    elif args.what == "init":
        variants = variants_init(w, data, args.k)
    elif args.what == "placement":
        variants = variants_placement(w, data, args.k)
    elif args.what == "one":
        args.k, variants = 1, variants_one(w, data)
    elif args.what == "pipeline":
        variants = variants_pipeline(w, data, args.k)
    else:
        variants = variants_guard(w, data, args.k)
    load = os.getloadavg()
    found = interleave(variants, args.reps)
    base = np.asarray(found["times"][next(iter(variants))])
    print(f"### {args.what}: `{w.name}`, K = {args.k}, {w.steps} steps, batch {w.batch}\n")
    print(f"`python -m experiments.bench.ab {' '.join(argv or __import__('sys').argv[1:])}`; "
          f"{jax.device_count()} XLA devices; load average before {load}, after "
          f"{os.getloadavg()}.\n")  # fmt: skip
    unit, per = ("member", args.k) if args.what == "init" else ("member-step", args.k * w.steps)
    print(f"| variant | ms per {unit} | time / first variant (median of paired) | "
          "paired ratios | first call s |\n|:---|---:|---:|:---|---:|")  # fmt: skip
    for name, times in found["times"].items():
        ratios = np.asarray(times) / base
        print(f"| {name} | {1e3 * np.median(times) / per:.2f} | "
              f"{np.median(ratios):.3f} | {', '.join(f'{r:.3f}' for r in ratios)} | "
              f"{found['first'][name]:.1f} |")  # fmt: skip
    if args.what == "guard":
        counts = []
        for name, program in zip(found["times"], _guard_programs(w, data), strict=True):
            counts.append(f"{name} {program}")
        print("\nFusions of the vmapped step at K = " + f"{args.k}: " + ", ".join(counts))
    return 0


def _guard_programs(w, data) -> list[int]:
    """Fusions of each guard variant's vmapped step (compiled, not run)."""
    init, step, _ = rows.user_task(w, data)
    members = engine.abstract(members_for(w, 2))
    batch = engine.abstract(tuple(a[: w.batch] for a in data))
    out = []
    for s, wrap in (
        (step, lambda x: x),
        (lrjax.freeze_on_divergence(step)[0], lrjax.divergence.guard),
        (lrjax.freeze_on_divergence(step, finite=lambda s: s)[0], lrjax.divergence.guard),
    ):
        state = jax.eval_shape(jax.vmap(lambda m, wrap=wrap: wrap(init(m))), members)
        text = jax.jit(jax.vmap(s, in_axes=(0, None, 0))).lower(state, batch, members)
        out.append(text.compile().as_text().count(" fusion("))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
