"""The LR range test: divergence on a known quadratic, suggestions, smoothing, vectorization."""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx
from flax.training import train_state

import lrjax
from lrjax import flax_steps, sweep
from lrjax import lr_finder as rt
from lrjax.sweep import Model

CURVATURE = 10.0  # SGD on this quadratic diverges exactly for lr > 2 / CURVATURE


def quadratic_problem(num=256, dim=4, seed=0):
    """Loss 0.5 L |w - y|^2 per example, so the batch-mean loss has curvature L in w."""
    rng = np.random.default_rng(seed)
    x = np.zeros((num, dim), np.float32)
    y = (1.0 + 0.3 * rng.standard_normal((num, dim))).astype(np.float32)
    model = Model(
        init=lambda key: {"w": jnp.zeros(dim, jnp.float32)},
        apply=lambda p, x: jnp.broadcast_to(p["w"], x.shape),
    )

    def loss(out, target):
        return 0.5 * CURVATURE * jnp.sum((out - target) ** 2, axis=-1)

    return model, loss, (x, y)


@functools.cache
def quadratic_result(seeds=(0, 1, 2), **kwargs):
    model, loss, data = quadratic_problem()
    settings = dict(start_lr=1e-4, end_lr=10.0, num_steps=400, batch_size=32)
    return rt.model_range_test(model, loss, data, seeds=seeds, **{**settings, **kwargs})


def test_divergence_detected_within_factor_two_above_two_over_curvature():
    result = quadratic_result()
    critical = 2.0 / CURVATURE
    assert np.all(result.diverged_at < result.learning_rates.size)
    assert np.all(result.divergence_lr > critical), result.divergence_lr
    assert np.all(result.divergence_lr < 2 * critical), result.divergence_lr


def test_learning_rates_follow_the_ramp():
    result = quadratic_result()
    i = np.arange(400)
    np.testing.assert_allclose(result.learning_rates, 1e-4 * (1e5) ** (i / 399), rtol=2e-5)
    linear = quadratic_result(mode="linear", end_lr=0.5)
    np.testing.assert_allclose(linear.learning_rates, 1e-4 + (0.5 - 1e-4) * i / 399, rtol=1e-5)


def test_smoothing_and_divergence_mask_follow_their_definitions():
    result = quadratic_result()
    for raw, smoothed, valid in zip(result.loss, result.smoothed, result.valid, strict=True):
        avg, best, alive = 0.0, np.inf, True
        expected_smoothed, expected_valid = [], []
        for i, value in enumerate(raw.astype(np.float64)):
            avg = 0.98 * avg + 0.02 * value
            s = avg / (1 - 0.98 ** (i + 1))
            best = min(best, s)
            alive = alive and np.isfinite(s) and s <= 4 * best
            expected_smoothed.append(s)
            expected_valid.append(alive)
        np.testing.assert_array_equal(valid, expected_valid)
        ok = np.array(expected_valid)
        np.testing.assert_allclose(smoothed[ok], np.array(expected_smoothed)[ok], rtol=1e-5)


def test_vectorized_over_seeds_equals_separate_runs():
    together = quadratic_result(seeds=(0, 1, 2))
    for k, seed in enumerate((0, 1, 2)):
        alone = quadratic_result(seeds=(seed,))
        np.testing.assert_allclose(together.loss[k], alone.loss[0], rtol=1e-6)
        np.testing.assert_array_equal(together.diverged_at[k], alone.diverged_at[0])


def test_optimizer_hyperparameters_vectorize_per_run():
    model, loss, data = quadratic_problem()
    common = dict(start_lr=1e-4, end_lr=1.0, num_steps=50, batch_size=32)
    both = rt.model_range_test(
        model, loss, data, optimizer=optax.sgd, seeds=(0, 0),
        optimizer_hparams={"momentum": [0.0, 0.9]}, **common,
    )  # fmt: skip
    plain = rt.model_range_test(model, loss, data, optimizer=optax.sgd, seeds=(0,), **common)
    np.testing.assert_allclose(both.loss[0], plain.loss[0], rtol=1e-6)
    assert not np.allclose(both.loss[1], plain.loss[0])


