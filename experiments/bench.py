"""Benchmark: K members in one lrjax program vs PyTorch, sequential JAX and the FLOP bound.

Command: ``make bench`` (``python -m experiments.bench [--quick] [--workloads mlp,resnet,...]``).
Expected runtime: about 7 minutes on 2 quiet CPU cores, estimated from row counts and measured
speeds (``--scale 0.5`` halves the steps; ``--quick``, the smoke test of ``tests/bench_test.py``:
about a minute). On a busy machine PyTorch's threads wait on each other (a transformer step took
2 s with 2 threads instead of 66 ms with one at load 6 here): run it on a quiet machine.
Writes ``results/bench/bench.{md,json}``.

Workloads (issue 11), each trained with SGD (momentum 0.9) and linear warmup + cosine decay, K
members with peak learning rates log-spaced, all from one initialization (seed 0) on the same
batches (``lrjax.feeds.batch_indices_np`` of data seed 0, the order ``sweep.train`` uses):

* ``mlp``: ``lrjax.models.MLP`` 40-256-256-10 on MNIST-1D (4000 sequences from ``mnist1d``),
  batch 128, 300 steps, K = 1, 8, 32, 128 (up to 1024 on a GPU).
* ``resnet``: ``lrjax.models.ResNet`` (BatchNorm, dropout 0.1) on 28x28 images (scikit-learn's
  digits, each pixel a 3x3 block, zero-padded to 28x28), batch 32, 20 steps, K = 1, 8, 32 (128 only
  on a GPU: on 2 CPU cores one K=128 row alone would take minutes).
* ``transformer``: ``lrjax.models.TransformerClassifier`` (2 pre-LN blocks, residual dropout
  0.1) on MNIST-1D, batch 64, 30 steps, K = 1, 8, 32 (128 on a GPU), same reason.

Rows, per workload and K:

* ``lrjax``: ``sweep.train`` as a user calls it (on CPU, groups of ``CPU_MEMBERS_PER_DEVICE``
  members per device, one after another); ``lrjax one group``: ``group_size=K``.
* ``sequential JAX``: a Python loop over members and steps around one jitted single-member step
  (the same ``lrjax.Supervised`` step, without the divergence guard).
* ``PyTorch loop``: the hand-written PyTorch baseline, one member after another:
  ``torch.optim.SGD`` + ``LambdaLR`` with the same schedule, the same batches,
  ``torch.set_num_threads(cores)``; the MLP starts from the JAX initialization (copied), the
  others from PyTorch's own (same architecture, so the same FLOPs).
* ``PyTorch vmap``: ``torch.func.vmap`` of ``grad(functional_call)`` over stacked members, the
  same SGD with momentum written functionally (BatchNorm through
  ``torch.func.replace_all_batch_norm_modules_``, which stops tracking running statistics: vmap
  cannot update them in place).
* ``one model, batch K*B``: the FLOP-equivalent bound: one model trained on batches K times as
  large, for the same steps, in one jitted ``lax.scan``. K members at batch B do its FLOPs.

The sequential rows' throughput does not depend on K (members run one at a time), so they are
measured once per workload on a few members (printed) and shown in every K's row group.

Columns: model-steps/s (members x steps / wall seconds, compile excluded); the ratio to
sequential JAX and to the PyTorch loop; *vectorization efficiency* = model-FLOP/s of the row /
model-FLOP/s of the bound at the same K (= the bound's seconds / the row's seconds, since both do
K x steps x F(B) FLOPs); MFU = model-FLOP/s / a float32 matmul's FLOP/s measured in the same run,
with model FLOPs = 3 x XLA's count of the forward pass (forward + backward); compile seconds;
memory = XLA's buffer assignment of the compiled program, summed over devices.

Agreement: on the MLP, PyTorch's losses (loop and vmap), sequential JAX's and lrjax's are compared
step by step for the same members, so the rows time the same work. For the BatchNorm and dropout
models agreement is impossible by construction (PyTorch and JAX draw different dropout masks, and
the PyTorch ports start from PyTorch's initialization), so only their rows' timings are compared.

On CPU the benchmark exposes each core as an XLA device
(``--xla_force_host_platform_device_count``), so ``lrjax`` shards members over all cores; the
other rows run as a user would write them, on the default device (XLA and PyTorch still use
every core inside large ops).
"""

from __future__ import annotations

import os

