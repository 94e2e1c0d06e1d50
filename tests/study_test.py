"""Tests for experiments/study.py: schedule families under vmap, summaries of recorded curves."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import study
from lrjax import models


def test_every_family_vmaps_over_peak_and_scales_with_it():
    T = 100
    steps = jnp.arange(T + 1)
    peaks = jnp.array([0.1, 1.0])
    build = study.family_schedules(study.FAMILIES, T)
    # family index and peak both traced, as in a sweep's members: one program for the grid
    grid = jax.jit(jax.vmap(jax.vmap(lambda i, p: jax.vmap(build(i, p))(steps), (None, 0)),
                            (0, None)))  # fmt: skip
    table = grid(jnp.arange(len(study.FAMILIES)), peaks)
    for i, name in enumerate(study.FAMILIES):
        values = table[i]
        direct = np.asarray(jax.jit(jax.vmap(study.schedule_family(name, 1.0, T)))(steps))
        np.testing.assert_allclose(values[1], direct, rtol=1e-5, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(values[0], 0.1 * direct, rtol=1e-5, atol=1e-7, err_msg=name)
        assert float(values[1].max()) == pytest.approx(1.0, rel=1e-5), name
    assert set(study.FAMILY_LABELS) == set(study.FAMILIES)
    with pytest.raises(ValueError, match=r"schedule family must be one of constant, .*'nope'"):
        study.schedule_family("nope", 1.0, T)


def test_warmup_cosine_fraction_matches_static_warmup_cosine():
    from lrjax import schedules

    steps = np.arange(0, 201)
    ours = jax.vmap(study.warmup_cosine_fraction(0.5, 0.25, 200))(steps)
    ref = jax.vmap(schedules.warmup_cosine_decay(0.5, 50, 200))(steps)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
    no_warmup = study.warmup_cosine_fraction(1.0, 0.0, 10)
    assert float(no_warmup(0)) == 1.0


def test_lr_sensitivity_interpolates_and_handles_divergence():
    lrs = [1e-3, 1e-2, 1e-1, 1.0]
    assert study.lr_sensitivity(lrs, [0.1, 0.9, 0.9, 0.1], tol=0.0) == pytest.approx((1, 0.01, 0.1))
    width, lo, hi = study.lr_sensitivity(lrs, [0.795, 0.80, 0.81, 0.79], tol=0.01)
    # The range stops at 1e-2 (exactly at the level) and halfway from 1e-1 to 1 in log LR.
    assert (width, lo, hi) == pytest.approx((1.5, 1e-2, 10**-0.5))
    # No interpolation towards a diverged (NaN) neighbour; 1/80 decade towards the low one.
    assert study.lr_sensitivity(lrs, [0.1, 0.9, np.nan, 0.1])[0] == pytest.approx(0.0125)


def test_steps_to_target_and_best_so_far():
    np.testing.assert_array_equal(
        study.steps_to_target([0, 5, 10], [[0.2, 0.6, 0.7], [0.1, 0.1, 0.1]], 0.6), [5, -1]
    )
    np.testing.assert_array_equal(study.best_so_far([np.nan, 0.3, 0.2]), [-np.inf, 0.3, 0.3])


def test_scaling_fit_recovers_square_root_rule():
    b = [16, 64, 256]
    fit = study.scaling_fit(b, [0.05, 0.1, 0.2], reference=64)
    assert fit["slope"] == pytest.approx(0.5)
    assert fit["log10_error_sqrt"] == 0.0 and fit["log10_error_linear"] == pytest.approx(
        2 * np.log10(2) / 3
    )
    with pytest.raises(ValueError, match="reference batch size 128"):
        study.scaling_fit(b, [0.05, 0.1, 0.2], reference=128)


def test_classifier_init_differs_by_seed_and_evaluate_counts_correct():
    x = np.zeros((6, 8), np.float32)
    model = study.classifier(models.MLP(hidden=(4,), num_classes=3), x)
    params = jax.jit(jax.vmap(lambda s: model.init(jax.random.key(s))))(jnp.arange(2))
    assert not np.allclose(params["Dense_0"]["kernel"][0], params["Dense_0"]["kernel"][1])
    logits = jax.vmap(model.apply, (0, None))(params, x)
    y = np.asarray(jnp.argmax(logits[0], -1), np.int32)
    scores = study.evaluate(model, params, x, y, batch=4)
    assert scores["accuracy"][0] == 1.0 and scores["accuracy"].shape == (2,)
    with pytest.raises(ValueError, match="model must be 'mlp', 'cnn1d' or 'resnet'"):
        study.make_model("vgg", x)
    with pytest.raises(ValueError, match=r"ResNet takes images .* got shape \(1, 8\)"):
        study.make_model("resnet", x)


def test_classifier_init_depends_only_on_the_seed_not_the_member_position():
    # Regression: "rbg" keys made a member's initial parameters depend on its position in the
    # vmapped group, so results changed with K and group_size.
    model = study.classifier(models.MLP(hidden=(4,), num_classes=3), np.zeros((1, 5), np.float32))
    stacked = jax.jit(jax.vmap(lambda s: model.init(jax.random.key(s))))(jnp.array([7, 0, 7]))
    alone = model.init(jax.random.key(7))
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[0], stacked), alone)
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[2], stacked), alone)
