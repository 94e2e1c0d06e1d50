"""Tests for lrjax.controller: one hyperparameter controller on the user's own step.

A per-member peak of a schedule on a Flax ``TrainState`` equals separate runs of the user's step
with ``optax.sgd(schedule(peak))``; missing or self-scheduled hyperparameters are refused with
the fix; member settings and nnx states are controlled too; the knobs never look diverged.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import lrjax
from lrjax import flax_steps
from tests.helpers import BATCH, D_IN, DATA, LOSS, indices

STEPS = 8
PEAKS = np.array([0.05, 0.2, 0.8, 3.0], np.float32)  # the largest trains worst


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(jnp.tanh(nn.Dense(8)(x)))


class TrainState(train_state.TrainState):
    extra: Any = None


def schedule(peak):
    return lrjax.warmup_cosine_decay(peak, warmup_steps=2, total_steps=STEPS)


def create(key, tx):
    params = MLP().init(key, jnp.ones((1, D_IN)))["params"]
    return TrainState.create(apply_fn=MLP().apply, params=params, tx=tx)


def train_step(state, batch):
    """The user's own step, written for ONE model."""
    x, y = batch

    def loss_fn(params):
        return jnp.mean(LOSS(state.apply_fn({"params": params}, x), y))

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss}


INJECTED = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(
    learning_rate=0.0, momentum=0.9
)


def init(member):
    return create(jax.random.key(member["seed"]), INJECTED)


def step(state, batch, member):
    del member
    return train_step(state, batch)


CONTROLLED = lrjax.control(step, init, {"learning_rate": lambda m: schedule(m["peak"])})
PROGRAM = lrjax.vectorize(*CONTROLLED)


def batches(steps=STEPS):
    x, y = DATA
    for t in range(steps):
        idx = np.asarray(indices(0, t, len(x), BATCH))
        yield x[idx], y[idx]


def test_a_per_member_peak_on_a_train_state_equals_separate_runs_at_every_peak():
    members = {"peak": PEAKS, "seed": np.zeros(PEAKS.size, np.int32)}
    out = lrjax.fit(PROGRAM, members, DATA, num_steps=STEPS, batch_size=BATCH)
    shared = list(batches())  # the batches every member saw (one shared order)

    @jax.jit
    def separate(peak):  # the user's step, optax.sgd with the schedule of this peak
        state = create(jax.random.key(0), optax.sgd(schedule(peak), momentum=0.9))
        losses = []
        for batch in shared:
            state, metrics = train_step(state, batch)
            losses.append(metrics["loss"])
        return jnp.stack(losses), state.params

    for k, peak in enumerate(PEAKS):
        losses, params = separate(peak)
        np.testing.assert_allclose(out.metrics["loss"][k], losses, rtol=1e-5, atol=1e-6)
        got = jax.tree.map(lambda a, k=k: a[k], lrjax.unwrap(out.state).params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        # The value the update used is logged, and is the schedule's.
        used = np.asarray(jax.vmap(schedule(peak))(jnp.arange(STEPS)))
        np.testing.assert_allclose(out.metrics["hparams/learning_rate"][k], used, rtol=1e-6)
    assert out.metrics["loss"][-1, -1] > out.metrics["loss"][1, -1]  # a peak too large


def test_a_missing_hyperparameter_is_named_with_the_fix():
    def plain_init(member):
        return create(jax.random.key(0), optax.sgd(0.1))

    program = lrjax.vectorize(*lrjax.control(step, plain_init, {"learning_rate": None}))
    message = (
        r"'learning_rate' is neither an optax.inject_hyperparams hyperparameter of the state "
        r"\(found: \[\]\) nor a member setting \(found: \['seed'\]\); wrap the optimizer so that "
        r"it keeps learning_rate in its state: optax.inject_hyperparams\(optax.sgd, "
        r"hyperparam_dtype=jnp.float32\)\(learning_rate=0.0, ...\)"
    )
    with pytest.raises(ValueError, match=message):
        program.init({"seed": np.zeros(2, np.int32)})


def test_a_hyperparameter_scheduled_inside_inject_hyperparams_is_refused():
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(0.1, 0.0, 5))
    program = lrjax.vectorize(
        *lrjax.control(step, lambda m: create(jax.random.key(0), tx), ["learning_rate"])
    )
    with pytest.raises(ValueError, match=r"'learning_rate' is computed by a schedule inside"):
        program.init({"seed": np.zeros(1, np.int32)})