# XLA runs a CPU program on one core unless its ops are big enough to split; exposing each core as
# a device lets lrjax shard the member axis over all of them. This must happen before JAX starts,
# and only when the benchmark is the program: importing this module (tests do) changes nothing.
if __name__ == "__main__" and "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={len(os.sched_getaffinity(0))}"
    ).strip()

import argparse
import copy
import dataclasses
import importlib.metadata
import importlib.util
import itertools
import json
import math
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from lrjax import feeds, models, supervised, sweep

WARMUP_FRACTION = 0.1
MOMENTUM = 0.9
LOSS = optax.softmax_cross_entropy_with_integer_labels
# Agreement of the MLP's losses (PyTorch, sequential JAX, lrjax), step by step over the first
# AGREE_STEPS steps: float32 sums in another order differ by ~3e-7 there; a different batch, init
# or schedule moves the loss by far more within a step or two. Later, training at the largest
# learning rates amplifies the rounding (about 1% by step 300 for the largest LR): the final
# step's gap is reported, not checked.
AGREE_RTOL = 1e-4
AGREE_STEPS = 50


# -----------------------------------------------------------------------------------------------
# Workloads


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmarked model: its Flax module, data, batch size, steps, member counts."""

    name: str
    title: str
    module: Any
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    batch: int
    steps: int
    ks: tuple[int, ...]
    seq_members: int  # members the sequential rows run (their speed does not depend on K)
    peaks: tuple[float, float]  # log10 range of the peak learning rates
    torch_model: str
    dropout: float = 0.0


def load_mnist1d() -> tuple[np.ndarray, np.ndarray]:
    d = lrjax.load_mnist1d(val_size=0)
    return d.x_train.astype(np.float32), d.y_train.astype(np.int32)


def load_digits28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits as 28x28 images: each pixel a 3x3 block, padded by 2."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.kron(bunch.images.astype(np.float32) / 16.0, np.ones((3, 3), np.float32))
    return np.pad(x, ((0, 0), (2, 2), (2, 2))), bunch.target.astype(np.int32)


def workloads(quick: bool, gpu: bool, scale: float = 1.0) -> dict[str, Workload]:
    """The three workloads; ``quick`` shrinks steps and K (the smoke test), ``gpu`` grows K,
    ``scale`` multiplies the steps."""
    big_ks = (1, 8, 32, 128) if gpu else (1, 8, 32)
    full = {
        "mlp": Workload(
            "mlp", "MLP 40-256-256-10, MNIST-1D", models.MLP(), load_mnist1d, 128, 300,
            (1, 8, 32, 128, 256, 512, 1024) if gpu else (1, 8, 32, 128), 8, (-2.5, -0.5), "mlp",
        ),
        "resnet": Workload(
            "resnet", "ResNet (BatchNorm, dropout 0.1), 28x28 digits",
            models.ResNet(features=(8, 16), dropout_rate=0.1), load_digits28, 32, 20,
            big_ks, 2, (-2.0, -0.5), "resnet", dropout=0.1,
        ),
        "transformer": Workload(
            "transformer", "Transformer encoder (2 blocks, dropout 0.1), MNIST-1D",
            models.TransformerClassifier(dropout_rate=0.1), load_mnist1d, 64, 30,
            big_ks, 2, (-3.0, -1.5), "transformer", dropout=0.1,
        ),
    }  # fmt: skip
    if not quick:
        return {
            n: dataclasses.replace(w, steps=max(10, round(w.steps * scale)))
            for n, w in full.items()
        }
    # Every row once, at K=2 (two members, so the MLP's agreement covers two learning rates);
    # the ResNet and the transformer with one stage / block, which halves their compile times.
    small = {
        "resnet": models.ResNet(features=(8,), dropout_rate=0.1),
        "transformer": models.TransformerClassifier(depth=1, dropout_rate=0.1),
    }
    return {
        name: dataclasses.replace(
            w, steps=10, ks=(2,), seq_members=2, batch=min(w.batch, 32),
            module=small.get(name, w.module), title=w.title + " (quick: one stage / block)",
        )
        for name, w in full.items()
    }  # fmt: skip


def peaks_for(w: Workload, k: int) -> np.ndarray:
    if k == 1:
        return np.array([10 ** np.mean(w.peaks)], np.float32)
    return np.logspace(*w.peaks, k).astype(np.float32)


def warmup_steps(w: Workload) -> int:
    return max(1, int(WARMUP_FRACTION * w.steps))


def lr_factor(w: Workload, t: int) -> float:
    """``warmup_cosine_decay(peak, warmup, steps)(t) / peak`` in plain Python (PyTorch's
    LambdaLR multiplies the peak by it)."""
    warm = warmup_steps(w)
    if t < warm:
        return t / warm
    return 0.5 * (1 + math.cos(math.pi * min(t - warm, w.steps - warm) / (w.steps - warm)))


def optimizer_kwargs_for(w: Workload) -> Callable:
    warm, steps = warmup_steps(w), w.steps

    def optimizer_kwargs(hp):
        lr = lrjax.warmup_cosine_decay(hp["peak"], warmup_steps=warm, total_steps=steps)
        return {"learning_rate": lr, "momentum": MOMENTUM}

    return optimizer_kwargs


def batch_table(w: Workload, n: int) -> np.ndarray:
    """``[steps, B]`` example indices: the order ``sweep.train`` uses with data seed 0."""
    return feeds.batch_indices_np(0, 0, w.steps, n, w.batch)


# -----------------------------------------------------------------------------------------------
# lrjax and the JAX baselines


def run_lrjax(w: Workload, x, y, k: int, group_size: int | None = None) -> dict:
    chunk = max(1, w.steps // 5)

    def train(num_steps):
        return sweep.train(
            w.module, LOSS, (x, y), optimizer=optax.sgd,
            optimizer_kwargs=optimizer_kwargs_for(w), hparams={"peak": peaks_for(w, k)},
            num_steps=num_steps, batch_size=w.batch,
            options=sweep.Options(group_size=group_size, chunk_steps=chunk, progress=False),
        )  # fmt: skip

    first = train(chunk)  # compiles the chunk program the timed run reuses
    t = time.perf_counter()
    result = train(w.steps)
    # The timed run still compiles the few eager ops that probe the schedules on a grid of
    # num_steps (milliseconds each); XLA's own count of those seconds is taken out.
    seconds = time.perf_counter() - t - result.metadata["compile_seconds"]
    memory = first.metadata["program_bytes"]
    return {
        "seconds": seconds,
        "model_steps_per_s": k * w.steps / seconds,
        "compile_s": first.metadata["compile_seconds"],
        # XLA reports one device's share of the sharded program; every device holds as much.
        "memory_bytes": None if memory is None else memory * first.metadata["devices"],
        "num_groups": first.metadata["num_groups"],
        "losses": np.asarray(result.loss),
    }


def single_task(w: Workload, x) -> tuple[Callable, Callable]:
    """One member's ``(step, init)``: the sweep's supervised step under its controller (which
    sets the scheduled learning rate before each step)."""
    model = supervised.as_model(w.module, x[:1])
    task = supervised.Supervised(model, LOSS, optax.sgd, optimizer_kwargs_for(w))
    rules = task.controls({"peak": jnp.float32(0.1)})
    return lrjax.control(task.step, task.init, rules, log=None)


def single_member(w: Workload, peak: float) -> supervised.Member:
    i32, f32 = jnp.int32, jnp.float32
    return supervised.Member(
        hparams={"peak": f32(peak)}, seed=i32(0), data_seed=i32(0), batch_size=i32(w.batch),
    )  # fmt: skip


def forward_flops(w: Workload, x, batch: int) -> float:
    """XLA's FLOP count of one forward pass (evaluation mode) at ``batch``."""
    model = supervised.as_model(w.module, x[:1])
    params = jax.eval_shape(model.init, jax.random.key(0))
    state = jax.eval_shape(model.init_state, jax.random.key(0)) if model.stateful else {}
    xs = jax.ShapeDtypeStruct((batch, *x.shape[1:]), jnp.float32)
    cost = jax.jit(model.eval_outputs).lower(params, state, xs).cost_analysis()  # no compile
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


