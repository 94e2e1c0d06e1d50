"""The timed rows of the benchmark: lrjax, the user's sequential loop, and the bound.

Each function times one way of training a workload's members and returns a dict with at least
``seconds`` and ``model_steps_per_s`` (members x steps / wall seconds, compile excluded).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import lrjax
from experiments.bench.workloads import Workload, batch_table, eval_forward, members_for, task
from lrjax import engine

# On CPU, lrjax.sweep trains members in groups of this many per device (larger vmapped groups
# fall out of cache); the lrjax rows use the same groups, so they time what sweep users get.
CPU_MEMBERS_PER_DEVICE = 4


def _example(data: tuple) -> tuple:
    return tuple(a[:1] for a in data[:-1])


def _key(w: Workload, data: tuple) -> tuple:
    """What the caches below depend on: the workload's step shape and the data's identity."""
    return w.name, w.steps, w.batch, id(data[0])


_TASKS: dict = {}


def user_task(w: Workload, data: tuple) -> tuple:
    """``(init, step, jax.jit(init))`` of the workload's user step, one per workload and data,
    so the user's loop and the bound share one compiled init."""
    key = _key(w, data)
    if key not in _TASKS:
        init, step = task(w, _example(data))
        _TASKS[key] = init, step, jax.jit(init)
    return _TASKS[key]


def _has_execution() -> bool:
    """Whether this lrjax's ``vectorize`` takes ``execution=`` (an older one, run through
    ``--lrjax-from`` for the "before" figures, does not)."""
    return "execution" in inspect.signature(lrjax.vectorize).parameters


_PROGRAMS: dict = {}


def program(w: Workload, data: tuple, guard: bool = True, execution: str | None = None):
    """The vectorized user step (guarded by ``lrjax.freeze_on_divergence`` unless ``guard`` is
    False), cached so a warm-up run compiles what the timed run reuses."""
    key = (*_key(w, data), guard, execution)
    if key not in _PROGRAMS:
        init, step = task(w, _example(data))
        if guard:
            step, init = lrjax.freeze_on_divergence(step, init)
        kwargs = {"execution": execution} if execution and _has_execution() else {}
        _PROGRAMS[key] = lrjax.vectorize(step, init, **kwargs)
    return _PROGRAMS[key]


