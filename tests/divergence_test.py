"""Tests for lrjax.divergence: a diverging member is frozen and flagged, the others untouched,
each check covers what its docstring says, and the guard adds no pass over the state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import engine

N, D, B, STEPS, CHUNK = 64, 5, 16, 8, 4
TX = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)


def init(member):
    k1, k2 = jax.random.split(jax.random.key(member["seed"]))
    params = {
        "w1": jax.random.normal(k1, (D, 16)) / np.sqrt(D),
        "b1": jnp.zeros(16),
        "w2": jax.random.normal(k2, (16, 3)) / 4.0,
    }
    opt_state = TX.init(params)
    opt_state.hyperparams["learning_rate"] = member["lr"]
    return params, opt_state


def loss_of(params, batch):
    x, y = batch
    logits = jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def step(state, batch, member):
    """A user's SGD step that reports its gradient norm, as most training loops do."""
    del member
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_of)(params, batch)
    updates, opt_state = TX.update(grads, opt_state, params)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return (optax.apply_updates(params, updates), opt_state), metrics


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)


DATA = make_data()
GUARDED = lrjax.vectorize(*lrjax.freeze_on_divergence(step, init))
STRICT = lrjax.vectorize(*lrjax.freeze_on_divergence(step, init, factor=1.5))
OFF = lrjax.vectorize(*lrjax.freeze_on_divergence(step, init, factor=None))


def members_of(lrs):
    return {"lr": np.asarray(lrs, np.float32), "seed": np.arange(len(lrs), dtype=np.int32)}


def fit(program, lrs):
    return lrjax.fit(
        program, members_of(lrs), DATA, num_steps=STEPS, chunk_steps=CHUNK, batch_size=B
    )


def test_an_absurd_learning_rate_is_frozen_and_the_others_are_bit_identical():
    wild = fit(GUARDED, [0.1, 1e4, 0.05, 0.2])
    assert wild.state.alive.tolist() == [True, False, True, True]
    at = int(wild.state.diverged_step[1])
    assert 0 <= at < STEPS
    assert np.isnan(wild.metrics["loss"][1, at + 1 :]).all()
    frozen = engine.member_slice(wild.state.state, 1)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(frozen))
    np.testing.assert_array_equal(wild.state.diverged_step[[0, 2, 3]], -1)

    # A sane member in its place: the others' arrays are bit-identical.
    sane = fit(GUARDED, [0.1, 0.3, 0.05, 0.2])
    assert sane.state.alive.all()
    for k in (0, 2, 3):
        np.testing.assert_array_equal(wild.metrics["loss"][k], sane.metrics["loss"][k])
        pairs = zip(
            jax.tree.leaves(wild.state.state), jax.tree.leaves(sane.state.state), strict=True
        )
        for a, b in pairs:
            np.testing.assert_array_equal(np.asarray(a)[k], np.asarray(b)[k])

    # The frozen state is the last good one: the state after `at` steps of an unguarded run of
    # the same members (the same batched arithmetic: at a learning rate of 1e4, the rounding of
    # one member alone, unbatched, grows past 1e-5 in a few steps).
    unguarded = lrjax.vectorize(step, init)
    members = members_of([0.1, 1e4, 0.05, 0.2])
    if at == 0:
        last_good = unguarded.init(members)
    else:
        last_good = lrjax.fit(unguarded, members, DATA, num_steps=at, batch_size=B).state
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(last_good), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b)[1], rtol=1e-5, atol=1e-6)


def test_divergence_factor_flags_a_loss_jump():
    # A small factor flags the growing loss of a too-large but finite learning rate.
    strict = fit(STRICT, [0.05, 30.0, 0.1, 0.2])
    assert strict.state.alive.tolist() == [True, False, True, True]
    at = int(strict.state.diverged_step[1])
    loss = strict.metrics["loss"]
    assert np.isfinite(loss[1, : at + 1]).all()
    assert loss[1, at] > 1.5 * loss[1, 0]
    assert (loss[1, :at] <= 1.5 * loss[1, 0]).all()
    # With no ratio test, only non-finite values freeze a member.
    off = fit(OFF, [0.05, 30.0, 0.1, 0.2])
    np.testing.assert_array_equal(off.metrics["loss"][1, :at], loss[1, :at])
    assert int(off.state.diverged_step[1]) != at
    np.testing.assert_array_equal(off.metrics["loss"][0], loss[0])


def toy(new_w, metrics):
    """A guarded toy step: ``w -> new_w(w, member)`` reporting ``metrics(w, member)``."""

    def toy_step(w, batch, member):
        del batch
        return new_w(w, member), metrics(w, member)

    return lrjax.freeze_on_divergence(toy_step, lambda member: jnp.float32(1.0), factor=None)