def run_sequential_jax(w: Workload, x, y, members: int) -> dict:
    """The hand-written JAX baseline: for each member, a Python loop over a jitted step."""
    task_step, task_init = single_task(w, x)
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    table = batch_table(w, len(x))

    @jax.jit
    def step(state, idx, member):
        return task_step(state, (xd[idx], yd[idx]), member)

    init = jax.jit(task_init)

    def member_run(peak, num_steps):
        member = single_member(w, peak)
        state = init(member)
        losses = []
        for t in range(num_steps):
            state, metrics = step(state, table[t], member)
            losses.append(metrics["loss"])
        return np.asarray(jnp.stack(losses))

    t = time.perf_counter()
    member_run(0.01, 1)  # compile
    compile_s = time.perf_counter() - t
    peaks = peaks_for(w, members)
    t = time.perf_counter()
    losses = np.stack([member_run(float(p), w.steps) for p in peaks])
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "model_steps_per_s": members * w.steps / seconds,
        "compile_s": compile_s,
        "losses": losses,
    }


def run_bound(w: Workload, x, y, k: int) -> dict:
    """One model at batch K*B for the same steps, scanned in one jitted program."""
    big = k * w.batch
    task_step, task_init = single_task(dataclasses.replace(w, batch=big), x)
    rng = np.random.default_rng(0)
    # Batches drawn with replacement: K*B may exceed the data set; the FLOPs are the same.
    table = jnp.asarray(rng.integers(0, len(x), (w.steps, big), dtype=np.int32))
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    member = single_member(w, float(peaks_for(w, 1)[0]))

    @jax.jit
    def train(member, table):
        def body(state, idx):
            state, metrics = task_step(state, (xd[idx], yd[idx]), member)
            return state, metrics["loss"]

        return jax.lax.scan(body, task_init(member), table)

    t = time.perf_counter()
    compiled = train.lower(member, table).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(compiled(member, table))
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "model_steps_per_s": k * w.steps / seconds,  # in units of batch-B model-steps
        "compile_s": compile_s,
    }


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


