"""The per-layer packing table that ``colcomb pack`` prints."""

from __future__ import annotations

from collections.abc import Sequence

from colcomb.core.table import table
from colcomb.packer.packed import PackedLayer


def pack_summary(layers: Sequence[PackedLayer]) -> str:
    """One row per layer: shape, blocks, packed columns, pruned weights, utilization before/after."""
    rows = []
    for layer in layers:
        s = layer.stats
        rows.append(
            [
                layer.name,
                f"{layer.rows}x{layer.cols}",
                len(layer.blocks),
                layer.cols * len(layer.blocks),
                layer.packed_columns,
                s.get("nonzero_before", layer.nonzero_weights()),
                s.get("pruned", 0),
                s.get("utilization_before", float("nan")),
                layer.utilization(),
            ]
        )
    return table(
        ["layer", "shape", "blocks", "columns", "packed", "nonzero", "pruned", "util before", "util after"],
        rows,
    )
