"""Tests for lrjax.models: shapes, parameter counts, purity, and jit/vmap over stacked params."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax import models

# (model with its default config, input shape of one example, parameter count in its docstring)
DEFAULTS = {
    "mlp": (models.MLP(), (40,), 78_858),
    "mlp_paper": (models.MLP(hidden=(100, 100)), (40,), 15_210),
    "cnn1d": (models.CNN1D(), (40,), 5_210),
    "cnn2d_mnist": (models.CNN2D(), (28, 28), 206_922),
    "cnn2d_digits": (models.CNN2D(), (8, 8), 22_602),
    "transformer": (models.TransformerClassifier(), (40,), 68_682),
}

# Small versions of each architecture, so the compiled checks stay fast on a CPU.
TINY = {
    "mlp": (models.MLP(hidden=(8, 8)), (12,)),
    "cnn1d": (models.CNN1D(channels=(4, 4), kernel_sizes=(5, 3), strides=(2, 2)), (12,)),
    "cnn2d": (models.CNN2D(features=(4,), hidden=8), (8, 8)),
    "transformer": (models.TransformerClassifier(patch_size=3, dim=8, depth=1, num_heads=2), (12,)),
}


# XLA on CPU compiles a vmapped init with threefry keys about 5x slower than with "rbg" keys
# (~11 s vs ~2 s for the tiny transformer); the models do not care which implementation makes
# their keys, so the compiled tests use rbg (the param_count doctest keeps the default).
def _key(seed, impl="rbg"):
    return jax.random.key(seed, impl=impl)


def _inputs(shape, batch=3, seed=0):
    return jax.random.normal(jax.random.key(seed), (batch, *shape), jnp.float32)


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_default_output_shape_and_param_count(name):
    # Abstract evaluation: checks shapes and counts of the real configs without compiling them.
    model, shape, count = DEFAULTS[name]
    x = jax.ShapeDtypeStruct((3, *shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    assert set(variables) == {"params"}, "models must carry no state besides params"
    assert models.param_count(variables) == count
    logits = jax.eval_shape(model.apply, variables, x)
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32


@pytest.mark.parametrize("name", list(TINY))
def test_jit_vmap_over_stacked_members(name):
    model, shape = TINY[name]
    x = _inputs(shape, batch=4)
    keys = jax.random.split(_key(1), 2)
    stacked = jax.jit(jax.vmap(model.init, in_axes=(0, None)))(keys, x)
    assert set(stacked) == {"params"}
    apply = jax.jit(model.apply)
    out = jax.jit(jax.vmap(model.apply, in_axes=(0, None)))(stacked, x)
    assert out.shape == (2, 4, 10) and out.dtype == jnp.float32
    assert jnp.all(jnp.isfinite(out))
    # Each member equals the model applied with its own params; members differ.
    for k in range(2):
        member = jax.tree.map(lambda a, k=k: a[k], stacked)
        np.testing.assert_allclose(out[k], apply(member, x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[0], out[1])
    # No mixing across examples (e.g. attention or pooling over the batch axis by mistake).
    member0 = jax.tree.map(lambda a: a[0], stacked)
    np.testing.assert_allclose(out[0, 1:2], apply(member0, x[1:2]), rtol=1e-5, atol=1e-5)


def test_gradients_reach_every_parameter():
    model, shape = TINY["transformer"]
    x = _inputs(shape)
    params = jax.jit(model.init)(_key(0), x)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x) ** 2)))(params)
    assert all(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))


def test_cnn1d_accepts_channel_axis():
    model, shape = TINY["cnn1d"]
    x = _inputs(shape)
    params = jax.jit(model.init)(_key(0), x)
    apply = jax.jit(model.apply)
    np.testing.assert_allclose(apply(params, x), apply(params, x[..., None]))


def _abstract_init(model, shape):
    return jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))


def test_cnn2d_accepts_channel_axis():
    variables = _abstract_init(models.CNN2D(features=(4,), hidden=8), (1, 8, 8, 2))
    assert variables["params"]["Conv_0"]["kernel"].shape == (3, 3, 2, 4)


def test_transformer_reads_image_rows_as_tokens():
    model = models.TransformerClassifier(patch_size=1, dim=16, depth=1, num_heads=2)
    variables = _abstract_init(model, (3, 8, 8))
    assert variables["params"]["pos_embed"].shape == (8, 16)
    assert variables["params"]["embed"]["kernel"].shape == (8, 16)


def test_transformer_patches_group_positions_and_channels():
    variables = _abstract_init(models.TransformerClassifier(patch_size=4), (3, 40, 2))
    assert variables["params"]["pos_embed"].shape == (10, 64)
    assert variables["params"]["embed"]["kernel"].shape == (8, 64)


def test_mlp_flattens_images():
    variables = _abstract_init(models.MLP(hidden=(5,), num_classes=2), (1, 8, 8))
    assert variables["params"]["Dense_0"]["kernel"].shape == (64, 5)


def test_bad_configs_raise():
    x = jax.ShapeDtypeStruct((1, 40), jnp.float32)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="multiple of patch_size=3"):
        jax.eval_shape(models.TransformerClassifier(patch_size=3).init, key, x)
    with pytest.raises(ValueError, match="num_heads=3 must divide dim=64"):
        jax.eval_shape(models.TransformerClassifier(num_heads=3).init, key, x)
    with pytest.raises(ValueError, match="same length, got 2, 3, 3"):
        jax.eval_shape(models.CNN1D(channels=(8, 8)).init, key, x)


def test_param_count_counts_scalars():
    assert models.param_count({"a": jnp.zeros((2, 3)), "b": [jnp.zeros(4), jnp.float32(1)]}) == 11
    assert isinstance(models.MLP(), nn.Module)


@pytest.mark.parametrize(
    "config", [{}, {"channels": (4, 4), "kernel_sizes": (5, 3), "strides": (2, 1), "padding": 2}]
)
def test_cnn1d_slices_matches_lax_conv(config):
    x = _inputs((40,), batch=4)
    lax_model = models.CNN1D(**config)
    slices_model = models.CNN1D(**config, conv="slices")
    params = lax_model.init(_key(0), x)
    same = slices_model.init(_key(0), x)
    chex.assert_trees_all_equal(params, same)
    np.testing.assert_allclose(
        slices_model.apply(params, x), lax_model.apply(params, x), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match=r"conv must be 'lax' or 'slices', got 'fft'"):
        models.CNN1D(conv="fft").init(_key(0), x)


# -----------------------------------------------------------------------------------------------
# ResNet: batch statistics, dropout, and convolutions as slices


@pytest.mark.parametrize("shape, count", [((8, 8), 7_298), ((28, 28), 7_298)])
def test_resnet_counts_and_train_and_eval_modes(shape, count):
    model = models.ResNet()
    x = jax.ShapeDtypeStruct((3, *shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    assert set(variables) == {"params", "batch_stats"}
    assert models.param_count(variables["params"]) == count
    assert models.param_count(variables["batch_stats"]) == 144  # mean and var of 72 channels
    assert jax.eval_shape(model.apply, variables, x).shape == (3, 10)

    def train(v, inputs):
        key = jax.random.key(0)
        return model.apply(v, inputs, train=True, rngs={"dropout": key}, mutable=["batch_stats"])

    out, updates = jax.eval_shape(train, variables, x)
    assert out.shape == (3, 10) and set(updates) == {"batch_stats"}


def test_slice_convolution_equals_flax_conv():
    x = _inputs((6, 5, 3), batch=2)
    conv = models._SliceConv2D(4)
    params = conv.init(_key(0), x)
    reference = nn.Conv(4, (3, 3), padding="SAME", use_bias=False)
    want = reference.apply({"params": {"kernel": params["params"]["kernel"]}}, x)
    np.testing.assert_allclose(conv.apply(params, x), want, rtol=1e-5, atol=1e-5)


def test_dropout_takes_a_traced_rate():
    x = jnp.ones((4000,))
    rates = jnp.array([0.0, 0.25, 0.5, 1.0])
    out = jax.jit(jax.vmap(lambda r: models.dropout(x, r, jax.random.key(1))))(rates)
    kept = np.mean(np.asarray(out) != 0, axis=1)
    np.testing.assert_allclose(kept, [1.0, 0.75, 0.5, 0.0], atol=0.03)
    # the kept units are scaled by 1 / (1 - rate), so the mean is preserved
    np.testing.assert_allclose(np.asarray(out[1])[np.asarray(out[1]) != 0], 4 / 3, rtol=1e-6)
    assert np.isfinite(np.asarray(out)).all()


def test_transformer_residual_dropout_in_training_mode_only():
    model = models.TransformerClassifier(patch_size=3, dim=8, depth=1, num_heads=2)
    x = _inputs((12,), batch=5)
    variables = model.init(_key(0), x)
    rngs = {"dropout": _key(1)}
    deterministic = model.apply(variables, x)
    # rate 0 (the default) and evaluation mode are the same function as before dropout existed
    np.testing.assert_array_equal(model.apply(variables, x, train=True, rngs=rngs), deterministic)
    dropped = models.TransformerClassifier(
        patch_size=3, dim=8, depth=1, num_heads=2, dropout_rate=0.5
    )
    np.testing.assert_array_equal(dropped.apply(variables, x), deterministic)
    assert not np.allclose(dropped.apply(variables, x, train=True, rngs=rngs), deterministic)

    # the rate may be traced, one per member under vmap; rate 0 drops nothing
    def train(rate):
        return model.apply(variables, x, train=True, dropout_rate=rate, rngs=rngs)

    out = jax.jit(jax.vmap(train))(jnp.array([0.0, 0.5], jnp.float32))
    np.testing.assert_allclose(out[0], deterministic, rtol=1e-6, atol=1e-6)
    assert not np.allclose(out[1], deterministic)