def member_bytes(w: Workload, x, y, k: int) -> tuple[int | None, int | None]:
    """XLA's memory estimate of the one-group program at K members and of a one-member program
    (compiled, never run), summed over the devices each uses."""
    out = []
    for members in (k, 1):
        result = sweep.train(
            w.module, LOSS, (x, y), optimizer=optax.sgd,
            optimizer_kwargs=optimizer_kwargs_for(w), hparams={"peak": peaks_for(w, members)},
            num_steps=1, batch_size=w.batch,
            options=sweep.Options(group_size=members, progress=False),
        )  # fmt: skip
        nbytes = result.metadata["program_bytes"]
        out.append(None if nbytes is None else nbytes * result.metadata["devices"])
    return out[0], out[1]


# -----------------------------------------------------------------------------------------------
# PyTorch


def torch_modules():
    """PyTorch ports of the three models (same layers, shapes and FLOPs as the Flax ones)."""
    import torch
    from torch import nn

    class ResNet(nn.Module):
        def __init__(self, features, dropout, num_classes):
            super().__init__()

            def conv_bn(a, b):
                return nn.Sequential(
                    nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b, momentum=0.1)
                )

            self.stem = conv_bn(1, features[0])
            self.widen = nn.ModuleList([conv_bn(a, b) for a, b in itertools.pairwise(features)])
            self.blocks = nn.ModuleList(
                [nn.ModuleList([conv_bn(f, f), conv_bn(f, f)]) for f in features]
            )
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(features[-1], num_classes)

        def forward(self, x):
            x = torch.relu(self.stem(x[:, None]))
            for i, (c1, c2) in enumerate(self.blocks):
                if i > 0:
                    x = torch.relu(self.widen[i - 1](nn.functional.avg_pool2d(x, 2)))
                x = torch.relu(x + c2(torch.relu(c1(x))))
            return self.head(self.drop(x.mean(dim=(2, 3))))

    class Block(nn.Module):
        def __init__(self, dim, heads, mlp_dim, dropout):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.mlp = nn.Sequential(
                nn.Linear(dim, mlp_dim), nn.GELU(approximate="tanh"), nn.Linear(mlp_dim, dim)
            )
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            h = self.ln1(x)
            x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
            return x + self.drop(self.mlp(self.ln2(x)))

    class Transformer(nn.Module):
        def __init__(self, patch, length, dim, depth, heads, dropout):
            super().__init__()
            self.patch = patch
            self.embed = nn.Linear(patch, dim)
            self.pos = nn.Parameter(0.02 * torch.randn(length // patch, dim))
            self.blocks = nn.Sequential(
                *[Block(dim, heads, 2 * dim, dropout) for _ in range(depth)]
            )
            self.ln = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, 10)

        def forward(self, x):
            x = self.embed(x.reshape(x.shape[0], -1, self.patch)) + self.pos
            return self.head(self.ln(self.blocks(x)).mean(dim=1))

    def mlp(sizes):
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers)

    return {"mlp": mlp, "resnet": ResNet, "transformer": Transformer}


