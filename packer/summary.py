"""The per-layer packing table that ``colcomb pack`` prints."""

from __future__ import annotations

from collections.abc import Sequence

from colcomb.core.table import table
from colcomb.packer.packed import PackedLayer


def pack_summary(layers: Sequence[PackedLayer]) -> str:
    """One row per layer: shape, blocks, packed columns, the lower bound on them and the gap (how
    many more columns than the bound: at most that much is left to gain), pruned weights,
    utilization before/after."""
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
                s.get("bound", "-"),
                f"{s['gap']:.1%}" if "gap" in s else "-",
                s.get("nonzero_before", layer.nonzero_weights()),
                s.get("pruned", 0),
                s.get("utilization_before", float("nan")),
                layer.utilization(),
            ]
        )
    return table(
        ["layer", "shape", "blocks", "columns", "packed", "bound", "gap", "nonzero", "pruned", "util before",
         "util after"],
        rows,
    )


def exact_notes(layers: Sequence[PackedLayer]) -> list[str]:
    """One line per layer whose exact search did not prove its optimum: why, and what to change."""
    from colcomb.packer.exact import MAX_TERMS

    notes = []
    for layer in layers:
        s = layer.stats
        if s.get("exact") == "time limit":
            notes.append(f"{layer.name}: the exact search reached its time limit at {layer.packed_columns} packed "
                         f"columns, at least {s['bound']} proven (gap {s['gap']:.1%}); a longer --time-limit may "
                         f"close the gap")
        elif s.get("exact") == "too large":
            notes.append(f"{layer.name}: too large for the exact search (a model of more than {MAX_TERMS:,} "
                         f"literals); the best heuristic's grouping is kept; --row-block and --section split a "
                         f"layer into smaller searches")
    return notes
