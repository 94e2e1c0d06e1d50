"""Tests for lrjax.pbt: exploit is an exact gather, explore stays in bounds, diverged members
are replaced, a PBT that never fires is a plain run, and runs are deterministic and resumable.

The model has BatchNorm and dropout; its state is params, batch statistics and an
``inject_hyperparams`` SGD-with-momentum state holding the explored learning rate.
"""

import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import engine, hooks
from tests.helpers import run_python

N, D, B, CHUNK = 64, 4, 8, 3
K = 8


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.8)(nn.Dense(8)(x)))
        x = nn.Dropout(0.3, deterministic=not train)(x)
        return nn.Dense(3)(x)


NET = Net()
X0 = np.zeros((B, D), np.float32)


def tx(member):
    return optax.inject_hyperparams(optax.sgd)(learning_rate=member["lr"], momentum=0.9)


def init(member):
    variables = NET.init(jax.random.key(member["seed"]), X0, train=False)
    params = variables["params"]
    return {
        "params": params,
        "batch_stats": variables["batch_stats"],
        "opt_state": tx(member).init(params),
        "step": jnp.zeros((), jnp.int32),
    }


def step(state, batch, member):
    x, y = batch
    key = lrjax.step_key(member["seed"], state["step"])

    def loss_fn(params):
        logits, updates = NET.apply(
            {"params": params, "batch_stats": state["batch_stats"]}, x, train=True,
            rngs={"dropout": key}, mutable=["batch_stats"],
        )  # fmt: skip
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        decay = member["wd"] * sum(jnp.sum(w**2) for w in jax.tree.leaves(params))
        return loss + decay, updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    delta, opt_state = tx(member).update(grads, state["opt_state"], state["params"])
    new = {
        "params": optax.apply_updates(state["params"], delta),
        "batch_stats": updates["batch_stats"],
        "opt_state": opt_state,
        "step": state["step"] + 1,
    }
    return new, {"loss": loss, "lr": opt_state.hyperparams["learning_rate"]}


def evaluate(state, member, data):
    del member
    inner = engine.unwrap(state)
    x, y = data
    logits = NET.apply({"params": inner["params"], "batch_stats": inner["batch_stats"]}, x,
                       train=False)  # fmt: skip
    return {"accuracy": jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))}


def make_data(seed, n=N):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)


DATA, EVAL = make_data(0), make_data(1, 32)
# The controller sets both explored names: the learning rate in the optimizer state (from the
# value init put there) and the weight decay among the member settings.
PROGRAM = lrjax.vectorize(
    *lrjax.freeze_on_divergence(*lrjax.control(step, init, ["learning_rate", "wd"]))
)
MEMBERS = {
    "lr": np.geomspace(0.01, 1.0, K).astype(np.float32),
    "seed": np.arange(K, dtype=np.int32),
    "wd": np.full(K, 1e-3, np.float32),  # a member setting the step reads, explored too
}
# The learning rate lives in the optimizer state (the step reads it there), the weight decay
# in the member settings.
SPACE = {"learning_rate": lrjax.Range(0.005, 2.0), "wd": lrjax.Range(1e-4, 1e-2)}


def make_pbt(**kwargs):
    return lrjax.PBT(SPACE, **{"metric": "accuracy", "ready": CHUNK, "seed": 0, **kwargs})


class Spy:
    """Keeps a host copy of the state after each chunk (placed before or after PBT)."""

    def __init__(self):
        self.states = []

    def after_chunk(self, loop, group):
        self.states.append(jax.tree.map(lambda a: np.array(engine.to_host(a)), group.state))


def run(pbt=None, num_steps=4 * CHUNK, members=MEMBERS, extra=(), **kwargs):
    run_hooks = [*extra, hooks.Evaluate(evaluate, EVAL)]
    if pbt is not None:
        run_hooks.append(pbt)
    return lrjax.fit(PROGRAM, members, DATA, num_steps=num_steps, chunk_steps=CHUNK,
                     batch_size=B, hooks=run_hooks, **kwargs)  # fmt: skip


def assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def spied():
    before, after, pbt = Spy(), Spy(), make_pbt(fraction=0.25)
    hook_list = [hooks.Evaluate(evaluate, EVAL), before, pbt, after]
    out = lrjax.fit(PROGRAM, MEMBERS, DATA, num_steps=4 * CHUNK, chunk_steps=CHUNK,
                    batch_size=B, hooks=hook_list)  # fmt: skip
    return out, pbt, before.states, after.states


def test_exploit_copies_exactly_the_chosen_members_state(spied):
    out, pbt, before, after = spied
    assert pbt.steps.tolist() == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]  # never after the last step
    assert pbt.parents.shape == (K, 3)
    for e in range(3):
        source = pbt.parents[:, e]
        replaced = source != np.arange(K)
        assert replaced.sum() >= 2  # the bottom quarter, at least
        # Replaced members copy a top-quarter member by validation accuracy.
        order = np.argsort(-pbt.scores[:, e], kind="stable")
        assert set(source[replaced]) <= set(order[:2].tolist())
        assert set(np.flatnonzero(replaced)) >= set(order[-2:].tolist())
        expected = jax.tree.map(lambda a, s=source: np.take(a, s, axis=0), before[e])
        got = after[e]
        # The explored values: the donor's, perturbed, written as the controller's override
        # only where a member was replaced (the others keep their knobs).
        for name in ("learning_rate", "wd"):
            knob, donor = got.state.knobs[name], expected.state.knobs[name]
            effective = np.where(knob.overridden, knob.override, knob.value)
            np.testing.assert_array_equal(effective, pbt.values[name][:, e + 1])
            np.testing.assert_array_equal(knob.overridden[replaced], True)
            assert (effective[replaced] != donor.value[replaced]).any()
            for field in knob._fields:
                np.testing.assert_array_equal(
                    getattr(knob, field)[~replaced], getattr(donor, field)[~replaced]
                )
        # Everything else (params, batch stats, optimizer state, step, guard) is the gather.
        expected = expected._replace(state=expected.state._replace(knobs=got.state.knobs))
        assert_same(got, expected)
        assert np.abs(got.state.state["batch_stats"]["BatchNorm_0"]["mean"]).sum() > 0
    # The members' settings stay what the user gave: the explored values live in the knobs.
    for name, value in MEMBERS.items():
        np.testing.assert_array_equal(out.members[name], value)
    # The values each update used (the optimizer state's LR, the member's wd) are the recorded.
    for k in range(K):
        for name, used in (("learning_rate", out.metrics["lr"]), ("wd", out.metrics["hparams/wd"])):
            np.testing.assert_array_equal(used[k], np.repeat(pbt.values[name][k], CHUNK))


def test_schedule_follows_the_lineage(spied):
    _, pbt, _, _ = spied
    for k in range(K):
        slots = pbt.ancestry(k)
        assert slots[-1] == k
        for e in range(3):
            assert pbt.parents[slots[e + 1], e] == slots[e]
        expected = np.repeat(
            [pbt.values["learning_rate"][s, e] for e, s in enumerate(slots)], CHUNK
        )
        np.testing.assert_array_equal(pbt.schedule("learning_rate", k, 4 * CHUNK), expected)


def explore(r, value, rng, resample_probability):
    return lrjax.pbt._explore(r, value, rng, resample_probability, (0.8, 1.2))


