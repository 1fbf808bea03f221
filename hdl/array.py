"""The R x C systolic array of :class:`~colcomb.hdl.cell.Cell`, with input skew."""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.cell import MULTIPLIERS, Cell
from colcomb.hdl.params import check_int, validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.program import bits_for, cell_layout, lane_layout

__all__ = ["SystolicArray", "psum_bits"]


def psum_bits(weight_bits: int, data_bits: int, columns: int, acc_bits: int | None = None) -> int:
    """Bits of a sum of ``columns`` products, which can then never wrap; at most ``acc_bits``
    (a tile's partial sum is bounded by its row's whole sum, which the program checks fits
    ``acc_bits``)."""
    bits = weight_bits + data_bits + (bits_for(columns - 1) if columns > 1 else 0)
    return bits if acc_bits is None else min(bits, acc_bits)


class SystolicArray(wiring.Component):
    """A weight-stationary ``rows`` x ``cols`` array; one input vector per cycle.

    Column ``c`` carries ``alpha`` input lanes to all of its cells at once (broadcast: the lanes
    are registered once per column, not once per cell), partial sums run from column 0
    rightwards, and every row's sum leaves the right edge in the same cycle. Column ``c``'s lanes
    are delayed ``c`` cycles (the skew), so a vector presented on ``lanes_in`` in one cycle comes
    out on ``sums_out`` whole, :attr:`latency` cycles later, and a new vector may enter every cycle.

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
        Widths of weights, lanes and the row sums (sign-extended from the partial sums, which are
        only as wide as :func:`psum_bits`). Every row sum must fit ``acc_bits``
        (:meth:`colcomb.hdl.program.Program.compile` checks the layers' bounds).
    dsp_cells : int or None
        How many cells (row-major) multiply with ``*``, which DSP mappers take; the others use
        the shift-and-add multiplier (see :data:`colcomb.hdl.cell.MULTIPLIERS`). ``None``: all.

    Members
    -------
    load : ``In(1)``
        Shift the weight chain by one row.
    w_in : ``In(ArrayLayout(cell_layout(weight_bits, alpha), cols))``
        One row of cell words (weight and select per column) entering row 0.
    lanes_in : ``In(ArrayLayout(ArrayLayout(signed(data_bits), alpha), cols))``
        One input vector: the lanes of every column, unskewed.
    sums_out : ``Out(ArrayLayout(signed(acc_bits), rows))``
        Row sums of the vector that entered :attr:`latency` cycles before.
    """

    @validated
    def __init__(self, *, rows: int, cols: int, alpha: int = 1, weight_bits: int = 8,
                 data_bits: int = 8, acc_bits: int = 32, dsp_cells: int | None = None):
        self.rows = check_int("rows", rows)
        self.cols = check_int("cols", cols)
        self.alpha = check_int("alpha", alpha)
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        self.dsp_cells = rows * cols if dsp_cells is None else check_int("dsp_cells", dsp_cells, 0)
        super().__init__({
            "load": In(1),
            "w_in": In(data.ArrayLayout(cell_layout(weight_bits, alpha), cols)),
            "lanes_in": In(data.ArrayLayout(lane_layout(data_bits, alpha), cols)),
            "sums_out": Out(data.ArrayLayout(signed(acc_bits), rows)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a vector on ``lanes_in`` to its sums on ``sums_out``."""
        return self.cols

    def _psum_bits(self, columns: int) -> int:
        return psum_bits(self.weight_bits, self.data_bits, columns, self.acc_bits)

    def multiplier(self, row: int, col: int) -> str:
        """The multiplier kind of cell (row, col): DSP-mappable for the first ``dsp_cells``."""
        return MULTIPLIERS[0] if row * self.cols + col < self.dsp_cells else MULTIPLIERS[1]

    def elaborate(self, platform):
        m = Module()
        n_rows, n_cols = self.rows, self.cols
        lanes = [delay(m, self.lanes_in[c], c, f"skew_{c}") for c in range(n_cols)]
        cells = [[Cell(weight_bits=self.weight_bits, data_bits=self.data_bits, alpha=self.alpha,
                       psum_in_bits=0 if c == 0 else self._psum_bits(c),
                       psum_out_bits=self._psum_bits(c + 1),
                       multiplier=self.multiplier(r, c))
                  for c in range(n_cols)] for r in range(n_rows)]
        for r in range(n_rows):
            for c in range(n_cols):
                cell = cells[r][c]
                m.submodules[f"cell_{r}_{c}"] = cell
                m.d.comb += [cell.load.eq(self.load), cell.lanes.eq(lanes[c])]
                m.d.comb += cell.w_in.eq(self.w_in[c] if r == 0 else cells[r - 1][c].w_out)
                if c:
                    m.d.comb += cell.psum_in.eq(cells[r][c - 1].psum_out)
            m.d.comb += self.sums_out[r].eq(cells[r][n_cols - 1].psum_out)
        return m