def _fit(prog, w: Workload, data: tuple, k: int, num_steps: int, group_size: int | None,
         hooks=()):  # fmt: skip
    chunk = max(1, w.steps // 5)
    return lrjax.fit(
        prog, members_for(w, k), data, num_steps=num_steps, chunk_steps=min(chunk, num_steps),
        batch_size=w.batch, group_size=group_size, hooks=hooks,
    )  # fmt: skip


def default_group(k: int) -> int | None:
    cpu = all(d.platform == "cpu" for d in jax.devices())
    return CPU_MEMBERS_PER_DEVICE * jax.device_count() if cpu and k > 1 else None


def execution_of(prog, w: Workload, data: tuple, k: int) -> str:
    if not hasattr(prog, "execution_for"):
        return "scan"
    return prog.execution_for(members_for(w, k), tuple(a[: w.batch] for a in data))


def run_lrjax(
    w: Workload,
    data: tuple,
    k: int,
    *,
    guard: bool = True,
    execution: str | None = None,
    group_size: int | None = -1,
) -> dict:
    """``lrjax.vectorize(user step) + lrjax.fit``: a warm-up run of one chunk compiles, the
    timed run trains every step (chunks of a fifth of the steps, groups as ``lrjax.sweep`` uses
    on CPU unless ``group_size`` is given)."""
    prog = program(w, data, guard, execution)
    group = default_group(k) if group_size == -1 else group_size
    chunk = max(1, w.steps // 5)
    before, logged = engine.compile_stats(), _compile_log()
    _fit(prog, w, data, k, chunk, group)
    compile_s = engine.compile_stats()[0] - before[0]
    compiled = _compile_log()[len(logged) :]
    before = engine.compile_stats()
    t = time.perf_counter()
    result = _fit(prog, w, data, k, w.steps, group)
    seconds = time.perf_counter() - t - (engine.compile_stats()[0] - before[0])
    loop = result.loop
    return {
        "seconds": seconds,
        "model_steps_per_s": k * w.steps / seconds,
        "compile_s": compile_s,
        # What the engine compiled for the step (its chunk program, or the step it dispatches)
        # and for init; None for an lrjax without compile_log (an older one).
        "program_compile_s": _seconds(
            compiled, ("lrjax_chunk", "lrjax_step", "lrjax_member", "lrjax_split", "lrjax_concat")
        ),
        "init_compile_s": _seconds(compiled, ("lrjax_init",)),
        "num_groups": len(loop.groups),
        "devices": loop.program.num_devices,
        "execution": execution_of(loop.program, w, data, k),
        "losses": np.asarray(result.metrics["loss"]),
    }


def _compile_log() -> list:
    return engine.compile_log() if hasattr(engine, "compile_log") else []


def _seconds(log: list, names: tuple) -> float | None:
    if not hasattr(engine, "compile_log"):
        return None
    return sum(s for name, s in log if any(n in name for n in names))


_SEQUENTIAL: dict = {}


def sequential(w: Workload, data: tuple) -> dict:
    """The user's jitted init and step, compiled once per workload and data (their compile
    seconds measured then: ``init_compile_s``, ``step_compile_s``), so repeated timings of the
    loop time only the loop."""
    key = _key(w, data)
    if key in _SEQUENTIAL:
        return _SEQUENTIAL[key]
    _, step, jinit = user_task(w, data)
    device_data = tuple(jnp.asarray(a) for a in data)
    table = batch_table(w, len(data[0]))

    @jax.jit
    def jstep(state, idx, member):
        return step(state, tuple(a[idx] for a in device_data), member)

    member = engine.member_slice(members_for(w, 1), 0)
    before = engine.compile_stats()
    state = jax.block_until_ready(jinit(member))
    init_s = engine.compile_stats()[0] - before[0]
    jax.block_until_ready(jstep(state, table[0], member))
    step_s = engine.compile_stats()[0] - before[0] - init_s
    _SEQUENTIAL[key] = {
        "jinit": jinit, "jstep": jstep, "table": table,
        "compile_s": init_s + step_s, "init_compile_s": init_s, "step_compile_s": step_s,
    }  # fmt: skip
    return _SEQUENTIAL[key]


def run_sequential_jax(w: Workload, data: tuple, members: int) -> dict:
    """The user's own loop: for each member, a Python loop over the jitted step (no guard),
    reading its losses when the member is done."""
    seq = sequential(w, data)
    jinit, jstep, table = seq["jinit"], seq["jstep"], seq["table"]
    all_members = members_for(w, members)

    def member_run(i, num_steps):
        member = engine.member_slice(all_members, i)
        state, losses = jinit(member), []
        for t in range(num_steps):
            state, metrics = jstep(state, table[t], member)
            losses.append(metrics["loss"])
        return np.asarray(jnp.stack(losses))

    member_run(0, 1)
    t = time.perf_counter()
    losses = np.stack([member_run(i, w.steps) for i in range(members)])
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "model_steps_per_s": members * w.steps / seconds,
        "compile_s": seq["compile_s"],
        "init_compile_s": seq["init_compile_s"],
        "step_compile_s": seq["step_compile_s"],
        "losses": losses,
    }


def paired(w: Workload, data: tuple, k: int, reps: int, execution: str | None = None) -> tuple:
    """``run_lrjax`` at K and ``run_sequential_jax`` alternated ``reps`` times (A, B, A, B, ...):
    each the run of median seconds, the lrjax one with the paired speed ratios (lrjax over the
    user's loop, per model-step) and their median, which a shared machine moves less than
    either speed."""
    lr_runs, seq_runs = [], []
    for _ in range(reps):
        lr_runs.append(run_lrjax(w, data, k, execution=execution))
        seq_runs.append(run_sequential_jax(w, data, w.seq_members))
    ratios = [
        a["model_steps_per_s"] / b["model_steps_per_s"]
        for a, b in zip(lr_runs, seq_runs, strict=True)
    ]

    def median_run(runs):
        return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]

    first = {n: lr_runs[0][n] for n in ("compile_s", "program_compile_s", "init_compile_s")}
    lr = median_run(lr_runs) | first  # later runs reuse what the first compiled
    lr |= {"paired_ratios": ratios, "paired_ratio": float(np.median(ratios))}
    return lr, median_run(seq_runs)


def _convolves(jaxpr) -> bool:
    """``lrjax.engine.uses_convolution``, here too for an older lrjax (``--lrjax-from``)."""
    from jax.extend.core import jaxprs_in_params

    return any(
        eqn.primitive.name == "conv_general_dilated"
        or any(_convolves(inner) for inner in jaxprs_in_params(eqn.params))
        for eqn in jaxpr.eqns
    )


