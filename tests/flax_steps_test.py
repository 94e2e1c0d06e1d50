"""Tests for lrjax.flax_steps and the Flax conventions every tool accepts: nnx seeds as keys,
modules taking ``rngs`` in ``__call__``, metrics as any pytree (a Flax ``struct``, an
``nnx.MultiMetric``'s ``compute()``), a short refusal of a bad metrics value, pmap-style steps
over a named ``'batch'`` axis, and trackers keeping a ``TrainState``'s batch statistics."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx, struct
from flax.training import train_state

import lrjax
from lrjax import sweep
from lrjax.flax_steps import nnx_step
from tests.helpers import BATCH, D_IN, DATA, EVAL, LOSS, QUIET

SGD = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)


class Net(nnx.Module):
    """A module whose dropout draws from the ``rngs`` given at call time (the nnx tutorial)."""

    def __init__(self, rngs):
        self.hidden = nnx.Linear(D_IN, 8, rngs=rngs)
        self.dropout = nnx.Dropout(rate=0.3)
        self.out = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x, rngs: nnx.Rngs | None = None):
        return self.out(self.dropout(jnp.tanh(self.hidden(x)), rngs=rngs))


def loss_fn(model, rngs, batch):
    x, y = batch
    return jnp.mean(LOSS(model(x, rngs=rngs), y))


def train_step(model, optimizer, rngs, batch):
    loss, grads = nnx.value_and_grad(loss_fn)(model, rngs, batch)
    optimizer.update(model, grads)
    return loss


MEMBERS = {"lr": np.float32([0.1, 0.3]), "seed": np.int32([0, 1])}


def test_an_nnx_seed_given_to_rngs_directly_is_refused_with_the_fix():
    def make(member):
        model = Net(nnx.Rngs(member["seed"]))
        return model, nnx.Optimizer(model, SGD(learning_rate=member["lr"]), wrt=nnx.Param)

    with pytest.raises(ValueError, match=r"write nnx.Rngs\(jax.random.key\(member\['seed'\]\)\)"):
        nnx_step(make, train_step, MEMBERS)


def test_a_module_taking_rngs_in_call_trains_through_nnx_step_and_the_sweep():
    def make(member):
        key = jax.random.key(member["seed"])
        model = Net(nnx.Rngs(key))
        optimizer = nnx.Optimizer(model, SGD(learning_rate=member["lr"]), wrt=nnx.Param)
        return model, optimizer, nnx.Rngs(dropout=jax.random.fold_in(key, 1))

    step, init = nnx_step(make, train_step, MEMBERS)
    out = lrjax.fit(lrjax.vectorize(step, init), MEMBERS, DATA, num_steps=4, batch_size=BATCH)
    assert np.isfinite(out.metrics["loss"]).all()
    # The dropout streams are the members' state: they advance, and differ between seeds.
    counts = jax.tree.leaves(lrjax.unwrap(out.state)[2])
    assert any(np.asarray(c).max() > 0 for c in counts if c.dtype == np.uint32)
    # The sweep's model form passes the member's step key as rngs in training mode only.
    result = sweep.train(
        sweep.Model.from_nnx(Net), LOSS, DATA, optimizer=optax.sgd, num_steps=4,
        hparams={"learning_rate": MEMBERS["lr"]}, seeds=[0, 0], batch_size=BATCH,
        evaluation=sweep.Evaluation(EVAL), options=QUIET,
    )  # fmt: skip
    assert np.isfinite(result.loss).all() and np.isfinite(result.eval_metrics["loss"]).all()


@struct.dataclass
class Metrics:
    loss: jax.Array
    accuracy: jax.Array


class TrainState(train_state.TrainState):
    batch_stats: Any


class BNNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name="batch")(
            nn.Dense(8)(x)
        )
        return nn.Dense(3)(jnp.tanh(x))


def bn_init(member):
    variables = BNNet().init(jax.random.key(member["seed"]), jnp.ones((1, D_IN)), train=False)
    return TrainState.create(
        apply_fn=BNNet().apply, params=variables["params"], tx=SGD(learning_rate=member["lr"]),
        batch_stats=variables["batch_stats"],
    )  # fmt: skip


def pmap_style_step(state, batch, member):
    """A step written for pmap: BatchNorm and the gradient averaged over the 'batch' axis, and
    metrics as a Flax struct."""
    del member
    x, y = batch

    def loss_fn(params):
        logits, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats},
                                         x, mutable=["batch_stats"])  # fmt: skip
        return jnp.mean(LOSS(logits, y)), (logits, updates["batch_stats"])

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = jax.lax.pmean(grads, axis_name="batch")
    accuracy = jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
    metrics = jax.lax.pmean(Metrics(loss=loss, accuracy=accuracy), axis_name="batch")
    return state.apply_gradients(grads=grads, batch_stats=stats), metrics


def test_a_pmap_style_step_with_struct_metrics_runs_unchanged_and_trackers_keep_its_stats():
    step, init = lrjax.track(pmap_style_step, bn_init, {"swa": lrjax.SWA(start=1)})
    out = lrjax.fit(lrjax.vectorize(step, init), MEMBERS, DATA, num_steps=4, batch_size=BATCH)
    assert sorted(out.metrics) == ["accuracy", "loss"]
    # The same step under pmap on one device (as Flax runs it) gives the same member.
    member = {"lr": jnp.float32(0.3), "seed": jnp.int32(1)}
    state = jax.tree.map(lambda a: jnp.asarray(a)[None], bn_init(member))
    pstep = jax.pmap(lambda s, b: pmap_style_step(s, b, None), axis_name="batch")
    for t in range(4):
        idx = np.asarray(lrjax.feeds.batch_indices(0, t, len(DATA[0]), BATCH))
        state, metrics = pstep(state, (DATA[0][idx][None], DATA[1][idx][None]))
        np.testing.assert_allclose(out.metrics["loss"][1, t], metrics.loss[0], rtol=1e-5)
    # The default tracker selection keeps the batch statistics: an SWAState of both.
    swa = out.state.trackers["swa"]
    assert isinstance(swa, lrjax.SWAState)
    assert sorted(swa.mean) == ["batch_stats", "params"]
    np.testing.assert_array_equal(swa.count, [4, 4])


def test_an_nnx_multimetric_compute_output_is_recorded():
    def make(member):
        model = Net(nnx.Rngs(jax.random.key(member["seed"])))
        metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average())
        optimizer = nnx.Optimizer(model, SGD(learning_rate=member["lr"]), wrt=nnx.Param)
        return model, optimizer, metrics

    def step_with_metrics(model, optimizer, metrics, batch):
        x, y = batch
        model.eval()  # no dropout here: no rngs needed

        def loss_fn(m):
            logits = m(x)
            return jnp.mean(LOSS(logits, y)), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        metrics.update(values=loss, logits=logits, labels=y)
        return metrics.compute()

    step, init = nnx_step(make, step_with_metrics, MEMBERS)
    with jax.numpy_dtype_promotion("standard"):  # nnx's Average divides a float by an int count
        out = lrjax.fit(lrjax.vectorize(step, init), MEMBERS, DATA, num_steps=3, batch_size=BATCH)
    assert sorted(out.metrics) == ["accuracy", "loss"]
    assert ((out.metrics["accuracy"] >= 0) & (out.metrics["accuracy"] <= 1)).all()


@pytest.mark.parametrize("metrics", ["loss", None, 3.0])
def test_a_bad_metrics_value_is_refused_in_a_short_message(metrics):
    def step(state, batch, member):
        return state, metrics

    program = lrjax.vectorize(step, lambda member: {"w": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"a step's metrics must be a dict") as error:
        lrjax.fit(program, {"lr": np.float32([0.1])}, DATA, num_steps=1, batch_size=BATCH)
    assert len(str(error.value)) < 200