def torch_model(w: Workload, x):
    """The PyTorch port of ``w``; the MLP with the JAX initialization (seed 0) copied in."""
    import torch

    m = w.module
    if w.torch_model == "resnet":
        model = torch_modules()["resnet"](m.features, m.dropout_rate, m.num_classes)
    elif w.torch_model == "transformer":
        sizes = (m.patch_size, x.shape[1], m.dim, m.depth, m.num_heads, m.dropout_rate)
        model = torch_modules()["transformer"](*sizes)
    else:
        model = torch_modules()["mlp"]((x[0].size, *m.hidden, m.num_classes))
    if w.torch_model == "mlp":
        params = supervised.as_model(w.module, x[:1]).init(jax.random.key(0))
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for i, layer in enumerate(linears):
                dense = params[f"Dense_{i}"]
                layer.weight.copy_(torch.from_numpy(np.asarray(dense["kernel"]).T.copy()))
                layer.bias.copy_(torch.from_numpy(np.array(dense["bias"])))
    return model


def _torch_setup():
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    return torch, device


def _sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_torch_loop(w: Workload, x, y, members: int) -> dict:
    """PyTorch, one member after another: SGD + LambdaLR, the same batches."""
    torch, device = _torch_setup()
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
    table = torch.from_numpy(batch_table(w, len(x)).astype(np.int64)).to(device)
    template = torch_model(w, x)

    def member_run(peak, num_steps):
        torch.manual_seed(0)
        model = copy.deepcopy(template).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=float(peak), momentum=MOMENTUM)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(w, t))
        losses = []
        for t in range(num_steps):
            idx = table[t]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
        return torch.stack(losses).cpu().numpy()

    member_run(0.01, 3)  # warm up the allocator and kernels
    _sync(torch, device)
    t = time.perf_counter()
    losses = np.stack([member_run(float(p), w.steps) for p in peaks_for(w, members)])
    _sync(torch, device)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "model_steps_per_s": members * w.steps / seconds, "losses": losses}


def run_torch_vmap(w: Workload, x, y, k: int) -> dict:
    """``torch.func.vmap`` over K stacked members; SGD with momentum written functionally."""
    torch, device = _torch_setup()
    from torch import func

    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
    table = torch.from_numpy(batch_table(w, len(x)).astype(np.int64)).to(device)
    torch.manual_seed(0)
    template = func.replace_all_batch_norm_modules_(torch_model(w, x)).to(device).train()
    params, buffers = func.stack_module_state([copy.deepcopy(template) for _ in range(k)])
    base = copy.deepcopy(template).to("meta")

    def loss_fn(p, b, xb, yb):
        out = func.functional_call(base, (p, b), (xb,))
        return torch.nn.functional.cross_entropy(out, yb)

    grads_fn = func.vmap(
        func.grad_and_value(loss_fn), in_dims=(0, 0, None, None), randomness="different"
    )
    peaks = torch.from_numpy(peaks_for(w, k)).to(device)

    def run(num_steps):
        p = {n: v.detach().clone() for n, v in params.items()}
        bufs = {n: torch.zeros_like(v) for n, v in p.items()}
        losses = []
        for t in range(num_steps):
            idx = table[t]
            grads, loss = grads_fn(p, buffers, xt[idx], yt[idx])
            lr = peaks * lr_factor(w, t)
            with torch.no_grad():
                for n in p:
                    bufs[n].mul_(MOMENTUM).add_(grads[n])
                    p[n].sub_(lr.reshape(-1, *[1] * (p[n].ndim - 1)) * bufs[n])
            losses.append(loss)
        return torch.stack(losses, dim=1).cpu().numpy()

    run(2)  # warm up
    _sync(torch, device)
    t = time.perf_counter()
    losses = run(w.steps)
    _sync(torch, device)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "model_steps_per_s": k * w.steps / seconds, "losses": losses}


# -----------------------------------------------------------------------------------------------
# The run


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


def _relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def _gaps(losses: np.ndarray, reference: np.ndarray) -> dict:
    return {
        "first_steps": _relative_gap(losses[:, :AGREE_STEPS], reference[:, :AGREE_STEPS]),
        "final_step": _relative_gap(losses[:, -1], reference[:, -1]),
    }


