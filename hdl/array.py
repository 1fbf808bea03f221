"""The R x C systolic array of :class:`~colcomb.hdl.cell.Cell`, with input skew and output deskew."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.cell import Cell
from colcomb.hdl.params import check_int, validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.program import cell_layout, lane_layout

__all__ = ["SystolicArray", "array_latency"]


def array_latency(rows: int, cols: int) -> int:
    """Cycles from a vector entering a ``rows`` x ``cols`` array to its deskewed sums: the skew
    across the columns, then the deskew down the rows."""
    return rows + cols - 1


class SystolicArray(wiring.Component):
    """A weight-stationary ``rows`` x ``cols`` array; one input vector per cycle.

    Column ``c`` carries ``alpha`` input lanes from row 0 downwards, partial sums run from column
    0 rightwards, and row ``r``'s sum leaves the right edge. The array skews its inputs (column
    ``c`` is delayed ``c`` cycles) and deskews its outputs (row ``r`` is delayed ``rows - 1 - r``
    cycles), so a vector presented on ``lanes_in`` in one cycle comes out on ``sums_out`` whole,
    :attr:`latency` cycles later, and a new vector may enter every cycle.

    Weights are loaded through a shift chain down each column: while ``load`` is high, row 0 takes
    ``w_in`` and every other row takes the word of the row above. After ``rows`` load cycles row
    ``r`` holds the word presented ``rows - 1 - r`` cycles before the last one (present the bottom
    row first). Do not load while vectors are in flight.

    Parameters
    ----------
    rows, cols : int
        Array height (output rows per tile) and width (packed columns per tile), both >= 1.
    alpha : int
        Input lanes per column (>= 1; 1 is the plain dense array).
    weight_bits, data_bits, acc_bits : int
        Widths of weights, lanes and partial sums.

    Members
    -------
    load : ``In(1)``
        Shift the weight chain by one row.
    w_in : ``In(ArrayLayout(cell_layout(weight_bits, alpha), cols))``
        One row of cell words (weight and select per column) entering row 0.
    lanes_in : ``In(ArrayLayout(ArrayLayout(signed(data_bits), alpha), cols))``
        One input vector: the lanes of every column, unskewed.
    sums_out : ``Out(ArrayLayout(signed(acc_bits), rows))``
        Row sums of the vector that entered :attr:`latency` cycles before, deskewed.
    """

    @validated
    def __init__(self, *, rows: int, cols: int, alpha: int = 1, weight_bits: int = 8,
                 data_bits: int = 8, acc_bits: int = 32):
        self.rows = check_int("rows", rows)
        self.cols = check_int("cols", cols)
        self.alpha = check_int("alpha", alpha)
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        super().__init__({
            "load": In(1),
            "w_in": In(data.ArrayLayout(cell_layout(weight_bits, alpha), cols)),
            "lanes_in": In(data.ArrayLayout(lane_layout(data_bits, alpha), cols)),
            "sums_out": Out(data.ArrayLayout(signed(acc_bits), rows)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a vector on ``lanes_in`` to its sums on ``sums_out``."""
        return array_latency(self.rows, self.cols)

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        cells = [[Cell(weight_bits=self.weight_bits, data_bits=self.data_bits,
                       acc_bits=self.acc_bits, alpha=self.alpha) for _ in range(C)]
                 for _ in range(R)]
        for r in range(R):
            for c in range(C):
                cell = cells[r][c]
                m.submodules[f"cell_{r}_{c}"] = cell
                m.d.comb += cell.load.eq(self.load)
                if r == 0:
                    m.d.comb += [
                        cell.w_in.eq(self.w_in[c]),
                        cell.lanes_in.eq(delay(m, self.lanes_in[c], c, f"skew_{c}")),
                    ]
                else:
                    above = cells[r - 1][c]
                    m.d.comb += [cell.w_in.eq(above.w_out), cell.lanes_in.eq(above.lanes_out)]
                m.d.comb += cell.psum_in.eq(0 if c == 0 else cells[r][c - 1].psum_out)
            edge = Signal(signed(self.acc_bits), name=f"edge_{r}")
            m.d.comb += edge.eq(cells[r][C - 1].psum_out)
            m.d.comb += self.sums_out[r].eq(delay(m, edge, R - 1 - r, f"deskew_{r}"))
        return m
