"""The compiled program's cell words: one encoder (packer/rom.py) agrees with the hardware's cell
layout, field by field."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.hdl.program import cell_layout, pack_struct
from colcomb.packer.packed import select_bits
from colcomb.packer.rom import cell_words, decode_cells


@given(bits=st.integers(2, 8), alpha=st.integers(1, 8), seed=st.integers(0, 2**16))
@settings(max_examples=100, deadline=None)
def test_cell_words_fill_the_hardware_cell_layout(bits, alpha, seed):
    rng = np.random.default_rng(seed)
    weights = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (3, 4))
    selects = rng.integers(0, alpha, (3, 4)) if alpha > 1 else np.zeros((3, 4), np.int64)
    words = cell_words(weights, selects, bits)
    layout = cell_layout(bits, alpha)
    assert layout.size == bits + (select_bits(alpha) if alpha > 1 else 0)
    for w, s, word in zip(weights.ravel(), selects.ravel(), words.ravel(), strict=True):
        assert int(word) == pack_struct(layout, {"weight": w, "select": s})
        assert 0 <= int(word) < 1 << layout.size
    got_w, got_s = decode_cells(words.ravel(), bits, 3, 4)
    assert np.array_equal(got_w, weights) and np.array_equal(got_s, selects)
