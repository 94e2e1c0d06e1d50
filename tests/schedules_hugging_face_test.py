"""Tests for lrjax.schedules._hugging_face: Hugging Face's scheduler names in :func:`lrjax.get`,
against HF's own lambdas (tests/schedules_reference.py), and get's choice between HF's and
lrjax's forms of a shared name.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import schedules_reference as R
from schedules_testing import NAN, assert_matches, check_raises, f32, lrs

import lrjax
from lrjax import schedules as S

# transformers' SchedulerType values, all of which get() must know.
HF_SCHEDULER_TYPES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)


@dataclasses.dataclass(frozen=True)
class HFCase:
    id: str
    name: str
    kwargs: dict[str, Any]
    factor: Callable[[int], float]  # HF's lambda: the LR is learning_rate * factor(t)
    horizon: int
    held_from: int | None = None  # lrjax holds the floor from here (HF's cosine turns back up)


def _lr(kw):
    return kw["learning_rate"]


HF_CASES = [
    HFCase(
        "linear",
        "linear",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64),
        lambda t: R.hf_linear_with_warmup_lambda(t, num_warmup_steps=8, num_training_steps=64),
        90,
    ),
    HFCase(
        "linear-no-warmup-fraction",
        "linear",
        dict(learning_rate=0.25, num_warmup_steps=0.125, num_training_steps=64),
        lambda t: R.hf_linear_with_warmup_lambda(t, num_warmup_steps=8, num_training_steps=64),
        70,
    ),
    HFCase(
        "cosine",
        "cosine",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=8, num_training_steps=64, num_cycles=0.5
        ),
        90,
        held_from=64,
    ),
    HFCase(
        "cosine-1.5-cycles",
        "cosine",
        dict(learning_rate=1.0, num_warmup_steps=5, num_training_steps=45, num_cycles=1.5),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=5, num_training_steps=45, num_cycles=1.5
        ),
        60,
        held_from=45,
    ),
    HFCase(
        "cosine_with_restarts",
        "cosine_with_restarts",
        dict(learning_rate=0.5, num_warmup_steps=10, num_training_steps=100, num_cycles=3),
        lambda t: R.hf_hard_restarts_lambda(
            t, num_warmup_steps=10, num_training_steps=100, num_cycles=3
        ),
        120,
    ),
    HFCase(
        "cosine_with_restarts-default",
        "cosine_with_restarts",
        dict(learning_rate=0.5, num_warmup_steps=4, num_training_steps=40),
        lambda t: R.hf_hard_restarts_lambda(
            t, num_warmup_steps=4, num_training_steps=40, num_cycles=1
        ),
        50,
    ),
    HFCase(
        "polynomial",
        "polynomial",
        dict(
            learning_rate=0.5, num_warmup_steps=10, num_training_steps=74, lr_end=0.0625, power=2.0
        ),
        lambda t: R.hf_polynomial_lambda(
            t, num_warmup_steps=10, num_training_steps=74, lr_end=0.0625, power=2.0, lr_init=0.5
        ),
        90,
    ),
    HFCase(
        "polynomial-defaults",
        "polynomial",
        dict(learning_rate=1.0, num_warmup_steps=3, num_training_steps=30),
        lambda t: R.hf_polynomial_lambda(
            t, num_warmup_steps=3, num_training_steps=30, lr_end=f32(1e-7), power=1.0, lr_init=1.0
        ),
        40,
    ),
    HFCase("constant", "constant", dict(learning_rate=0.25), lambda t: 1.0, 10),
    HFCase(
        "constant-ignores-steps",
        "constant",
        dict(learning_rate=0.25, num_training_steps=5),
        lambda t: 1.0,
        10,
    ),
    HFCase(
        "constant_with_warmup",
        "constant_with_warmup",
        dict(learning_rate=0.5, num_warmup_steps=10, num_training_steps=50),
        lambda t: R.hf_constant_with_warmup_lambda(t, num_warmup_steps=10),
        60,
    ),
    HFCase(
        "inverse_sqrt",
        "inverse_sqrt",
        dict(learning_rate=0.5, num_warmup_steps=10),
        lambda t: R.hf_inverse_sqrt_lambda(t, num_warmup_steps=10),
        300,
    ),
    HFCase(
        "inverse_sqrt-timescale",
        "inverse_sqrt",
        dict(learning_rate=0.5, num_warmup_steps=16, timescale=100, num_training_steps=200),
        lambda t: R.hf_inverse_sqrt_lambda(t, num_warmup_steps=16, timescale=100),
        300,
    ),
    HFCase(
        "cosine_with_min_lr-min_lr",
        "cosine_with_min_lr",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64, min_lr=0.0625),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=8, num_training_steps=64, num_cycles=0.5, min_lr_rate=0.125
        ),
        80,
        held_from=64,
    ),
    HFCase(
        "cosine_with_min_lr-rate",
        "cosine_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=0, num_training_steps=50, min_lr_rate=0.25),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=0, num_training_steps=50, num_cycles=0.5, min_lr_rate=0.25
        ),
        60,
        held_from=50,
    ),
    HFCase(
        "cosine_warmup_with_min_lr",
        "cosine_warmup_with_min_lr",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64, min_lr_rate=0.125),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t, num_warmup_steps=8, num_training_steps=64, num_cycles=0.5, min_lr_rate=0.125
        ),
        80,
        held_from=63,
    ),
    HFCase(
        "cosine_warmup_with_min_lr-warmup_lr_rate",
        "cosine_warmup_with_min_lr",
        dict(
            learning_rate=1.0,
            num_warmup_steps=9,
            num_training_steps=41,
            min_lr=0.125,
            warmup_lr_rate=0.25,
        ),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t,
            num_warmup_steps=9,
            num_training_steps=41,
            num_cycles=0.5,
            min_lr_rate=0.125,
            warmup_lr_rate=0.25,
        ),
        50,
        held_from=40,
    ),
    HFCase(
        "cosine_warmup_with_min_lr-one-warmup-step",
        "cosine_warmup_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=1, num_training_steps=20, min_lr_rate=0.0),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t, num_warmup_steps=1, num_training_steps=20, num_cycles=0.5
        ),
        30,
        held_from=19,
    ),
    HFCase(
        "cosine_warmup_with_min_lr-no-warmup",
        "cosine_warmup_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=0, num_training_steps=20, min_lr_rate=0.5),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t, num_warmup_steps=0, num_training_steps=20, num_cycles=0.5, min_lr_rate=0.5
        ),
        30,
        held_from=19,
    ),
    HFCase(
        "warmup_stable_decay",
        "warmup_stable_decay",
        dict(learning_rate=0.5, num_warmup_steps=10, num_decay_steps=20, num_training_steps=100),
        lambda t: R.hf_wsd_lambda(t, num_warmup_steps=10, num_stable_steps=70, num_decay_steps=20),
        120,
    ),
    HFCase(
        "warmup_stable_decay-shapes-min_lr_ratio",
        "warmup_stable_decay",
        dict(
            learning_rate=1.0,
            num_warmup_steps=12,
            num_decay_steps=24,
            num_stable_steps=40,
            warmup_type="cosine",
            decay_type="1-sqrt",
            min_lr_ratio=0.125,
        ),
        lambda t: R.hf_wsd_lambda(
            t,
            num_warmup_steps=12,
            num_stable_steps=40,
            num_decay_steps=24,
            warmup_type="cosine",
            decay_type="1-sqrt",
            min_lr_ratio=0.125,
        ),
        90,
    ),
    HFCase(
        "warmup_stable_decay-1-sqrt-warmup",
        "warmup_stable_decay",
        dict(
            learning_rate=1.0,
            num_warmup_steps=16,
            num_decay_steps=8,
            num_training_steps=40,
            warmup_type="1-sqrt",
            decay_type="linear",
            min_lr_ratio=0.25,
        ),
        lambda t: R.hf_wsd_lambda(
            t,
            num_warmup_steps=16,
            num_stable_steps=16,
            num_decay_steps=8,
            warmup_type="1-sqrt",
            decay_type="linear",
            min_lr_ratio=0.25,
        ),
        50,
    ),
    # num_warmup_steps >= num_training_steps: HF's schedules, no error (issue 19, item 4).
    HFCase(
        "linear-warmup-beyond-training",
        "linear",
        dict(learning_rate=0.5, num_warmup_steps=10, num_training_steps=5),
        lambda t: R.hf_linear_with_warmup_lambda(t, num_warmup_steps=10, num_training_steps=5),
        20,
    ),
    HFCase(
        "linear-warmup-equals-training",
        "linear",
        dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=8),
        lambda t: R.hf_linear_with_warmup_lambda(t, num_warmup_steps=8, num_training_steps=8),
        20,
    ),
    HFCase(
        "cosine-warmup-beyond-training",
        "cosine",
        dict(learning_rate=0.5, num_warmup_steps=10, num_training_steps=6),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=10, num_training_steps=6, num_cycles=0.5
        ),
        20,
        held_from=11,
    ),
    HFCase(
        "cosine_with_restarts-warmup-equals-training",
        "cosine_with_restarts",
        dict(learning_rate=0.5, num_warmup_steps=10, num_training_steps=10, num_cycles=2),
        lambda t: R.hf_hard_restarts_lambda(
            t, num_warmup_steps=10, num_training_steps=10, num_cycles=2
        ),
        20,
    ),
    HFCase(
        "polynomial-warmup-beyond-training",
        "polynomial",
        dict(learning_rate=0.5, num_warmup_steps=12, num_training_steps=10, lr_end=0.125),
        lambda t: R.hf_polynomial_lambda(
            t, num_warmup_steps=12, num_training_steps=10, lr_end=0.125, power=1.0, lr_init=0.5
        ),
        20,
    ),
    HFCase(
        "cosine_with_min_lr-warmup-beyond-training",
        "cosine_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=10, num_training_steps=4, min_lr_rate=0.25),
        lambda t: R.hf_cosine_with_warmup_lambda(
            t, num_warmup_steps=10, num_training_steps=4, num_cycles=0.5, min_lr_rate=0.25
        ),
        20,
        held_from=11,
    ),
    HFCase(
        "cosine_warmup_with_min_lr-warmup-equals-training",
        "cosine_warmup_with_min_lr",
        dict(learning_rate=1.0, num_warmup_steps=10, num_training_steps=10, min_lr_rate=0.25),
        lambda t: R.hf_cosine_warmup_with_min_lr_rate_lambda(
            t, num_warmup_steps=10, num_training_steps=10, num_cycles=0.5, min_lr_rate=0.25
        ),
        20,
        held_from=10,
    ),
    HFCase(
        "warmup_stable_decay-cooldown-starts-in-warmup",
        "warmup_stable_decay",
        dict(
            learning_rate=1.0,
            num_warmup_steps=10,
            num_decay_steps=20,
            num_training_steps=25,
            decay_type="linear",
            min_lr_ratio=0.125,
        ),
        lambda t: R.hf_wsd_lambda(
            t,
            num_warmup_steps=10,
            num_stable_steps=-5,
            num_decay_steps=20,
            decay_type="linear",
            min_lr_ratio=0.125,
        ),
        35,
    ),
    HFCase(
        "constant-ignores-both-step-counts",
        "constant",
        dict(learning_rate=0.25, num_warmup_steps=5, num_training_steps=5),
        lambda t: 1.0,
        10,
    ),
]


@pytest.mark.parametrize("hf", HF_CASES, ids=[c.id for c in HF_CASES])
def test_hf_names_give_hf_schedules(hf):
    steps = np.arange(hf.horizon + 1)
    got = lrs(lrjax.get(hf.name, **hf.kwargs), steps)
    want = np.asarray([_lr(hf.kwargs) * hf.factor(int(t)) for t in steps])
    end = hf.horizon + 1 if hf.held_from is None else hf.held_from + 1
    assert_matches(got[:end], want[:end], scale=_lr(hf.kwargs))
    if hf.held_from is not None:  # past the end lrjax holds HF's value at the end
        np.testing.assert_array_equal(got[end:], np.full(got[end:].shape, got[end - 1]))


def test_hf_cases_cover_every_hf_scheduler_type():
    assert {c.name for c in HF_CASES} == set(HF_SCHEDULER_TYPES) - {"reduce_lr_on_plateau"}


@pytest.mark.parametrize("hf", HF_CASES, ids=[c.id for c in HF_CASES])
def test_hf_names_vmap_over_learning_rate(hf):
    kwargs = {k: v for k, v in hf.kwargs.items() if k != "learning_rate"}
    steps = jnp.arange(hf.horizon + 1)
    values = [_lr(hf.kwargs), _lr(hf.kwargs) * 0.75]

    def run(lr):
        return jax.vmap(lrjax.get(hf.name, learning_rate=lr, **kwargs))(steps)

    @jax.jit
    def batched_and_single(batch):
        # The single calls see Python floats at build time: the checked, untraced path.
        return jax.vmap(run)(batch), jnp.stack([run(v) for v in values])

    batched, singles = batched_and_single(jnp.asarray(values, jnp.float32))
    np.testing.assert_allclose(batched, singles, rtol=1e-6, atol=1e-7)


def test_get_total_steps_stands_in_for_num_training_steps():
    want = lrs(
        lrjax.get("cosine", learning_rate=0.5, num_warmup_steps=8, num_training_steps=64),
        np.arange(80),
    )
    got = lrs(
        lrjax.get("cosine", total_steps=64, learning_rate=0.5, num_warmup_steps=0.125),
        np.arange(80),
    )
    np.testing.assert_array_equal(got, want)


def test_lrjax_forms_of_shared_names_are_unchanged():
    # HF's names do not take over lrjax's own: lrjax's arguments still build lrjax's factory.
    steps = np.arange(120)
    pairs = [
        (
            lrjax.get("linear", init_value=1.0, end_value=0.5, transition_steps=10),
            S.linear(1.0, 0.5, 10),
        ),
        (lrjax.get("cosine", init_value=1.0, decay_steps=40), S.cosine_decay(1.0, 40)),
        (
            lrjax.get("polynomial", init_value=1.0, end_value=0.0, decay_steps=50, power=2.0),
            S.polynomial_decay(1.0, 0.0, 50, 2.0),
        ),
        (lrjax.get("constant", value=0.3), S.constant(0.3)),
        (lrjax.get("inverse_sqrt", peak_value=1.0, warmup_steps=10), S.inverse_sqrt(1.0, 10)),
        (
            lrjax.get(
                "warmup_stable_decay",
                total_steps=100,
                peak_value=1.0,
                warmup_steps=10,
                decay_steps=20,
            ),
            S.warmup_stable_decay(1.0, 100, 10, 20),
        ),
    ]
    for got, want in pairs:
        np.testing.assert_array_equal(lrs(got, steps), lrs(want, steps))


_HF = dict(learning_rate=0.5, num_warmup_steps=8, num_training_steps=64)


ERRORS = {
    "lrjax-form-missing-argument": (
        lambda: lrjax.get("cosine", total_steps=200, init_value=1e-2),
        r"missing argument\(s\) decay_steps.*'cosine' accepts Hugging Face's \(learning_rate, "
        r"num_warmup_steps, num_training_steps, num_cycles=0.5\) or lrjax cosine_decay's "
        r"\(init_value, decay_steps, end_value=0.0, exponent=1.0\)",
    ),
    "hf-form-missing-argument": (
        lambda: lrjax.get("linear", learning_rate=0.5, num_warmup_steps=8),
        r"missing argument\(s\) num_training_steps.*Hugging Face's \(learning_rate, "
        r"num_warmup_steps, num_training_steps\)",
    ),
    "hf-form-unknown-argument": (
        lambda: lrjax.get("cosine", **_HF, min_lr=0.1),
        r"unknown argument\(s\) min_lr",
    ),
    "lrjax-only-name-with-hf-arguments": (
        lambda: lrjax.get("wsd", **_HF),
        r"unknown argument\(s\) learning_rate, num_training_steps, num_warmup_steps.*"
        r"lrjax warmup_stable_decay's \(peak_value, total_steps",
    ),
    "hf-only-name-missing-learning_rate": (
        lambda: lrjax.get("constant_with_warmup", num_warmup_steps=5),
        r"missing argument\(s\) learning_rate",
    ),
    "reduce_lr_on_plateau": (
        lambda: lrjax.get("reduce_lr_on_plateau", mode="min", factor=0.1),
        r"not a schedule.*lrjax\.reduce_on_plateau",
    ),
    "unknown-name": (
        lambda: lrjax.get("cosine_annealing", **_HF),
        r"name must be one of \[.*'constant_with_warmup'.*'cosine_decay'",
    ),
    "total_steps-disagrees": (
        lambda: lrjax.get("cosine", total_steps=100, **_HF),
        r"total_steps=100 and num_training_steps=64 disagree",
    ),
    "learning_rate-nan": (
        lambda: lrjax.get("cosine", **{**_HF, "learning_rate": NAN}),
        r"learning_rate must be a finite number >= 0, got nan",
    ),
    "min_lr-both": (
        lambda: lrjax.get("cosine_with_min_lr", **_HF, min_lr=0.1, min_lr_rate=0.1),
        r"exactly one of min_lr or min_lr_rate",
    ),
    "min_lr-neither": (
        lambda: lrjax.get("cosine_warmup_with_min_lr", **_HF),
        r"exactly one of min_lr or min_lr_rate",
    ),
    "min_lr_rate-above-1": (
        lambda: lrjax.get("cosine_with_min_lr", **_HF, min_lr_rate=1.5),
        r"min_lr_rate must be a finite number in \[0, 1\]",
    ),
    "polynomial-lr_end-not-below-lr": (
        lambda: lrjax.get("polynomial", **_HF, lr_end=0.5),
        r"lr_end must be < learning_rate",
    ),
    "restarts-num_cycles-float": (
        lambda: lrjax.get("cosine_with_restarts", **_HF, num_cycles=1.5),
        r"num_cycles must be an integer >= 1",
    ),
    "wsd-no-length": (
        lambda: lrjax.get(
            "warmup_stable_decay", learning_rate=0.5, num_warmup_steps=5, num_decay_steps=5
        ),
        r"num_training_steps or num_stable_steps must be given",
    ),
    "wsd-lengths-disagree": (
        lambda: lrjax.get(
            "warmup_stable_decay",
            learning_rate=0.5,
            num_warmup_steps=5,
            num_decay_steps=5,
            num_stable_steps=10,
            num_training_steps=30,
        ),
        r"num_training_steps=30 disagrees with .* = 20",
    ),
    "wsd-num_cycles": (
        lambda: lrjax.get("warmup_stable_decay", **_HF, num_decay_steps=8, num_cycles=1.0),
        r"num_cycles must be 0.5",
    ),
    "wsd-decay-0": (
        lambda: lrjax.get("warmup_stable_decay", **_HF, num_decay_steps=0),
        r"num_decay_steps must be an integer >= 1",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_get_errors_list_the_accepted_arguments(name):
    check_raises(*ERRORS[name])


def test_hf_constant_accepts_and_ignores_step_counts_like_get_scheduler():
    # The Trainer always passes both counts; get_scheduler ignores them for "constant".
    built = lrjax.get("constant", learning_rate=0.1, num_warmup_steps=100, num_training_steps=50)
    np.testing.assert_array_equal(lrs(built, np.arange(200)), np.full(200, np.float32(0.1)))
    np.testing.assert_array_equal(
        lrs(lrjax.get("constant", total_steps=50, learning_rate=0.1, num_warmup_steps=0.5), [7]),
        [np.float32(0.1)],
    )


def test_hf_polynomial_warmup_equal_to_training_ends_at_lr_end():
    # HF divides by zero at step W when W == T; lrjax gives the warmup, then lr_end.
    schedule = lrjax.get(
        "polynomial", learning_rate=0.5, num_warmup_steps=8, num_training_steps=8, lr_end=0.125
    )
    want = [0.5 * t / 8 for t in range(8)] + [0.125] * 8
    assert_matches(lrs(schedule, np.arange(16)), want, scale=0.5)


@pytest.mark.parametrize(
    ("given", "total", "steps"),
    [
        (0.3, 37, 12),  # ceil(11.1): HF rounds a ratio up (to_steps would round to 11)
        (0.05, 1000, 50),
        (0.0, 100, 0),
        (500.0, 1000, 500),  # a whole float is that many steps
        (1.0, 100, 1),  # as HF's int(1.0); for lrjax names 1.0 is the whole run
        (np.float32(0.25), 64, 16),
        (7, 64, 7),
    ],
)
def test_hf_float_step_counts_are_read_as_hugging_face_reads_them(given, total, steps):
    built = lrjax.get("linear", learning_rate=1.0, num_warmup_steps=given, num_training_steps=total)
    direct = lrjax.get(
        "linear", learning_rate=1.0, num_warmup_steps=steps, num_training_steps=total
    )
    grid = np.arange(total + 2)
    np.testing.assert_array_equal(lrs(built, grid), lrs(direct, grid))


@pytest.mark.parametrize(
    ("given", "pattern"),
    [
        (10.7, r"num_warmup_steps must be an integer number of steps, a float ratio in \[0, 1\)"),
        (-0.1, r"num_warmup_steps must be an integer number of steps"),
        ("10", r"num_warmup_steps must be an integer number of steps"),
    ],
)
def test_hf_float_step_counts_that_hf_would_truncate_are_refused(given, pattern):
    with pytest.raises(ValueError, match=pattern):
        lrjax.get("linear", learning_rate=1.0, num_warmup_steps=given, num_training_steps=100)


def test_hf_ratio_without_num_training_steps_is_an_error():
    with pytest.raises(ValueError, match=r"num_warmup_steps=0.1 is a ratio of num_training_steps"):
        lrjax.get("constant_with_warmup", learning_rate=1.0, num_warmup_steps=0.1)