def test_explore_stays_in_bounds_and_perturbs_by_the_factors():
    pbt = lrjax.PBT({"lr": lrjax.Range(0.01, 1.0), "m": lrjax.Range(0.5, 0.99, log=False)},
                    metric="accuracy", ready=1, resample_probability=0.3)  # fmt: skip
    rng = np.random.default_rng(0)
    for r in pbt.space.values():
        values = np.array([explore(r, v, rng, 0.3) for v in rng.uniform(0.0, 2.0, 2000)])
        assert values.dtype == np.float32
        assert (values >= np.float32(r.low)).all() and (values <= np.float32(r.high)).all()
        assert np.isclose(values, r.low).any() and np.isclose(values, r.high).any()
    # Without resampling, inside the bounds, a value is multiplied by 0.8 or 1.2.
    pbt = lrjax.PBT({"lr": (1e-3, 10.0)}, metric="accuracy", ready=1, resample_probability=0.0)
    got = {float(explore(pbt.space["lr"], 0.5, rng, 0.0)) for _ in range(50)}
    assert got == {float(np.float32(0.4)), float(np.float32(0.6))}


def reference_exploit_explore(scores, diverged, values, space, step, seed, mode, fraction, p,
                              factors, population):  # fmt: skip
    """PBT's decision restated with Python lists: rank each population by (score, position),
    the bottom n and the diverged copy a random live member of the top n, then explore."""
    rng = np.random.default_rng([seed, step])
    k = len(scores)
    source, new = list(range(k)), {n: [np.float32(v) for v in values[n]] for n in values}
    sign = 1.0 if mode == "max" else -1.0
    for label in sorted({int(q) for q in population if q >= 0}):
        members = [i for i in range(k) if population[i] == label]
        if len(members) < 2:
            continue
        n = max(1, int(fraction * len(members)))
        ranked = sorted(members, key=lambda i: (-(-np.inf if diverged[i] else sign * scores[i]), i))
        top = [i for i in ranked[:n] if not diverged[i]]
        if not top:
            continue
        losers = sorted(set(ranked[-n:]) | {i for i in members if diverged[i]} - set(top))
        for i in losers:
            donor = top[rng.integers(len(top))]
            source[i] = donor
            for name in sorted(space):
                low, high, log = space[name].low, space[name].high, space[name].log
                if rng.uniform() < p:
                    v = np.exp(rng.uniform(np.log(low), np.log(high))) if log else rng.uniform(
                        low, high)  # fmt: skip
                else:
                    v = float(values[name][donor]) * factors[rng.integers(len(factors))]
                new[name][i] = np.float32(min(max(v, low), high))
    return np.array(source), {n: np.array(v, np.float32) for n, v in new.items()}


@pytest.mark.parametrize("seed", range(6))
def test_exploit_explore_equals_a_numpy_reference(seed):
    rng = np.random.default_rng(100 + seed)
    k = int(rng.integers(4, 17))
    scores = rng.choice([0.1, 0.5, 0.9], size=k) if seed % 2 else rng.normal(size=k)
    diverged = rng.uniform(size=k) < 0.2
    space = {"lr": lrjax.Range(1e-3, 1.0), "m": lrjax.Range(0.5, 0.99, log=False)}
    values = {
        "lr": np.float32(rng.uniform(1e-3, 1.0, k)),
        "m": np.float32(rng.uniform(0.5, 0.99, k)),
    }
    population = rng.integers(-1, 3, size=k) if seed > 2 else np.zeros(k, np.int64)
    kwargs = dict(step=7 * seed, seed=seed, mode=["max", "min"][seed % 2], fraction=0.25,
                  resample_probability=0.3, factors=(0.8, 1.2))  # fmt: skip
    source, new = lrjax.pbt.exploit_explore(
        scores, diverged, values, space=space, population=population, **kwargs
    )
    want_source, want_new = reference_exploit_explore(
        scores, diverged, values, space, kwargs["step"], kwargs["seed"], kwargs["mode"],
        kwargs["fraction"], kwargs["resample_probability"], kwargs["factors"], population,
    )  # fmt: skip
    np.testing.assert_array_equal(source, want_source)
    for name in space:
        np.testing.assert_array_equal(new[name], want_new[name])
    # A pure function: the same inputs, the same decision; the inputs are not modified.
    again = lrjax.pbt.exploit_explore(
        scores, diverged, values, space=space, population=population, **kwargs
    )
    np.testing.assert_array_equal(again[0], source)


