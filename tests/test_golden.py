"""The golden model against independent computations: numpy matmul of the dequantized pruned
matrix, and exact rational arithmetic for the requantization."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import (
    AccumulatorOverflow,
    accumulate,
    accumulator_bound,
    requantize,
    run_layer,
    run_network,
)
from colcomb.packer.pack import PackOptions, pack_layer
from colcomb.packer.packed import Requant, activation_clamp, identity_requant


def test_accumulator_equals_numpy_on_dequantized_pruned_matrix(packed_layer, rng):
    w, layer = packed_layer(rows=30, cols=50, density=0.25, alpha=4, gamma=0.3, row_block=7,
                            section=20, quant="row")
    x = rng.integers(-128, 128, (9, 50))
    acc = accumulate(layer, x)
    # independent path: float matmul with the dequantized pruned dense matrix
    expect = x.astype(np.float64) @ layer.dense().T
    assert np.allclose(acc * layer.row_scales()[None, :], expect, rtol=1e-12, atol=1e-9)
    # and the dequantized matrix is the original within pruning and half a step
    kept = layer.dense_int() != 0
    step = layer.row_scales()[:, None]
    assert (np.abs(layer.dense() - w)[kept] <= np.broadcast_to(step, w.shape)[kept] / 2 + 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    alpha=st.integers(1, 8),
    gamma=st.sampled_from([0.0, 0.5]),
    rows=st.integers(1, 16),
    cols=st.integers(1, 24),
)
def test_accumulator_equals_integer_matmul(seed, alpha, gamma, rows, cols):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < 0.3)
    layer = pack_layer("h", w, PackOptions(alpha=alpha, gamma=gamma))
    x = rng.integers(-128, 128, (3, cols))
    assert np.array_equal(accumulate(layer, x), x @ layer.dense_int().T)


def _reference_requant(acc: int, bias: int, mult: int, shift: int, lo: int, hi: int) -> int:
    value = Fraction((acc + bias) * mult, 2**shift)
    return min(max(math.floor(value + Fraction(1, 2)), lo), hi)


@settings(max_examples=200, deadline=None)
@given(
    acc=st.integers(-(2**31) + 2**20, 2**31 - 2**20),
    bias=st.integers(-(2**19), 2**19),
    mult=st.integers(0, 2**16 - 1),
    shift=st.integers(0, 40),
    act=st.sampled_from(["none", "relu"]),
)
def test_requantize_rounds_half_up_and_clamps(acc, bias, mult, shift, act):
    layer = _one_row_layer(Requant(np.array([bias]), np.array([mult]), shift, act,
                                   activation_clamp(act, 8)))
    got = int(requantize(layer, np.array([[acc]]))[0, 0])
    lo, hi = layer.requant.clamp
    assert got == _reference_requant(acc, bias, mult, shift, lo, hi)


def test_round_half_up_on_exact_halves():
    layer = _one_row_layer(Requant(np.array([0]), np.array([1]), 1, "none", (-128, 127)))
    out = requantize(layer, np.array([[-3], [-1], [1], [3]]))
    assert out.ravel().tolist() == [-1, 0, 1, 2]  # -1.5 -> -1, -0.5 -> 0, 0.5 -> 1, 1.5 -> 2


def _one_row_layer(requant):
    layer = pack_layer("r", np.ones((1, 1)), PackOptions(alpha=1))
    return dataclasses.replace(layer, requant=requant)


def test_accumulator_overflow_is_detected():
    w = np.full((2, 40), 1.0)
    # pack refuses a layer that could overflow; the golden model must still catch one made by hand
    layer = dataclasses.replace(pack_layer("big", w, PackOptions(alpha=1)), acc_bits=16)
    x = np.full((1, 40), 127)
    assert accumulator_bound(layer) > 2**15
    with pytest.raises(AccumulatorOverflow, match="16-bit accumulator"):
        accumulate(layer, x)
    small = np.full((1, 40), 1)
    assert accumulate(layer, small)[0, 0] == 40 * 127


def test_inputs_outside_the_data_width_are_rejected(packed_layer):
    _, layer = packed_layer(rows=4, cols=6)
    with pytest.raises(ColcombError, match="8-bit data"):
        run_layer(layer, np.full(6, 128))
    with pytest.raises(ColcombError, match="vectors of 6 inputs"):
        run_layer(layer, np.zeros((2, 5), int))
    with pytest.raises(ColcombError, match="integers"):
        run_layer(layer, np.full(6, 0.5))


def test_network_chains_layers_and_checks_shapes(rng):
    w1 = rng.standard_normal((12, 20)) * (rng.random((12, 20)) < 0.4)
    w2 = rng.standard_normal((5, 12)) * (rng.random((5, 12)) < 0.5)
    l1 = pack_layer("l1", w1, PackOptions(alpha=4, activation="relu"))
    l2 = pack_layer("l2", w2, PackOptions(alpha=2))
    x = rng.integers(-128, 128, (4, 20))
    trace = run_network([l1, l2], x, trace=True)
    assert np.array_equal(trace[0], run_layer(l1, x))
    assert np.array_equal(trace[1], run_layer(l2, trace[0]))
    assert (trace[0] >= 0).all()
    with pytest.raises(ColcombError, match="only layers whose shapes chain"):
        run_network([l2, l1], rng.integers(-128, 128, (1, 12)))


def test_identity_requant_saturates_to_the_output_width():
    layer = dataclasses.replace(
        pack_layer("s", np.array([[1.0, -1.0]]), PackOptions(alpha=2, gamma=1.0)),
        requant=identity_requant(1, 8),
    )
    layer2 = pack_layer("s2", np.array([[1.0], [-1.0]]), PackOptions(alpha=1))
    layer2 = dataclasses.replace(layer2, requant=identity_requant(2, 8))
    y = run_layer(layer2, np.array([[100]]))
    assert y.ravel().tolist() == [127, -128]  # 100*127 saturates both ways
    # the conflict keeps the first of two equal magnitudes: weight +127 on column 0
    assert run_layer(layer, np.array([[3, 0]])).ravel().tolist() == [127]


def _wide_layer(weights: np.ndarray):
    """32-bit weights and data, 40-bit accumulator: single products reach 2**62."""
    from colcomb.packer.packed import PackedBlock, PackedLayer

    w = np.asarray(weights, np.int64)
    rows, cols = w.shape
    block = PackedBlock(0, rows, tuple((c,) for c in range(cols)), w, np.zeros_like(w), np.ones(rows))
    layer = PackedLayer("wide", (rows, cols), 1, 0.0, 32, (block,), identity_requant(rows, 32),
                        data_bits=32, acc_bits=40)
    layer.validate()
    return layer


def test_wide_products_never_wrap_int64_into_range():
    # four products of 2**62: the true sum 2**64 wraps to 0 in int64, which looks in range
    layer = _wide_layer(np.full((1, 4), -(2**31)))
    x = np.full((1, 4), -(2**31))
    with pytest.raises(AccumulatorOverflow, match="18446744073709551616"):
        accumulate(layer, x)
    assert accumulator_bound(layer) == 4 * 2**62  # exact, not wrapped


def test_wide_products_that_cancel_are_exact():
    big = 2**31 - 1
    layer = _wide_layer(np.array([[big, big, -big, -big, 3]]))
    x = np.array([[-(2**31), -(2**31), -(2**31), -(2**31), 5]])
    assert accumulate(layer, x).tolist() == [[15]]


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.full(6, 2**64 - 1, np.uint64), "8-bit data"),  # np.int64() would wrap it to -1
        (np.full(6, 1e30), "8-bit data"),  # np.int64() would saturate it
        (np.full(6, "a"), "expected integers"),
        (np.full(6, 1 + 0j), "expected integers"),
    ],
)
def test_inputs_of_other_types_get_one_clear_error(packed_layer, x, message):
    _, layer = packed_layer(rows=4, cols=6)
    with pytest.raises(ColcombError, match=message):
        run_layer(layer, x)
