"""Tests for lrjax.data: IDX parsing on files written here, MNIST-1D generation and caching,
digits splits, and the validation split."""

import gzip
import random
import struct

import numpy as np
import pytest

from lrjax import data


def write_idx(path, array, *, type_code=0x08, gz=None, shape=None, magic_prefix=b"\x00\x00"):
    """Writes ``array`` as an IDX file; ``shape`` overrides the header's dimensions."""
    array = np.asarray(array)
    shape = array.shape if shape is None else shape
    header = magic_prefix + bytes([type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    gz = str(path).endswith(".gz") if gz is None else gz
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def fake_mnist_dir(tmp_path, n_train=60, n_test=20, side=28, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx(tmp_path / (name + ext), a)
    return arrays


# ---------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_roundtrip_uint8(tmp_path, suffix):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = data.read_idx(write_idx(tmp_path / f"x-idx3-ubyte{suffix}", a))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize(
    ("type_code", "dtype"), [(0x0C, np.int32), (0x0D, np.float32), (0x0B, np.int16)]
)
def test_read_idx_big_endian_types_come_back_native(tmp_path, type_code, dtype):
    a = np.array([[1, -2, 300], [4, 5, -70000 if dtype == np.int32 else 6]], dtype=dtype)
    out = data.read_idx(write_idx(tmp_path / "x.idx", a, type_code=type_code))
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_read_idx_missing_file_names_it(tmp_path):
    with pytest.raises(data.IDXFormatError, match="nope-idx1-ubyte: file not found"):
        data.read_idx(tmp_path / "nope-idx1-ubyte")


def test_read_idx_bad_magic_names_file(tmp_path):
    path = write_idx(tmp_path / "bad-magic", np.zeros(3, np.uint8), magic_prefix=b"\x08\x03")
    with pytest.raises(data.IDXFormatError, match=r"bad-magic: bad IDX magic number 0x0803"):
        data.read_idx(path)


def test_read_idx_unknown_type_code_names_file(tmp_path):
    path = write_idx(tmp_path / "bad-type", np.zeros(3, np.uint8), type_code=0x07)
    with pytest.raises(data.IDXFormatError, match="bad-type: bad IDX magic number 0x00000701"):
        data.read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_truncated_data_names_file_and_sizes(tmp_path, suffix):
    path = write_idx(tmp_path / f"short{suffix}", np.zeros((2, 3), np.uint8), shape=(2, 4))
    with pytest.raises(data.IDXFormatError, match=r"short.*truncated.*\(2, 4\).*8 data bytes.*6"):
        data.read_idx(path)


def test_read_idx_trailing_bytes_names_file(tmp_path):
    path = write_idx(tmp_path / "long", np.zeros((2, 3), np.uint8), shape=(2, 2))
    with pytest.raises(data.IDXFormatError, match="long: trailing bytes"):
        data.read_idx(path)


def test_read_idx_truncated_header_names_file(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(data.IDXFormatError, match=r"hdr: truncated header.*3 dimensions"):
        data.read_idx(path)


def test_read_idx_tiny_file_names_file(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00")
    with pytest.raises(data.IDXFormatError, match="tiny: 1 bytes, too short"):
        data.read_idx(path)


def test_read_idx_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"definitely not gzip")
    with pytest.raises(data.IDXFormatError, match=r"broken\.gz: not a readable gzip file"):
        data.read_idx(path)


# ---------------------------------------------------------------------------------------------
# load_mnist / load_fashion_mnist


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_idx_dir(tmp_path, gz):
    arrays = fake_mnist_dir(tmp_path, gz=gz)
    ds = data.load_mnist(tmp_path, val_size=10)
    assert ds.name == "mnist"
    assert ds.x_train.shape == (50, 28, 28) and ds.x_val.shape == (10, 28, 28)
    assert ds.x_test.shape == (20, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.num_classes == 10 and ds.input_shape == (28, 28)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    # The test split is t10k, untouched and in file order.
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    np.testing.assert_allclose(ds.x_test * 255, arrays["t10k-images-idx3-ubyte"], atol=1e-4)
    # Stratified: one validation example per class.
    np.testing.assert_array_equal(np.bincount(ds.y_val, minlength=10), np.ones(10))


def test_load_fashion_mnist_and_load_by_name(tmp_path):
    fake_mnist_dir(tmp_path, gz=False)
    a = data.load_fashion_mnist(tmp_path, val_size=20, seed=3)
    b = data.load("fashion-mnist", data_dir=tmp_path, val_size=20, seed=3)
    assert a.name == b.name == "fashion_mnist"
    np.testing.assert_array_equal(a.x_val, b.x_val)


def test_load_mnist_missing_file_names_it(tmp_path):
    fake_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.IDXFormatError, match=r"t10k-labels-idx1-ubyte: file not found"):
        data.load_mnist(tmp_path)


def test_load_mnist_missing_dir(tmp_path):
    with pytest.raises(data.IDXFormatError, match="data directory not found"):
        data.load_mnist(tmp_path / "absent")


def test_load_mnist_count_mismatch_names_both_files(tmp_path):
    fake_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(59, np.uint8))
    with pytest.raises(
        data.IDXFormatError,
        match=r"train-labels-idx1-ubyte.gz: 59 labels, but .*train-images-idx3-ubyte.gz "
        r"holds 60 images",
    ):
        data.load_mnist(tmp_path)


def test_load_mnist_wrong_image_rank_names_file(tmp_path):
    fake_mnist_dir(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((20, 784), np.uint8))
    with pytest.raises(
        data.IDXFormatError, match=r"t10k-images-idx3-ubyte.gz: expected uint8 images of shape"
    ):
        data.load_mnist(tmp_path)


def test_load_mnist_wrong_label_dtype_names_file(tmp_path):
    fake_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(60, np.int32), type_code=0x0C)
    with pytest.raises(data.IDXFormatError, match=r"train-labels-idx1-ubyte.gz: expected uint8"):
        data.load_mnist(tmp_path)


def test_load_mnist_label_out_of_range_names_file(tmp_path):
    fake_mnist_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(20, 12, np.uint8))
    with pytest.raises(data.IDXFormatError, match=r"t10k-labels-idx1-ubyte.gz: labels must be"):
        data.load_mnist(tmp_path)


