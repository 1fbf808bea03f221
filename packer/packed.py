"""The packed layer: what the packer produces, the manifest stores, the golden model and hardware run.

A layer's filter matrix (rows = output channels, columns = input channels) is split into row
blocks. Each block holds packed columns; packed column g combines the original columns
``groups[g]`` and each cell (r, g) keeps one integer weight plus a ``select``: the position inside
``groups[g]`` of the column whose weight it keeps. Row r's real weights are
``weights * scale[r]``. After accumulation each layer requantizes (see :class:`Requant`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from colcomb.core.errors import ColcombError

ACTIVATIONS = ("none", "relu", "relu6")
MULTIPLIER_BITS = 16  # requantization multipliers are unsigned, below 2**MULTIPLIER_BITS
MAX_SHIFT = 62
MAX_ACC_BITS = 40  # keeps (acc + bias) * multiplier + rounding inside int64
MAX_ALPHA = 1024  # lanes per packed column: bounds each cell's multiplexer and the lane tables


def signed_range(bits: int) -> tuple[int, int]:
    """Smallest and largest two's complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def select_bits(alpha: int) -> int:
    """Bits of a cell's select field: enough for positions 0..alpha-1, at least one."""
    return max(1, (alpha - 1).bit_length())


@dataclass(frozen=True)
class Requant:
    """Output stage of a layer, in this order: ``y = acc + bias``; ``y = round(y * multiplier /
    2**shift)`` with round half up (toward +infinity); clamp to ``clamp`` (which the activation
    chose, inside the output width).

    bias, multiplier and shift are int64 arrays with one entry per output row. Each row has its
    own shift, so a row's multiplier keeps its precision whatever the other rows' scales are
    (:func:`colcomb.packer.quantize.fixed_point` normalizes every multiplier to 16 significant
    bits). A scalar ``shift`` (older manifests, hand-built layers) means that shift for every row.
    """

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    activation: str
    clamp: tuple[int, int]

    def __post_init__(self):
        shift = np.asarray(self.shift)
        if shift.ndim == 0:  # one shift for every row
            shift = np.full(np.shape(self.bias)[:1] or (0,), int(shift), np.int64)
        object.__setattr__(self, "shift", shift.astype(np.int64))

    def validate(self, rows: int, out_bits: int, where: str) -> None:
        lo, hi = signed_range(out_bits)
        if self.bias.shape != (rows,) or self.multiplier.shape != (rows,) or self.shift.shape != (rows,):
            raise ColcombError(
                f"{where}: bias, multiplier and shift need {rows} entries (one per output row), "
                f"got {self.bias.shape[0] if self.bias.ndim else 'scalar'}, "
                f"{self.multiplier.shape[0] if self.multiplier.ndim else 'scalar'} and "
                f"{self.shift.shape[0] if self.shift.ndim else 'scalar'}"
            )
        if self.multiplier.size and (
            self.multiplier.min() < 0 or self.multiplier.max() >= 1 << MULTIPLIER_BITS
        ):
            raise ColcombError(
                f"{where}: multipliers must lie in [0, {1 << MULTIPLIER_BITS}), got range "
                f"[{self.multiplier.min()}, {self.multiplier.max()}]; raise the shift instead"
            )
        if self.shift.size and (self.shift.min() < 0 or self.shift.max() > MAX_SHIFT):
            bad = self.shift.min() if self.shift.min() < 0 else self.shift.max()
            raise ColcombError(f"{where}: shift {bad} is outside [0, {MAX_SHIFT}]")
        if self.activation not in ACTIVATIONS:
            raise ColcombError(
                f"{where}: activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}"
            )
        c_lo, c_hi = self.clamp
        if self.activation != "none" and c_lo < 0:
            raise ColcombError(
                f"{where}: activation {self.activation} clamps at 0 or above, but the clamp is "
                f"[{c_lo}, {c_hi}]; use activation none for a negative lower bound"
            )
        if not lo <= c_lo <= c_hi <= hi:
            raise ColcombError(
                f"{where}: clamp [{c_lo}, {c_hi}] must be ordered and inside the {out_bits}-bit "
                f"output range [{lo}, {hi}]"
            )