def run(guarded, growth, steps=3):
    guarded_step, guarded_init = guarded
    state = guarded_init({"g": jnp.float32(growth)})
    for _ in range(steps):
        state, _ = guarded_step(state, None, {"g": jnp.float32(growth)})
    return bool(state.alive), int(state.diverged_step), float(state.state)


def test_each_check_covers_what_the_docstring_says():
    big = float(np.float32(1e30))
    scale = toy(lambda w, m: w * m["g"], lambda w, m: {"loss": w, "grad_norm": m["g"]})
    # The gradient norm: non-finite while the loss is finite -> frozen at that step.
    assert run(scale, np.inf) == (False, 0, 1.0)
    # An update that overflows from a finite gradient is not caught by the scalars (step 1
    # writes inf), only by the loss one step later, too late to keep a finite state...
    assert run(scale, 1e30, steps=2) == (True, -1, np.inf)
    assert run(scale, 1e30, steps=3) == (False, 2, np.inf)
    # ...but by the state scan, when asked for.
    full = lrjax.freeze_on_divergence(
        lambda w, b, m: (w * m["g"], {"loss": w, "grad_norm": m["g"]}),
        lambda member: jnp.float32(1.0), factor=None, finite=lambda s: s,
    )  # fmt: skip
    assert run(full, 1e30) == (False, 1, big)
    # A step that reports no gradient norm: its whole state is scanned.
    no_norm = toy(lambda w, m: w * m["g"], lambda w, m: {"loss": w})
    assert run(no_norm, 1e30) == (False, 1, big)
    # The loss: non-finite -> frozen, its state kept.
    nan_loss = toy(lambda w, m: w + 1, lambda w, m: {"loss": w * m["g"], "grad_norm": w})
    assert run(nan_loss, np.nan) == (False, 0, 1.0)


def deep(layers):
    """``(init, step)`` of a tanh network of ``layers`` 16x16 layers (``2 * layers + 1`` state
    leaves: weights, momenta, the learning rate)."""

    def deep_init(member):
        params = {f"w{i}": jnp.full((16, 16), 0.1) for i in range(layers)}
        opt_state = TX.init(params)
        opt_state.hyperparams["learning_rate"] = member["lr"]
        return params, opt_state

    def deep_step(state, batch, member):
        del member
        params, opt_state = state
        x, y = batch

        def loss_fn(params):
            h = jnp.pad(x, ((0, 0), (0, 16 - D)))
            for i in range(layers):
                h = jnp.tanh(h @ params[f"w{i}"])
            return optax.softmax_cross_entropy_with_integer_labels(h[:, :3], y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = TX.update(grads, opt_state, params)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        return (optax.apply_updates(params, updates), opt_state), metrics

    return deep_init, deep_step


def test_the_guard_adds_no_pass_over_the_state():
    """With a gradient norm, freezing is a select fused into the update: the guard adds the same
    few fusions (its scalar bookkeeping) to the compiled step whatever the state holds; the
    state scan adds fusions with every leaf."""
    members = engine.abstract(members_of([0.1, 0.2]))
    batch = engine.abstract(jax.tree.map(lambda a: a[:B], DATA))

    def added(layers):
        deep_init, deep_step = deep(layers)
        state = jax.eval_shape(jax.vmap(deep_init), members)

        def fusions(step_fn, wrap):
            wrapped = jax.eval_shape(jax.vmap(wrap), state)
            program = jax.jit(jax.vmap(step_fn, in_axes=(0, None, 0)))
            return program.lower(wrapped, batch, members).compile().as_text().count(" fusion(")

        plain = fusions(deep_step, lambda s: s)
        cheap = fusions(lrjax.freeze_on_divergence(deep_step)[0], lrjax.divergence.guard)
        full = lrjax.freeze_on_divergence(deep_step, finite=lambda s: s)[0]
        return cheap - plain, fusions(full, lrjax.divergence.guard) - plain

    (cheap_1, scan_1), (cheap_8, scan_8) = added(1), added(8)
    assert cheap_1 == cheap_8, (cheap_1, cheap_8)
    assert scan_8 - scan_1 >= 14, (scan_1, scan_8)  # 14 more leaves to scan


def test_a_step_without_the_loss_is_named():
    guarded_step, guarded_init = lrjax.freeze_on_divergence(
        lambda w, b, m: (w, {"cost": w}), lambda m: jnp.float32(1.0)
    )
    with pytest.raises(
        ValueError, match=r"needs the step's metrics to hold 'loss', got \['cost'\]"
    ):
        guarded_step(guarded_init({}), None, {})