def test_a_diverged_member_is_always_replaced():
    members = {**MEMBERS, "lr": MEMBERS["lr"].copy()}
    members["lr"][[0, 3]] = 1e6  # they diverge at once; their frozen states are the initial ones

    def scores(loop, group):  # the diverged members rank first: they must still be replaced
        s = np.arange(group.size, dtype=np.float64)
        s[[0, 3]] = [100.0, 99.0]
        return s

    pbt = make_pbt(metric=scores, fraction=0.125)  # the bottom 1 of 8
    out = run(pbt, num_steps=2 * CHUNK, members=members)
    assert np.isnan(out.metrics["loss"][[0, 3], CHUNK - 1]).all()
    # Both diverged members are replaced (more than the bottom fraction), by the best live one.
    np.testing.assert_array_equal(pbt.parents[:, 0], [K - 1, 1, 2, K - 1, 4, 5, 6, 7])
    assert out.state.alive.all()  # they continue from live copies
    assert np.isfinite(out.metrics["loss"][:, CHUNK:]).all()


def test_ready_longer_than_the_run_equals_a_plain_run_bit_for_bit():
    plain = run()
    pbt = make_pbt(ready=10**6)
    with_pbt = run(pbt)
    assert pbt.steps.tolist() == [0] and pbt.parents.shape == (K, 0)
    for name in plain.metrics:
        np.testing.assert_array_equal(with_pbt.metrics[name], plain.metrics[name])
    assert_same(with_pbt.state, plain.state)
    assert_same(with_pbt.members, plain.members)


def test_deterministic_given_a_seed_and_compiles_once(spied):
    out, first, _, _ = spied
    counts = []
    counter = hooks.Callback(lambda info: counts.append(engine.compile_stats()[1]))
    again = make_pbt(fraction=0.25)
    hook_list = [hooks.Evaluate(evaluate, EVAL), again, counter]
    rerun = lrjax.fit(PROGRAM, MEMBERS, DATA, num_steps=4 * CHUNK, chunk_steps=CHUNK,
                      batch_size=B, hooks=hook_list)  # fmt: skip
    assert len(set(counts)) == 1, counts  # exploit and explore never recompile
    np.testing.assert_array_equal(again.parents, first.parents)
    for name in SPACE:
        np.testing.assert_array_equal(again.values[name], first.values[name])
    assert_same(rerun.state, out.state)
    other = make_pbt(fraction=0.25, seed=1)
    run(other)
    assert not (
        np.array_equal(other.parents, first.parents)
        and np.array_equal(other.values["learning_rate"], first.values["learning_rate"])
    )


def test_resume_is_bit_exact(tmp_path, spied):
    whole, first, _, _ = spied

    class Crash(Exception):
        pass

    def crash(info):
        if info["step"] == 2 * CHUNK:
            raise Crash

    ckpt = hooks.Checkpoint(tmp_path, {"run": "pbt"})
    with pytest.raises(Crash):
        run(make_pbt(fraction=0.25), extra=[ckpt, hooks.Callback(crash)])
    ckpt.on_end(None)
    resumed_pbt = make_pbt(fraction=0.25)
    resumed_ckpt = hooks.Checkpoint(tmp_path, {"run": "pbt"})
    # The same hook list: the checkpoint keeps each hook's state by its position.
    resumed = run(resumed_pbt, extra=[resumed_ckpt, hooks.Callback(lambda info: None)])
    assert resumed_ckpt.restored_step == 2 * CHUNK
    np.testing.assert_array_equal(resumed_pbt.steps, first.steps)
    np.testing.assert_array_equal(resumed_pbt.parents, first.parents)
    np.testing.assert_array_equal(resumed_pbt.scores, first.scores)
    for name in SPACE:
        np.testing.assert_array_equal(resumed_pbt.values[name], first.values[name])
    for name in whole.metrics:
        np.testing.assert_array_equal(resumed.metrics[name], whole.metrics[name])
    assert_same(resumed.state, whole.state)


