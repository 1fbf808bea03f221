"""The tile program: a network of packed layers compiled for one R x C array.

This is the Python half of the generator. It checks that the layers fit the hardware, cuts every
layer into tiles and computes the contents of the four ROMs the sequencer reads:

- ``cells``: one word per (tile, array row), the ``cols`` cell words of that row of the tile;
  a tile's ``rows`` words are stored bottom row first, because they are shifted into the array
  from row 0 (after ``rows`` shifts the first word sits in the last row).
- ``lanes``: one word per tile, for each array column its ``alpha`` lane sources: the index of the
  word of the activation vector that feeds the lane, or :attr:`Program.zero_lane` (zero).
- ``tiles``: one word per tile, the descriptor of :data:`tile_layout` (accumulate or start fresh,
  requantize and write, where the outputs go, layer boundaries).
- ``requant``: one word per row tile, bias, multiplier and shift of each of its ``rows`` rows
  (:attr:`Program.requant_layout`).

Tiling: for each layer, each row block, each row tile of ``rows`` rows of that block, each column
tile of ``cols`` packed columns of that block, in that order. A block without packed columns
still gets one all-zero column tile, so its rows are written (as requantized bias).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import accumulator_bound
from colcomb.packer.packed import (
    MULTIPLIER_BITS,
    PackedLayer,
    dense_equivalent,
    select_bits,
    signed_range,
)
from colcomb.packer.rom import cell_words

__all__ = [
    "CELLS",
    "Program",
    "bits_for",
    "cell_layout",
    "dense_equivalent",
    "lane_layout",
    "pack_struct",
]


#: the array's cell kinds: one vector per cycle, or the paper's bit-serial cell
CELLS = ("parallel", "serial")


def bits_for(value: int) -> int:
    """Bits of an unsigned field that holds 0..value (at least one)."""
    return max(1, int(value).bit_length())


def cell_layout(weight_bits: int, alpha: int) -> data.StructLayout:
    """A cell word: the signed weight in the low bits, the select above it (the words
    :func:`colcomb.packer.rom.cell_words` encodes); the dense cell (alpha = 1) has no select
    field."""
    if alpha == 1:
        return data.StructLayout({"weight": signed(weight_bits)})
    return data.StructLayout({"weight": signed(weight_bits), "select": unsigned(select_bits(alpha))})


def lane_layout(data_bits: int, alpha: int) -> data.ArrayLayout:
    """The ``alpha`` input lanes one array column carries."""
    return data.ArrayLayout(signed(data_bits), alpha)


def pack_struct(layout: data.StructLayout, values: dict) -> int:
    """The integer of a struct word (two's complement fields truncated to their widths)."""
    word = 0
    for name, fld in layout:
        word |= (int(values.get(name, 0)) & ((1 << fld.width) - 1)) << fld.offset
    return word


def pack_array(values: Sequence[int], width: int) -> int:
    """Concatenate ``values`` (element 0 in the low bits), each truncated to ``width`` bits."""
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (i * width)
    return word


@dataclass(frozen=True)
class Tile:
    """One weight load of the array: rows [row_start, row_start + count) of a layer, packed
    columns [col_start, col_start + cols) of one block."""

    layer: int
    block: int
    row_start: int
    count: int
    col_start: int
    first: bool  # first column tile of its row tile: the accumulator starts fresh
    last: bool  # last column tile: requantize and write the outputs
    rq: int  # row-tile index into the requant ROM
    layer_end: bool
    net_end: bool


@dataclass
class Program:
    """Layers compiled for an array of ``rows`` x ``cols`` cells; build with :meth:`compile`."""

    layers: list[PackedLayer]
    rows: int
    cols: int
    alpha: int
    weight_bits: int
    data_bits: int
    acc_bits: int
    batch: int
    #: cells (row-major) whose multiplier is DSP-mappable; the rest use logic (None: all)
    dsp_cells: int | None = None
    #: the array's cell kind, one of :data:`CELLS`
    cell: str = "parallel"
    tiles: list[Tile] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    lanes: list[int] = field(default_factory=list)
    descriptors: list[int] = field(default_factory=list)
    requant: list[int] = field(default_factory=list)

    # -- derived sizes ------------------------------------------------------------------------
    @property
    def buffer_rows(self) -> int:
        """Rows of each activation buffer (one per word of an activation vector): the widest
        layer input or output."""
        return max([self.layers[0].cols] + [layer.rows for layer in self.layers])

    @property
    def zero_lane(self) -> int:
        """Lane source index that means "unused lane, carries zero"."""
        return self.buffer_rows

    @property
    def lane_bits(self) -> int:
        return bits_for(self.zero_lane)

    @property
    def in_words(self) -> int:
        return self.layers[0].cols

    @property
    def out_words(self) -> int:
        return self.layers[-1].rows

    @property
    def tile_layout(self) -> data.StructLayout:
        return data.StructLayout(
            {
                "first": 1,
                "last": 1,
                "layer_end": 1,
                "net_end": 1,
                "rq": unsigned(bits_for(max(len(self.requant) - 1, 1))),
                "offset": unsigned(bits_for(self.buffer_rows)),
                "count": unsigned(bits_for(self.rows)),
                "layer": unsigned(bits_for(len(self.layers) - 1)),
            }
        )

    @property
    def max_shift(self) -> int:
        """Largest requantization shift of any row of any layer (sizes the shift fields)."""
        return max(int(layer.requant.shift.max(initial=0)) for layer in self.layers)

    @property
    def requant_layout(self) -> data.ArrayLayout:
        """A requant ROM word: for each of the ``rows`` rows its bias, multiplier and shift
        (row 0 in the low bits)."""
        return data.ArrayLayout(
            data.StructLayout({"bias": signed(self.acc_bits), "mult": unsigned(MULTIPLIER_BITS),
                               "shift": unsigned(bits_for(self.max_shift))}),
            self.rows,
        )

    @property
    def cycles_per_vector(self) -> int:
        """Cycles a vector streams through the array: 1, or ``data_bits`` for the serial cell."""
        return self.data_bits if self.cell == "serial" else 1

    def dense_macs(self) -> int:
        """Multiply-accumulates of one vector through the dense layers (sum of rows x cols)."""
        return sum(layer.rows * layer.cols for layer in self.layers)

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "cols": self.cols,
            "alpha": self.alpha,
            "weight_bits": self.weight_bits,
            "data_bits": self.data_bits,
            "acc_bits": self.acc_bits,
            "batch": self.batch,
            "dsp_cells": 0 if self.cell == "serial" else (self.rows * self.cols if self.dsp_cells is None
                                                          else self.dsp_cells),
            "cell": self.cell,
            "cycles_per_vector": self.cycles_per_vector,
            "buffer_rows": self.buffer_rows,
            "in_words": self.in_words,
            "out_words": self.out_words,
            "tiles": len(self.tiles),
            "row_tiles": len(self.requant),
            "layers": [
                {
                    "name": layer.name,
                    "shape": list(layer.shape),
                    "alpha": layer.alpha,
                    "packed_columns": layer.packed_columns,
                    "tiles": sum(1 for t in self.tiles if t.layer == i),
                }
                for i, layer in enumerate(self.layers)
            ],
            "dense_macs_per_vector": self.dense_macs(),
        }

    # -- compilation --------------------------------------------------------------------------
    @classmethod
    def compile(
        cls,
        layers: Sequence[PackedLayer],
        *,
        rows: int,
        cols: int,
        batch: int = 16,
        weight_bits: int | None = None,
        data_bits: int | None = None,
        acc_bits: int | None = None,
        dsp_cells: int | None = None,
        cell: str = "parallel",
    ) -> Program:
        """Check ``layers`` against the array and compute the ROM images.

        Widths default to the widest any layer needs. Raises :class:`ColcombError` for an
        array size below 1, a batch below 1, layers that do not chain, a layer wider than the
        hardware widths, or a layer whose worst-case accumulator could overflow ``acc_bits``.
        """
        for label, value in (("rows", rows), ("cols", cols), ("batch", batch)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ColcombError(f"{label} must be a positive integer, not {value!r}")
        if dsp_cells is not None and (not isinstance(dsp_cells, (int, np.integer)) or isinstance(dsp_cells, bool)
                                      or dsp_cells < 0):
            raise ColcombError(f"dsp_cells must be a non-negative integer or None, not {dsp_cells!r}")
        if cell not in CELLS:
            raise ColcombError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        layers = list(layers)
        if not layers:
            raise ColcombError("the network has no layers; pack at least one layer")
        for layer in layers:
            layer.validate()
        for prev, nxt in itertools.pairwise(layers):
            if nxt.cols != prev.rows:
                raise ColcombError(
                    f"layer {nxt.name!r} takes {nxt.cols} inputs but {prev.name!r} gives "
                    f"{prev.rows} outputs; the hardware runs only layers whose shapes chain: pick such a "
                    f"chain (or one layer) with --layer NAME"
                )
        wb = max(layer.bits for layer in layers) if weight_bits is None else weight_bits
        db = max(layer.data_bits for layer in layers) if data_bits is None else data_bits
        ab = max(layer.acc_bits for layer in layers) if acc_bits is None else acc_bits
        for label, value, need in (
            ("weight_bits", wb, max(layer.bits for layer in layers)),
            ("data_bits", db, max(layer.data_bits for layer in layers)),
            ("acc_bits", ab, max(layer.acc_bits for layer in layers)),
        ):
            if not isinstance(value, int) or value < need:
                raise ColcombError(f"{label} {value!r} is narrower than the layers need ({need})")
        for layer in layers:
            bound = accumulator_bound(layer)
            hi = signed_range(layer.acc_bits)[1]
            if bound > hi:
                raise ColcombError(
                    f"layer {layer.name!r}: the accumulator could reach {bound} (|weights| x "
                    f"largest input + |bias|), beyond the {layer.acc_bits}-bit accumulator's "
                    f"{hi}; widen acc_bits or use fewer weight/data bits"
                )
        prog = cls(
            layers=layers,
            rows=int(rows),
            cols=int(cols),
            alpha=max(layer.alpha for layer in layers),
            weight_bits=wb,
            data_bits=db,
            acc_bits=ab,
            batch=int(batch),
            dsp_cells=None if dsp_cells is None else min(int(dsp_cells), int(rows) * int(cols)),
            cell=cell,
        )
        prog._build()
        return prog

    def _build(self) -> None:
        R, C = self.rows, self.cols
        cl = cell_layout(self.weight_bits, self.alpha)
        cw = cl.size
        rq_words: list[int] = []
        rl = self.requant_layout.elem_shape
        tiles: list[Tile] = []
        for li, layer in enumerate(self.layers):
            rq = layer.requant
            for bi, block in enumerate(layer.blocks):
                g = block.packed_columns
                n_ct = max(1, -(-g // C))
                for r0 in range(0, block.rows, R):
                    count = min(R, block.rows - r0)
                    start = block.row_start + r0
                    rq_index = len(rq_words)
                    rq_words.append(
                        pack_array(
                            [
                                pack_struct(rl, {"bias": rq.bias[start + i],
                                                 "mult": rq.multiplier[start + i],
                                                 "shift": rq.shift[start + i]})
                                for i in range(count)
                            ],
                            rl.size,
                        )
                    )
                    for ct in range(n_ct):
                        tiles.append(
                            Tile(li, bi, start, count, ct * C, ct == 0, ct == n_ct - 1, rq_index,
                                 False, False)
                        )
            tiles[-1] = replace(tiles[-1], layer_end=True, net_end=li == len(self.layers) - 1)
        self.tiles = tiles
        self.requant = rq_words
        tl = self.tile_layout
        for t in tiles:
            layer = self.layers[t.layer]
            block = layer.blocks[t.block]
            r_lo = t.row_start - block.row_start
            w = np.zeros((R, C), np.int64)
            s = np.zeros((R, C), np.int64)
            lanes = np.full((C, self.alpha), self.zero_lane, np.int64)
            n_cols = max(0, min(C, block.packed_columns - t.col_start))
            if n_cols:
                w[: t.count, :n_cols] = block.weights[r_lo : r_lo + t.count,
                                                      t.col_start : t.col_start + n_cols]
                s[: t.count, :n_cols] = block.selects[r_lo : r_lo + t.count,
                                                      t.col_start : t.col_start + n_cols]
                for c in range(n_cols):
                    group = block.groups[t.col_start + c]
                    lanes[c, : len(group)] = group
            if self.alpha == 1:
                s[:] = 0
            for r in reversed(range(R)):  # bottom row first: it is shifted furthest
                self.cells.append(pack_array(cell_words(w[r], s[r], self.weight_bits), cw))
            self.lanes.append(pack_array(lanes.ravel(), self.lane_bits))
            self.descriptors.append(
                pack_struct(
                    tl,
                    {
                        "first": t.first,
                        "last": t.last,
                        "layer_end": t.layer_end,
                        "net_end": t.net_end,
                        "rq": t.rq,
                        "offset": t.row_start,
                        "count": t.count,
                        "layer": t.layer,
                    },
                )
            )
