"""Tiny synthetic CIFAR-10 folders in the real format (python pickle batches), for tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar(root: Path, train: int = 200, test: int = 100, classes: int = 10, seed: int = 0) -> Path:
    """``data_batch_1``, ``data_batch_2`` and ``test_batch`` of 32x32 RGB images whose class is a
    fixed random colour template plus noise: learnable in a few epochs. Returns ``root``."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (classes, 3, 4, 4))
    templates = np.repeat(np.repeat(templates, 8, axis=2), 8, axis=3)  # blocks of 8x8 pixels

    def batch(n: int) -> dict:
        y = np.arange(n) % classes
        rng.shuffle(y)
        x = templates[y] * 0.6 + rng.integers(0, 256, (n, 3, 32, 32)) * 0.4
        return {b"data": x.astype(np.uint8).reshape(n, 3072), b"labels": [int(v) for v in y],
                b"batch_label": b"synthetic"}

    root.mkdir(parents=True, exist_ok=True)
    half = train // 2
    for name, n in (("data_batch_1", half), ("data_batch_2", train - half), ("test_batch", test)):
        with open(root / name, "wb") as f:
            pickle.dump(batch(n), f)
    return root