def bench_workload(w: Workload, peak: float, has_torch: bool, log) -> tuple[list, dict]:
    """Every row of one workload, plus its agreement and memory checks."""
    x, y = w.load()
    flops = 3 * forward_flops(w, x, w.batch)
    t0 = time.perf_counter()
    log(f"\n## {w.name}: {w.title}; batch {w.batch}, {w.steps} steps, K = {list(w.ks)}; "
        f"{flops / 1e6:.1f} MFLOP per model-step")  # fmt: skip
    seq = {"sequential JAX": run_sequential_jax(w, x, y, w.seq_members)}
    if has_torch:
        seq["PyTorch loop"] = run_torch_loop(w, x, y, w.seq_members)
    rows, lrjax_losses, vmap_losses = [], {}, {}
    for k in w.ks:
        measured = [("lrjax", run_lrjax(w, x, y, k))]
        # All K members in one program, at the largest K (the one-group memory question).
        if measured[0][1]["num_groups"] > 1 and k >= 128:
            measured.append(("lrjax one group", run_lrjax(w, x, y, k, group_size=k)))
        lrjax_losses[k] = measured[0][1]["losses"]
        measured += list(seq.items())
        # A CPU-only torch next to a GPU would take minutes for the MLP's K > 128: skipped.
        if has_torch and (k <= 128 or _torch_setup()[1] == "cuda"):
            try:
                measured.append(("PyTorch vmap", run_torch_vmap(w, x, y, k)))
                vmap_losses[k] = measured[-1][1]["losses"]
            except Exception as e:  # a model torch.func cannot vmap: say so, keep the others
                log(f"PyTorch vmap failed at K={k}: {type(e).__name__}: {e}")
        measured.append(("one model, batch K*B", run_bound(w, x, y, k)))
        speed = {name: m["model_steps_per_s"] for name, m in measured}
        for name, m in measured:
            row = {
                "workload": w.name, "k": k, "engine": name,
                "model_steps_per_s": m["model_steps_per_s"],
                "vs_sequential_jax": m["model_steps_per_s"] / speed["sequential JAX"],
                "vs_torch": m["model_steps_per_s"] / speed.get("PyTorch loop", math.nan),
                "efficiency": m["model_steps_per_s"] / speed["one model, batch K*B"],
                "mfu": m["model_steps_per_s"] * flops / peak,
                "compile_s": m.get("compile_s"),
                "memory_bytes": m.get("memory_bytes"),
                "num_groups": m.get("num_groups"),
                "measured_members": w.seq_members if name in seq else k,
            }  # fmt: skip
            rows.append(row)
            log(_format_row(row))
    checks = {"flops_per_model_step": flops, "seconds": None}
    # Agreement: the sequential rows ran members 0..M-1 of the K=M sweep (same peaks).
    m = w.seq_members
    if m in lrjax_losses:
        reference = lrjax_losses[m]
        gaps = {name: _gaps(r["losses"], reference) for name, r in seq.items()}
        if m in vmap_losses:
            gaps["PyTorch vmap"] = _gaps(vmap_losses[m], reference)
        first = min(w.steps, AGREE_STEPS)
        checks["agreement"] = {"members": m, "steps": first, "max_relative_gap": gaps}
        log(f"loss agreement with lrjax (K={m}; max relative gap over the first {first} steps, "
            f"at the last step {w.steps}): "
            + ", ".join(f"{n} {g['first_steps']:.1e}, {g['final_step']:.1e}"
                        for n, g in gaps.items()))  # fmt: skip
    if 128 in w.ks:
        many, one = member_bytes(w, x, y, 128)
        if many and one:
            checks["memory"] = {"k": 128, "bytes_k": many, "bytes_1": one,
                                "per_member_ratio": many / 128 / one}  # fmt: skip
            log(f"memory: K=128 one group {many / 2**20:.1f} MiB, one member "
                f"{one / 2**20:.2f} MiB: per member {many / 128 / one:.2f}x")  # fmt: skip
    checks["seconds"] = time.perf_counter() - t0
    checks["peak_rss_bytes"] = peak_rss_bytes()
    log(f"{w.name}: {checks['seconds']:.0f} s, peak host RSS so far "
        f"{checks['peak_rss_bytes'] / 2**20:.0f} MiB")  # fmt: skip
    return rows, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny steps and K")
    parser.add_argument("--workloads", default="mlp,resnet,transformer")
    parser.add_argument("--torch", choices=["auto", "no"], default="auto")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every workload's steps")
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args(argv)
    gpu = jax.default_backend() == "gpu"
    table = workloads(args.quick, gpu, args.scale)
    names = args.workloads.split(",")
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise ValueError(f"--workloads must name some of {sorted(table)}, got {unknown}")
    has_torch = args.torch == "auto" and importlib.util.find_spec("torch") is not None
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    t_start, load_before = time.perf_counter(), os.getloadavg()
    peak = matmul_peak(4096 if gpu else 1024)
    device = jax.devices()[0].device_kind
    log(f"{device}: float32 matmul peak {peak / 1e9:.1f} GFLOP/s; load average {load_before}")
    if not args.quick and not gpu:
        log(
            f"expected run time on 2 quiet CPU cores: about {7 * args.scale:.0f}-"
            f"{8 * args.scale:.0f} minutes (an estimate; compile times do not scale with --scale)"
        )
    rows, checks = [], {}
    for name in names:
        w_rows, checks[name] = bench_workload(table[name], peak, has_torch, log)
        rows += w_rows
    meta = {
        "command": " ".join(["python -m experiments.bench", *(argv or sys.argv[1:])]),
        "quick": args.quick,
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
        "workloads": {n: dataclasses.asdict(table[n]) | {"module": repr(table[n].module)}
                      for n in names},
    }  # fmt: skip
    for n in names:
        del meta["workloads"][n]["load"]
    targets = _targets(rows, checks, gpu, has_torch)
    text = _report(meta, rows, checks, targets, table, names, has_torch)
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(text + "\n")
    payload = {"meta": meta, "rows": rows, "checks": checks, "targets": targets, "log": lines}
    (out / "bench.json").write_text(json.dumps(payload, indent=1, default=float))
    return 0


