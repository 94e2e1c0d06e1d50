"""Datasets as plain NumPy arrays, with a held-out validation split, and no network at run time.

Every loader returns a :class:`Dataset`: float32 inputs, int32 labels, and three disjoint splits.
Choices (learning rate, schedule, search) are made on ``val``; ``test`` is reported once.

* :func:`load_mnist1d` — MNIST-1D (Greydanus 2020), generated offline with the ``mnist1d``
  package's generator and cached on disk (its ``get_dataset`` downloads; it is never called).
* :func:`load_digits` — scikit-learn's 8×8 digits, shipped with scikit-learn.
* :func:`load_mnist`, :func:`load_fashion_mnist` — the standard IDX files in a directory the
  user gives, gzipped or not; :func:`read_idx` parses one file and names it in every error.
* :func:`load` — any of the above by name.

``mnist1d`` and ``scikit-learn`` are optional (the ``experiments`` extra) and imported lazily.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS",
    "Dataset",
    "IDXFormatError",
    "load",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "read_idx",
    "split_validation",
]


@dataclasses.dataclass(frozen=True, repr=False)
class Dataset:
    """Train / validation / test arrays of one classification dataset.

    Inputs are float32 with shape ``(n, *input_shape)``; labels are int32 in
    ``[0, num_classes)`` with shape ``(n,)``. The three splits are disjoint.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch axis."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, train={len(self.y_train)}, "
            f"val={len(self.y_val)}, test={len(self.y_test)})"
        )


