"""Tests for lrjax.trackers: snapshots, SWA and EMA inside the compiled loop."""

import functools

import jax
import numpy as np
import optax
import pytest

import lrjax
from lrjax import sweep
from tests.helpers import (
    ATOL,
    BATCH,
    CHUNK,
    DATA,
    LOSS,
    MODEL,
    RTOL,
    STEPS,
    reference,
    sgd_train,
)

# -----------------------------------------------------------------------------------------------
# In-loop trackers: snapshots, SWA, EMA and reduce-on-plateau (lrjax's research tools).

TRACK_LRS = np.array([0.1, 0.4], np.float32)


@functools.cache
def tracked_run(vectorize=True):
    return sweep.train(
        MODEL, LOSS, DATA, optimizer=optax.sgd, hparams={"learning_rate": TRACK_LRS},
        num_steps=STEPS, batch_size=BATCH,
        trackers={"snapshots": lrjax.Snapshots(tuple(range(1, STEPS + 1))),
                  "swa": lrjax.SWA(start=3, every=2), "ema": lrjax.EMA([0.5, 0.9])},
        options=sweep.Options(chunk_steps=CHUNK, progress=False, vectorize=vectorize),
    )  # fmt: skip


@pytest.mark.parametrize("n", [1, 5, 6, STEPS])  # first step, chunk boundary, last step
def test_snapshots_are_the_parameters_after_their_update_counts(n):
    result = tracked_run()
    for k, lr in enumerate(TRACK_LRS):
        _, params = reference(optax.sgd, {"learning_rate": lr}, steps=n)
        for got, want in zip(
            jax.tree.leaves(result.snapshots), jax.tree.leaves(params), strict=True
        ):
            np.testing.assert_allclose(got[k, n - 1], want, rtol=RTOL, atol=ATOL)


def test_swa_is_the_average_of_the_sampled_iterates():
    result = tracked_run()
    sampled = [n for n in range(1, STEPS + 1) if n >= 3 and (n - 3) % 2 == 0]
    np.testing.assert_array_equal(result.swa_count, [len(sampled)] * 2)
    for avg, snaps in zip(
        jax.tree.leaves(result.swa_params), jax.tree.leaves(result.snapshots), strict=True
    ):
        expected = np.mean(np.asarray(snaps, np.float64)[:, [n - 1 for n in sampled]], axis=1)
        np.testing.assert_allclose(avg, expected, rtol=1e-5, atol=1e-7)


def test_ema_follows_its_recursion_from_the_initial_parameters():
    result = tracked_run()
    initial = jax.tree.leaves(jax.jit(MODEL.init)(jax.random.key(0)))
    for k, decay in enumerate([0.5, 0.9]):
        for ema, snaps, start in zip(
            jax.tree.leaves(result.ema_params), jax.tree.leaves(result.snapshots), initial,
            strict=True,
        ):  # fmt: skip
            expected = np.asarray(start, np.float64)
            for n in range(STEPS):
                expected = decay * expected + (1 - decay) * np.asarray(snaps[k, n], np.float64)
            np.testing.assert_allclose(ema[k], expected, rtol=1e-5, atol=1e-6)


def test_trackers_agree_between_vectorized_and_debug_paths():
    fast, slow = tracked_run(), tracked_run(vectorize=False)
    for name in ("snapshots", "swa_params", "ema_params"):
        for a, b in zip(
            jax.tree.leaves(getattr(fast, name)), jax.tree.leaves(getattr(slow, name)), strict=True
        ):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: lrjax.Snapshots((5, 3)), "snapshot steps must be strictly increasing"),
        (lambda: lrjax.Snapshots((0,)), r"snapshot steps\[0\] must be an integer >= 1"),
        (lambda: lrjax.Snapshots(()), "snapshot steps must hold at least one"),
        (lambda: lrjax.SWA(start=-1), "swa start must be an integer >= 0"),
        (lambda: lrjax.SWA(start=2, every=0), "swa every must be an integer >= 1"),
        (lambda: lrjax.EMA(1.5), r"ema decay must be a finite number in \[0, 1\]"),
        (lambda: lrjax.EMA([0.5, float("nan")]), r"ema decay\[1\] must be a finite number"),
    ],
)
def test_tracker_arguments_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_save_and_load_keep_the_trackers(tmp_path):
    result = tracked_run()
    result.save(tmp_path / "tracked")
    loaded = sweep.SweepResult.load(tmp_path / "tracked")
    np.testing.assert_array_equal(loaded.swa_count, result.swa_count)
    for name in ("params", "snapshots", "swa_params", "ema_params"):
        for a, b in zip(
            jax.tree.leaves(getattr(loaded, name)), jax.tree.leaves(getattr(result, name)),
            strict=True,
        ):  # fmt: skip
            np.testing.assert_array_equal(a, b)


def test_two_emas_keep_their_own_per_member_decays():
    # Each tracker's per-member settings live under its own name (Member.trackers): before,
    # two EMAs with [K] decays silently shared the second one's.
    both = sgd_train(
        TRACK_LRS, trackers={"slow": lrjax.EMA([0.5, 0.9]), "fast": lrjax.EMA([0.1, 0.2])}
    )
    alone = sgd_train(TRACK_LRS, trackers={"slow": lrjax.EMA([0.5, 0.9])})
    for a, b in zip(jax.tree.leaves(both.trackers["slow"]), jax.tree.leaves(alone.trackers["slow"]),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(jax.tree.leaves(both.trackers["fast"])[0],
                           jax.tree.leaves(both.trackers["slow"])[0])  # fmt: skip
    settings = both.metadata["tracker_settings"]
    np.testing.assert_array_equal(settings["fast"]["decay"], np.float32([0.1, 0.2]))
    np.testing.assert_array_equal(settings["slow"]["decay"], np.float32([0.5, 0.9]))
