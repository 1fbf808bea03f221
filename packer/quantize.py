"""Symmetric weight quantization and the integer requantization of a layer's outputs.

Weights: ``q = round(w / scale)`` with ``|q| <= 2**(bits-1) - 1``; the dequantized weight
``q * scale`` is within half a step of ``w``. One scale per layer, per row block, or per row
(output channel); power-of-two scales as an option (a shift in hardware instead of a multiply).

Column sections share their rows' scale: the partial sums of all sections of a row meet in one
accumulator, which integer-exact accumulation allows only when they share one scale.

Requantization: each row gets its own multiplier and shift (:func:`fixed_point`), so no row's
precision depends on another row's scale; rows without weights get a neutral scale.
"""

from __future__ import annotations

import math

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
    """Per-row scales for each block's values (one array of block rows per block).

    A row (``row``) or block (``block``) without any nonzero weight gets the neutral scale: the
    layer's own scale (what ``layer`` quantization would give it; 1.0 for an all-zero layer).
    Its integer weights are all 0 whatever the scale, and a scale of the layer's size keeps its
    bias and requantization multiplier in the same range as the other rows'.
    """
    if granularity not in GRANULARITIES:
        raise ColcombError(
            f"unknown quantization granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}"
        )
    if not 2 <= bits <= 32:
        raise ColcombError(f"bits must lie in [2, 32], got {bits}")
    top = max((float(np.abs(b).max(initial=0.0)) for b in blocks), default=0.0)
    neutral = scale_for(top, bits, power_of_two)
    if granularity == "layer":
        return [np.full(b.shape[0], neutral) for b in blocks]

    def scale(max_abs: float) -> float:
        return scale_for(max_abs, bits, power_of_two) if max_abs > 0 else neutral

    if granularity == "block":
        return [np.full(b.shape[0], scale(float(np.abs(b).max(initial=0.0)))) for b in blocks]
    return [np.array([scale(float(m)) for m in np.abs(b).max(axis=1, initial=0.0)]) for b in blocks]


def fixed_point(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row unsigned multipliers below ``2**MULTIPLIER_BITS`` and per-row shifts with
    ``m / 2**shift ~ real``.

    Each row's multiplier is normalized on its own: ``2**15 <= m < 2**16`` (16 significant bits)
    unless the shift hits ``MAX_SHIFT`` (scales below ``2**-47``, whose outputs are far below
    one step anyway). The rounding error of ``m`` is then at most ``2**-16`` of the row's scale,
    so the output's error stays below one step for every row, whatever the other rows' scales.
    A scale of 0 gives ``m = 0, shift = 0``. Powers of two are exact (``m = 2**15``).
    """
    r = np.asarray(real, np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ColcombError("requantization scales must be finite and non-negative")
    limit = (1 << MULTIPLIER_BITS) - 1
    mult = np.zeros(r.shape, np.int64)
    shift = np.zeros(r.shape, np.int64)
    for i, value in enumerate(r.ravel()):
        if value == 0:
            continue
        _, e = math.frexp(float(value))  # value = f * 2**e, 0.5 <= f < 1
        s = min(MULTIPLIER_BITS - e, MAX_SHIFT)  # value * 2**s in [2**15, 2**16)
        m = round(math.ldexp(float(value), s)) if s >= 0 else round(value)  # ldexp is exact
        if m > limit and s > 0:  # f rounded up to 2**16: one bit less
            s -= 1
            m = round(math.ldexp(float(value), s))
        if m > limit or s < 0:
            raise ColcombError(
                f"output scale {value:g} is too large for a {MULTIPLIER_BITS}-bit multiplier "
                f"(at most {limit}); use a coarser output scale"
            )
        mult.flat[i], shift.flat[i] = m, s
    return mult, shift


def fixed_point_shared(real: np.ndarray) -> tuple[np.ndarray, int]:
    """Multipliers below ``2**MULTIPLIER_BITS`` with one shift for all of them,
    ``m / 2**shift ~ real``: for sums of terms that meet before one rounding (the integer
    residual add). The largest value sets the shift (it keeps 16 significant bits); smaller
    values keep fewer."""
    mult, shifts = fixed_point(real)
    live = shifts[mult > 0]
    shift = int(live.min()) if live.size else 0
    r = np.asarray(real, np.float64)
    shared = np.array([round(math.ldexp(float(v), shift)) for v in r.ravel()], np.int64).reshape(r.shape)
    return shared, shift


def make_requant(
    real_multiplier: np.ndarray,
    bias: np.ndarray | None,
    out_bits: int,
    activation: str = "none",
    six: int | None = None,
) -> Requant:
    """Requant stage computing ``round((acc + bias) * real_multiplier)`` per row, then the clamp;
    each row's multiplier and shift from :func:`fixed_point`.

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
