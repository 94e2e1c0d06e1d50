"""Small Flax (``flax.linen``) classifiers for the learning-rate studies.

Every model maps a batch of inputs to logits, ``model.apply(variables, x) -> (batch,
num_classes)``. The first four are pure functions of their parameters (no state, no
randomness); :class:`ResNet` has batch normalisation and dropout, so it trains with
``train=True``, ``mutable=["batch_stats"]`` and a ``"dropout"`` RNG, as real models do. The
engine (:func:`lrjax.vectorize`, :func:`lrjax.sweep.train`) takes both kinds.

* :class:`MLP` — dense ReLU network on flattened inputs.
* :class:`CNN1D` — the MNIST-1D paper's small 1-D CNN (5,210 parameters).
* :class:`CNN2D` — conv-pool-conv-pool-dense for 28×28 (or 8×8) images.
* :class:`TransformerClassifier` — a small pre-LN encoder over patches of a sequence, the
  kind of model the "linear warmup then decay" recipe (BERT) was made for.
* :class:`ResNet` — a small residual CNN with BatchNorm and dropout for 8×8 or 28×28 images.
* :func:`dropout` — inverted dropout whose rate may be traced (so it can differ per member).

Parameter counts in the docstrings are for the default configuration and are checked by
``tests/models_test.py``; :func:`param_count` counts any pytree.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CNN1D", "CNN2D", "MLP", "ResNet", "TransformerClassifier", "dropout", "param_count"]


def param_count(params) -> int:
    """Number of scalars in a pytree of arrays (e.g. ``model.init(key, x)``).

    Examples:
      >>> import jax
      >>> params = MLP(hidden=(8,), num_classes=3).init(jax.random.key(0), jnp.zeros((1, 4)))
      >>> param_count(params)  # 4*8+8 + 8*3+3
      67
    """
    return sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree.leaves(params))


class MLP(nn.Module):
    """Multi-layer perceptron with ReLU: flatten, ``len(hidden)`` dense layers, a linear head.

    In: ``(batch, *features)`` (flattened, e.g. ``(batch, 40)`` for MNIST-1D or
    ``(batch, 28, 28)``). Out: logits ``(batch, num_classes)``.

    Default, on MNIST-1D (40 → 256 → 256 → 10): 78,858 parameters. The MNIST-1D paper's MLP
    is ``MLP(hidden=(100, 100))``: 15,210 parameters.

    Attributes:
      hidden: widths of the hidden layers.
      num_classes: number of logits.
    """

    hidden: Sequence[int] = (256, 256)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


class CNN1D(nn.Module):
    """The MNIST-1D paper's 1-D CNN: three strided ReLU convolutions, flatten, linear head.

    Layers (PyTorch's ``ConvBase`` in the mnist1d repository): conv 25 channels, kernel 5,
    stride 2; conv 25, kernel 3, stride 2; conv 25, kernel 3, stride 2; each padded by 1 on
    both sides, so a length-40 signal becomes 19 → 10 → 5 positions × 25 channels = 125
    features; then a dense layer to the logits.

    In: ``(batch, length)`` or ``(batch, length, channels)``. Out: ``(batch, num_classes)``.

    Default, on MNIST-1D (length 40): 5,210 parameters, as in the paper.

    ``conv="slices"`` computes each convolution as a sum of ``kernel_size`` matmuls over
    strided slices of the input, with the same parameters (names, shapes, initializers) and the
    same outputs to float32 rounding. Under ``jax.vmap`` over stacked parameters, as the sweep
    engine trains members, XLA's CPU backend turns ``lax.conv`` into a grouped convolution that
    runs about 25x slower than the MLP per FLOP; the slice form stays a batched matmul (about 5x
    faster than ``"lax"`` for a 64-member sweep on 2 CPU cores, measured for issue 5).

    Attributes:
      channels: output channels of each convolution.
      kernel_sizes: kernel size of each convolution.
      strides: stride of each convolution.
      padding: zero padding on each side of each convolution.
      num_classes: number of logits.
      conv: ``"lax"`` (``flax.linen.Conv``) or ``"slices"`` (see above).

    References:
      Greydanus, "Scaling down deep learning", arXiv:2011.14439, 2020.
    """

    channels: Sequence[int] = (25, 25, 25)
    kernel_sizes: Sequence[int] = (5, 3, 3)
    strides: Sequence[int] = (2, 2, 2)
    padding: int = 1
    num_classes: int = 10
    conv: str = "lax"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.conv not in ("lax", "slices"):
            raise ValueError(f"conv must be 'lax' or 'slices', got {self.conv!r}")
        if not len(self.channels) == len(self.kernel_sizes) == len(self.strides):
            raise ValueError(
                "channels, kernel_sizes and strides must have the same length, got "
                f"{len(self.channels)}, {len(self.kernel_sizes)}, {len(self.strides)}"
            )
        if x.ndim == 2:
            x = x[..., None]
        for i, (c, k, s) in enumerate(
            zip(self.channels, self.kernel_sizes, self.strides, strict=True)
        ):
            if self.conv == "lax":
                conv = nn.Conv(c, (k,), strides=(s,), padding=[(self.padding, self.padding)])
            else:
                conv = _SliceConv1D(c, k, s, self.padding, name=f"Conv_{i}")
            x = nn.relu(conv(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_classes)(x)


class _SliceConv1D(nn.Module):
    """``nn.Conv`` (1-D, symmetric zero padding, no dilation) as a sum of strided-slice matmuls.

    Same parameters as ``nn.Conv``: ``kernel`` ``(k, in, out)`` (LeCun normal) and ``bias``.
    """

    features: int
    kernel_size: int
    stride: int
    padding: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x = jnp.pad(x, ((0, 0), (self.padding, self.padding), (0, 0)))
        positions = (x.shape[1] - self.kernel_size) // self.stride + 1
        span = self.stride * (positions - 1) + 1
        # Output position i sees inputs stride*i + j, j < kernel_size: one slice per tap j.
        out = sum(x[:, j : j + span : self.stride] @ kernel[j] for j in range(self.kernel_size))
        return out + bias[None, None, :]


class CNN2D(nn.Module):
    """Small 2-D CNN: [3×3 conv, ReLU, 2×2 max pool] per stage, then dense ReLU, linear head.

    Convolutions are "SAME"-padded, so each stage halves height and width (28 → 14 → 7;
    8 → 4 → 2).

    In: ``(batch, height, width)`` or ``(batch, height, width, channels)``.
    Out: ``(batch, num_classes)``.

    Default: 206,922 parameters on 28×28×1 (MNIST), 22,602 on 8×8×1 (scikit-learn digits).

    Attributes:
      features: output channels of each conv stage.
      hidden: width of the dense layer before the head.
      num_classes: number of logits.
    """

    features: Sequence[int] = (16, 32)
    hidden: int = 128
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim == 3:
            x = x[..., None]
        for f in self.features:
            x = nn.relu(nn.Conv(f, (3, 3), padding="SAME")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.num_classes)(x)


class _EncoderBlock(nn.Module):
    """Pre-LN transformer block: ``x + drop(MHSA(LN(x)))``, then ``x + drop(MLP(LN(x)))``
    (residual dropout, as in BERT and ViT; ``rate=None`` or 0: none)."""

    num_heads: int
    mlp_dim: int

    @nn.compact
    def __call__(self, x: jax.Array, rate: jax.Array | float | None = None) -> jax.Array:
        def drop(h):
            return h if rate is None else dropout(h, rate, self.make_rng("dropout"))

        h = nn.LayerNorm()(x)
        x = x + drop(nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(h, h))
        h = nn.LayerNorm()(x)
        h = nn.Dense(x.shape[-1])(nn.gelu(nn.Dense(self.mlp_dim)(h)))
        return x + drop(h)


class TransformerClassifier(nn.Module):
    """Small pre-LN transformer encoder over patches of a sequence, mean-pooled to logits.

    The sequence is cut into non-overlapping patches of ``patch_size`` positions; each patch
    (all its channels) is linearly embedded to ``dim``, a learned positional embedding is
    added, then ``depth`` pre-LN blocks (multi-head self-attention, GELU MLP of width
    ``mlp_ratio * dim``, residuals), a final LayerNorm, the mean over tokens and a linear head.
    With ``dropout_rate > 0`` (default 0: none) and ``train=True``, each block's two residual
    branches are dropped out (``rngs={"dropout": key}``); ``dropout_rate=`` at call time
    overrides the attribute and may be traced (a per-member hyperparameter). ``train=False``
    (the default) is deterministic.

    In: ``(batch, length)`` or ``(batch, length, channels)`` with ``length`` a multiple of
    ``patch_size`` (an image ``(batch, H, W)`` reads as H positions of W channels).
    Out: ``(batch, num_classes)``.

    Default, on MNIST-1D (length 40 → 10 tokens of 4 values): 68,682 parameters.

    Attributes:
      patch_size: sequence positions per token.
      dim: token width.
      depth: number of encoder blocks.
      num_heads: attention heads (must divide ``dim``).
      mlp_ratio: MLP width as a multiple of ``dim``.
      num_classes: number of logits.
      dropout_rate: residual dropout in training mode.

    References:
      Vaswani et al., "Attention is all you need", 2017; pre-LN as in Xiong et al.,
      "On layer normalization in the transformer architecture", ICML 2020; patch embedding
      as in Dosovitskiy et al., ViT, ICLR 2021.
    """

    patch_size: int = 4
    dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: int = 2
    num_classes: int = 10
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(
        self, x: jax.Array, train: bool = False, dropout_rate: jax.Array | float | None = None
    ) -> jax.Array:
        if x.ndim == 2:
            x = x[..., None]
        batch, length, channels = x.shape
        if length % self.patch_size:
            raise ValueError(
                f"sequence length {length} must be a multiple of patch_size={self.patch_size}"
            )
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide dim={self.dim}")
        tokens = length // self.patch_size
        x = x.reshape(batch, tokens, self.patch_size * channels)
        x = nn.Dense(self.dim, name="embed")(x)
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (tokens, self.dim))
        x = x + pos[None]
        rate = None
        if train and (dropout_rate is not None or self.dropout_rate > 0):
            rate = self.dropout_rate if dropout_rate is None else dropout_rate
        for i in range(self.depth):
            block = _EncoderBlock(self.num_heads, self.mlp_ratio * self.dim, name=f"block{i}")
            x = block(x, rate)
        x = nn.LayerNorm()(x)
        return nn.Dense(self.num_classes, name="head")(jnp.mean(x, axis=1))


def dropout(x: jax.Array, rate: jax.Array | float, key: jax.Array) -> jax.Array:
    r"""Inverted dropout whose rate may be a traced value.

    .. math:: y = \frac{m \odot x}{1 - p}, \qquad m_i \sim \mathrm{Bernoulli}(1 - p)

    ``flax.linen.Dropout`` and ``flax.nnx.Dropout`` compare their rate with 0 and 1 in Python,
    so the rate cannot be a per-member hyperparameter under ``vmap``; this function can. A rate
    of 1 gives zeros (never a division by zero).

    Args:
      x: the activations.
      rate: :math:`p \in [0, 1]`, the probability of dropping a unit (traceable).
      key: a PRNG key, e.g. :func:`lrjax.step_key` of the member's seed and step.

    Returns:
      ``x`` with units dropped and the rest scaled by :math:`1 / (1 - p)`.

    Examples:
      >>> y = dropout(jnp.ones(1000), 0.25, jax.random.key(0))
      >>> bool(jnp.all((y == 0) | jnp.isclose(y, 4 / 3))), round(float(jnp.mean(y == 0)), 1)
      (True, 0.2)

    References:
      Srivastava et al., Dropout, JMLR 15, 2014.
    """
    keep_prob = 1.0 - jnp.asarray(rate, x.dtype)
    keep = jax.random.bernoulli(key, keep_prob, x.shape)
    return jnp.where(keep, x / jnp.maximum(keep_prob, jnp.finfo(x.dtype).tiny), jnp.zeros_like(x))


class _SliceConv2D(nn.Module):
    """A 3×3 "SAME" convolution without bias, as one matmul over the 9 shifted copies of the
    input (same parameters and outputs as ``nn.Conv(features, (3, 3), use_bias=False)``).

    Under ``jax.vmap`` over stacked parameters XLA's CPU backend runs ``lax.conv`` as a grouped
    convolution; the slice form stays a batched matmul and ran faster in a K=8 benchmark.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (3, 3, channels, self.features)
        )
        height, width = x.shape[1], x.shape[2]
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        shifted = [padded[:, i : i + height, j : j + width] for i in range(3) for j in range(3)]
        return jnp.concatenate(shifted, axis=-1) @ kernel.reshape(9 * channels, self.features)


