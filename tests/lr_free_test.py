"""Learning-rate-free optimizers as sweep members, against each method run alone.

The model has BatchNorm and dropout. A plain reference loop (no vmap, no scan, the optax
method built with a concrete Python knob, no ``inject_hyperparams``) trains one member; every
member of a sweep must end at the same parameters, batch statistics and evaluation, the
schedule-free ones evaluated at the averaged point ``x`` (not the trained ``y``).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from flax import linen

import lrjax
from lrjax import lr_free, sweep

LOSS = optax.softmax_cross_entropy_with_integer_labels
D_IN, C, B, T = 5, 3, 16, 4
_rng = np.random.default_rng(0)
X = _rng.normal(size=(T, B, D_IN)).astype(np.float32)
Y = _rng.integers(0, C, size=(T, B)).astype(np.int32)
XV = _rng.normal(size=(24, D_IN)).astype(np.float32)
YV = _rng.integers(0, C, size=(24,)).astype(np.int32)
NAMES = list(lr_free.METHODS)
SCHEDULE_FREE = {n for n, m in lr_free.METHODS.items() if m.schedule_free}
FACTORS = (1.0, 3.0)  # each knob at its default and 3x it


def batch(step):
    return X[step % T], Y[step % T]


class Net(linen.Module):
    """Dense, BatchNorm, tanh, dropout, Dense."""

    @linen.compact
    def __call__(self, x, train=False):
        # No bias before BatchNorm: its gradient is zero up to rounding, which Adam-type
        # methods would scale up to full steps, making members and references differ by noise.
        h = linen.Dense(8, use_bias=False)(x)
        x = linen.BatchNorm(use_running_average=not train, momentum=0.8)(h)
        x = linen.Dropout(0.5, deterministic=not train)(jnp.tanh(x))
        return linen.Dense(C)(x)


MODEL = lrjax.Model.from_linen(Net(), X[0][:1])
OPTIONS = sweep.Options(progress=False, group_size=len(NAMES) * len(FACTORS))


@jax.jit
def _loss_and_grad(params, state, x, y, key):
    def objective(p):
        out, new_state = MODEL.apply_train(p, state, x, key)
        return jnp.mean(LOSS(out, y)), new_state

    return jax.value_and_grad(objective, has_aux=True)(params)


@jax.jit
def _eval_loss(params, state):
    return jnp.mean(LOSS(MODEL.apply(params, state, XV), YV))


@functools.cache
def reference(name, knob, seed):
    """One member trained alone: a plain Python loop, the optax method at a concrete knob;
    returns (params, batch stats, eval point, eval loss)."""
    m = lr_free.METHODS[name]
    tx = m.factory(**{m.knob: float(knob)})
    key = jax.random.key(seed)
    params, state = MODEL.init(key), MODEL.init_state(key)
    with jax.numpy_dtype_promotion("standard"):
        opt = tx.init(params)
        for t in range(T):
            x, y = batch(t)
            (_, state), grads = _loss_and_grad(params, state, x, y, lrjax.step_key(seed, t))
            updates, opt = tx.update(grads, opt, params)
            params = optax.apply_updates(params, updates)
        # optax's own function on the method's own state: independent of lr_free.eval_params.
        point = optax.contrib.schedule_free_eval_params(opt, params) if m.schedule_free else params
    return params, state, point, float(_eval_loss(point, state))


def _member(tree, k):
    return jax.tree.map(lambda a: np.asarray(a[k]), tree)


def _close(actual, expected, what):
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=what),
        actual,
        expected,
    )


# ---------------------------------------------------------------------------------------------
# Every method × knob × seed as members of ONE program (lr_free.switch)


@pytest.fixture(scope="module")
def switched():
    method, factor = (a.ravel() for a in np.meshgrid(range(len(NAMES)), FACTORS, indexing="ij"))
    knob = np.asarray([lr_free.METHODS[NAMES[i]].default for i in method]) * factor
    seeds = np.arange(len(method), dtype=np.int32) % 2
    res = sweep.train(
        MODEL, LOSS, batch, optimizer=lr_free.switch(NAMES),
        hparams={"method": method, "knob": knob}, num_steps=T, seeds=seeds,
        evaluation=sweep.Evaluation((XV, YV), eval_params=lr_free.eval_params),
        divergence_factor=None, options=OPTIONS,
    )  # fmt: skip
    return res, [NAMES[i] for i in method], knob.astype(np.float32), seeds


def test_switch_runs_every_method_in_one_program(switched):
    res, _, knob, _ = switched
    assert res.metadata["num_groups"] == 1 and not res.diverged.any()
    # The knob is injected (traced per member) and read back from the optimizer state.
    np.testing.assert_array_equal(res.opt_hparams["knob"], np.repeat(knob[:, None], T, axis=1))
    assert np.isfinite(res.eval_metrics["loss"]).all()


@pytest.mark.parametrize("name", NAMES)
def test_switch_member_equals_the_method_run_alone(switched, name):
    res, names, knob, seeds = switched
    for k in [i for i, n in enumerate(names) if n == name]:
        params, state, point, loss = reference(name, float(knob[k]), int(seeds[k]))
        what = f"{name} at {knob[k]:g}"
        _close(_member(res.params, k), params, what)
        _close(_member(res.model_state, k), state, what)
        _close(_member(jax.vmap(lr_free.eval_params)(res.opt_state, res.params), k), point, what)
        np.testing.assert_allclose(res.eval_metrics["loss"][k, -1], loss, rtol=2e-5)


def test_schedule_free_is_evaluated_at_the_average_not_the_iterate(switched):
    res, names, knob, seeds = switched
    for k, name in enumerate(names):
        params, state, point, loss = reference(name, float(knob[k]), int(seeds[k]))
        at_iterate = float(_eval_loss(params, state))
        got = res.eval_metrics["loss"][k, -1]
        if name in SCHEDULE_FREE:
            gap = max(
                jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), point, params))
            )
            assert gap > 1e-4, name  # x differs from y after T steps
            # The evaluation is at x: far closer to the loss there than to the loss at y.
            assert abs(got - loss) < 0.1 * abs(at_iterate - loss), name
        else:
            np.testing.assert_allclose(got, at_iterate, rtol=2e-5)
    # At step 0 nothing has moved: x = y = z, the initial parameters, for every method.
    for k, seed in enumerate(seeds):
        key = jax.random.key(int(seed))
        start = float(_eval_loss(MODEL.init(key), MODEL.init_state(key)))
        np.testing.assert_allclose(res.eval_metrics["loss"][k, 0], start, rtol=2e-6)


# ---------------------------------------------------------------------------------------------
# One method per sweep: its factory as the optimizer, its knob as the hyperparameter

PER_METHOD = [
    n if n in ("schedule_free_adamw", "dog") else pytest.param(n, marks=pytest.mark.slow)
    for n in NAMES
]


@pytest.mark.parametrize("name", PER_METHOD)
def test_one_method_sweep_over_its_knob_equals_runs_alone(name):
    m = lr_free.METHODS[name]
    knobs = np.asarray([m.default, 3.0 * m.default], np.float32)
    res = sweep.train(
        MODEL, LOSS, batch, optimizer=m.factory, hparams={m.knob: knobs}, num_steps=T,
        seeds=1, evaluation=sweep.Evaluation((XV, YV), eval_params=lr_free.eval_params),
        divergence_factor=None, options=sweep.Options(progress=False),
    )  # fmt: skip
    points = jax.vmap(lr_free.eval_params)(res.opt_state, res.params)
    for k, knob in enumerate(knobs):
        params, state, point, loss = reference(name, float(knob), 1)
        _close(_member(res.params, k), params, f"{name} at {knob:g}")
        _close(_member(res.model_state, k), state, f"{name} at {knob:g}")
        _close(_member(points, k), point, f"{name} at {knob:g}")
        np.testing.assert_allclose(res.eval_metrics["loss"][k, -1], loss, rtol=2e-5)


# ---------------------------------------------------------------------------------------------
# eval_params and bad input


def test_eval_params_under_jit_and_vmap_matches_optax():
    tx = optax.inject_hyperparams(lr_free.METHODS["schedule_free_sgd"].factory)
    p = {"w": jnp.arange(3.0)}

    def run(lr):
        with jax.numpy_dtype_promotion("standard"):
            state = tx(learning_rate=lr).init(p)
            params = p
            for _ in range(3):
                u, state = tx(learning_rate=lr).update({"w": jnp.ones(3)}, state, params)
                params = optax.apply_updates(params, u)
            return params, state, lr_free.eval_params(state, params)

    lrs = jnp.asarray([0.1, 1.0])
    params, state, got = jax.jit(jax.vmap(run))(lrs)
    for k in range(2):
        inner = jax.tree.map(lambda a, k=k: a[k], state.inner_state)
        y = jax.tree.map(lambda a, k=k: a[k], params)
        want = optax.contrib.schedule_free_eval_params(inner, y)
        np.testing.assert_allclose(got["w"][k], want["w"], rtol=1e-6)
        assert not np.allclose(got["w"][k], y["w"])
    # Not schedule-free: the parameters themselves.
    assert lr_free.eval_params(optax.sgd(0.1).init(p), p) is p


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"method must be a Method or one of schedule_free_sgd"):
        lr_free.switch(["adam"])
    with pytest.raises(ValueError, match=r"methods must hold at least one method"):
        lr_free.switch([])
    two = optax.chain(optax.contrib.schedule_free_sgd(), optax.contrib.schedule_free_sgd())
    p = jnp.ones(2)
    with pytest.raises(ValueError, match=r"opt_state holds 2 schedule-free or switch states"):
        lr_free.eval_params(two.init(p), p)
    with pytest.raises(ValueError, match=r"evaluation.eval_params must be a function"):
        sweep.train(
            MODEL, LOSS, batch, optimizer=optax.sgd, hparams={"learning_rate": [0.1]},
            num_steps=1, evaluation=sweep.Evaluation((XV, YV), eval_params=3),
            options=sweep.Options(progress=False),
        )  # fmt: skip