# -----------------------------------------------------------------------------------------------
# Report


def _fmt(value, spec, suffix="") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def _format_row(row) -> str:
    memory = None if row["memory_bytes"] is None else row["memory_bytes"] / 2**20
    return (
        f"| {row['workload']} | {row['k']} | {row['engine']} | {row['model_steps_per_s']:.0f} | "
        f"{_fmt(row['vs_sequential_jax'], '.2f', 'x')} | {_fmt(row['vs_torch'], '.2f', 'x')} | "
        f"{_fmt(row['efficiency'], '.2f')} | {_fmt(100 * row['mfu'], '.1f', '%')} | "
        f"{_fmt(row['compile_s'], '.1f')} | {_fmt(memory, '.1f')} |"
    )


def _table(rows) -> str:
    head = (
        "| workload | K | engine | model-steps/s | vs seq. JAX | vs PyTorch loop | vect. eff. "
        "| MFU | compile s | memory MiB |\n|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|"
    )
    return "\n".join([head, *(_format_row(r) for r in rows)])


def _best_lrjax(rows, workload, k):
    found = [
        r for r in rows if r["workload"] == workload and r["k"] == k and "lrjax" in r["engine"]
    ]
    return max(found, key=lambda r: r["model_steps_per_s"]) if found else None


def _targets(rows, checks, gpu, has_torch) -> list[dict]:
    """Issue 11's targets, each with the value measured in this run and PASS/MISS."""
    out = []

    def check(name, value, ok, shown):
        out.append({"target": name, "value": value, "shown": shown, "pass": bool(ok)})

    def lrjax_vs(workload, k, column, minimum, label):
        best = _best_lrjax(rows, workload, k)
        if best is not None and not math.isnan(best[column]):
            value = best[column]
            name = f"{workload}: K={k} ({best['engine']}) {label} >= {minimum}x"
            check(name, value, value >= minimum, f"{value:.2f}x")

    def efficiency(workload, ks, minimum):
        for k in ks:
            best = _best_lrjax(rows, workload, k)
            if best is not None:
                value = best["efficiency"]
                name = (
                    f"{workload}: vectorization efficiency at K={k} ({best['engine']}) >= {minimum}"
                )
                check(name, value, value >= minimum, f"{value:.2f}")

    workloads_run = {r["workload"] for r in rows}
    ks_of = {w: sorted({r["k"] for r in rows if r["workload"] == w}) for w in workloads_run}
    if gpu:
        if "resnet" in workloads_run:
            lrjax_vs("resnet", 128, "vs_sequential_jax", 15, "vs sequential JAX")
        for w in sorted(workloads_run):
            efficiency(w, [k for k in ks_of[w] if k >= 8], 0.9)
    else:
        if "mlp" in workloads_run:
            if has_torch:
                lrjax_vs("mlp", 32, "vs_torch", 2.5, "vs PyTorch loop")
            lrjax_vs("mlp", 32, "vs_sequential_jax", 2, "vs sequential JAX")
            for k in [k for k in ks_of["mlp"] if k >= 8]:
                best = _best_lrjax(rows, "mlp", k)
                name = f"mlp: MFU at K={k} ({best['engine']}) >= 70%"
                check(name, best["mfu"], best["mfu"] >= 0.7, f"{100 * best['mfu']:.1f}%")
            efficiency("mlp", [k for k in ks_of["mlp"] if 8 <= k <= 128], 0.9)
        for w in ("resnet", "transformer"):
            if w in workloads_run:
                if has_torch:
                    lrjax_vs(w, 32, "vs_torch", 1.5, "vs PyTorch loop")
                efficiency(w, [k for k in ks_of[w] if k >= 8], 0.8)
    for w, c in checks.items():
        if "memory" in c:
            ratio = c["memory"]["per_member_ratio"]
            name = f"{w}: device memory per member at K=128 (one group) / one-member program <= 1.1"
            check(name, ratio, ratio <= 1.1, f"{ratio:.2f}x")
        if "agreement" in c and w == "mlp":
            for engine_name, gap in c["agreement"]["max_relative_gap"].items():
                steps = c["agreement"]["steps"]
                name = f"mlp: {engine_name} loss = lrjax loss, every step of the first {steps}"
                name += f" (rtol {AGREE_RTOL}; at the last step: {gap['final_step']:.1e})"
                value = gap["first_steps"]
                check(name, value, value <= AGREE_RTOL, f"{value:.1e}")
    return out


