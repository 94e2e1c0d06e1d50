"""Tests for lrjax.optuna_search: each round's K asks are distinct and trained as one fit of the
user's step, the told values are the loop's records, diverged members fail, a stored study
resumes where it stopped, grid/random are the same call, and bad input is named.

The step is a linear regression whose learning rate reaches the optimizer through
:func:`lrjax.control` (an ``inject_hyperparams`` SGD), under a divergence guard.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

optuna = pytest.importorskip("optuna")

import lrjax  # noqa: E402
from lrjax import hooks, optuna_search  # noqa: E402

Float, Int, Cat = (
    optuna.distributions.FloatDistribution,
    optuna.distributions.IntDistribution,
    optuna.distributions.CategoricalDistribution,
)
optuna.logging.set_verbosity(optuna.logging.WARNING)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 3)).astype(np.float32)
Y = X @ np.array([1.0, -2.0, 0.5], np.float32)
VAL = (X[:32] * 1.5, Y[:32] * 1.5)
TX = optax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.float32)(learning_rate=0.0)
K, STEPS = 4, 8


def init(member):
    return jnp.zeros(3), TX.init(jnp.zeros(3))


def step(state, batch, member):
    w, opt_state = state
    xb, yb = batch
    loss, g = jax.value_and_grad(lambda w: jnp.mean((xb @ w - yb) ** 2))(w)
    updates, opt_state = TX.update(g, opt_state)
    # member["shift"] is an IntDistribution's setting read by the step itself.
    return (w + updates, opt_state), {"loss": loss + 0.0 * member["shift"].astype(jnp.float32)}


def evaluate(state, member, data):
    w = lrjax.unwrap(state)[0]
    return {"val_loss": jnp.mean((data[0] @ w - data[1]) ** 2)}


PROGRAM = lrjax.vectorize(
    *lrjax.freeze_on_divergence(
        *lrjax.control(step, init, {"learning_rate": lambda member: member["lr"]})
    )
)
SPACE = {"lr": Float(1e-3, 0.3, log=True), "shift": Int(0, 3)}


def run(space=SPACE, **kwargs):
    kwargs = {"rounds": 2, "per_round": K, "num_steps": STEPS, "metric": "loss",
              "batch_size": 16, "fixed": {"seed": 0}, **kwargs}  # fmt: skip
    return lrjax.search(PROGRAM, None, (X, Y), space, **kwargs)


def lrjax_trials(study):
    """The trials of the rounds (not the duplicates asked again)."""
    return [t for t in study.trials if optuna_search.ROUND in t.user_attrs]


def test_each_round_is_one_fit_whose_told_values_are_the_loops_records():
    seen = []

    def on_round(r, asked, fitted):
        seen.append((r, asked, fitted))

    out = run(
        hooks=[hooks.Evaluate(evaluate, VAL)], metric="val_loss", on_round=on_round,
        sampler=optuna.samplers.TPESampler(constant_liar=True, seed=1, n_startup_trials=4),
    )  # fmt: skip
    assert out.rounds_run == 2 and [r for r, *_ in seen] == [0, 1]
    by_number = {t.number: t for t in out.study.trials}
    for r, asked, fitted in seen:
        assert len(asked) == K  # one fit of K members
        assert fitted.metrics["loss"].shape == (K, STEPS)
        lr = fitted.metrics["hparams/learning_rate"]  # the controller used the asked lr
        for k, (number, params) in enumerate(asked):
            trial = by_number[number]
            assert trial.user_attrs == {optuna_search.ROUND: r, optuna_search.MEMBER: k}
            assert trial.params == params
            np.testing.assert_allclose(lr[k], np.float32(params["lr"]))
            assert trial.value == pytest.approx(float(fitted.loop.evaluations["val_loss"][k, -1]))
    completed = [t for t in out.study.trials if t.value is not None]
    best = min(completed, key=lambda t: t.value)
    assert out.best_params == best.params and out.best_value == best.value


def test_a_training_metric_is_its_mean_over_the_last_chunk():
    seen = []
    out = run(rounds=1, chunk_steps=3, sampler=optuna.samplers.RandomSampler(seed=0),
              on_round=lambda r, a, f: seen.append(f))  # fmt: skip
    fitted = seen[0]
    last = fitted.metrics["loss"][:, 6:].astype(np.float64).mean(1)  # the last chunk: 6, 7
    values = [t.value for t in sorted(out.study.trials, key=lambda t: t.number)]
    np.testing.assert_allclose(values, last, rtol=1e-12)


def test_the_asks_of_a_round_are_distinct_in_a_tiny_discrete_space():
    # 4 configurations, K = 4: TPE's random start-up draws repeat almost surely.
    space = {"lr": Cat([0.01, 0.1]), "shift": Int(0, 1)}
    out = run(space, rounds=3, sampler=optuna.samplers.TPESampler(constant_liar=True, seed=0))
    trials = lrjax_trials(out.study)
    assert len(trials) == 3 * K
    for r in range(3):
        configs = [optuna_search._key(t.params) for t in trials if t.user_attrs["lrjax_round"] == r]
        assert len(configs) == K and len(set(configs)) == K
    duplicates = [t for t in out.study.trials if optuna_search.DUPLICATE in t.user_attrs]
    assert duplicates  # the sampler did repeat, and was asked again
    assert all(t.state == optuna.trial.TrialState.FAIL for t in duplicates)


def test_grid_and_random_samplers_are_the_same_call():
    grid = {"lr": [0.003, 0.01, 0.03, 0.1], "shift": [0, 1]}
    space = {"lr": Cat(grid["lr"]), "shift": Cat(grid["shift"])}
    out = run(space, sampler=optuna.samplers.GridSampler(grid, seed=0))
    points = sorted(optuna_search._key(t.params) for t in lrjax_trials(out.study))
    expected = sorted(optuna_search._key({"lr": a, "shift": b}) for a in grid["lr"]
                      for b in grid["shift"])  # fmt: skip
    assert points == expected  # 2 rounds × 4 = the whole grid, each point once
    out = run(sampler=optuna.samplers.RandomSampler(seed=0))
    assert len(lrjax_trials(out.study)) == 2 * K


def test_diverged_members_fail_or_take_the_worst_value():
    space = {"lr": Float(50.0, 100.0), "shift": Int(0, 3)}  # every member diverges
    out = run(space, rounds=1, sampler=optuna.samplers.RandomSampler(seed=0))
    assert all(t.state == optuna.trial.TrialState.FAIL for t in out.study.trials)
    assert all(t.user_attrs[optuna_search.DIVERGED] for t in out.study.trials)
    assert out.best_params is None and out.best_value is None
    out = run(space, rounds=1, diverged_value=1e9, sampler=optuna.samplers.RandomSampler(seed=0))
    assert [t.value for t in out.study.trials] == [1e9] * K


class Interrupt(Exception):
    pass


def test_a_stored_study_resumes_where_it_stopped(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(tmp_path / "journal.log")

    def storage():  # a new process opens the file again
        return JournalStorage(JournalFileBackend(path))

    def interrupted(r):
        if r == 1:
            raise Interrupt  # after round 1 was asked, before it trained
        return ()

    kwargs = {"rounds": 3, "study_name": "s", "sampler": optuna.samplers.RandomSampler(seed=0)}
    with pytest.raises(Interrupt):
        run(storage=storage(), hooks=interrupted, **kwargs)
    study = optuna.load_study(study_name="s", storage=storage())
    asked = {t.number: t.params for t in study.trials if t.user_attrs["lrjax_round"] == 1}
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * K + ["RUNNING"] * K
    told = {t.number: t.value for t in study.trials[:K]}

    out = run(storage=storage(), **{**kwargs, "sampler": optuna.samplers.RandomSampler(seed=1)})
    assert out.rounds_run == 2  # rounds 1 and 2; round 0 is not redone
    trials = out.study.trials
    assert [t.number for t in trials] == list(range(3 * K))  # numbers continue
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert {t.number: t.value for t in trials[:K]} == told
    assert {t.number: t.params for t in trials[K : 2 * K]} == asked  # trained as asked
    assert [t.user_attrs["lrjax_round"] for t in trials] == [0] * K + [1] * K + [2] * K

    again = run(storage=storage(), **kwargs)  # finished: nothing runs, the best comes back
    assert again.rounds_run == 0 and len(again.study.trials) == 3 * K
    best = min(trials, key=lambda t: t.value)
    assert again.best_params == best.params and again.best_value == best.value


def test_an_unknown_metric_is_named_and_the_round_stays_pending(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    kwargs = {"rounds": 1, "storage": storage, "study_name": "m",
              "sampler": optuna.samplers.RandomSampler(seed=0)}  # fmt: skip
    with pytest.raises(ValueError, match=r"metric must be a metric the loop records.*'accuracy'"):
        run(metric="accuracy", **kwargs)
    out = run(**kwargs)  # the corrected call trains the pending round
    assert out.rounds_run == 1 and len(out.study.trials) == K
    assert all(t.state.name == "COMPLETE" for t in out.study.trials)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rounds": 0}, "rounds must be"),
        ({"per_round": 0}, "per_round must be"),
        ({"space": {"lr": Cat([0.1, 0.2])}}, "per_round must be at most the 2 distinct"),
        ({"space": {}}, "space must be a non-empty dict"),
        ({"space": {"lr": (1e-3, 0.1)}}, r"space\['lr'\] must be an optuna FloatDistribution"),
        ({"space": {"lr": Cat(["a", "b", "c", "d"])}}, r"space\['lr'\] must choose among numbers"),
        ({"direction": "down"}, "direction must be 'minimize' or 'maximize'"),
        ({"fixed": {"lr": 0.1}}, "fixed must not name hyperparameters of space"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(**kwargs)


def test_a_stored_study_of_another_shape_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    sampler = optuna.samplers.RandomSampler(seed=0)
    run(rounds=1, storage=storage, study_name="x", sampler=sampler)
    with pytest.raises(ValueError, match=r"per_round must match the stored study 'x' \(4\)"):
        run(rounds=2, per_round=2, storage=storage, study_name="x", sampler=sampler)
    with pytest.raises(ValueError, match=r"direction must match the stored study 'x'"):
        run(rounds=2, direction="maximize", storage=storage, study_name="x", sampler=sampler)
