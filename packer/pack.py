"""Packing a filter matrix: row blocks, column sections, grouping, pruning, quantization.

The packer's output is a :class:`~colcomb.packer.packed.PackedLayer`. Without activation scales
(``colcomb pack`` sees weights only) the requantization keeps the activation scale from layer to
layer: ``y = acc * weight_scale`` per row, and a bias ``b`` enters as ``b / (weight_scale *
act_scale)`` accumulator units, with ``act_scale`` the real value of one activation step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.bound import ZERO, Bound, lower_bound
from colcomb.packer.combine import METHODS, combine, group_columns
from colcomb.packer.exact import group_exact
from colcomb.packer.golden import accumulator_bound
from colcomb.packer.packed import (
    ACTIVATIONS,
    MAX_ACC_BITS,
    MAX_ALPHA,
    MULTIPLIER_BITS,
    PackedBlock,
    PackedLayer,
    signed_range,
)
from colcomb.packer.quantize import GRANULARITIES, make_requant, quantize_values, row_scales


@dataclass(frozen=True)
class PackOptions:
    """How to pack: see ``colcomb pack --help`` for each field's meaning."""

    alpha: int = 8
    gamma: float = 0.0
    bits: int = 8
    data_bits: int = 8
    acc_bits: int = 32
    row_block: int | None = None
    section: int | None = None
    quant: str = "layer"
    power_of_two: bool = False
    method: str = "auto"
    activation: str = "none"
    act_scale: float | None = None
    time_limit: float = 60.0

    def validate(self) -> None:
        def whole(name: str, value, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ColcombError(f"{name} must be an integer >= {low}, got {value!r}")

        whole("alpha", self.alpha, 1)
        if self.alpha > MAX_ALPHA:
            raise ColcombError(f"alpha must be at most {MAX_ALPHA}, got {self.alpha!r}")
        if not (isinstance(self.gamma, (int, float)) and 0.0 <= self.gamma <= 1.0):
            raise ColcombError(f"gamma must lie in [0, 1], got {self.gamma!r}")
        whole("bits", self.bits, 2)
        whole("data_bits", self.data_bits, 2)
        if self.bits > 32 or self.data_bits > 32:
            raise ColcombError(f"bits and data_bits must be at most 32, got {self.bits}, {self.data_bits}")
        if not max(self.bits, self.data_bits) < self.acc_bits <= MAX_ACC_BITS:
            raise ColcombError(
                f"acc_bits {self.acc_bits} must exceed bits and data_bits and be at most {MAX_ACC_BITS}"
            )
        if self.bits + self.data_bits - 1 > self.acc_bits:  # one weight x input product alone
            raise ColcombError(
                f"a {self.bits}-bit weight times a {self.data_bits}-bit input needs "
                f"{self.bits + self.data_bits - 1} bits, more than acc_bits {self.acc_bits}: the "
                f"accumulator could overflow; raise --acc-bits (at most {MAX_ACC_BITS}) or lower "
                f"--bits/--data-bits"
            )
        if self.row_block is not None:
            whole("row_block", self.row_block, 1)
        if self.section is not None:
            whole("section", self.section, 1)
        if self.quant not in GRANULARITIES:
            raise ColcombError(f"quant {self.quant!r} is not one of {', '.join(GRANULARITIES)}")
        if self.method not in METHODS:
            raise ColcombError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if isinstance(self.time_limit, bool) or not (
            isinstance(self.time_limit, (int, float)) and np.isfinite(self.time_limit) and self.time_limit > 0
        ):
            raise ColcombError(f"time_limit must be a positive number of seconds, got {self.time_limit!r}")
        if self.activation not in ("none", "relu"):
            raise ColcombError(
                f"activation {self.activation!r} is not one of none, relu for packing from weights "
                f"alone ({', '.join(ACTIVATIONS)} exist; relu6 needs activation scales)"
            )
        if self.act_scale is not None and not (np.isfinite(self.act_scale) and self.act_scale > 0):
            raise ColcombError(f"act_scale must be a positive number, got {self.act_scale!r}")


def _check_magnitude(name: str, w: np.ndarray, bits: int) -> None:
    """Refuse weights whose scale the integer requantization cannot express (instead of an
    OverflowError or a wrapped multiplier deep inside the quantizer)."""
    top = float(np.abs(w).max(initial=0.0))
    if 0.0 < top < np.finfo(np.float64).tiny:
        raise ColcombError(
            f"layer {name!r}: its largest weight {top:.3g} is subnormal (below {np.finfo(np.float64).tiny:.3g}); "
            f"such a layer computes nothing but rounding noise: zero it or rescale it"
        )
    qmax = (1 << (bits - 1)) - 1
    limit = float((1 << MULTIPLIER_BITS) - 1) * qmax  # a weight scale above 2**16-1 has no multiplier
    if top > limit:
        raise ColcombError(
            f"layer {name!r}: weights up to {top:.3g} are too large for the requantization: with "
            f"{bits}-bit weights they must stay below {limit:.4g} in magnitude; scale the layer down"
        )


def _spans(total: int, step: int | None) -> list[tuple[int, int]]:
    step = step or total
    return [(s, min(s + step, total)) for s in range(0, total, step)]


BlockParts = tuple[int, int, list[list[int]], np.ndarray, np.ndarray]


def pack_matrix(weights: np.ndarray, opts: PackOptions, bounds: list[Bound] | None = None) -> list[BlockParts]:
    """(row_start, row_stop, groups, packed float weights, selects) per row block. Given a list,
    ``bounds`` receives each block's lower bound on its packed columns (sections summed)."""
    w = np.asarray(weights, np.float64)
    out = []
    for r0, r1 in _spans(w.shape[0], opts.row_block):
        groups: list[list[int]] = []
        block_bound = ZERO
        for c0, c1 in _spans(w.shape[1], opts.section):
            part = w[r0:r1, c0:c1]
            if opts.method == "exact":
                result = group_exact(part, opts.alpha, opts.gamma, opts.time_limit)
                local, bound = result.groups, result.bound
            else:
                local = group_columns(part, opts.alpha, opts.gamma, opts.method)
                bound = lower_bound(part, opts.alpha, opts.gamma) if bounds is not None else ZERO
            groups += [[c0 + c for c in g] for g in local]
            block_bound = block_bound + bound
        packed, selects = combine(w[r0:r1], groups)
        out.append((r0, r1, groups, packed, selects))
        if bounds is not None:
            bounds.append(block_bound)
    return out


def pack_layer(
    name: str, weights: np.ndarray, opts: PackOptions, bias: np.ndarray | None = None
) -> PackedLayer:
    """Group, prune and quantize one filter matrix (rows = outputs, columns = inputs)."""
    opts.validate()
    w = np.asarray(weights)
    if w.ndim != 2 or min(w.shape) < 1:
        raise ColcombError(f"layer {name!r}: a filter matrix must be 2-D and non-empty, got shape {list(w.shape)}")
    if not np.all(np.isfinite(w)):
        raise ColcombError(f"layer {name!r}: NaN or infinite weights; fix the model first")
    _check_magnitude(name, w, opts.bits)
    bounds: list[Bound] = []
    parts = pack_matrix(w, opts, bounds)
    lower = sum(bounds, ZERO)
    scales = row_scales([p[3] for p in parts], opts.bits, opts.quant, opts.power_of_two)
    blocks = tuple(
        PackedBlock(
            row_start=r0,
            row_stop=r1,
            groups=tuple(tuple(g) for g in groups),
            weights=quantize_values(packed, s, opts.bits),
            selects=selects,
            scale=s,
        )
        for (r0, r1, groups, packed, selects), s in zip(parts, scales, strict=True)
    )
    row_scale = np.concatenate(scales)
    act_scale = opts.act_scale or 1.0 / ((1 << (opts.data_bits - 1)) - 1)
    bias_acc = None if bias is None else np.asarray(bias, np.float64) / (row_scale * act_scale)
    requant = make_requant(row_scale, bias_acc, opts.data_bits, opts.activation)
    kept = int(sum(np.count_nonzero(p[3]) for p in parts))
    nonzero = int(np.count_nonzero(w))
    layer = PackedLayer(
        name=name,
        shape=(int(w.shape[0]), int(w.shape[1])),
        alpha=int(opts.alpha),
        gamma=float(opts.gamma),
        bits=opts.bits,
        blocks=blocks,
        requant=requant,
        data_bits=opts.data_bits,
        acc_bits=opts.acc_bits,
    )
    layer.validate()
    bound, a_hi = accumulator_bound(layer), signed_range(opts.acc_bits)[1]
    if bound > a_hi:
        raise ColcombError(
            f"layer {name!r}: the accumulator could reach {bound} (|weights| x largest input + |bias|), "
            f"beyond the {opts.acc_bits}-bit accumulator's {a_hi}; raise --acc-bits or lower --bits/--data-bits"
        )
    cells = layer.rows * layer.cols
    layer.stats.update(
        {
            "nonzero_before": nonzero,
            "pruned": nonzero - kept,
            "rounded_to_zero": kept - layer.nonzero_weights(),
            "packed_columns": layer.packed_columns,
            "utilization_before": nonzero / cells,
            "utilization_after": layer.utilization(),
            "row_block": opts.row_block,
            "section": opts.section,
            "quant": opts.quant,
            "power_of_two": opts.power_of_two,
            "method": opts.method,
            "bound": lower.value,
            "bound_by": lower.name,
            "bounds": dict(sorted(lower.parts.items())),
            "gap": layer.packed_columns / lower.value - 1 if lower.value else 0.0,
            **({"exact": lower.search} if lower.search else {}),
        }
    )
    return layer