def test_load_mnist_train_test_image_size_mismatch(tmp_path):
    fake_mnist_dir(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((20, 8, 8), np.uint8))
    with pytest.raises(data.IDXFormatError, match=r"train images are \(28, 28\)"):
        data.load_mnist(tmp_path)


# ---------------------------------------------------------------------------------------------
# MNIST-1D


SMALL = {"num_train": 200, "num_test": 100, "val_size": 40}


def test_mnist1d_small_shapes_dtypes_and_splits(tmp_path):
    ds = data.load_mnist1d(**SMALL, cache_dir=tmp_path)
    assert ds.name == "mnist1d" and ds.num_classes == 10
    assert ds.x_train.shape == (160, 40) and ds.x_val.shape == (40, 40)
    assert ds.x_test.shape == (100, 40)
    for x, y in [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)]:
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert np.isfinite(x).all() and set(np.unique(y)) <= set(range(10))
    # Stratified: each class's validation count is its share of the 200, to rounding.
    per_class = np.bincount(np.concatenate([ds.y_train, ds.y_val]), minlength=10)
    np.testing.assert_array_less(
        np.abs(np.bincount(ds.y_val, minlength=10) - per_class * 40 / 200), 1.0
    )


def test_mnist1d_deterministic_and_cached(tmp_path, monkeypatch):
    a = data.load_mnist1d(**SMALL, cache_dir=tmp_path)
    files = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(files) == 1

    def fail(args):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(data, "_generate_mnist1d", fail)
    b = data.load_mnist1d(**SMALL, cache_dir=tmp_path)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_mnist1d_cache_keyed_by_generator_args(tmp_path):
    a = data.load_mnist1d(**SMALL, cache_dir=tmp_path)
    b = data.load_mnist1d(**SMALL, cache_dir=tmp_path, generator_seed=7)
    c = data.load_mnist1d(**SMALL, cache_dir=tmp_path, iid_noise_scale=0.05)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 3
    assert not np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_mnist1d_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LRJAX_CACHE", str(tmp_path / "env"))
    data.load_mnist1d(**SMALL)
    assert len(list((tmp_path / "env").glob("mnist1d-*.npz"))) == 1


def test_mnist1d_split_seed_changes_only_train_val(tmp_path):
    a = data.load_mnist1d(**SMALL, cache_dir=tmp_path, seed=0)
    b = data.load_mnist1d(**SMALL, cache_dir=tmp_path, seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_val, b.x_val)