@pytest.mark.parametrize(
    "rules, message",
    [
        ("learning_rate", "rules must be a mapping"),
        ({"learning_rate": 0.1}, r"rules\['learning_rate'\] must be a function"),
        ({}, "rules must name at least one hyperparameter"),
    ],
)
def test_bad_rules_are_named(rules, message):
    with pytest.raises(ValueError, match=message):
        lrjax.control(step, init, rules)


def test_member_settings_are_controlled_before_the_other_rules_read_them():
    # The step reads `wd` from its member; the learning rate's rule reads the member's `peak`.
    def weighted_step(state, batch, member):
        state, metrics = step(state, batch, member)
        return state, {**metrics, "wd_seen": member["wd"]}

    rules = {"wd": None, "peak": None, "learning_rate": lambda m: m["peak"] * 2.0}
    program = lrjax.vectorize(*lrjax.control(weighted_step, init, rules))
    members = {"peak": np.float32([0.1, 0.2]), "wd": np.float32([1e-3, 2e-3]),
               "seed": np.zeros(2, np.int32)}  # fmt: skip
    state = program.init(members)
    knobs = state.knobs

    def turned(knob, override):
        return knob._replace(override=jnp.asarray(override, jnp.float32),
                             overridden=jnp.asarray([False, True]))  # fmt: skip

    state = state._replace(knobs={**knobs, "peak": turned(knobs["peak"], [0.0, 0.5]),
                                  "wd": turned(knobs["wd"], [0.0, 7e-3])})  # fmt: skip
    xs = tuple(np.stack(a) for a in zip(*batches(2), strict=True))
    state, metrics = program.run(state, members, xs)
    np.testing.assert_allclose(metrics["hparams/peak"][:, 0], [0.1, 0.5])
    np.testing.assert_allclose(metrics["hparams/learning_rate"][:, 0], [0.2, 1.0])
    np.testing.assert_allclose(metrics["wd_seen"][:, 0], [1e-3, 7e-3])
    np.testing.assert_allclose(state.state.opt_state.hyperparams["learning_rate"], [0.2, 1.0])


def test_knobs_are_finite_so_a_divergence_layer_never_mistakes_them():
    guarded = lrjax.vectorize(*lrjax.freeze_on_divergence(*CONTROLLED))
    members = {"peak": np.float32([0.05, 0.1]), "seed": np.zeros(2, np.int32)}
    out = lrjax.fit(guarded, members, DATA, num_steps=3, batch_size=BATCH)
    assert out.state.alive.all()
    assert all(np.isfinite(np.asarray(a, np.float64)).all()
               for a in jax.tree.leaves(out.state.state.knobs))  # fmt: skip


def test_an_nnx_optimizer_state_is_controlled():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(D_IN, 3, rngs=rngs)

        def __call__(self, x):
            return self.linear(x)

    def make(member):
        model = Net(nnx.Rngs(jax.random.key(member["seed"])))
        tx = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.0)
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    def nnx_train_step(model, optimizer, batch):
        x, y = batch
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean(LOSS(m(x), y)))(model)
        optimizer.update(model, grads)
        return {"loss": loss, "lr": optimizer.opt_state.hyperparams["learning_rate"][...]}

    members = {"peak": np.float32([0.1, 0.4]), "seed": np.zeros(2, np.int32)}
    nnx_step, nnx_init = flax_steps.nnx_step(make, nnx_train_step, {"seed": members["seed"]})
    program = lrjax.vectorize(
        *lrjax.control(nnx_step, nnx_init, {"learning_rate": lambda m: schedule(m["peak"])})
    )
    out = lrjax.fit(program, members, DATA, num_steps=4, batch_size=BATCH)
    want = np.stack([np.asarray(jax.vmap(schedule(p))(jnp.arange(4))) for p in members["peak"]])
    np.testing.assert_allclose(out.metrics["lr"], want, rtol=1e-6)