def split_validation(
    x: np.ndarray, y: np.ndarray, val_size: int | float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carves a stratified validation split out of a training set.

    Args:
      x: inputs, leading axis = examples.
      y: integer labels, shape ``(n,)``.
      val_size: number of validation examples (int), or a fraction of ``n`` in ``[0, 1)``.
        ``0`` gives an empty validation split.
      seed: seed of the shuffle; the same seed gives the same split.

    Returns:
      ``(x_train, y_train, x_val, y_val)``, both parts shuffled; each class keeps (to
      rounding) its share in both.

    Examples:
      >>> x = np.arange(20, dtype=np.float32)[:, None]
      >>> y = np.arange(20, dtype=np.int32) % 2
      >>> xt, yt, xv, yv = split_validation(x, y, val_size=0.2, seed=0)
      >>> xt.shape, xv.shape, int(yv.sum())
      ((16, 1), (4, 1), 2)
    """
    n = len(y)
    if isinstance(val_size, float):
        if not 0.0 <= val_size < 1.0:
            raise ValueError(f"val_size as a fraction must be in [0, 1), got {val_size}")
        n_val = round(val_size * n)
    else:
        n_val = int(val_size)
    if not 0 <= n_val < n:
        raise ValueError(f"val_size must be in [0, {n}) examples, got {val_size}")
    rng = np.random.default_rng(seed)
    # Stratify: each class gives the validation split its proportional share, the rounding
    # remainder going to the classes with the largest fractional parts.
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n_val / n
    take = np.floor(quota).astype(np.int64)
    remainder = n_val - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:remainder]] += 1
    val_parts = [
        rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    val_idx = np.concatenate(val_parts) if val_parts else np.zeros(0, np.int64)
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    # Shuffle inside each split too, so neither keeps the source's class order.
    train_idx = rng.permutation(np.flatnonzero(~is_val))
    val_idx = rng.permutation(np.sort(val_idx))
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _finish(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    val_size: int | float,
    seed: int,
) -> Dataset:
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    y_train = np.ascontiguousarray(y_train, dtype=np.int32)
    y_test = np.ascontiguousarray(y_test, dtype=np.int32)
    xt, yt, xv, yv = split_validation(x_train, y_train, val_size, seed)
    return Dataset(name, xt, yt, xv, yv, x_test, y_test, num_classes)


# --------------------------------------------------------------------------------------------
# MNIST-1D


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if env := os.environ.get("LRJAX_CACHE"):
        return Path(env)
    return Path.home() / ".cache" / "lrjax"


def _mnist1d_defaults() -> dict:
    """The generator's default arguments, less the download URL (it plays no part)."""
    # mnist1d.utils imports matplotlib.pyplot; a headless run must not look for a display.
    os.environ.setdefault("MPLBACKEND", "Agg")
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    return args


def _generate_mnist1d(args: dict) -> dict[str, np.ndarray]:
    os.environ.setdefault("MPLBACKEND", "Agg")
    from mnist1d.data import get_templates, make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset seeds NumPy's and Python's *global* generators; restore them afterwards so
    # that loading data never changes the randomness of the caller's code.
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = make_dataset(ObjectView(dict(args)), get_templates())
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return {"x": d["x"], "y": d["y"], "x_test": d["x_test"], "y_test": d["y_test"]}


def load_mnist1d(
    num_train: int = 4000,
    num_test: int = 1000,
    *,
    val_size: int | float = 500,
    seed: int = 0,
    generator_seed: int = 42,
    length: int = 40,
    cache_dir: str | os.PathLike | None = None,
    **generator_args,
) -> Dataset:
    """MNIST-1D, generated offline and cached on disk.

    Calls ``mnist1d.data.make_dataset`` with the package's default arguments
    (``mnist1d.data.get_dataset_args()``: template length 12, padding 36–60, shear 0.75, …)
    and ``num_samples = num_train + num_test``; its ``get_dataset``, which downloads, is never
    called. With the defaults the arrays equal ``make_dataset(get_dataset_args())``'s. The
    generator is deterministic in ``generator_seed`` (42 is the package's), and its output is
    saved as ``mnist1d-<hash of the arguments>.npz`` in the cache directory: ``cache_dir``,
    else ``$LRJAX_CACHE``, else ``~/.cache/lrjax``. Generating the default 5000 examples takes
    about 1–2 s on one CPU core; reading the cache, a few milliseconds.

    Args:
      num_train: examples for train + validation (the paper: 4000).
      num_test: test examples (the paper: 1000).
      val_size: validation examples carved from the ``num_train`` (int, or a fraction).
      seed: seed of the train/validation split (not of the generator).
      generator_seed: seed of the MNIST-1D generator.
      length: sequence length (the paper: 40).
      cache_dir: where to keep the generated arrays (see above).
      **generator_args: overrides of other ``get_dataset_args()`` entries, e.g.
        ``shuffle_seq=True`` or ``iid_noise_scale=0.05``.

    Returns:
      A :class:`Dataset` with inputs of shape ``(n, length)`` and 10 classes.

    References:
      Greydanus, "Scaling down deep learning", arXiv:2011.14439, 2020.
    """
    if num_train <= 0 or num_test <= 0:
        raise ValueError(f"num_train and num_test must be > 0, got {num_train}, {num_test}")
    total = num_train + num_test
    if total % 10:
        raise ValueError(
            "num_train + num_test must be a multiple of 10 (the generator makes equal classes),"
            f" got {total}"
        )
    args = _mnist1d_defaults()
    unknown = set(generator_args) - set(args)
    if unknown:
        raise ValueError(
            f"unknown MNIST-1D generator arguments {sorted(unknown)}; known: {sorted(args)}"
        )
    args.update(generator_args)
    args.update(
        num_samples=total,
        train_split=num_train / total,
        final_seq_length=length,
        seed=generator_seed,
    )
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = _cache_dir(cache_dir) / f"mnist1d-{key}.npz"
    if path.exists():
        with np.load(path) as f:
            arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
    else:
        arrays = _generate_mnist1d(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write under a temporary name, then rename: an interrupted run never leaves a torn file.
        tmp = path.with_name(f".{path.stem}-{os.getpid()}.npz")
        np.savez(tmp, **arrays, args=json.dumps(args, sort_keys=True))
        os.replace(tmp, path)
    if len(arrays["y"]) != num_train or len(arrays["y_test"]) != num_test:
        raise RuntimeError(
            f"{path}: holds {len(arrays['y'])}/{len(arrays['y_test'])} train/test examples, "
            f"expected {num_train}/{num_test}; delete it to regenerate"
        )
    return _finish(
        "mnist1d",
        arrays["x"],
        arrays["y"],
        arrays["x_test"],
        arrays["y_test"],
        10,
        val_size,
        seed,
    )


# --------------------------------------------------------------------------------------------
# scikit-learn digits


def load_digits(
    *, val_size: int | float = 0.15, test_size: int | float = 0.2, seed: int = 0
) -> Dataset:
    """scikit-learn's 8×8 handwritten digits (1797 images), shipped with scikit-learn.

    Pixels (0–16) are scaled to ``[0, 1]``; images keep their ``(8, 8)`` shape (the MLP
    flattens). The test split is a stratified ``test_size`` share of all images, the validation
    split a stratified ``val_size`` share of the rest, both fixed by ``seed``.

    Args:
      val_size: validation examples (int) or fraction of the non-test images.
      test_size: test examples (int) or fraction of all images.
      seed: seed of both splits.

    Returns:
      A :class:`Dataset` with inputs of shape ``(n, 8, 8)`` and 10 classes.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(np.float32) / np.float32(16.0)
    y = bunch.target.astype(np.int32)
    # The test split is drawn with a different stream than the validation split.
    x_rest, y_rest, x_test, y_test = split_validation(x, y, test_size, seed + 1_000_003)
    return _finish("digits", x_rest, y_rest, x_test, y_test, 10, val_size, seed)


# --------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)


class IDXFormatError(ValueError):
    """An IDX file is missing, truncated, or does not hold what was expected."""


_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the format of MNIST and Fashion-MNIST), gzipped or not.

    The header is two zero bytes, a type code (``0x08`` = uint8, …), the number of
    dimensions ``d``, then ``d`` big-endian uint32 sizes; the data follows, row-major. A file
    whose name ends in ``.gz`` is decompressed first.

    Args:
      path: the file.

    Returns:
      The array, in native byte order, with the shape of the header.

    Raises:
      IDXFormatError: naming ``path``, if the file is missing, not valid gzip, has a bad magic
        number, or holds fewer or more data bytes than its header says.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise IDXFormatError(f"{path}: file not found") from None
    except (OSError, EOFError) as e:
        raise IDXFormatError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) < 4:
        raise IDXFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header (4 bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or type_code not in _IDX_DTYPES:
        codes = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise IDXFormatError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}, expected 0x0000, then a type "
            f"code in {{{codes}}}, then the number of dimensions"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(
            f"{path}: truncated header, {len(raw)} bytes for {ndim} dimensions ({header} needed)"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "trailing bytes"
        raise IDXFormatError(
            f"{path}: {what}: header says shape {shape} of {dtype.name} ({expected} data bytes),"
            f" file has {got}"
        )
    flat = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return flat.reshape(shape).astype(dtype.newbyteorder("="))


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(data_dir: Path, stem: str) -> Path:
    # Also accept the "train-images.idx3-ubyte" spelling some mirrors use.
    for name in (stem, stem.replace("-idx", ".idx")):
        for candidate in (data_dir / name, data_dir / f"{name}.gz"):
            if candidate.exists():
                return candidate
    raise IDXFormatError(
        f"{data_dir / stem}: file not found (looked for {stem} or {stem}.gz in {data_dir})"
    )


def _read_idx_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find_idx(data_dir, _IDX_FILES[split][0])
    labels_path = _find_idx(data_dir, _IDX_FILES[split][1])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise IDXFormatError(
            f"{images_path}: expected uint8 images of shape (n, rows, cols), "
            f"got {images.dtype.name} of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXFormatError(
            f"{labels_path}: expected uint8 labels of shape (n,), "
            f"got {labels.dtype.name} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise IDXFormatError(
            f"{labels_path}: {len(labels)} labels, but {images_path} holds {len(images)} images"
        )
    if labels.size and labels.max() > 9:
        raise IDXFormatError(f"{labels_path}: labels must be in [0, 9], found {labels.max()}")
    return images, labels


def _load_idx_dataset(
    name: str, data_dir: str | os.PathLike, val_size: int | float, seed: int
) -> Dataset:
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise IDXFormatError(f"{data_dir}: data directory not found")
    x_train, y_train = _read_idx_split(data_dir, "train")
    x_test, y_test = _read_idx_split(data_dir, "test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise IDXFormatError(
            f"{data_dir}: train images are {x_train.shape[1:]}, test images {x_test.shape[1:]}"
        )
    scale = np.float32(1.0 / 255.0)
    return _finish(name, x_train * scale, y_train, x_test * scale, y_test, 10, val_size, seed)


def load_mnist(
    data_dir: str | os.PathLike, *, val_size: int | float = 5000, seed: int = 0
) -> Dataset:
    """MNIST from the four standard IDX files in ``data_dir`` (each gzipped or not).

    Expects ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally ending in
    ``.gz``. Pixels are scaled to ``[0, 1]``; images keep their ``(28, 28)`` shape. The
    validation split (``val_size``, stratified, fixed by ``seed``) comes out of the 60000
    training images; the 10000 ``t10k`` images, in file order, are the test split.

    Raises:
      IDXFormatError: naming the file, if one is missing or malformed, or if the image and
        label counts of a split disagree.
    """
    return _load_idx_dataset("mnist", data_dir, val_size, seed)


def load_fashion_mnist(
    data_dir: str | os.PathLike, *, val_size: int | float = 5000, seed: int = 0
) -> Dataset:
    """Fashion-MNIST from its four IDX files in ``data_dir``.

    Fashion-MNIST uses MNIST's file names and format, so the files, splits and errors are those
    of :func:`load_mnist`.
    """
    return _load_idx_dataset("fashion_mnist", data_dir, val_size, seed)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "mnist1d": load_mnist1d,
    "digits": load_digits,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
}


def load(name: str, **kwargs) -> Dataset:
    """Loads a dataset by name, one of ``DATASETS``: "mnist1d", "digits", "mnist",
    "fashion_mnist" (``-`` reads as ``_``). ``kwargs`` go to its loader (``data_dir=...`` for
    the IDX ones)."""
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[key](**kwargs)
