"""SWA and EMA against NumPy averages of recorded iterates; swa_schedule against SWALR's rule."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import lrjax


def iterates(num, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {"w": rng.standard_normal((3, 2)).astype(np.float32), "b": np.float32(rng.normal())}
        for _ in range(num)
    ]


@pytest.mark.parametrize("start, every", [(0, 1), (3, 1), (2, 3), (5, 4)])
def test_swa_equals_numpy_average_of_sampled_iterates(start, every):
    recorded = iterates(12)

    def body(state, xs):
        n, params = xs
        return lrjax.swa_update(state, params, n, start=start, every=every), None

    stacked = jax.tree.map(lambda *a: jnp.stack(a), *recorded)
    counts = jnp.arange(1, 13)
    state, _ = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(
        lrjax.swa_init(recorded[0]), (counts, stacked)
    )
    sampled = [p for n, p in zip(range(1, 13), recorded, strict=True)
               if n >= start and (n - start) % every == 0]  # fmt: skip
    assert int(state.count) == len(sampled)
    for key in ("w", "b"):
        expected = np.mean([p[key] for p in sampled], axis=0)
        np.testing.assert_allclose(state.mean[key], expected, rtol=1e-6, atol=1e-7)


def test_ema_equals_numpy_recursion_and_vmaps_over_decay():
    recorded = iterates(20, seed=1)
    decays = jnp.asarray([0.0, 0.5, 0.9, 0.999], jnp.float32)

    def run(decay):
        def body(ema, params):
            return lrjax.ema_update(ema, params, decay), None

        rest = jax.tree.map(lambda *a: jnp.stack(a), *recorded[1:])
        return jax.lax.scan(body, jax.tree.map(jnp.asarray, recorded[0]), rest)[0]

    got = jax.jit(jax.vmap(run))(decays)
    for k, decay in enumerate(np.asarray(decays, np.float64)):
        expected = recorded[0]["w"].astype(np.float64)
        for p in recorded[1:]:
            expected = decay * expected + (1 - decay) * p["w"]
        np.testing.assert_allclose(got["w"][k], expected, rtol=1e-5, atol=1e-6)


def test_swa_update_bad_arguments():
    state = lrjax.swa_init(jnp.zeros(2))
    with pytest.raises(ValueError, match="start must be an integer >= 0"):
        lrjax.swa_update(state, jnp.zeros(2), 1, start=-1)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        lrjax.swa_update(state, jnp.zeros(2), 1, start=0, every=0)
    with pytest.raises(ValueError, match="start must be an integer >= 0, got nan"):
        lrjax.swa_update(state, jnp.zeros(2), 1, start=float("nan"))
    with pytest.raises(ValueError, match="every must be an integer >= 1, got inf"):
        lrjax.swa_update(state, jnp.zeros(2), 1, start=0, every=float("inf"))


@pytest.mark.parametrize(
    "decay, match",
    [
        (float("nan"), r"decay must be a finite number in \[0, 1\], got nan"),
        (float("inf"), r"decay must be a finite number in \[0, 1\], got inf"),
        (1.5, r"decay must be a finite number in \[0, 1\]"),
        (-0.1, r"decay must be a finite number in \[0, 1\]"),
        (np.array([0.9, 0.99]), r"decay must be a scalar.*jax.vmap"),
    ],
)
def test_ema_update_rejects_bad_concrete_decay(decay, match):
    with pytest.raises(ValueError, match=match):
        lrjax.ema_update(jnp.zeros(2), jnp.ones(2), decay)


def test_ema_update_traced_decay_skips_the_check():
    # Out of range on purpose: a traced value cannot be checked, so it must not be.
    got = jax.jit(lambda d: lrjax.ema_update(jnp.zeros(()), jnp.ones(()), d))(1.5)
    np.testing.assert_allclose(got, -0.5)


class TinyBN(nn.Module):
    momentum: float = 0.9

    @nn.compact
    def __call__(self, x, train=True):
        x = nn.Dense(3)(x)
        return nn.BatchNorm(use_running_average=not train, momentum=self.momentum)(x)


def test_recompute_batch_stats_is_equal_average_of_batch_statistics():
    model = TinyBN()
    rng = np.random.default_rng(0)
    batches = [jnp.asarray(rng.standard_normal((16, 4)) * (k + 1), jnp.float32) for k in range(3)]
    variables = model.init(jax.random.key(0), batches[0])
    out = lrjax.recompute_batch_stats(model.apply, variables, batches)

    kernel = np.asarray(variables["params"]["Dense_0"]["kernel"], np.float64)
    bias = np.asarray(variables["params"]["Dense_0"]["bias"], np.float64)
    hidden = [np.asarray(b, np.float64) @ kernel + bias for b in batches]
    expected_mean = np.mean([h.mean(axis=0) for h in hidden], axis=0)
    expected_var = np.mean([h.var(axis=0) for h in hidden], axis=0)
    stats = out["batch_stats"]["BatchNorm_0"]
    # float32 statistics divided by 1 - momentum = 0.1 lose one digit: rtol 1e-4, not 1e-6.
    np.testing.assert_allclose(stats["mean"], expected_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["var"], expected_var, rtol=1e-4, atol=1e-5)


def test_recompute_batch_stats_without_batch_norm_returns_variables():
    variables = {"params": {"w": jnp.ones(2)}}
    assert lrjax.recompute_batch_stats(None, variables, []) is variables


def swalr_reference(base, swa_start, swa_lr, anneal_steps, anneal, t):
    """SWALR's per-step recursion, started with the schedule's LR at swa_start."""
    if t < swa_start:
        return base(t)
    lr0, step = base(swa_start), t - swa_start
    if anneal_steps == 0:
        step = max(1, step)
    q = max(0.0, min(1.0, step / max(1, anneal_steps)))
    alpha = (1 - math.cos(math.pi * q)) / 2 if anneal == "cos" else q
    return swa_lr * alpha + lr0 * (1 - alpha)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("anneal_steps", [0, 1, 7])
def test_swa_schedule_matches_swalr(anneal, anneal_steps):
    base = lrjax.cosine_decay(0.5, 100)
    schedule = lrjax.swa_schedule(base, 40, swa_lr=0.05, anneal_steps=anneal_steps, anneal=anneal)
    steps = np.arange(0, 120)
    got = jax.jit(jax.vmap(schedule))(jnp.asarray(steps))
    expected = [swalr_reference(lambda t: float(base(t)), 40, 0.05, anneal_steps, anneal, t)
                for t in steps]  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_swa_schedule_vmaps_over_swa_lr():
    swa_lrs = jnp.asarray([0.01, 0.1], jnp.float32)
    got = jax.vmap(lambda v: lrjax.swa_schedule(lrjax.constant(1.0), 5, v, 2)(20))(swa_lrs)
    np.testing.assert_allclose(got, swa_lrs)


class NnxBN(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(4, 3, rngs=rngs)
        self.norm = nnx.BatchNorm(3, momentum=0.9, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.dense(x))


def expected_stats(kernel, bias, batches):
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    hidden = [np.asarray(b, np.float64) @ kernel + bias for b in batches]
    return (
        np.mean([h.mean(axis=0) for h in hidden], axis=0),
        np.mean([h.var(axis=0) for h in hidden], axis=0),
    )


def bn_batches():
    rng = np.random.default_rng(0)
    return [jnp.asarray(rng.standard_normal((16, 4)) * (k + 1), jnp.float32) for k in range(3)]


def test_recompute_batch_stats_of_an_nnx_module():
    module = NnxBN(nnx.Rngs(0))
    module.eval()  # the recomputation must switch to training mode by itself
    batches = bn_batches()
    out = lrjax.recompute_batch_stats(module, None, batches)
    mean, var = expected_stats(module.dense.kernel[...], module.dense.bias[...], batches)
    np.testing.assert_allclose(out.norm.mean[...], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.norm.var[...], var, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(module.norm.var[...]) == 1.0)  # the input module is untouched


def test_recompute_batch_stats_of_stacked_members_of_an_nnx_model():
    model = lrjax.Model.from_nnx(NnxBN)
    keys = [jax.random.key(s) for s in (0, 1)]
    params = [model.init(k) for k in keys]
    states = [model.init_state(k) for k in keys]
    stacked = jax.tree.map(lambda *a: np.stack(a), *[
        model.variables(p, s) for p, s in zip(params, states, strict=True)])  # fmt: skip
    batches = bn_batches()
    out = lrjax.recompute_batch_stats(model, stacked, batches, stacked=True)
    for k, p in enumerate(params):
        mean, var = expected_stats(p["dense"]["kernel"], p["dense"]["bias"], batches)
        np.testing.assert_allclose(
            out["batch_stats"]["norm"]["mean"][k], mean, rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(out["batch_stats"]["norm"]["var"][k], var, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"pass the nnx\.Module itself"):
        lrjax.recompute_batch_stats(model, nnx.state(NnxBN(nnx.Rngs(0))), batches)
