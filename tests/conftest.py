"""Shared fixtures: random sparse matrices and packed layers built through the packer."""

from __future__ import annotations

import numpy as np
import pytest

from colcomb.packer.manifest import write_manifest
from colcomb.packer.pack import PackOptions, pack_layer


def sparse_matrix(rng: np.random.Generator, rows: int, cols: int, density: float) -> np.ndarray:
    """Gaussian weights with about ``density`` of them nonzero."""
    return rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def packed_layer(rng):
    """A factory: pack a random sparse matrix with the given options."""

    def make(rows=24, cols=40, density=0.2, name="fc", bias=None, **opts):
        w = sparse_matrix(rng, rows, cols, density)
        return w, pack_layer(name, w, PackOptions(**opts), bias)

    return make


@pytest.fixture
def tiny_manifest(tmp_path):
    """One 4x6 layer, 4-bit weights and data, 12-bit accumulators, alpha 2."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 6)) * (rng.random((4, 6)) < 0.4)
    layer = pack_layer("tiny", w, PackOptions(alpha=2, bits=4, data_bits=4, acc_bits=12),
                       rng.standard_normal(4) * 0.1)
    return write_manifest([layer], tmp_path / "m").parent