def _report(meta, rows, checks, targets, table, names, has_torch) -> str:
    v = meta["versions"]
    load_a, load_b = meta["load_average_before"], meta["load_average_after"]
    lines = [
        f"# Benchmark{' (--quick: a smoke test, not a measurement)' if meta['quick'] else ''}",
        "",
        f"Machine: {meta['device']} ({meta['machine']}), {meta['num_devices']} XLA devices; "
        f"float32 matmul peak {meta['matmul_peak_flops'] / 1e9:.0f} GFLOP/s. Versions: python "
        f"{v['python']}, jax {v['jax']}, jaxlib {v['jaxlib']}, flax {v['flax']}, optax "
        f"{v['optax']}, numpy {v['numpy']}, torch {v['torch']}. Load average (1, 5, 15 min) "
        f"before {tuple(round(a, 2) for a in load_a)}, after "
        f"{tuple(round(a, 2) for a in load_b)}. Run time {meta['seconds']:.0f} s; peak host RSS "
        f"{meta['peak_rss_bytes'] / 2**20:.0f} MiB.",
        "",
        "Workloads (SGD, momentum 0.9, warmup + cosine, peak LRs log-spaced, seed 0, same "
        "batches):",
    ]  # fmt: skip
    for n in names:
        w = table[n]
        c = checks[n]
        lines.append(
            f"- `{n}`: {w.title}; batch {w.batch}, {w.steps} steps, "
            f"K = {', '.join(map(str, w.ks))}; "
            f"{c['flops_per_model_step'] / 1e6:.1f} MFLOP per model-step; sequential rows measured "
            f"on {w.seq_members} members; {c['seconds']:.0f} s, peak host RSS after it "
            f"{c['peak_rss_bytes'] / 2**20:.0f} MiB."
        )  # fmt: skip
    if not meta["quick"] and ("resnet" in names or "transformer" in names):
        lines.append(
            "- The ResNet and the transformer stop at K = 32 on CPU: one K = 128 row of them "
            "takes minutes on 2 cores (the GPU run goes to K = 128)."
        )
    lines += ["", _table(rows), ""]
    for n in names:
        if "memory" in checks[n]:
            mem = checks[n]["memory"]
            lines.append(
                f"Device memory (XLA's buffer assignment, all devices), `{n}`: K = 128 in one "
                f"program {mem['bytes_k'] / 2**20:.1f} MiB, one member alone "
                f"{mem['bytes_1'] / 2**20:.2f} MiB: {mem['per_member_ratio']:.2f}x per member."
            )
            lines.append("")
    lines.append("Targets (issue 11), measured in this run:")
    for t in targets:
        lines.append(f"- {t['target']}: {t['shown']} -> {'PASS' if t['pass'] else 'MISS'}")
    if not has_torch:
        lines.append("- PyTorch rows: not measured (torch not installed, or --torch no).")
    lines += [
        "",
        "Loss agreement is checked on the MLP only: the ResNet and the transformer have dropout, "
        "whose masks PyTorch and JAX draw from different generators, and their PyTorch ports "
        "start from PyTorch's initialization.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
