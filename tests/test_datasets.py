"""Dataset loaders (flow/datasets.py) on small files the tests write, and the built-in splits."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from colcomb.core.errors import ColcombError
from colcomb.train.datasets import (
    DATASETS,
    balanced_subset,
    load_cifar10_folder,
    load_dataset,
    load_mnist_folder,
    read_idx,
    stratified_split,
)


def _idx(arr: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _write_mnist(folder, n_train=5, n_test=3, gz=False):
    rng = np.random.default_rng(0)
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        files[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        files[f"{prefix}-labels-idx1-ubyte"] = rng.integers(0, 10, n, dtype=np.uint8)
    for name, arr in files.items():
        data = _idx(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return files


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_folder(tmp_path, gz):
    files = _write_mnist(tmp_path, gz=gz)
    d = load_mnist_folder(tmp_path)
    assert d.x_train.shape == (5, 1, 28, 28) and d.x_test.shape == (3, 1, 28, 28)
    assert d.x_train.dtype == np.float32
    np.testing.assert_allclose(d.x_train[:, 0] * 255, files["train-images-idx3-ubyte"], atol=1e-3)
    assert np.array_equal(d.y_test, files["t10k-labels-idx1-ubyte"])
    assert load_dataset("mnist", tmp_path).x_train.shape[0] == 5


def test_mnist_errors(tmp_path):
    with pytest.raises(ColcombError, match="--data-dir"):
        load_dataset("mnist")
    with pytest.raises(ColcombError, match="no such folder"):
        load_dataset("mnist", tmp_path / "nope")
    with pytest.raises(ColcombError, match="train-images-idx3-ubyte"):
        load_mnist_folder(tmp_path)
    _write_mnist(tmp_path, n_train=0)
    with pytest.raises(ColcombError, match="no images"):
        load_mnist_folder(tmp_path)
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(4, np.uint8)))
    with pytest.raises(ColcombError, match=r"3 images but .* 4 labels"):
        load_mnist_folder(tmp_path)


def test_read_idx_rejects_bad_files():
    with pytest.raises(ColcombError, match="not an unsigned-byte IDX"):
        read_idx(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(ColcombError, match="promises"):
        read_idx(_idx(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ColcombError, match="too short"):
        read_idx(b"\x00")


def _cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    obj = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
           b"labels": [int(v) for v in rng.integers(0, 10, n)], b"batch_label": b"x"}
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return obj


def test_cifar10_folder(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    b1 = _cifar_batch(root / "data_batch_1", 4, 0)
    _cifar_batch(root / "data_batch_2", 3, 1)
    t = _cifar_batch(root / "test_batch", 2, 2)
    d = load_cifar10_folder(tmp_path)  # finds the subfolder
    assert d.x_train.shape == (7, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(d.x_train[0].ravel() * 255, b1[b"data"][0], atol=1e-3)
    assert list(d.y_test) == t[b"labels"]
    assert d.classes == 10


def test_cifar10_refuses_foreign_pickles_and_missing_batches(tmp_path):
    with pytest.raises(ColcombError, match="data_batch_1"):
        load_cifar10_folder(tmp_path)
    _cifar_batch(tmp_path / "data_batch_1", 2, 0)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ColcombError, match="refusing"):
        load_cifar10_folder(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ColcombError, match="3072"):
        load_cifar10_folder(tmp_path)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ColcombError) as err:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(err.value)


def test_stratified_split_is_fixed_and_balanced():
    y = np.repeat(np.arange(4), 10)
    tr, te = stratified_split(y, 0.2)
    tr2, te2 = stratified_split(y, 0.2)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert sorted(np.concatenate([tr, te])) == list(range(40))
    assert np.bincount(y[te]).tolist() == [2, 2, 2, 2]


def test_balanced_subset():
    y = np.repeat(np.arange(3), [10, 20, 30])
    idx = balanced_subset(y, 0.1)
    assert np.bincount(y[idx]).tolist() == [1, 2, 3]
    assert len(set(idx)) == len(idx)
    with pytest.raises(ColcombError):
        balanced_subset(y, 0.0)


def test_builtin_digits_and_text():
    d = load_dataset("digits")
    assert d.x_train.shape[1:] == (1, 8, 8) and d.classes == 10
    assert len(d.y_train) + len(d.y_test) == 1797
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    t = load_dataset("text")
    assert len(t.train) > 4000 and len(t.test) > 400
    assert set(t.train) <= set(t.vocab)
    ids = t.encode(t.test)
    assert ids.max() < len(t.vocab)