def activation_clamp(activation: str, out_bits: int, six: int | None = None) -> tuple[int, int]:
    """Clamp bounds for an activation at an output width; ``six`` is the integer for 6.0."""
    lo, hi = signed_range(out_bits)
    if activation == "none":
        return lo, hi
    if activation == "relu":
        return 0, hi
    if activation == "relu6":
        if six is None or six < 0:
            raise ColcombError("relu6 needs the integer that represents 6.0 (a value >= 0)")
        return 0, min(six, hi)
    raise ColcombError(f"activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")


def identity_requant(rows: int, out_bits: int, activation: str = "none") -> Requant:
    """Requantization that passes the accumulator through (then clamps and saturates)."""
    return Requant(
        bias=np.zeros(rows, np.int64),
        multiplier=np.ones(rows, np.int64),
        shift=0,
        activation=activation,
        clamp=activation_clamp(activation, out_bits),
    )


@dataclass(frozen=True)
class PackedBlock:
    """Rows [row_start, row_stop) of a layer with their own groups, weights and selects."""

    row_start: int
    row_stop: int
    groups: tuple[tuple[int, ...], ...]
    weights: np.ndarray  # int64, (block rows, packed columns)
    selects: np.ndarray  # int64, same shape
    scale: np.ndarray  # float64, (block rows,): one scale per row (equal entries for one per block)

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start

    @property
    def packed_columns(self) -> int:
        return len(self.groups)

    def lane_table(self, alpha: int, fill: int) -> np.ndarray:
        """(packed columns, alpha) original column index per input lane; ``fill`` pads short groups."""
        table = np.full((len(self.groups), alpha), fill, np.int64)
        for g, group in enumerate(self.groups):
            table[g, : len(group)] = group
        return table

    def source_columns(self) -> np.ndarray:
        """(block rows, packed columns) original column each cell's weight belongs to."""
        if not self.groups:
            return np.zeros((self.rows, 0), np.int64)
        table = self.lane_table(max(len(g) for g in self.groups), -1)
        cols = np.take_along_axis(
            np.broadcast_to(table, (self.rows, *table.shape)), self.selects[..., None], axis=2
        )[..., 0]
        return cols


