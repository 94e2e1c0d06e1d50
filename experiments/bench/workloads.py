"""The benchmarked workloads: a Flax module, its data, and the user's own training step.

Every workload is trained the way a user trains their own model with lrjax: a step written
for ONE model with Flax and optax (:func:`task`), vectorized with ``lrjax.vectorize`` and
driven by ``lrjax.fit``; the baselines run that same step. Only the public primitive is used
(``lrjax.vectorize``, ``lrjax.fit``, ``lrjax.freeze_on_divergence``, ``lrjax.step_key``,
``lrjax.warmup_cosine_decay``), so the benchmark does not depend on ``lrjax.sweep``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from lrjax import feeds, models

WARMUP_FRACTION = 0.1
MOMENTUM = 0.9
LOSS = optax.softmax_cross_entropy_with_integer_labels


# -----------------------------------------------------------------------------------------------
# Models a user writes: the Flax MNIST example's CNN, a ResNet-18-style stack of basic blocks,
# and the Flax SST-2 example's BiLSTM classifier (all standard nn.Conv / nn.RNN layers).


class CNN(nn.Module):
    """The Flax MNIST example's CNN (``examples/mnist/train.py``), unchanged."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(features=32, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.Conv(features=64, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(features=256)(x)
        x = nn.relu(x)
        x = nn.Dense(features=10)(x)
        return x


class BasicBlock(nn.Module):
    """The Flax ImageNet example's ``ResNetBlock`` (two 3x3 convs with BatchNorm, a 1x1
    projection when the shape changes)."""

    features: int
    strides: int = 1

    @nn.compact
    def __call__(self, x, train: bool):
        conv = partial(nn.Conv, use_bias=False)
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        residual = x
        y = conv(self.features, (3, 3), (self.strides, self.strides))(x)
        y = nn.relu(norm()(y))
        y = conv(self.features, (3, 3))(y)
        y = norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = conv(self.features, (1, 1), (self.strides, self.strides))(residual)
            residual = norm()(residual)
        return nn.relu(residual + y)


class ResNetBlocks(nn.Module):
    """A ResNet-18-style network: a 3x3 stem, then per stage two basic blocks (the first of
    each later stage strided), global average pooling and a dense head."""

    stages: tuple[int, ...] = (8, 16)
    blocks: int = 2
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.stages[0], (3, 3), use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        for i, features in enumerate(self.stages):
            for j in range(self.blocks):
                x = BasicBlock(features, strides=2 if i > 0 and j == 0 else 1)(x, train)
        return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


class TextClassifier(nn.Module):
    """The Flax SST-2 example's model: embedding with dropout, a bidirectional
    ``nn.RNN(nn.OptimizedLSTMCell)`` over the valid tokens, keys-only MLP attention pooling,
    dropout and a dense head (smaller widths, for a CPU)."""

    vocab_size: int = 2000
    embedding_size: int = 64
    hidden_size: int = 64
    dropout_rate: float = 0.1
    num_classes: int = 2

    @nn.compact
    def __call__(self, tokens, lengths, train: bool = False):
        drop = partial(nn.Dropout, rate=self.dropout_rate, deterministic=not train)
        x = drop()(nn.Embed(self.vocab_size, self.embedding_size)(tokens))
        lstm = partial(nn.RNN, nn.OptimizedLSTMCell(self.hidden_size))
        x = nn.Bidirectional(lstm(), lstm())(x, seq_lengths=lengths)
        mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]
        scores = nn.Dense(1)(nn.tanh(nn.Dense(self.hidden_size)(x)))[..., 0]
        weights = jax.nn.softmax(jnp.where(mask, scores, -1e9), axis=-1)
        pooled = jnp.einsum("bt,btd->bd", weights, x)
        return nn.Dense(self.num_classes)(drop()(nn.tanh(nn.Dense(self.hidden_size)(pooled))))


# -----------------------------------------------------------------------------------------------
# Data


def load_mnist1d() -> tuple[np.ndarray, ...]:
    d = lrjax.load_mnist1d(val_size=0)
    return d.x_train.astype(np.float32), d.y_train.astype(np.int32)