def run_bound(w: Workload, data: tuple, k: int) -> dict:
    """One model at batch K*B for the same steps: K members at batch B do its FLOPs. Timed on
    one device and data-parallel over all devices (the batch split, the gradients reduced),
    each the way the engine would run that step (one scanned program, or a jitted step per
    step where ``execution="auto"`` would dispatch steps: a CPU and a convolution); the bound
    is the faster."""
    big = k * w.batch
    init, step, jinit = user_task(w, data)
    member = engine.member_slice(members_for(w, 1), 0)
    rng = np.random.default_rng(0)
    # Batches drawn with replacement: K*B may exceed the data set; the FLOPs are the same.
    table = rng.integers(0, len(data[0]), (w.steps, big), dtype=np.int32)
    state = jax.eval_shape(init, member)
    one_batch = tuple(jax.ShapeDtypeStruct((big, *a.shape[1:]), a.dtype) for a in data)
    per_step = jax.default_backend() == "cpu" and _convolves(
        jax.make_jaxpr(step)(state, one_batch, member).jaxpr
    )
    out = {}
    devices = jax.devices()
    layouts = {"one device": devices[:1]}
    if len(devices) > 1 and big % len(devices) == 0:
        layouts["data-parallel"] = devices
    for name, devs in layouts.items():
        mesh = Mesh(np.asarray(devs), ("data",))
        rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(None, "data"))
        device_data = jax.device_put(data, rep)
        idx = jax.device_put(table, split)
        m = jax.device_put(member, rep)

        def one(state, idx_t, m, device_data=device_data):
            return step(state, tuple(a[idx_t] for a in device_data), m)

        s0 = jax.device_put(jinit(member), rep)
        if per_step:
            jstep = jax.jit(one, donate_argnums=0)

            def train(s, jstep=jstep, idx=idx, m=m):
                for t in range(w.steps):
                    s, metrics = jstep(s, idx[t], m)
                return s, metrics

            compiled = train
        else:

            @jax.jit
            def scanned(s, idx, m, one=one):
                return jax.lax.scan(lambda c, i: one(c, i, m), s, idx)

            compiled = scanned.lower(s0, idx, m).compile()

            def train(s, compiled=compiled, idx=idx, m=m):
                return compiled(s, idx, m)

        jax.block_until_ready(train(jax.tree.map(jnp.copy, s0)))  # compile and warm up
        t = time.perf_counter()
        jax.block_until_ready(train(s0))
        out[name] = time.perf_counter() - t
    best = min(out, key=out.get)
    return {
        "seconds": out[best],
        "model_steps_per_s": k * w.steps / out[best],  # in units of batch-B model-steps
        "layout": best,
        "layouts": {n: k * w.steps / s for n, s in out.items()},
    }


def guard_cost(w: Workload, data: tuple, k: int, reps: int = 3) -> dict:
    """The divergence guard's share of a step: lrjax with and without it, interleaved (A, B,
    A, B, ...), the median of the paired ratios minus one."""
    ratios = []
    run_lrjax(w, data, k, guard=False)  # compiled and warm
    for _ in range(reps):
        with_guard = run_lrjax(w, data, k)["seconds"]
        without = run_lrjax(w, data, k, guard=False)["seconds"]
        ratios.append(with_guard / without)
    return {"k": k, "ratios": ratios, "cost": float(np.median(ratios)) - 1.0}


def forward_flops(w: Workload, data: tuple, batch: int) -> float:
    """XLA's FLOP count of one forward pass (evaluation mode) at ``batch``."""
    example = _example(data)
    variables = jax.eval_shape(
        lambda: w.module.init(jax.random.key(0), *example, **({"train": False} if w.train else {}))
    )
    inputs = [jax.ShapeDtypeStruct((batch, *a.shape[1:]), a.dtype) for a in example]
    cost = jax.jit(eval_forward(w)).lower(variables, *inputs).cost_analysis()  # no compile
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


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


def member_bytes(w: Workload, data: tuple, k: int) -> tuple[Any, Any]:
    """XLA's memory estimate of the one-group program at K members and of a one-member program
    (compiled, never run), summed over the devices each uses."""
    out = []
    for members in (k, 1):
        prog = program(w, data)
        result = _fit(prog, w, data, members, 1, members)
        loop = result.loop
        group = loop.groups[0]
        xs = loop.feed.chunk(0, loop.chunk_steps, loop.chunk_steps, group.members_host)
        nbytes = loop.program.compiled_bytes(
            engine.abstract(group.state), engine.abstract(group.members), engine.abstract(xs),
            engine.abstract(loop.data), batch_fn=loop.feed.batch_fn,
            per_member_batches=loop.feed.per_member,
        )  # fmt: skip
        out.append(None if nbytes is None else nbytes * loop.program.num_devices)
    return out[0], out[1]