@dataclass(frozen=True)
class PackedLayer:
    """A column-combined, quantized layer; see the module docstring for the semantics."""

    name: str
    shape: tuple[int, int]
    alpha: int
    gamma: float
    bits: int
    blocks: tuple[PackedBlock, ...]
    requant: Requant
    data_bits: int = 8
    acc_bits: int = 32
    stats: dict = field(default_factory=dict, compare=False)

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def cols(self) -> int:
        return self.shape[1]

    @property
    def packed_columns(self) -> int:
        return sum(b.packed_columns for b in self.blocks)

    def validate(self) -> None:
        """Check every structural invariant; raise ColcombError naming the first problem."""
        where = f"layer {self.name!r}"
        rows, cols = self.shape
        if rows < 1 or cols < 1:
            raise ColcombError(f"{where}: shape {list(self.shape)} must be positive")
        if not 1 <= self.alpha <= MAX_ALPHA:
            raise ColcombError(f"{where}: alpha {self.alpha} must be at least 1 and at most {MAX_ALPHA}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ColcombError(f"{where}: gamma {self.gamma} must lie in [0, 1]")
        for label, bits in (("bits", self.bits), ("data_bits", self.data_bits)):
            if not 2 <= bits <= 32:
                raise ColcombError(f"{where}: {label} {bits} must lie in [2, 32]")
        if not max(self.bits, self.data_bits) < self.acc_bits <= MAX_ACC_BITS:
            raise ColcombError(
                f"{where}: acc_bits {self.acc_bits} must exceed the weight and data widths and "
                f"be at most {MAX_ACC_BITS}"
            )
        w_lo, w_hi = signed_range(self.bits)
        expect = 0
        seen_any = np.zeros(cols, bool)
        for k, block in enumerate(self.blocks):
            bw = f"{where} block {k}"
            if block.row_start != expect or block.row_stop <= block.row_start:
                raise ColcombError(
                    f"{bw}: rows [{block.row_start}, {block.row_stop}) must start at {expect} and "
                    f"be non-empty (blocks cover the rows in order)"
                )
            expect = block.row_stop
            shape = (block.rows, block.packed_columns)
            for label, arr in (("weights", block.weights), ("selects", block.selects)):
                if arr.shape != shape:
                    raise ColcombError(
                        f"{bw}: {label} has shape {list(arr.shape)}, expected {list(shape)} "
                        f"(block rows x packed columns)"
                    )
            if block.scale.shape != (block.rows,) or not np.all(np.isfinite(block.scale)):
                raise ColcombError(f"{bw}: scale needs {block.rows} finite values (one per row)")
            if np.any(block.scale <= 0):
                raise ColcombError(f"{bw}: scales must be positive")
            seen = np.zeros(cols, bool)
            for g, group in enumerate(block.groups):
                if not 1 <= len(group) <= self.alpha:
                    raise ColcombError(
                        f"{bw} group {g}: {len(group)} columns, must be 1..alpha={self.alpha}"
                    )
                for c in group:
                    if not 0 <= c < cols:
                        raise ColcombError(f"{bw} group {g}: column {c} is outside 0..{cols - 1}")
                    if seen[c]:
                        raise ColcombError(f"{bw} group {g}: column {c} appears in two groups")
                    seen[c] = True
            seen_any |= seen
            if block.weights.size:
                if block.weights.min() < w_lo or block.weights.max() > w_hi:
                    raise ColcombError(
                        f"{bw}: weights range [{block.weights.min()}, {block.weights.max()}] does "
                        f"not fit {self.bits} bits [{w_lo}, {w_hi}]"
                    )
                sizes = np.array([len(g) for g in block.groups])
                bad = (block.selects < 0) | (block.selects >= self.alpha)
                bad |= (block.weights != 0) & (block.selects >= sizes[None, :])
                if bad.any():
                    r, g = np.argwhere(bad)[0]
                    raise ColcombError(
                        f"{bw}: select {block.selects[r, g]} at cell ({r}, {g}) does not point "
                        f"into its group of {sizes[g]} columns (alpha {self.alpha})"
                    )
        if expect != rows:
            raise ColcombError(f"{where}: blocks cover rows 0..{expect}, the layer has {rows}")
        self.requant.validate(rows, self.data_bits, where)
        a_lo, a_hi = signed_range(self.acc_bits)
        bias = self.requant.bias
        if bias.size and (bias.min() < a_lo or bias.max() > a_hi):
            raise ColcombError(
                f"{where}: biases range [{bias.min()}, {bias.max()}] does not fit the "
                f"{self.acc_bits}-bit accumulator [{a_lo}, {a_hi}] the hardware adds them in; "
                f"widen acc_bits or scale the bias down"
            )

    def dense_int(self) -> np.ndarray:
        """(rows, cols) integer filter matrix the packed cells represent (pruned weights are 0)."""
        out = np.zeros(self.shape, np.int64)
        for block in self.blocks:
            if not block.packed_columns:
                continue
            src = block.source_columns()
            r = np.broadcast_to(np.arange(block.row_start, block.row_stop)[:, None], src.shape)
            keep = block.weights != 0
            out[r[keep], src[keep]] = block.weights[keep]
        return out

    def row_scales(self) -> np.ndarray:
        """(rows,) real-valued scale of each row's integer weights."""
        return np.concatenate([b.scale for b in self.blocks])

    def dense(self) -> np.ndarray:
        """(rows, cols) dequantized pruned filter matrix: integer weight x row scale."""
        return self.dense_int() * self.row_scales()[:, None]

    def nonzero_weights(self) -> int:
        return int(sum(np.count_nonzero(b.weights) for b in self.blocks))

    def utilization(self) -> float:
        """Nonzero weights / cells held (rows x packed columns summed over blocks)."""
        cells = sum(b.rows * b.packed_columns for b in self.blocks)
        return self.nonzero_weights() / cells if cells else 0.0


def dense_equivalent(layer: PackedLayer) -> PackedLayer:
    """The same layer on a plain dense array: alpha = 1, every column its own packed column,
    zeros stored. It computes exactly what ``layer`` computes; the baseline for cycle and cost
    comparisons."""
    w = layer.dense_int()
    block = PackedBlock(0, layer.rows, tuple((c,) for c in range(layer.cols)), w, np.zeros_like(w),
                        layer.row_scales())
    out = PackedLayer(name=layer.name, shape=layer.shape, alpha=1, gamma=0.0, bits=layer.bits,
                      blocks=(block,), requant=layer.requant, data_bits=layer.data_bits,
                      acc_bits=layer.acc_bits)
    out.validate()
    return out