def test_populations_exchange_only_inside_and_minus_one_stays_out():
    population = np.array([0, 0, 0, 1, 1, 1, -1, -1])
    pbt = make_pbt(fraction=0.34, population=population)
    out = run(pbt, num_steps=3 * CHUNK)
    for e in range(pbt.parents.shape[1]):
        np.testing.assert_array_equal(population[pbt.parents[:, e]], population)
        np.testing.assert_array_equal(pbt.parents[6:, e], [6, 7])
    plain = run(num_steps=3 * CHUNK)
    np.testing.assert_array_equal(out.metrics["loss"][6:], plain.metrics["loss"][6:])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fraction": 0.6}, r"fraction must be a finite number in \(0.0, 0.5\]"),
        ({"mode": "best"}, "mode must be 'max' or 'min', got 'best'"),
        ({"ready": 0}, r"ready must be an integer >= 1, got 0"),
        ({"burn_in": -1}, r"burn_in must be an integer >= 0, got -1"),
        (
            {"resample_probability": 1.5},
            r"resample_probability must be a finite number in \[0.0, 1.0\]",
        ),
        ({"space": {"lr": (0.0, 1.0)}}, r"Range.low must be a finite number > 0.0, got 0.0"),
        ({"space": {"lr": (1.0, 0.5)}}, r"Range.high must be a finite number > 1.0, got 0.5"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lrjax.PBT(**{"space": SPACE, "metric": "accuracy", "ready": 1, **kwargs})


def test_unknown_hyperparameters_and_a_burn_in_past_the_run_are_refused():
    with pytest.raises(ValueError, match=r"space\['eps'\] is not a hyperparameter the step's"):
        run(lrjax.PBT({"eps": (1e-5, 1e-2)}, metric="accuracy", ready=CHUNK), num_steps=CHUNK)
    with pytest.raises(ValueError, match=r"burn_in must be below the run's num_steps=3 .*got 3"):
        run(make_pbt(burn_in=CHUNK), num_steps=CHUNK)


def test_members_in_several_groups_exploit_each_other(spied):
    one_group, first, _, _ = spied
    pbt = make_pbt(fraction=0.25)
    groups = run(pbt, group_size=2)  # 4 groups of 2
    assert len(groups.loop.groups) == 4
    # Ranked over all members of all groups: the same decisions as in one group...
    np.testing.assert_array_equal(pbt.steps, first.steps)
    np.testing.assert_array_equal(pbt.parents, first.parents)
    np.testing.assert_array_equal(pbt.scores, first.scores)
    for name in SPACE:
        np.testing.assert_array_equal(pbt.values[name], first.values[name])
    # ...states copied between groups (a member took a donor of another group)...
    source, member = pbt.parents, np.arange(K)[:, None]
    assert ((source // 2 != member // 2) & (source != member)).any()
    # ...and the same training, to float32 round-off (a vmap over 2 members instead of 8
    # reorders XLA's reductions; the hyperparameters each update used are exact).
    for name in one_group.metrics:
        exact = 0 if name.startswith("hparams/") or name == "lr" else 1e-5
        np.testing.assert_allclose(groups.metrics[name], one_group.metrics[name], rtol=exact,
                                   atol=exact / 10)  # fmt: skip
    for a, b in zip(jax.tree.leaves(groups.state), jax.tree.leaves(one_group.state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_burn_in_delays_the_first_exploit():
    plain = run(num_steps=4 * CHUNK)
    pbt = make_pbt(fraction=0.25, burn_in=2 * CHUNK)
    out = run(pbt, num_steps=4 * CHUNK)
    assert pbt.steps.tolist() == [0, 2 * CHUNK, 3 * CHUNK]
    for name in plain.metrics:  # undisturbed until the burn-in ends
        np.testing.assert_array_equal(out.metrics[name][:, : 2 * CHUNK],
                                      plain.metrics[name][:, : 2 * CHUNK])  # fmt: skip
    assert (pbt.parents[:, 0] != np.arange(K)).any()


def test_replay_is_the_logged_schedule_along_the_line(spied):
    out, pbt, _, _ = spied
    steps = np.arange(4 * CHUNK)
    segment = np.searchsorted(pbt.steps, steps, side="right") - 1
    for name in SPACE:
        logged = out.metrics[f"hparams/{name}"]
        for k in range(K):
            schedule = lrjax.replay(out, k, name)
            slots = pbt.ancestry(k)
            # What the controller logged in the slot that held k's line at each step.
            expected = logged[slots[segment], steps]
            np.testing.assert_array_equal(jax.jit(jax.vmap(schedule))(steps), expected)
            np.testing.assert_array_equal(jax.vmap(lrjax.replay(pbt, k, name))(steps), expected)
            if name != "learning_rate":
                continue
            # A clean single re-run with an optax optimizer follows the same values.
            tx = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
            state = tx.init(jnp.zeros(2))
            for t in steps:
                _, state = tx.update(jnp.ones(2), state)
                assert state.hyperparams["learning_rate"] == expected[t], (k, t)
    np.testing.assert_array_equal(
        jax.vmap(lrjax.replay(pbt.lineage, 3, "wd"))(steps), pbt.schedule("wd", 3, len(steps))
    )
    with pytest.raises(
        ValueError, match=r"name must be one of the explored \['learning_rate', 'wd'\]"
    ):
        lrjax.replay(pbt, 0)
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 7\], got 8"):
        lrjax.replay(pbt, K, "wd")
    with pytest.raises(ValueError, match=r"lineage must be an lrjax\.pbt\.Lineage"):
        lrjax.replay({"steps": []}, 0)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    import lrjax
    from lrjax import hooks
    from tests import pbt_test as t
    assert jax.device_count() == 2
    pbt = t.make_pbt(fraction=0.25)
    fitted = lrjax.fit(t.PROGRAM, t.MEMBERS, t.DATA, num_steps=4 * t.CHUNK, chunk_steps=t.CHUNK,
                       batch_size=t.B, hooks=[hooks.Evaluate(t.evaluate, t.EVAL), pbt])
    kernel = lrjax.unwrap(fitted.loop.groups[0].state)["params"]["Dense_0"]["kernel"]
    assert len(kernel.sharding.device_set) == 2, kernel.sharding
    leaves = {str(i): np.asarray(a) for i, a in enumerate(jax.tree.leaves(fitted.state))}
    np.savez(sys.argv[1], parents=pbt.parents, loss=fitted.metrics["loss"], **leaves)
    print("SHARDED PBT OK")
    """
)


def test_sharded_members_exchange_across_devices(tmp_path, spied):
    one_device, pbt, _, _ = spied
    out = tmp_path / "two_devices.npz"
    two_devices = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = run_python(SHARDED_SCRIPT, two_devices, args=[str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SHARDED PBT OK" in proc.stdout
    with np.load(out) as two:
        np.testing.assert_array_equal(two["parents"], pbt.parents)
        np.testing.assert_allclose(two["loss"], one_device.metrics["loss"], rtol=1e-5, atol=1e-6)
        for i, leaf in enumerate(jax.tree.leaves(one_device.state)):
            np.testing.assert_allclose(two[str(i)], np.asarray(leaf), rtol=1e-5, atol=1e-6)


def test_lineage_records_agree_with_numpy_references():
    parents = np.array([[0, 2], [0, 1], [2, 2]])  # 1 copied 0 at event 0; 0 copied 2 at event 1
    np.testing.assert_array_equal(lrjax.pbt.ancestry(parents, 0), [2, 2, 0])
    np.testing.assert_array_equal(lrjax.pbt.ancestry(parents, 1), [0, 1, 1])
    np.testing.assert_array_equal(lrjax.pbt.ancestry(parents, 2), [2, 2, 2])
    values = np.array([[1.0, 1.0, 0.5], [2.0, 0.8, 0.8], [3.0, 3.0, 3.0]], np.float32)
    got = lrjax.pbt.lineage_schedule([0, 2, 3], parents, values, 1, 5)
    np.testing.assert_array_equal(got, np.float32([1.0, 1.0, 0.8, 0.8, 0.8]))
    got = lrjax.pbt.lineage_schedule([0, 2, 3], parents, values, 0, 5)
    np.testing.assert_array_equal(got, np.float32([3.0, 3.0, 3.0, 0.5, 0.5]))


def test_plots_draw_the_lineage_and_the_discovered_schedules(spied):
    from lrjax import plotting

    _, pbt, _, _ = spied
    ax = plotting.plot_pbt_lineage(
        pbt.steps, pbt.parents, pbt.values["learning_rate"], 4 * CHUNK, highlight=[0]
    )
    replaced = int((pbt.parents != np.arange(K)[:, None]).sum())
    assert len(ax.texts) == replaced  # one arrow per copy
    assert len(ax.lines) == K * 4 + 1  # a bar per member and segment, and the traced line
    ax = plotting.plot_pbt_schedules(
        pbt.steps, pbt.parents, pbt.values["learning_rate"], 4 * CHUNK, {"member 0": 0}
    )
    np.testing.assert_array_equal(
        ax.lines[0].get_ydata(), pbt.schedule("learning_rate", 0, 4 * CHUNK)
    )
    with pytest.raises(ValueError, match="disagree"):
        plotting.plot_pbt_lineage(pbt.steps, pbt.parents[:, :1], pbt.values["wd"], 4 * CHUNK)


def test_sweep_refuses_pbt_over_several_groups():
    from lrjax import sweep

    x, y = DATA
    model = lrjax.Model.from_linen(NET, X0)
    kwargs = dict(optimizer=optax.sgd, hparams={"learning_rate": [0.1, 0.2, 0.3, 0.4]},
                  num_steps=2, batch_size=B)  # fmt: skip
    with pytest.raises(ValueError, match=r"pbt must be an lrjax\.PBT hook"):
        sweep.train(model, optax.softmax_cross_entropy_with_integer_labels, (x, y), pbt="pbt",
                    **kwargs)  # fmt: skip
    with pytest.raises(ValueError, match="all 4 members train at once"):
        sweep.train(model, optax.softmax_cross_entropy_with_integer_labels, (x, y),
                    pbt=make_pbt(), options=sweep.Options(group_size=2), **kwargs)  # fmt: skip


def test_the_debugging_path_agrees(spied):
    out, pbt, _, _ = spied
    again = make_pbt(fraction=0.25)
    slow = run(again, vectorize=False)
    np.testing.assert_array_equal(again.parents, pbt.parents)
    np.testing.assert_allclose(slow.metrics["loss"], out.metrics["loss"], rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(slow.state), jax.tree.leaves(out.state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_a_checkpoint_tells_pbt_hooks_apart_by_every_argument(tmp_path):
    def fingerprint(**changes):
        kwargs = dict(metric="accuracy", ready=4, population=[0, 0, 1, 1]) | changes
        pbt = lrjax.PBT({"learning_rate": lrjax.Range(1e-3, 1.0)}, **kwargs)
        return hooks.Checkpoint(tmp_path, {"pbt": pbt}).fingerprint["pbt"]

    assert fingerprint() == fingerprint()
    assert fingerprint(population=[0, 1, 0, 1]) != fingerprint()
    assert fingerprint(loss="nll") != fingerprint()
    assert fingerprint(ready=5) != fingerprint()