class _ResidualBlock(nn.Module):
    """``relu(x + BN(conv(relu(BN(conv(x))))))``, the basic block of He et al. (2016)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        h = nn.relu(_batch_norm(train)(_SliceConv2D(self.features)(x)))
        h = _batch_norm(train)(_SliceConv2D(self.features)(h))
        return nn.relu(x + h)


def _batch_norm(train: bool) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9)


class ResNet(nn.Module):
    """A small residual CNN with batch normalisation and dropout.

    A 3×3 conv stem with BatchNorm and ReLU, then per stage ``blocks`` residual blocks (two
    3×3 convs with BatchNorm each), with 2×2 average pooling and a 3×3 conv widening the
    channels between stages; global average pooling, dropout and a linear head. Convolutions
    are matmuls over shifted copies of the input (same outputs as ``nn.Conv``), fast under
    ``vmap`` on CPU.

    In: ``(batch, height, width)`` or ``(batch, height, width, channels)``.
    Out: ``(batch, num_classes)``. Train with ``train=True``, ``mutable=["batch_stats"]`` and
    ``rngs={"dropout": key}``; ``train=False`` uses the running statistics and no dropout.
    ``dropout_rate=`` at call time overrides the attribute and may be traced (a per-member
    hyperparameter).

    Default, on 8×8×1 (scikit-learn digits): 7,298 parameters and 144 batch statistics.

    Attributes:
      features: channels of each stage.
      blocks: residual blocks per stage.
      dropout_rate: dropout before the head.
      num_classes: number of logits.

    References:
      He et al., Deep Residual Learning for Image Recognition, CVPR 2016; Ioffe & Szegedy,
      Batch Normalization, ICML 2015.
    """

    features: Sequence[int] = (8, 16)
    blocks: int = 1
    dropout_rate: float = 0.1
    num_classes: int = 10

    @nn.compact
    def __call__(
        self, x: jax.Array, train: bool = False, dropout_rate: jax.Array | None = None
    ) -> jax.Array:
        if x.ndim not in (3, 4):
            raise ValueError(
                f"ResNet takes images (batch, height, width[, channels]), got shape {x.shape}"
            )
        if x.ndim == 3:
            x = x[..., None]
        x = nn.relu(_batch_norm(train)(_SliceConv2D(self.features[0])(x)))
        for i, f in enumerate(self.features):
            if i > 0:
                # 2x2 average pooling (nn.avg_pool divides by an int, which strict promotion
                # rejects).
                window = (1, 2, 2, 1)
                x = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, window, "VALID") * 0.25
                x = nn.relu(_batch_norm(train)(_SliceConv2D(f)(x)))
            for _ in range(self.blocks):
                x = _ResidualBlock(f)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        if train and (dropout_rate is not None or self.dropout_rate > 0):
            rate = self.dropout_rate if dropout_rate is None else dropout_rate
            x = dropout(x, rate, self.make_rng("dropout"))
        return nn.Dense(self.num_classes)(x)
