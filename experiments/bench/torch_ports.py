"""PyTorch ports of the workloads (same layers, shapes and FLOPs as the Flax ones) and the two
PyTorch rows: the hand-written loop, one member after another, and ``torch.func.vmap``."""

from __future__ import annotations

import copy
import itertools
import os
import time

import jax
import numpy as np

from experiments.bench.workloads import (
    MOMENTUM,
    Workload,
    batch_table,
    lr_factor,
    members_for,
    peaks_for,
    task,
)
from lrjax import engine


def torch_modules():
    """The PyTorch classes of every port."""
    import torch
    from torch import nn

    class ResNet(nn.Module):  # lrjax.models.ResNet
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

    class CNN(nn.Module):  # the Flax MNIST example's CNN
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
            self.dense1, self.dense2 = nn.Linear(64 * 7 * 7, 256), nn.Linear(256, 10)

        def forward(self, x):
            x = x.permute(0, 3, 1, 2)
            x = nn.functional.avg_pool2d(torch.relu(self.conv1(x)), 2)
            x = nn.functional.avg_pool2d(torch.relu(self.conv2(x)), 2)
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC order, as Flax flattens
            return self.dense2(torch.relu(self.dense1(x)))

    class BasicBlock(nn.Module):
        def __init__(self, a, b, stride):
            super().__init__()
            self.c1 = nn.Conv2d(a, b, 3, stride, padding=1, bias=False)
            self.b1 = nn.BatchNorm2d(b, momentum=0.1, eps=1e-5)
            self.c2 = nn.Conv2d(b, b, 3, padding=1, bias=False)
            self.b2 = nn.BatchNorm2d(b, momentum=0.1, eps=1e-5)
            nn.init.zeros_(self.b2.weight)
            self.proj = None
            if stride != 1 or a != b:
                self.proj = nn.Sequential(
                    nn.Conv2d(a, b, 1, stride, bias=False), nn.BatchNorm2d(b, momentum=0.1)
                )

        def forward(self, x):
            y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            return torch.relu((x if self.proj is None else self.proj(x)) + y)

    class ResNetBlocks(nn.Module):
        def __init__(self, stages, blocks, num_classes):
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(1, stages[0], 3, padding=1, bias=False), nn.BatchNorm2d(stages[0])
            )
            layers, a = [], stages[0]
            for i, b in enumerate(stages):
                for j in range(blocks):
                    layers.append(BasicBlock(a, b, 2 if i > 0 and j == 0 else 1))
                    a = b
            self.blocks = nn.Sequential(*layers)
            self.head = nn.Linear(stages[-1], num_classes)

        def forward(self, x):
            x = torch.relu(self.stem(x.permute(0, 3, 1, 2)))
            return self.head(self.blocks(x).mean(dim=(2, 3)))

    def mlp(sizes):
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
        return nn.Sequential(*layers)

    return {
        "mlp": mlp, "resnet": ResNet, "transformer": Transformer, "cnn": CNN,
        "resblocks": ResNetBlocks,
    }  # fmt: skip


def torch_model(w: Workload, data: tuple):
    """The PyTorch port of ``w``; the MLP with the JAX initialization (seed 0) copied in."""
    import torch

    m, x = w.module, data[0]
    ports = torch_modules()
    if w.torch_model == "resnet":
        model = ports["resnet"](m.features, m.dropout_rate, m.num_classes)
    elif w.torch_model == "transformer":
        sizes = (m.patch_size, x.shape[1], m.dim, m.depth, m.num_heads, m.dropout_rate)
        model = ports["transformer"](*sizes)
    elif w.torch_model == "cnn":
        model = ports["cnn"]()
    elif w.torch_model == "resblocks":
        model = ports["resblocks"](m.stages, m.blocks, m.num_classes)
    else:
        model = ports["mlp"]((x[0].size, *m.hidden, m.num_classes))
        init, _ = task(w, tuple(a[:1] for a in data[:-1]))
        params = jax.jit(init)(engine.member_slice(members_for(w, 1), 0))["params"]
        linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
        with torch.no_grad():
            for i, layer in enumerate(linears):
                dense = params[f"Dense_{i}"]
                layer.weight.copy_(torch.from_numpy(np.asarray(dense["kernel"]).T.copy()))
                layer.bias.copy_(torch.from_numpy(np.array(dense["bias"])))
    return model


def setup():
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    return torch, device


def _sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_torch_loop(w: Workload, data: tuple, members: int) -> dict:
    """PyTorch, one member after another: SGD + LambdaLR, the same batches."""
    torch, device = setup()
    x, y = data
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
    table = torch.from_numpy(batch_table(w, len(x)).astype(np.int64)).to(device)
    template = torch_model(w, data)

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


def run_torch_vmap(w: Workload, data: tuple, k: int) -> dict:
    """``torch.func.vmap`` over K stacked members; SGD with momentum written functionally."""
    torch, device = setup()
    from torch import func

    x, y = data
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
    table = torch.from_numpy(batch_table(w, len(x)).astype(np.int64)).to(device)
    torch.manual_seed(0)
    template = func.replace_all_batch_norm_modules_(torch_model(w, data)).to(device).train()
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