def test_mnist1d_leaves_global_rng_alone(tmp_path):
    # The legacy global generators are exactly what the mnist1d generator reseeds.
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    data.load_mnist1d(**SMALL, cache_dir=tmp_path)
    assert np.random.random() == expected_np  # noqa: NPY002
    assert random.random() == expected_py


def test_mnist1d_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="multiple of 10"):
        data.load_mnist1d(num_train=205, num_test=100, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"unknown MNIST-1D generator arguments \['nois'\]"):
        data.load_mnist1d(**SMALL, cache_dir=tmp_path, nois=1.0)
    with pytest.raises(ValueError, match="must be > 0"):
        data.load_mnist1d(num_train=0, num_test=100, cache_dir=tmp_path)


@pytest.mark.slow
def test_mnist1d_default_matches_the_papers_generator(tmp_path):
    from mnist1d.data import get_dataset_args, make_dataset

    ds = data.load_mnist1d(cache_dir=tmp_path, val_size=0)
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.x_val.shape == (0, 40)
    ref = make_dataset(get_dataset_args())
    np.testing.assert_array_equal(ds.x_test, ref["x_test"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, ref["y_test"])
    # Same training examples, reshuffled by the (empty) validation split.
    order = np.lexsort(ds.x_train.T)
    ref_order = np.lexsort(ref["x"].astype(np.float32).T)
    np.testing.assert_array_equal(ds.x_train[order], ref["x"].astype(np.float32)[ref_order])
    default = data.load_mnist1d(cache_dir=tmp_path)
    assert (len(default.y_train), len(default.y_val), len(default.y_test)) == (3500, 500, 1000)


# ---------------------------------------------------------------------------------------------
# digits and the validation split


def _rows(x):
    return np.sort(x.reshape(len(x), -1).view(np.dtype((np.void, x[0].nbytes))).ravel())


def test_digits_splits_partition_the_dataset():
    from sklearn.datasets import load_digits as sk

    ds = data.load_digits(val_size=0.15, test_size=0.2, seed=0)
    n = 1797
    n_test = round(0.2 * n)
    n_val = round(0.15 * (n - n_test))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (n - n_test - n_val, n_val, n_test)
    assert ds.x_train.shape[1:] == (8, 8) and ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    # The three splits are disjoint and together are the whole dataset (as a multiset of images).
    every = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    np.testing.assert_array_equal(_rows(every), _rows(sk().images.astype(np.float32) / 16))
    # No image index is shared: sorted (image, label) pairs of the union match the original.
    labels = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert np.bincount(labels).tolist() == np.bincount(sk().target).tolist()


def test_digits_is_deterministic_in_seed():
    a, b, c = data.load_digits(seed=0), data.load_digits(seed=0), data.load_digits(seed=1)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_val, c.x_val)


def test_split_validation_stratified_disjoint_and_deterministic():
    y = np.repeat(np.arange(4, dtype=np.int32), [10, 20, 30, 40])
    x = np.arange(100, dtype=np.float32)[:, None]
    xt, yt, xv, yv = data.split_validation(x, y, 20, seed=5)
    assert len(yv) == 20 and len(yt) == 80
    np.testing.assert_array_equal(np.bincount(yv), [2, 4, 6, 8])
    assert not set(xt[:, 0]) & set(xv[:, 0])
    np.testing.assert_array_equal(np.sort(np.concatenate([xt, xv])[:, 0]), x[:, 0])
    np.testing.assert_array_equal(y[xv[:, 0].astype(int)], yv)
    again = data.split_validation(x, y, 20, seed=5)
    np.testing.assert_array_equal(again[2], xv)


def test_split_validation_rounding_keeps_requested_size():
    y = np.repeat(np.arange(3, dtype=np.int32), 7)
    _, _, _, yv = data.split_validation(np.zeros((21, 1), np.float32), y, 5, seed=0)
    assert len(yv) == 5


@pytest.mark.parametrize(("size", "msg"), [(100, r"\[0, 100\)"), (1.5, r"\[0, 1\)"), (-1, "")])
def test_split_validation_rejects_bad_sizes(size, msg):
    with pytest.raises(ValueError, match=f"val_size.*{msg}"):
        data.split_validation(np.zeros((100, 1)), np.zeros(100, np.int32), size, seed=0)


def test_load_unknown_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'; known: \['digits'"):
        data.load("cifar")
