"""Integer-exact golden model of the column-combined systolic array.

It computes what the hardware computes, the way the hardware computes it: each packed column
carries its group's input lanes, each cell picks lane ``select`` and multiplies it by its weight,
each row sums its cells. Then bias, integer multiplier and shift of the row (round half up), clamp. Every
other part of colcomb (the cocotb scoreboard, the training flow's integer evaluation, the
packer's accuracy figures) calls this module as the one reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.packed import PackedLayer, Requant, signed_range


class AccumulatorOverflow(ColcombError):
    """A sum left the accumulator's two's complement range."""


def check_inputs(layer: PackedLayer, x: np.ndarray) -> np.ndarray:
    """Return ``x`` as a (batch, cols) int64 array; reject a wrong shape or out-of-width values."""
    return check_vectors(x, layer.cols, layer.data_bits, f"layer {layer.name!r}")


def check_vectors(x: np.ndarray, cols: int, data_bits: int, what: str) -> np.ndarray:
    """``x`` as a (batch, cols) int64 array of ``data_bits``-bit integers, the input of ``what``
    (named in the errors)."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != cols:
        raise ColcombError(
            f"{what} takes vectors of {cols} inputs, got an array of shape "
            f"{list(np.shape(x))}; pass (batch, {cols}) or ({cols},)"
        )
    lo, hi = signed_range(data_bits)
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)
            or np.issubdtype(arr.dtype, np.floating)):
        raise ColcombError(f"{what}: inputs hold {arr.dtype} values, expected integers (quantized activations)")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ColcombError(f"{what}: inputs must be integers (quantized activations)")
    # range first, in the array's own type: a cast to int64 would wrap uint64 or saturate floats
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ColcombError(
            f"{what}: inputs range [{arr.min()}, {arr.max()}] does not fit "
            f"{data_bits}-bit data [{lo}, {hi}]; quantize them first"
        )
    return arr.astype(np.int64)


def accumulate(layer: PackedLayer, x: np.ndarray) -> np.ndarray:
    """(batch, rows) accumulator values (before bias) of the packed array for inputs ``x``."""
    xs = check_inputs(layer, x)
    batch = xs.shape[0]
    padded = np.concatenate([xs, np.zeros((batch, 1), np.int64)], axis=1)  # column `cols` is 0
    # int64 sums are exact while every partial sum stays below 2**63; wider weight x data widths
    # (up to 32 x 32 bits) could wrap silently and look in range, so those sum Python integers
    wide = any(_row_abs_bound(layer, block) >= 1 << 63 for block in layer.blocks)
    dtype = object if wide else np.int64
    acc = np.zeros((batch, layer.rows), dtype)
    for block in layer.blocks:
        if not block.packed_columns:
            continue
        lanes = block.lane_table(layer.alpha, fill=layer.cols)  # (G, alpha)
        g_idx = np.arange(block.packed_columns)[None, :]
        # the lane each cell's multiplexer picks: original column index, (block rows, G)
        picked = lanes[g_idx, block.selects]
        weights = block.weights.astype(dtype)
        for start in range(0, batch, 256):
            chunk = padded[start : start + 256].astype(dtype)
            acc[start : start + 256, block.row_start : block.row_stop] = np.einsum(
                "brg,rg->br", chunk[:, picked], weights
            )
    lo, hi = signed_range(layer.acc_bits)
    _check_range(acc, lo, hi, layer, "accumulator")
    return acc.astype(np.int64)


def requantize(layer: PackedLayer, acc: np.ndarray) -> np.ndarray:
    """Bias, multiply, shift with round half up, clamp: accumulator values to output integers
    (each row with its own multiplier and shift)."""
    rq: Requant = layer.requant
    lo, hi = signed_range(layer.acc_bits)
    biased = acc + rq.bias[None, :]
    _check_range(biased, lo, hi, layer, "accumulator + bias")
    y = biased * rq.multiplier[None, :]
    # row r: (y + 2**(shift[r]-1)) >> shift[r]; no rounding term where shift[r] == 0
    half = np.where(rq.shift > 0, np.left_shift(1, np.maximum(rq.shift - 1, 0)), 0)
    y = (y + half[None, :]) >> rq.shift[None, :]
    return np.clip(y, rq.clamp[0], rq.clamp[1])


def run_layer(layer: PackedLayer, x: np.ndarray) -> np.ndarray:
    """(batch, rows) integer outputs of one layer."""
    return requantize(layer, accumulate(layer, x))


def run_network(
    layers: Sequence[PackedLayer], x: np.ndarray, *, trace: bool = False
) -> np.ndarray | list[np.ndarray]:
    """Chain layers, each one's outputs the next one's inputs. With ``trace`` return every
    layer's outputs (a list, last = network output)."""
    if not layers:
        raise ColcombError("the network has no layers")
    for prev, nxt in pairwise(layers):
        if nxt.cols != prev.rows:
            raise ColcombError(
                f"layer {nxt.name!r} takes {nxt.cols} inputs but {prev.name!r} gives {prev.rows} "
                f"outputs; only layers whose shapes chain form a network"
            )
    outs = []
    y = np.asarray(x)
    for layer in layers:
        y = run_layer(layer, y)
        outs.append(y)
    return outs if trace else outs[-1]


def accumulator_bound(layer: PackedLayer) -> int:
    """Largest |accumulator + bias| any input of the data width can produce."""
    mag = 1 << (layer.data_bits - 1)
    row_abs = np.zeros(layer.rows, np.int64)  # sums of |weight| fit int64 (32-bit weights)
    for block in layer.blocks:
        row_abs[block.row_start : block.row_stop] = np.abs(block.weights).sum(axis=1)
    # Python integers from here: |weights| x 2**31 + |bias| can exceed int64 and wrap
    bias = [abs(int(b)) for b in layer.requant.bias]
    return max((int(r) * mag + b for r, b in zip(row_abs, bias, strict=True)), default=0)


def _row_abs_bound(layer: PackedLayer, block) -> int:
    """Largest sum of |weight x input| of one row of ``block`` (a bound on every partial sum)."""
    if not block.weights.size:
        return 0
    return int(np.abs(block.weights).sum(axis=1).max()) << (layer.data_bits - 1)


def _check_range(values: np.ndarray, lo: int, hi: int, layer: PackedLayer, what: str) -> None:
    if values.size and (values.min() < lo or values.max() > hi):
        bad = values.min() if values.min() < lo else values.max()
        raise AccumulatorOverflow(
            f"layer {layer.name!r}: {what} reached {bad}, outside the {layer.acc_bits}-bit "
            f"accumulator [{lo}, {hi}]; widen acc_bits or use fewer weight/data bits"
        )
