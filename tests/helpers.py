"""Tiny models, data and single-member references shared by the tests of the sweep, its loop,
hooks, trackers and supervised step (imported by them; it holds no tests)."""

import dataclasses
import functools
import os
import subprocess
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen, nnx

from lrjax import sweep

N, D_IN, D_HID, D_OUT = 64, 4, 8, 3
STEPS, BATCH, CHUNK = 12, 8, 5  # 3 chunks, the last one partial
RTOL, ATOL = 1e-5, 1e-6  # float32, a dozen steps: the vmapped program reorders reductions


def mlp_init(key):
    # Pseudo-random weights hashed from the key's bits: threefry takes seconds to compile on CPU,
    # and these tests compile many programs. (The Flax tests below use jax.random initializers.)
    seed = jax.random.key_data(key)[-1].astype(jnp.float32)

    def weights(shape, salt):
        i = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
        return jnp.sin(i * 12.9898 + seed * 78.233 + salt) / np.sqrt(shape[0])

    return {
        "w1": weights((D_IN, D_HID), 0.0),
        "b1": jnp.zeros((D_HID,)),
        "w2": weights((D_HID, D_OUT), 1.0),
        "b2": jnp.zeros((D_OUT,)),
    }


def mlp_apply(params, x):
    h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    return h @ params["w2"] + params["b2"][None, :]


MODEL = sweep.Model(mlp_init, mlp_apply)
LOSS = optax.softmax_cross_entropy_with_integer_labels
QUIET = sweep.Options(progress=False)


def make_data(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D_IN)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)
    return x, y


DATA = make_data(0, N)
EVAL = make_data(1, 32)


@functools.partial(jax.jit, static_argnames=("make_tx", "apply"))
def reference_step(params, state, xb, yb, hp, make_tx, apply):
    tx = make_tx(**hp)
    loss, grads = jax.value_and_grad(lambda p: jnp.mean(LOSS(apply(p, xb), yb)))(params)
    with jax.numpy_dtype_promotion("standard"):  # optax's Adam computes f32 ** int32 count
        updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss


indices = jax.jit(sweep.batch_indices, static_argnums=(2, 3))


def reference(make_tx, hp, *, seed=0, data_seed=0, steps=STEPS, member_batch=None, model=None):
    """Plain optax: one member, ``make_tx(**hp)``, a jitted step, a Python loop; no lrjax engine.

    The hyperparameters are traced arguments of one jitted step per ``make_tx``, so references
    for many members share a compiled step.
    """
    model = model or MODEL
    x, y = DATA
    params = jax.jit(model.init)(jax.random.key(seed))
    with jax.numpy_dtype_promotion("standard"):
        state = make_tx(**hp).init(params)
    hp = {k: jnp.float32(v) for k, v in hp.items()}
    losses = []
    for t in range(steps):
        idx = np.asarray(indices(data_seed, t, len(x), BATCH))[:member_batch]
        params, state, loss = reference_step(
            params, state, x[idx], y[idx], hp, make_tx=make_tx, apply=model.apply
        )
        losses.append(float(loss))
    return np.array(losses), params


def assert_member_matches(result, k, ref_losses, ref_params, params_atol=ATOL):
    np.testing.assert_allclose(result.loss[k], ref_losses, rtol=RTOL, atol=ATOL)
    for got, want in zip(
        jax.tree.leaves(result.member_params(k)), jax.tree.leaves(ref_params), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=params_atol)


# -----------------------------------------------------------------------------------------------
# Small constant-LR SGD sweeps share one compiled program through the module-level cache.


def sgd_train(learning_rates, eval_data=None, every=CHUNK, options=None, **kwargs):
    """Constant-LR SGD in chunks of ``every`` steps (evaluated on ``eval_data`` when given)."""
    if eval_data is None:
        options = dataclasses.replace(options or QUIET, chunk_steps=every)
    return sweep.train(
        MODEL,
        LOSS,
        DATA,
        optimizer=optax.sgd,
        hparams={"learning_rate": np.asarray(learning_rates, np.float32)},
        num_steps=STEPS,
        batch_size=BATCH,
        evaluation=None if eval_data is None else sweep.Evaluation(eval_data, every),
        options=options or QUIET,
        **kwargs,
    )


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(D_OUT)(jnp.tanh(linen.Dense(D_HID)(x)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(D_IN, D_HID, rngs=rngs)
        self.out = nnx.Linear(D_HID, D_OUT, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


def bad(**overrides):
    args = dict(
        model=MODEL,
        loss=LOSS,
        data=DATA,
        optimizer=optax.sgd,
        hparams={"learning_rate": np.array([0.1, 0.2])},
        num_steps=STEPS,
        batch_size=BATCH,
        options=QUIET,
    )
    args.update(overrides)
    model, loss, data = args.pop("model"), args.pop("loss"), args.pop("data")
    return sweep.train(model, loss, data, **args)


def run_python(script, env_extra, timeout=240, args=()):
    env = dict(os.environ, **env_extra)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -----------------------------------------------------------------------------------------------
# Models with batch statistics and dropout (linen and nnx)


class LinenBNDropout(linen.Module):
    @linen.compact
    def __call__(self, x, train: bool = False):
        x = linen.BatchNorm(use_running_average=not train, momentum=0.8)(linen.Dense(D_HID)(x))
        x = linen.Dropout(0.5, deterministic=not train)(jnp.tanh(x))
        return linen.Dense(D_OUT)(x)


class NnxBNDropout(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(D_IN, D_HID, rngs=rngs)
        self.norm = nnx.BatchNorm(D_HID, momentum=0.8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(D_HID, D_OUT, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(jnp.tanh(self.norm(self.hidden(x)))))


def data_at(idx):
    return DATA[0][idx], DATA[1][idx]


# -----------------------------------------------------------------------------------------------
# Checkpoint identity: a checkpoint resumes only the run that wrote it, in any process


class LinenBNDropoutAct(linen.Module):
    """LinenBNDropout with its activation as an attribute: relu and tanh share every shape."""

    act: Callable = jnp.tanh

    @linen.compact
    def __call__(self, x, train: bool = False):
        x = linen.BatchNorm(use_running_average=not train, momentum=0.8)(linen.Dense(D_HID)(x))
        x = linen.Dropout(0.5, deterministic=not train)(self.act(x))
        return linen.Dense(D_OUT)(x)


def identity_run_kwargs(momentum=0.9, warmup=2):
    """A run as a user writes it: a partial for the optimizer and a lambda with a closure."""
    optimizer = functools.partial(optax.sgd, nesterov=False)
    return dict(
        optimizer=optimizer,
        optimizer_kwargs=lambda hp: {
            "learning_rate": optax.linear_schedule(0.0, hp["lr"], warmup),
            "momentum": momentum,
        },
        hparams={"lr": np.array([0.1, 0.3], np.float32)},
        num_steps=STEPS,
        batch_size=BATCH,
        seeds=[0, 1],
    )


def identity_run(checkpoint_dir, callback=None, model=None, data=DATA, eval_data=EVAL,
                 metrics=None, **changes):  # fmt: skip
    return sweep.train(
        model or LinenBNDropoutAct(), LOSS, data,
        evaluation=sweep.Evaluation(eval_data, every=CHUNK, metrics=metrics),
        options=sweep.Options(progress=False, checkpoint_dir=checkpoint_dir, callback=callback),
        **identity_run_kwargs(**changes),
    )  # fmt: skip


class Opaque:
    """An object with neither an importable name nor an address-free repr."""

    def __call__(self, outputs, targets):
        return LOSS(outputs, targets)
