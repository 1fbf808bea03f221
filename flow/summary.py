"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from colcomb.packer.packed import PackedLayer


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[str(h) for h in header]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


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