def test_validation_mode_records_held_out_loss_after_each_update():
    model, loss, (x, y) = quadratic_problem()
    held_out = (x[:8], y[:8] + 0.5)
    result = rt.model_range_test(
        model, loss, (x, y), start_lr=1e-3, end_lr=1e-2, num_steps=3, batch_size=256,
        validation_data=held_out,
    )  # fmt: skip
    # Full-batch SGD on w from 0: w1 = lr0 * L * mean(y); held-out loss of w1 by hand.
    w1 = 1e-3 * CURVATURE * y.astype(np.float64).mean(axis=0)
    expected = np.mean(0.5 * CURVATURE * np.sum((w1 - held_out[1]) ** 2, axis=-1))
    np.testing.assert_allclose(result.loss[0, 0], expected, rtol=1e-5)


def test_suggestions_on_the_quadratic_are_below_divergence():
    result = quadratic_result()
    suggestions = result.suggestions()
    assert set(suggestions) == {"steepest", "valley", "minimum", "robust"}
    for name, lr in suggestions.items():
        assert 1e-4 <= lr < 2.0 / CURVATURE, (name, lr)


# Synthetic curves with known answers.

LRS = np.logspace(-5, 0, 51)


def test_steepest_finds_the_steepest_log_slope():
    log_lr = np.log10(LRS)
    losses = 2.0 - np.tanh(2.0 * (log_lr + 2.5))  # steepest at lr = 10 ** -2.5
    assert rt.suggest_steepest(LRS, losses) == pytest.approx(10**-2.5, rel=0.13)


def test_minimum_is_a_tenth_of_the_argmin():
    losses = (np.log10(LRS) + 1.5) ** 2
    assert rt.suggest_minimum(LRS, losses) == pytest.approx(10**-1.5 / 10, rel=1e-9)