def load_digits28(channel: bool = False) -> tuple[np.ndarray, ...]:
    """scikit-learn's 1797 8x8 digits as 28x28 images: each pixel a 3x3 block, padded by 2
    (with a trailing channel axis for ``nn.Conv``)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.kron(bunch.images.astype(np.float32) / 16.0, np.ones((3, 3), np.float32))
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return (x[..., None] if channel else x), bunch.target.astype(np.int32)


def load_sentences(n: int = 2000, length: int = 32, vocab: int = 2000) -> tuple[np.ndarray, ...]:
    """SST-2-shaped synthetic sentences: token ids (0 pads), lengths in ``[8, length]``, and a
    label saying whether tokens from the first tenth of the vocabulary ("positive words") are
    more frequent than chance."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, length + 1, n).astype(np.int32)
    tokens = rng.integers(1, vocab, (n, length)).astype(np.int32)
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = 0
    positive = ((tokens > 0) & (tokens < vocab // 10)).sum(1) / lengths
    return tokens, lengths, (positive > np.median(positive)).astype(np.int32)


# -----------------------------------------------------------------------------------------------
# Workloads


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmarked model: its module, data, batch size, steps, member counts.

    ``train``/``stats``/``dropout``: the module takes ``train=``, keeps BatchNorm statistics,
    draws dropout masks. The data's last array holds the labels, the others are the inputs.
    """

    name: str
    title: str
    module: Any
    load: Callable[[], tuple[np.ndarray, ...]]
    batch: int
    steps: int
    ks: tuple[int, ...]
    seq_members: int  # members the sequential rows run (their speed does not depend on K)
    peaks: tuple[float, float]  # log10 range of the peak learning rates
    torch_model: str | None  # the PyTorch port (experiments.bench.torch_ports), or none
    train: bool = False
    stats: bool = False
    dropout: bool = False


def workloads(quick: bool, gpu: bool, scale: float = 1.0) -> dict[str, Workload]:
    """Every workload; ``quick`` shrinks steps and K (the smoke test), ``gpu`` grows K (up to
    1024 for the MLP, 128 for the others) and the steps, ``scale`` multiplies the steps."""
    big = (1, 8, 32, 128) if gpu else (1, 8, 32)
    g = 2 if gpu else 1  # longer runs on a GPU: its steps take milliseconds
    full = {
        "mlp": Workload(
            "mlp", "MLP 40-256-256-10, MNIST-1D", models.MLP(), load_mnist1d, 128, 300,
            (1, 8, 32, 128, 256, 512, 1024) if gpu else (1, 8, 32, 128), 8, (-2.5, -0.5), "mlp",
        ),
        "resnet": Workload(
            "resnet", "lrjax.models.ResNet (BatchNorm, dropout 0.1), 28x28 digits",
            models.ResNet(features=(8, 16), dropout_rate=0.1), load_digits28, 32, 20 * g,
            big, 2, (-2.0, -0.5), "resnet", train=True, stats=True, dropout=True,
        ),
        "transformer": Workload(
            "transformer", "Transformer encoder (2 blocks, dropout 0.1), MNIST-1D",
            models.TransformerClassifier(dropout_rate=0.1), load_mnist1d, 64, 30 * g,
            big, 2, (-3.0, -1.5), "transformer", train=True, dropout=True,
        ),
        "cnn": Workload(
            "cnn", "user's nn.Conv CNN (the Flax MNIST example), 28x28 digits",
            CNN(), partial(load_digits28, channel=True), 32, 10 * g,
            big, 2, (-2.0, -0.5), "cnn",
        ),
        "resblocks": Workload(
            "resblocks", "user's ResNet basic blocks (nn.Conv, BatchNorm; 2 stages x 2), "
            "28x28 digits", ResNetBlocks(), partial(load_digits28, channel=True), 32, 10 * g,
            big, 2, (-2.0, -0.5), "resblocks", train=True, stats=True,
        ),
        "bilstm": Workload(
            "bilstm", "user's BiLSTM (the Flax SST-2 example: nn.RNN(OptimizedLSTMCell), "
            "dropout 0.1), 32 tokens", TextClassifier(), load_sentences, 32, 20 * g,
            big, 2, (-2.0, 0.0), None, train=True, dropout=True,
        ),
    }  # fmt: skip
    if not quick:
        return {
            n: dataclasses.replace(w, steps=max(3 if gpu else 10, round(w.steps * scale)))
            for n, w in full.items()
        }
    # Every row once, at K=2 (two members, so the MLP's agreement covers two learning rates);
    # the ResNets, the transformer and the LSTM shrunk, which cuts their compile times.
    small = {
        "resnet": models.ResNet(features=(8,), dropout_rate=0.1),
        "transformer": models.TransformerClassifier(depth=1, dropout_rate=0.1),
        "resblocks": ResNetBlocks(stages=(8,), blocks=1),
        "bilstm": TextClassifier(vocab_size=200, embedding_size=16, hidden_size=16),
    }
    return {
        name: dataclasses.replace(
            w, steps=4 if gpu else 10, ks=(2,), seq_members=2, batch=min(w.batch, 32),
            module=small.get(name, w.module), title=w.title + " (quick: shrunk)",
        )
        for name, w in full.items()
    }  # fmt: skip


def peaks_for(w: Workload, k: int) -> np.ndarray:
    if k == 1:
        return np.array([10 ** np.mean(w.peaks)], np.float32)
    return np.logspace(*w.peaks, k).astype(np.float32)


def members_for(w: Workload, k: int) -> dict[str, np.ndarray]:
    """K members: log-spaced peak learning rates, one initialization and dropout seed (0)."""
    return {"peak": peaks_for(w, k), "seed": np.zeros(k, np.int32)}


def warmup_steps(w: Workload) -> int:
    return max(1, int(WARMUP_FRACTION * w.steps))


def lr_factor(w: Workload, t: int) -> float:
    """``warmup_cosine_decay(peak, warmup, steps)(t) / peak`` in plain Python (PyTorch's
    LambdaLR multiplies the peak by it)."""
    warm = warmup_steps(w)
    if t < warm:
        return t / warm
    return 0.5 * (1 + math.cos(math.pi * min(t - warm, w.steps - warm) / (w.steps - warm)))


def batch_table(w: Workload, n: int) -> np.ndarray:
    """``[steps, B]`` example indices: the order ``lrjax.fit`` uses for arrays (data seed 0)."""
    return feeds.batch_indices_np(0, 0, w.steps, n, w.batch)


def task(w: Workload, example: tuple) -> tuple[Callable, Callable]:
    """``(init, step)`` of ONE model, as a user writes them with Flax and optax: SGD with
    momentum on a warmup + cosine schedule of the member's peak, BatchNorm statistics and
    dropout keys where the model has them; the step reports the loss and the gradient norm.

    Args:
      w: the workload.
      example: one batch's inputs (the data arrays but the labels), for the module's init.
    """
    warm = warmup_steps(w)

    def optimizer(peak):
        schedule = lrjax.warmup_cosine_decay(peak, warmup_steps=warm, total_steps=w.steps)
        return optax.sgd(schedule, momentum=MOMENTUM)

    train_kwargs = {"train": True} if w.train else {}

    def init(member):
        # The key from the member's seed: with a constant key XLA may fold the whole random
        # initialization at compile time (slow for a large dense layer).
        key = jax.random.key(member["seed"])
        variables = w.module.init(key, *example, **({"train": False} if w.train else {}))
        params = variables["params"]
        return {
            "params": params,
            "batch_stats": variables.get("batch_stats", {}),
            "opt_state": optimizer(member["peak"]).init(params),
            "step": jnp.int32(0),
        }

    def step(state, batch, member):
        *inputs, labels = batch

        def loss_fn(params):
            variables, kwargs = {"params": params}, dict(train_kwargs)
            if w.stats:
                variables["batch_stats"] = state["batch_stats"]
                kwargs["mutable"] = ["batch_stats"]
            if w.dropout:
                kwargs["rngs"] = {"dropout": lrjax.step_key(member["seed"], state["step"])}
            out = w.module.apply(variables, *inputs, **kwargs)
            logits, updates = out if w.stats else (out, {"batch_stats": state["batch_stats"]})
            return LOSS(logits, labels).mean(), updates["batch_stats"]

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = optimizer(member["peak"]).update(
            grads, state["opt_state"], state["params"]
        )
        new = {
            "params": optax.apply_updates(state["params"], updates),
            "batch_stats": stats,
            "opt_state": opt_state,
            "step": state["step"] + 1,
        }
        return new, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    return init, step


def eval_forward(w: Workload) -> Callable:
    """``forward(variables, *inputs)``: the module in evaluation mode (for its FLOP count)."""

    def forward(variables, *inputs):
        return w.module.apply(variables, *inputs, **({"train": False} if w.train else {}))

    return forward
