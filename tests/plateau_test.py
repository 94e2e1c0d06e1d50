"""reduce_on_plateau against an independent, step-by-step transcription of PyTorch's rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax


class TorchPlateau:
    """PyTorch ReduceLROnPlateau's documented algorithm on one LR, in plain Python."""

    def __init__(self, lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr):
        self.lr, self.mode, self.factor, self.patience = lr, mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, min_lr, 1e-8
        self.best = float("inf") if mode == "min" else -float("inf")
        self.num_bad = self.cooldown_counter = 0

    def is_better(self, a):
        # PyTorch's rule, valid for the positive metrics used with it here.
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < self.best * (1 - self.threshold)
        if self.mode == "min":
            return a < self.best - self.threshold
        if self.threshold_mode == "rel":
            return a > self.best * (1 + self.threshold)
        return a > self.best + self.threshold

    def step(self, metric):
        if self.is_better(metric):
            self.best, self.num_bad = metric, 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if self.lr - new_lr > self.eps:
                self.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad = 0
        return self.lr


SETTINGS = {
    "defaults-like": dict(mode="min", factor=0.1, patience=2, threshold=1e-4,
                          threshold_mode="rel", cooldown=0, min_lr=0.0),
    "cooldown": dict(mode="min", factor=0.5, patience=1, threshold=1e-4,
                     threshold_mode="rel", cooldown=2, min_lr=0.0),
    "abs-threshold": dict(mode="min", factor=0.5, patience=0, threshold=0.05,
                          threshold_mode="abs", cooldown=0, min_lr=0.0),
    "max-mode": dict(mode="max", factor=0.5, patience=1, threshold=0.01,
                     threshold_mode="rel", cooldown=1, min_lr=0.0),
    "min-lr-floor": dict(mode="min", factor=0.1, patience=0, threshold=0.0,
                         threshold_mode="abs", cooldown=0, min_lr=0.003),
}  # fmt: skip


def scripted_metrics(seed, n=60):
    """Positive metrics that improve, stall, wobble and improve again."""
    rng = np.random.default_rng(seed)
    trend = np.concatenate([np.linspace(2.0, 1.0, 15), np.full(20, 1.0), np.linspace(1.0, 0.5, 25)])
    return (trend[:n] + 0.02 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_matches_pytorch_rules_on_scripted_series(name):
    settings = SETTINGS[name]
    metrics = scripted_metrics(seed=len(name))
    reference = TorchPlateau(0.1, **settings)
    expected = [reference.step(float(m)) for m in metrics]

    plateau = lrjax.reduce_on_plateau(**settings)
    update = jax.jit(plateau.update)
    state, got = plateau.init(), []
    for m in metrics:
        state = update(state, m, 0.1)
        got.append(float(state.scale * 0.1))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert int(state.num_reductions) == len(set(expected)) - 1


def test_reduces_after_patience_plus_one_bad_evaluations():
    plateau = lrjax.reduce_on_plateau(factor=0.5, patience=3)
    state = plateau.update(plateau.init(), 1.0, 1.0)  # first evaluation sets the best
    scales = []
    for _ in range(5):
        state = plateau.update(state, 1.0, 1.0)
        scales.append(float(state.scale))
    assert scales == [1.0, 1.0, 1.0, 0.5, 0.5]


@pytest.mark.parametrize("offset", [-5.0, -1e-3, 0.0, 3.0])
def test_flat_metric_is_a_plateau_whatever_its_sign(offset):
    # optax.contrib.reduce_on_plateau (0.2.8) never reduces on negative losses; lrjax must.
    plateau = lrjax.reduce_on_plateau(factor=0.5, patience=2)
    state = plateau.init()
    for _ in range(4):
        state = plateau.update(state, offset, 1.0)
    assert float(state.scale) == 0.5


def test_negative_improving_metric_is_not_a_plateau():
    plateau = lrjax.reduce_on_plateau(factor=0.5, patience=0)
    state = plateau.init()
    for m in [-1.0, -1.5, -2.0, -3.0]:
        state = plateau.update(state, m, 1.0)
    assert float(state.scale) == 1.0


def test_vmapped_members_are_independent():
    plateau = lrjax.reduce_on_plateau(factor=0.5, patience=1)
    series = np.stack([scripted_metrics(0), np.linspace(3.0, 0.1, 60, dtype=np.float32)])
    factors = jnp.asarray([0.5, 0.1], jnp.float32)

    def run(metrics, factor):
        member = lrjax.reduce_on_plateau(factor=factor, patience=1)

        def body(state, m):
            state = member.update(state, m, 0.1)
            return state, state.scale

        return jax.lax.scan(body, member.init(), metrics)[1]

    together = jax.jit(jax.vmap(run))(jnp.asarray(series), factors)
    for k in range(2):
        alone = run(jnp.asarray(series[k]), factors[k])
        np.testing.assert_array_equal(together[k], alone)
    assert float(together[1, -1]) == 1.0  # the steadily improving member never reduced
    del plateau


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="best"), "mode must be one of"),
        (dict(threshold_mode="relative"), "threshold_mode must be one of"),
        (dict(patience=-1), "patience must be an integer >= 0"),
        (dict(cooldown=1.5), "cooldown must be an integer >= 0"),
        (dict(factor=1.0), r"factor must be a finite number in \(0, 1\)"),
        (dict(factor=float("nan")), r"factor must be a finite number in \(0, 1\), got nan"),
        (dict(factor=np.float32(0.0)), r"factor must be a finite number in \(0, 1\)"),
        (dict(factor=np.array([0.5, 0.1])), r"factor must be a scalar.*jax.vmap"),
        (dict(threshold=float("nan")), r"threshold must be a finite number >= 0, got nan"),
        (dict(threshold=-1e-4), r"threshold must be a finite number >= 0"),
        (dict(min_lr=float("inf")), r"min_lr must be a finite number >= 0, got inf"),
        (dict(min_lr=-0.1), r"min_lr must be a finite number >= 0"),
        (dict(eps=float("nan")), r"eps must be a finite number >= 0, got nan"),
        (dict(patience=np.float64("nan")), r"patience must be an integer >= 0"),
        (dict(patience=True), r"patience must be an integer >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lrjax.reduce_on_plateau(**kwargs)


def test_traced_magnitudes_skip_the_build_time_checks():
    # Inside vmap the values are tracers: no Python check can look at them, and none may try.
    def scale_after_reduction(factor, threshold, min_lr, eps):
        plateau = lrjax.reduce_on_plateau(
            factor=factor, patience=0, threshold=threshold, min_lr=min_lr, eps=eps
        )
        state = plateau.update(plateau.init(), 1.0, 1.0)
        return plateau.update(state, 1.0, 1.0).scale

    values = [jnp.asarray(v, jnp.float32) for v in ([0.5, 0.1], [0.0, 0.0], [0.0, 0.2], [0.0, 0.0])]
    np.testing.assert_allclose(jax.vmap(scale_after_reduction)(*values), [0.5, 0.2], rtol=1e-6)
