"""Tests for lrjax.feeds: the data order on device and host, memmaps, functions, iterators."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import feeds, sweep

N, D, B = 40, 3, 6  # 6 steps per epoch, 4 examples dropped per epoch


def test_device_chunk_host_chunk_and_single_steps_give_one_order():
    for seed, step0, length in [(0, 0, 7), (3, 4, 20), (-5, 13, 1), (2**31 - 1, 100, 9)]:
        device = np.asarray(feeds._chunk_indices(jnp.int32(seed), jnp.int32(step0), length, N, B))
        host = feeds.batch_indices_np(seed, step0, length, N, B)
        single = np.stack(
            [feeds.batch_indices(seed, t, N, B) for t in range(step0, step0 + length)]
        )
        np.testing.assert_array_equal(device, single)
        np.testing.assert_array_equal(host, single)


def test_each_epoch_is_a_fresh_permutation_without_repeats():
    rows = feeds.batch_indices_np(7, 0, 12, N, B)  # two epochs
    first, second = rows[:6].ravel(), rows[6:].ravel()
    assert len(set(first)) == len(first) == 36 and len(set(second)) == 36
    assert not np.array_equal(first, second)


def test_per_member_seeds_give_each_member_its_own_order():
    x = np.arange(N, dtype=np.float32)[:, None]
    feed = feeds.ArrayFeed((x,), B, seed=lambda m: m["data_seed"])
    members = {"data_seed": np.array([0, 9, 0], np.int32)}
    xs = np.asarray(feed.chunk(5, 4, 4, members))
    assert xs.shape == (4, 3, B)  # [T, K, B]
    for k, seed in enumerate([0, 9, 0]):
        np.testing.assert_array_equal(xs[:, k], feeds.batch_indices_np(seed, 5, 4, N, B))


def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32)


MODEL = lrjax.Model(lambda key: {"w": jnp.zeros((D, 2))}, lambda p, x: x @ p["w"])
LOSS = optax.softmax_cross_entropy_with_integer_labels


def train(data, **kwargs):
    return sweep.train(
        MODEL, LOSS, data, optimizer=optax.sgd, hparams={"learning_rate": np.array([0.1, 0.5])},
        num_steps=10, options=sweep.Options(chunk_steps=4, progress=False), **kwargs,
    )  # fmt: skip


def test_a_memmap_is_read_batch_by_batch_on_the_host(tmp_path):
    x, y = problem()
    xm = np.memmap(tmp_path / "x.f32", np.float32, "w+", shape=x.shape)
    xm[:] = x
    xm.flush()
    xm = np.memmap(tmp_path / "x.f32", np.float32, "r", shape=x.shape)
    feed = feeds.as_feed((xm, y), B)
    assert not feed.on_device and feed.batch_fn is None
    assert feed.data(lambda tree: pytest.fail("the memmap must not be placed whole")) is None
    on_host = train((xm, y), batch_size=B)
    in_memory = train((x, y), batch_size=B)
    np.testing.assert_allclose(on_host.loss, in_memory.loss, rtol=1e-6)


def test_a_batch_function_and_an_iterator_give_the_same_run():
    x, y = problem()

    def batch(step):
        idx = feeds.batch_indices_np(0, step, 1, N, B)[0]
        return x[idx], y[idx]

    from_function = train(batch)
    from_iterator = train(batch(t) for t in range(10))
    from_arrays = train((x, y), batch_size=B)
    np.testing.assert_array_equal(from_function.loss, from_iterator.loss)
    np.testing.assert_allclose(from_function.loss, from_arrays.loss, rtol=1e-6)


def test_bad_data_is_named():
    x, y = problem()
    with pytest.raises(ValueError, match="got one array of shape"):
        feeds.as_feed(x, B)
    with pytest.raises(ValueError, match="batch_size is needed"):
        feeds.as_feed((x, y))
    with pytest.raises(ValueError, match="the data iterator is empty"):
        train(iter([]))
    with pytest.raises(ValueError, match="must share a leading size N"):
        feeds.as_feed((x, y[:5]), B)
    with pytest.raises(ValueError, match="per-member data_seeds need array data"):
        train(iter([(x[:B], y[:B])] * 10), data_seeds=[0, 1])
    with pytest.raises(ValueError, match=r"batch_size=4 differs from the batches' size 6"):
        train(iter([(x[:B], y[:B])] * 10), batch_size=4)
    with pytest.raises(ValueError, match=r"each batch must be an \(inputs, targets\) pair"):
        train(iter([x[:B]] * 10))


def test_chunks_are_stacked_on_the_host_with_the_last_one_padded():
    x, y = problem()
    feed = feeds.FunctionFeed(lambda step: (x[step : step + 2], y[step : step + 2]))
    xs = feed.chunk(3, 4, 2, None)  # only 2 valid steps of 4
    assert jax.tree.map(np.shape, xs) == ((4, 2, D), (4, 2))
    np.testing.assert_array_equal(xs[0][2], xs[0][1])  # padding repeats the last batch


def first_negative(arrays, lead):
    """A check (feeds.Check): the first example, along the ``lead`` axes, with a negative input."""
    x = np.asarray(arrays[0])
    hits = np.argwhere((x < 0).reshape(*x.shape[:lead], -1).any(-1))
    return (tuple(hits[0]), "a negative input") if len(hits) else None


def test_a_check_runs_once_on_device_arrays_and_on_every_chunk_of_a_host_feed():
    x, y = problem()
    x = np.abs(x)
    rows = feeds.batch_indices_np(0, 0, 12, N, B)
    bad_row, position = int(rows[2, 3]), 3  # first used at step 2, position 3 of its batch
    x[bad_row, 1] = -1.0
    with pytest.raises(ValueError, match=f"bad data at example {bad_row} of the data: a negative"):
        feeds.ArrayFeed((x, y), B).set_check(first_negative)  # the whole array, at once
    host = feeds.ArrayFeed((x, y), B, on_device=False)
    host.set_check(first_negative)  # nothing is read until a chunk is asked for
    host.chunk(0, 2, 2, None)  # steps 0 and 1 do not hold it
    named = rf"example {bad_row} of the data \(in the batch of step 2\): a negative input"
    with pytest.raises(ValueError, match=named):
        host.chunk(0, 4, 4, None)
    per_member = feeds.ArrayFeed((x, y), B, seed=lambda m: m["seed"], on_device=False)
    per_member.set_check(first_negative)
    with pytest.raises(ValueError, match=named):
        per_member.chunk(0, 4, 4, {"seed": np.array([5, 0], np.int32)})

    def batch(step):
        return x[rows[step]], y[rows[step]]

    for feed in (feeds.FunctionFeed(batch), feeds.IteratorFeed(batch(t) for t in range(12))):
        feed.set_check(first_negative)
        feed.chunk(0, 2, 2, None)
        with pytest.raises(ValueError, match=f"example {position} of the batch of step 2: a neg"):
            feed.chunk(2, 4, 4, None)
