"""Symmetric weight quantization and the integer requantization of a layer's outputs.

Weights: ``q = round(w / scale)`` with ``|q| <= 2**(bits-1) - 1``; the dequantized weight
``q * scale`` is within half a step of ``w``. One scale per layer, per row block, or per row
(output channel); power-of-two scales as an option (a shift in hardware instead of a multiply).

Column sections share their rows' scale: the partial sums of all sections of a row meet in one
accumulator, which integer-exact accumulation allows only when they share one scale.
"""

from __future__ import annotations

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.packed import (
    MAX_SHIFT,
    MULTIPLIER_BITS,
    Requant,
    activation_clamp,
)

GRANULARITIES = ("layer", "block", "row")


def scale_for(max_abs: float, bits: int, power_of_two: bool = False) -> float:
    """The step that maps ``max_abs`` to the largest positive integer of ``bits`` bits."""
    if not np.isfinite(max_abs):
        raise ColcombError("cannot quantize NaN or infinite weights; fix the model first")
    qmax = (1 << (bits - 1)) - 1
    if max_abs <= 0:
        return 1.0
    step = max_abs / qmax
    if power_of_two:
        step = float(2.0 ** np.ceil(np.log2(step)))
    return float(step)


def quantize_values(values: np.ndarray, scale: np.ndarray | float, bits: int) -> np.ndarray:
    """Integers nearest to ``values / scale`` (rows broadcast against a per-row ``scale``)."""
    qmax = (1 << (bits - 1)) - 1
    s = np.asarray(scale, np.float64)
    if s.ndim == 1:
        s = s[:, None]
    return np.clip(np.rint(np.asarray(values, np.float64) / s), -qmax, qmax).astype(np.int64)


def row_scales(
    blocks: list[np.ndarray], bits: int, granularity: str = "layer", power_of_two: bool = False
) -> list[np.ndarray]:
    """Per-row scales for each block's values (one array of block rows per block)."""
    if granularity not in GRANULARITIES:
        raise ColcombError(
            f"unknown quantization granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}"
        )
    if not 2 <= bits <= 32:
        raise ColcombError(f"bits must lie in [2, 32], got {bits}")
    if granularity == "layer":
        top = max((float(np.abs(b).max(initial=0.0)) for b in blocks), default=0.0)
        s = scale_for(top, bits, power_of_two)
        return [np.full(b.shape[0], s) for b in blocks]
    if granularity == "block":
        return [
            np.full(b.shape[0], scale_for(float(np.abs(b).max(initial=0.0)), bits, power_of_two))
            for b in blocks
        ]
    return [
        np.array([scale_for(float(m), bits, power_of_two) for m in np.abs(b).max(axis=1, initial=0.0)])
        for b in blocks
    ]


def fixed_point(real: np.ndarray) -> tuple[np.ndarray, int]:
    """Unsigned multipliers below 2**MULTIPLIER_BITS and one shift with ``m / 2**shift ~ real``."""
    r = np.asarray(real, np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ColcombError("requantization scales must be finite and non-negative")
    top = float(r.max(initial=0.0))
    if top == 0:
        return np.zeros(r.shape, np.int64), 0
    limit = (1 << MULTIPLIER_BITS) - 1
    shift = int(np.floor(np.log2(limit / top)))
    shift = min(max(shift, 0), MAX_SHIFT)
    m = np.rint(r * 2.0**shift).astype(np.int64)
    if m.max() > limit:
        raise ColcombError(
            f"output scale {top:g} is too large for a {MULTIPLIER_BITS}-bit multiplier; "
            f"use a coarser output scale"
        )
    return m, shift


def make_requant(
    real_multiplier: np.ndarray,
    bias: np.ndarray | None,
    out_bits: int,
    activation: str = "none",
    six: int | None = None,
) -> Requant:
    """Requant stage computing ``round((acc + bias) * real_multiplier)`` per row, then the clamp.

    ``bias`` is in accumulator units (integer, rounded here); ``six`` is 6.0 as an output integer.
    """
    mult, shift = fixed_point(real_multiplier)
    rows = mult.shape[0]
    b = np.zeros(rows, np.int64) if bias is None else np.rint(np.asarray(bias, np.float64))
    if not np.all(np.isfinite(b)):
        raise ColcombError("biases hold NaN or infinite values; fix the model first")
    if b.size and np.abs(b).max() >= 2.0**62:  # a cast to int64 would not keep the value
        raise ColcombError(
            f"a bias of {np.abs(b).max():g} accumulator steps does not fit any accumulator; "
            f"check the bias and the weight and activation scales"
        )
    return Requant(
        bias=b.astype(np.int64),
        multiplier=mult,
        shift=shift,
        activation=activation,
        clamp=activation_clamp(activation, out_bits, six),
    )
