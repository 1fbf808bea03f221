"""Requantization precision: every row's integer output within one step of the exactly rounded
rational result, whatever the other rows' scales (dead rows, tiny scales, every --quant mode).

The reference is exact rational arithmetic (fractions.Fraction) on the real-valued scale the
packer asked for, never the multipliers and shifts under test.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import accumulate, requantize
from colcomb.packer.manifest import load_manifest, seal_manifest, write_manifest
from colcomb.packer.pack import PackOptions, pack_layer
from colcomb.packer.packed import signed_range
from colcomb.packer.quantize import fixed_point


def _exact(acc: int, bias: int, scale: float, lo: int, hi: int) -> int:
    """round_half_up((acc + bias) * scale), clamped, in exact rationals."""
    value = Fraction(acc + bias) * Fraction(scale)
    return min(max(math.floor(value + Fraction(1, 2)), lo), hi)


def _worst_error(layer, x: np.ndarray) -> int:
    """Largest |hardware integer - exactly rounded rational| over inputs ``x`` and every row."""
    acc = accumulate(layer, x)
    got = requantize(layer, acc)
    scales = layer.row_scales()  # what pack_layer asked the requantization to multiply by
    lo, hi = layer.requant.clamp
    worst = 0
    for b in range(acc.shape[0]):
        for r in range(layer.rows):
            ref = _exact(int(acc[b, r]), int(layer.requant.bias[r]), float(scales[r]), lo, hi)
            worst = max(worst, abs(int(got[b, r]) - ref))
    return worst


def _inputs(rng: np.random.Generator, n: int, cols: int, data_bits: int) -> np.ndarray:
    lo, hi = signed_range(data_bits)
    x = rng.integers(lo, hi + 1, (n, cols))
    x[0], x[1] = lo, hi
    return x


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 12),
    cols=st.integers(1, 16),
    bits=st.integers(2, 16),
    data_bits=st.integers(2, 16),
    quant=st.sampled_from(["layer", "block", "row"]),
    row_block=st.sampled_from([None, 2, 5]),
    dead=st.integers(0, 3),
    log_range=st.integers(0, 60),
    power_of_two=st.booleans(),
)
def test_every_row_within_one_step_of_exact(seed, rows, cols, bits, data_bits, quant, row_block,
                                            dead, log_range, power_of_two):
    """Random layers whose rows' magnitudes span up to 2**60 (tiny scales down to ~2**-70),
    with dead rows, biases, 2..16-bit weights and data, every quantization granularity."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < 0.6)
    w *= 2.0 ** -rng.uniform(0, log_range, (rows, 1))  # rows of very different scales
    w[rng.choice(rows, min(dead, rows), replace=False)] = 0.0  # dead rows
    opts = PackOptions(alpha=int(rng.integers(1, 5)), gamma=0.25, bits=bits, data_bits=data_bits,
                       acc_bits=40, quant=quant, row_block=row_block, power_of_two=power_of_two)
    layer = pack_layer("p", w, opts)
    bias = rng.integers(-(1 << 36), 1 << 36, rows) >> rng.integers(0, 37, rows)
    layer = dataclasses.replace(layer, requant=dataclasses.replace(layer.requant, bias=bias))
    layer.validate()
    assert _worst_error(layer, _inputs(rng, 6, cols, data_bits)) <= 1


@settings(max_examples=300, deadline=None)
@given(scale=st.floats(2.0**-80, 65535.0, allow_subnormal=False), acc=st.integers(-(2**39), 2**39 - 1))
def test_fixed_point_keeps_16_significant_bits(scale, acc):
    """Each multiplier alone: 2**15 <= m < 2**16 unless the shift is at its limit, and
    (acc * m) >> shift rounds to within one step of acc * scale (16-bit output range)."""
    m, s = fixed_point(np.array([scale]))
    m, s = int(m[0]), int(s[0])
    assert 0 <= s <= 62 and m < 1 << 16
    if s < 62:
        assert m >= 1 << 15
    lo, hi = signed_range(16)
    got = min(max((acc * m + ((1 << s) >> 1)) >> s, lo), hi)
    assert abs(got - _exact(acc, 0, scale, lo, hi)) <= 1


def test_fixed_point_rejects_scales_beyond_the_multiplier():
    with pytest.raises(ColcombError, match="too large"):
        fixed_point(np.array([1e-3, 70000.0]))
    m, s = fixed_point(np.array([0.0, 0.5, 1.0]))
    assert m.tolist() == [0, 1 << 15, 1 << 15] and s.tolist() == [0, 16, 15]


def test_dead_row_does_not_change_the_other_rows():
    """The issue's reproduction: [[0.02, -0.01, 0.015], [0, 0, 0]] with --quant row. Before,
    the dead row's scale 1.0 set the layer's shift and left the live row 5 of 32768."""
    live = np.array([[0.02, -0.01, 0.015]])
    for data_bits in (8, 16):
        opts = PackOptions(alpha=1, quant="row", data_bits=data_bits)
        alone = pack_layer("z", live, opts)
        with_dead = pack_layer("z", np.vstack([live, np.zeros((1, 3))]), opts)
        assert with_dead.requant.multiplier[0] == alone.requant.multiplier[0] >= 1 << 15
        assert with_dead.requant.shift[0] == alone.requant.shift[0]
        x = np.array([[signed_range(data_bits)[1]] * 3])
        assert _worst_error(with_dead, x) <= 1
        assert requantize(with_dead, accumulate(with_dead, x))[0, 0] != 0


@pytest.mark.parametrize("quant", ["row", "block"])
def test_dead_rows_and_blocks_get_the_layer_scale(quant):
    w = np.zeros((6, 4))
    w[0] = [0.5, -0.25, 0, 0]
    w[1] = [0.001, 0, 0, 0.002]
    layer = pack_layer("d", w, PackOptions(alpha=1, quant=quant, row_block=2))
    layer_scale = pack_layer("d", w, PackOptions(alpha=1, quant="layer")).row_scales()[0]
    assert np.all(layer.row_scales()[2:] == layer_scale)  # rows 2..5 (blocks 1, 2) are dead


def test_manifest_reads_one_shift_for_every_row(tmp_path):
    """A manifest written before shifts were per row holds one integer: it means every row."""
    w = np.random.default_rng(3).standard_normal((5, 7))
    layer = pack_layer("old", w, PackOptions(alpha=2))
    layer = dataclasses.replace(layer, requant=dataclasses.replace(layer.requant, shift=np.full(5, 20)))
    write_manifest([layer], tmp_path / "m")
    path = tmp_path / "m" / "manifest.json"
    doc = json.loads(path.read_text())
    assert doc["layers"][0]["requant"]["shift"] == [20] * 5  # written per row
    doc["layers"][0]["requant"]["shift"] = 20
    path.write_text(json.dumps(doc))
    seal_manifest(tmp_path / "m")  # the edit is on purpose: re-seal the manifest's digest
    assert load_manifest(tmp_path / "m").layers[0].requant.shift.tolist() == [20] * 5
    doc = json.loads(path.read_text())
    doc["layers"][0]["requant"]["shift"] = [20] * 4
    path.write_text(json.dumps(doc))
    with pytest.raises(ColcombError, match="shift has 4 entries, the layer has 5 rows"):
        seal_manifest(tmp_path / "m")  # sealing checks everything else: the length is refused