def fastai_valley_literal(lrs, losses):
    """fastai's valley, transcribed loop for loop as the reference."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return lrs[max_start + int(sections) + int(sections / 2)]


@pytest.mark.parametrize("seed", range(6))
def test_valley_matches_fastai_definition(seed):
    rng = np.random.default_rng(seed)
    bowl = (np.log10(LRS) + 2.0) ** 2 / 4.0
    losses = bowl + 0.2 * rng.standard_normal(LRS.size)
    assert rt.suggest_valley(LRS, losses) == fastai_valley_literal(LRS, losses)


def test_robust_ignores_a_lucky_seed_near_the_cliff():
    base = (np.log10(LRS) + 2.0) ** 2  # every seed's minimum at 1e-2
    lucky = base.copy()
    lucky[40:] = -1.0  # one seed looks great at high LRs where the others blow up
    others = base.copy()
    others[40:] = 50.0
    curves = np.stack([lucky, others, others])
    assert rt.suggest_minimum(LRS, curves[0]) == pytest.approx(1e-2)  # one seed is fooled
    assert rt.suggest_robust(LRS, curves) == pytest.approx(1e-3, rel=1e-6)
    assert rt.suggest_robust(LRS, base[None]) == rt.suggest_minimum(LRS, base)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(start_lr=1.0, end_lr=0.1), "start_lr < end_lr"),
        (dict(start_lr=0.0), "start_lr < end_lr"),
        (dict(num_steps=1), "num_steps must be an integer >= 2"),
        (dict(mode="cosine"), "mode must be one of"),
        (dict(beta=1.0), r"beta must be a finite number in \[0, 1\)"),
        (dict(beta=float("nan")), r"beta must be a finite number in \[0, 1\)"),
        (dict(diverge_factor=1.0), "diverge_factor must be a finite number > 1"),
        (dict(start_lr=float("nan")), "start_lr must be a finite number"),
        (dict(batch_size=1000), r"batch_size must be an integer in \[1, 256\]"),
        (dict(seeds=()), "seeds must hold at least one seed"),
        (dict(optimizer_hparams={"momentum": [0.1, 0.2, 0.3]}), "one entry per seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    model, loss, data = quadratic_problem()
    with pytest.raises(ValueError, match=match):
        rt.model_range_test(model, loss, data, **kwargs)


def test_suggestion_inputs_are_checked():
    with pytest.raises(ValueError, match="at least 2 points"):
        rt.suggest_minimum([0.1], [1.0])
    with pytest.raises(ValueError, match="must be 1-D and match"):
        rt.suggest_minimum([0.1, 0.2], [1.0, 2.0, 3.0])


@functools.cache
def parallel_result(seeds=(0, 1)):
    model, loss, (x, y) = quadratic_problem()
    return rt.parallel_range_test(
        model, loss, (x, y), (x[:64], y[:64]), start_lr=1e-3, end_lr=1.0, num_lrs=13,
        num_steps=60, batch_size=32, seeds=seeds, options=sweep.Options(progress=False),
    )  # fmt: skip


def test_parallel_range_test_flags_exactly_the_lrs_above_two_over_curvature():
    result = parallel_result()
    unstable = result.learning_rates > 2.0 / CURVATURE
    np.testing.assert_array_equal(result.diverged, np.broadcast_to(unstable, result.diverged.shape))
    assert np.all(np.isnan(result.final_loss[:, unstable]))
    suggestion = result.suggestion()
    assert 1e-3 < suggestion < 2.0 / CURVATURE


def test_parallel_range_test_members_equal_their_own_runs():
    together = parallel_result(seeds=(0, 1))
    alone = parallel_result(seeds=(1,))
    ok = ~together.diverged[1]
    np.testing.assert_allclose(together.final_loss[1, ok], alone.final_loss[0, ok], rtol=1e-5)


def test_parallel_range_test_bad_arguments():
    model, loss, data = quadratic_problem()
    with pytest.raises(ValueError, match="num_lrs must be an integer >= 2"):
        rt.parallel_range_test(model, loss, data, data, num_lrs=1)
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        rt.parallel_range_test(model, loss, data, data, start_lr=1.0, end_lr=1.0)


# --------------------------------------------------------------------------------------------
# The range test on the user's own step


class BNNet(linen.Module):
    @linen.compact
    def __call__(self, x, train: bool = False):
        x = linen.BatchNorm(use_running_average=not train, momentum=0.9)(linen.Dense(8)(x))
        return linen.Dense(3)(jnp.tanh(x))


class TrainState(train_state.TrainState):
    batch_stats: Any


def classification(num=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num, 4)).astype(np.float32)
    return x, ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32))


XENT = optax.softmax_cross_entropy_with_integer_labels
SGD = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.0)


def bn_init(member):
    x, _ = classification()
    variables = BNNet().init(jax.random.key(member["seed"]), x[:1])
    return TrainState.create(apply_fn=BNNet().apply, params=variables["params"], tx=SGD,
                             batch_stats=variables["batch_stats"])  # fmt: skip


def bn_step(state, batch, member):
    """A Flax TrainState step with batch statistics, as the user writes it."""
    del member
    x, y = batch

    def loss_fn(params):
        logits, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats},
                                         x, train=True, mutable=["batch_stats"])  # fmt: skip
        return XENT(logits, y).mean(), updates["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=stats), {"loss": loss}


RAMP = dict(start_lr=1e-3, end_lr=1e4, num_steps=40, batch_size=16)


def test_range_test_on_a_train_state_step_equals_the_model_form():
    data = classification()
    users = lrjax.range_test(bn_step, bn_init, data, seeds=(0, 1), **RAMP)
    model_form = rt.model_range_test(BNNet(), XENT, data, seeds=(0, 1), **RAMP)
    np.testing.assert_allclose(users.learning_rates, model_form.learning_rates, rtol=1e-6)
    np.testing.assert_allclose(users.loss, model_form.loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(users.diverged_at, model_form.diverged_at)
    np.testing.assert_array_equal(users.seeds, [0, 1])
    assert users.diverged_at.max() < RAMP["num_steps"]  # the ramp reached divergence
    np.testing.assert_allclose(users.learning_rates[[0, -1]], [1e-3, 1e4], rtol=1e-5)


def test_the_users_state_is_untouched_and_every_run_starts_from_it():
    data = classification()
    state = bn_init({"seed": 3})
    before = jax.tree.map(np.array, state)
    found = lrjax.range_test(bn_step, state, data, seeds=(0, 1), **RAMP)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)  # not donated, not changed
    # Every run started from the given state; the seeds only order the batches.
    again = lrjax.range_test(bn_step, bn_init, data, members={"seed": np.int32([3, 3])},
                             data_seeds=(0, 1), **RAMP)  # fmt: skip
    np.testing.assert_allclose(found.loss, again.loss, rtol=1e-6, atol=1e-7)


def test_range_test_on_an_nnx_step_and_an_equinox_style_pure_step():
    data = classification()

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden, self.out = nnx.Linear(4, 8, rngs=rngs), nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    def make(member):
        model = Net(nnx.Rngs(jax.random.key(member["seed"])))
        return model, nnx.Optimizer(model, SGD, wrt=nnx.Param)

    def nnx_train_step(model, optimizer, batch):
        x, y = batch
        loss, grads = nnx.value_and_grad(lambda m: XENT(m(x), y).mean())(model)
        optimizer.update(model, grads)
        return loss

    members = {"seed": np.int32([0, 1])}
    step, init = flax_steps.nnx_step(make, nnx_train_step, members)
    nnx_found = lrjax.range_test(step, init, data, members=members, **RAMP)

    class Linear(NamedTuple):  # an Equinox-style model: a pytree of arrays that is callable
        w: jax.Array
        b: jax.Array

        def __call__(self, x):
            return x @ self.w + self.b[None, :]

    def pure_init(member):
        w = jax.random.normal(jax.random.key(member["seed"]), (4, 3)) * 0.5
        model = Linear(w, jnp.zeros(3))
        return model, SGD.init(model)

    def pure_step(state, batch, member):
        model, opt_state = state
        x, y = batch
        loss, grads = jax.value_and_grad(lambda m: XENT(m(x), y).mean())(model)
        updates, opt_state = SGD.update(grads, opt_state)
        return (optax.apply_updates(model, updates), opt_state), {"loss": loss}

    pure_found = lrjax.range_test(pure_step, pure_init, data, seeds=(0, 1), **RAMP)
    for found in (nnx_found, pure_found):
        assert found.loss.shape == (2, RAMP["num_steps"])
        np.testing.assert_allclose(found.learning_rates, users_ramp(), rtol=1e-6)
        assert np.isfinite(found.loss[:, :10]).all()


def users_ramp():
    n = RAMP["num_steps"]
    return np.float32(
        RAMP["start_lr"] * (RAMP["end_lr"] / RAMP["start_lr"]) ** (np.arange(n) / (n - 1))
    )


def test_a_step_without_an_injected_learning_rate_is_refused_with_the_fix():
    def plain_init(member):
        return bn_init(member).replace(tx=optax.sgd(0.1), opt_state=optax.sgd(0.1).init(
            bn_init(member).params))  # fmt: skip

    with pytest.raises(ValueError, match=r"optax.inject_hyperparams\(optax.sgd, "
                                         r"hyperparam_dtype=jnp.float32\)"):  # fmt: skip
        lrjax.range_test(bn_step, plain_init, classification(), **RAMP)
