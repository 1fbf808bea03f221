"""The R x C systolic array of parallel or serial cells, with its input skew."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.cell import MULTIPLIERS, Cell
from colcomb.hdl.params import check_int, validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.program import CELLS, bits_for, cell_layout, lane_layout
from colcomb.hdl.serial_cell import SerialCell

__all__ = ["SystolicArray", "array_latency", "psum_bits"]


def array_latency(rows: int, cols: int, cell: str = "parallel", registered_lanes: bool = False) -> int:
    """Cycles from a vector (serial: its last bit) entering a ``rows`` x ``cols`` array to its
    sums: one per column (a column's lanes reach all of its rows at once), the serial
    edge's bit-plane accumulator, and the input register of ``registered_lanes``."""
    return cols + (cell == "serial") + bool(registered_lanes)



def psum_bits(weight_bits: int, data_bits: int, columns: int, acc_bits: int | None = None) -> int:
    """Bits of a sum of ``columns`` products of ``weight_bits`` x ``data_bits`` (``data_bits`` 1:
    a bit-plane of the serial array), which can then never wrap; at most ``acc_bits`` (a tile's
    partial sum is bounded by its row's whole sum, which the program checks fits ``acc_bits``)."""
    bits = weight_bits + data_bits + (bits_for(columns - 1) if columns > 1 else 0)
    return bits if acc_bits is None else min(bits, acc_bits)


class SystolicArray(wiring.Component):
    """A weight-stationary ``rows`` x ``cols`` array; one input vector per cycle.

    Column ``c`` carries ``alpha`` input lanes to all of its cells at once (broadcast: the lanes
    are registered once per column, not once per cell), partial sums run from column 0
    rightwards, and every row's sum leaves the right edge in the same cycle. Column ``c``'s lanes
    are delayed ``c`` cycles (the skew; unless ``skewed_input``: then the caller presents them
    ``c`` cycles late), so a vector presented on ``lanes_in`` in one cycle comes
    out on ``sums_out`` whole, :attr:`latency` cycles later, and a new vector may enter every cycle.

    Weights are loaded through a shift chain down each column, ``load_rows`` (k) rows a cycle:
    while ``load`` is high, row ``j < k`` takes row ``j`` of ``w_in`` and every other row ``r``
    takes the word of row ``r - k``. After ``ceil(rows / k)`` load cycles row ``j + k * i`` holds
    row ``j`` of the word presented ``i`` cycles before the last one (present the bottom rows
    first: :meth:`colcomb.hdl.program.Program.tile_cells` packs them). Do not load while vectors
    are in flight.

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
        the logic multiplier (:data:`colcomb.hdl.cell.MULTIPLIERS`). ``None``: all.
    cell : str
        ``"parallel"`` (:class:`~colcomb.hdl.cell.Cell`, one vector per cycle) or ``"serial"``
        (:class:`~colcomb.hdl.serial_cell.SerialCell`: one bit of every lane per cycle, least
        significant first, :attr:`cycles_per_vector` = ``data_bits`` cycles per vector; each row's
        edge weights the bit-planes and adds them up).
    onehot : bool
        Parallel cells only: the select is one bit per lane (:func:`cell_layout`).
    skewed_input : bool
        Column ``c``'s lanes already arrive ``c`` cycles late (the serial lane fetch's column
        words), so the array adds no skew registers.
    registered_lanes : bool
        Register every column's lanes once more as they enter (one cycle more latency), so that
        no path runs from a block RAM's output through the lane multiplexer into a multiplier:
        column 0's lanes have no skew register of their own (the banked image network's reads).
    skewed_loads : bool
        Column ``c`` also takes ``load`` and ``w_in`` ``c`` cycles late (after the same input
        register as its lanes), so a column's weights change only once the last vector before the
        load has passed it: the next tile may load as soon as the last vector has entered, not
        :attr:`latency` cycles later. Costs ``weight_bits + select`` flip-flops per delay and
        load row.
    load_rows : int
        Rows the weight chain shifts per load cycle (1 to ``rows``): a tile loads in
        ``ceil(rows / load_rows)`` cycles from a ROM word ``load_rows`` rows wide.
    shadow : bool
        The chain shifts through a second register per cell (its *shadow*), which ``swap``
        copies into every cell at once: the next tile loads while the current one streams, and
        takes over once the array has drained (a cell word more of flip-flops per cell).

    Members
    -------
    load : ``In(1)``
        Shift the weight chain by ``load_rows`` rows.
    swap : ``In(1)``, with ``shadow``
        Every cell takes its shadow's word (the cells compute with it from the next cycle).
    w_in : ``In(ArrayLayout(cell_layout(weight_bits, alpha, onehot), load_rows * cols))``
        ``load_rows`` rows of cell words (weight and select per column; row ``j``'s column ``c``
        at ``j * cols + c``) entering rows ``0 .. load_rows - 1``.
    lanes_in : ``In(ArrayLayout(ArrayLayout(signed(data_bits), alpha), cols))``
        One input vector: the lanes of every column, unskewed unless ``skewed_input`` (serial:
        ``unsigned(1)`` lanes, bit ``bit`` of each word).
    bit : ``In(range(data_bits))``
        Serial only: which bit of the words ``lanes_in`` carries.
    sums_out : ``Out(ArrayLayout(signed(acc_bits), rows))``
        Row sums of the vector that entered :attr:`latency` cycles before (serial: whose last
        bit entered then; there for that cycle only).
    """

    @validated
    def __init__(self, *, rows: int, cols: int, alpha: int = 1, weight_bits: int = 8,
                 data_bits: int = 8, acc_bits: int = 32, dsp_cells: int | None = None,
                 cell: str = "parallel", onehot: bool = False, skewed_input: bool = False,
                 registered_lanes: bool = False, skewed_loads: bool = False, load_rows: int = 1,
                 shadow: bool = False):
        self.rows = check_int("rows", rows)
        self.cols = check_int("cols", cols)
        self.alpha = check_int("alpha", alpha)
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        self.dsp_cells = rows * cols if dsp_cells is None else check_int("dsp_cells", dsp_cells, 0)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")
        self.cell = cell
        serial = cell == "serial"
        if onehot and serial:
            raise ValueError(f"a one-hot select is for the parallel cell, not cell={cell!r}")
        self.onehot = bool(onehot)
        self.skewed_input = bool(skewed_input)
        if registered_lanes and skewed_input:
            raise ValueError("registered_lanes is for lanes the array skews itself, not skewed_input=True")
        self.registered_lanes = bool(registered_lanes)
        if skewed_loads and skewed_input:
            raise ValueError("skewed_loads delays each column's loads like the lanes the array skews itself, "
                             "not with skewed_input=True")
        self.skewed_loads = bool(skewed_loads)
        self.load_rows = check_int("load_rows", load_rows)
        if load_rows > rows:
            raise ValueError(f"load_rows must be at most rows ({rows}), not {load_rows!r}")
        if shadow and skewed_loads:
            raise ValueError("shadow weights swap in one cycle into a drained array, not with skewed_loads=True")
        self.shadow = bool(shadow)
        lane = data.ArrayLayout(unsigned(1), alpha) if serial else lane_layout(data_bits, alpha)
        ports = {
            "load": In(1),
            "w_in": In(data.ArrayLayout(cell_layout(weight_bits, alpha, self.onehot), self.load_rows * cols)),
            "lanes_in": In(data.ArrayLayout(lane, cols)),
            "sums_out": Out(data.ArrayLayout(signed(acc_bits), rows)),
        }
        if serial:
            ports["bit"] = In(range(data_bits))
        if self.shadow:
            ports["swap"] = In(1)
        super().__init__(ports)

    @property
    def latency(self) -> int:
        """Cycles from a vector on ``lanes_in`` (serial: its last bit) to its sums on
        ``sums_out``: :func:`array_latency`."""
        return array_latency(self.rows, self.cols, self.cell, self.registered_lanes)

    @property
    def cycles_per_vector(self) -> int:
        """Cycles each vector occupies the lanes: 1, or ``data_bits`` for the serial cell."""
        return self.data_bits if self.cell == "serial" else 1

    def _psum_bits(self, columns: int) -> int:
        data_bits = 1 if self.cell == "serial" else self.data_bits
        return psum_bits(self.weight_bits, data_bits, columns, self.acc_bits)

    def _cell(self, row: int, col: int) -> Cell | SerialCell:
        widths = {"psum_in_bits": 0 if col == 0 else self._psum_bits(col),
                  "psum_out_bits": self._psum_bits(col + 1)}
        if self.cell == "serial":
            return SerialCell(weight_bits=self.weight_bits, alpha=self.alpha, **widths)
        return Cell(weight_bits=self.weight_bits, data_bits=self.data_bits, alpha=self.alpha,
                    multiplier=self.multiplier(row, col), onehot=self.onehot, **widths)

    def multiplier(self, row: int, col: int) -> str:
        """The multiplier kind of cell (row, col): DSP-mappable for the first ``dsp_cells``."""
        return MULTIPLIERS[0] if row * self.cols + col < self.dsp_cells else MULTIPLIERS[1]

    def elaborate(self, platform):
        m = Module()
        n_rows, n_cols = self.rows, self.cols
        extra = int(self.registered_lanes)
        lanes = [self.lanes_in[c] if self.skewed_input else delay(m, self.lanes_in[c], c + extra, f"skew_{c}")
                 for c in range(n_cols)]
        late = [c + extra if self.skewed_loads else 0 for c in range(n_cols)]
        loads = [delay(m, self.load, late[c], f"load_{c}") for c in range(n_cols)]
        k = self.load_rows
        w_ins = [[delay(m, self.w_in[j * n_cols + c], late[c], f"w_in_{c}" if k == 1 else f"w_in_{j}_{c}")
                  for j in range(k)]
                 for c in range(n_cols)]
        cells = [[self._cell(r, c) for c in range(n_cols)] for r in range(n_rows)]
        word = cells[0][0].w_in.shape()
        shadows = [[Signal(word, name=f"shadow_{r}_{c}") for c in range(n_cols)] for r in range(n_rows)] \
            if self.shadow else []
        for r in range(n_rows):
            for c in range(n_cols):
                cell = cells[r][c]
                m.submodules[f"cell_{r}_{c}"] = cell
                m.d.comb += cell.lanes.eq(lanes[c])
                if self.shadow:  # the chain shifts through the shadows; swap copies them into the cells
                    m.d.comb += [cell.load.eq(self.swap), cell.w_in.eq(shadows[r][c])]
                    with m.If(loads[c]):
                        m.d.sync += shadows[r][c].eq(w_ins[c][r] if r < k else shadows[r - k][c])
                else:
                    m.d.comb += [cell.load.eq(loads[c]),
                                 cell.w_in.eq(w_ins[c][r] if r < k else cells[r - k][c].w_out)]
                if c:
                    m.d.comb += cell.psum_in.eq(cells[r][c - 1].psum_out)
        edges = [cells[r][n_cols - 1].psum_out for r in range(n_rows)]
        if self.cell == "parallel":
            for r in range(n_rows):
                m.d.comb += self.sums_out[r].eq(edges[r])
        else:
            self._bit_planes(m, edges)
        return m

    def _bit_planes(self, m: Module, edges: list[Value]) -> None:
        """Serial edge: each row's bit-planes weighted by ``2^b`` (the sign bit's subtracted) and
        added, by shift-and-add: ``t = a + plane`` (``a`` = 0 on bit 0), the low bit of ``t``
        shifts into ``low`` and ``a = t >> 1``. No barrel shifter, and ``a`` never wraps: with
        ``|plane| < 2^(P-1)``, ``|a| < 2^(P-1)`` and ``t`` fits ``P + 1`` bits. In the cycle
        after a vector's last bit its sum is ``a`` above the ``data_bits`` bits of ``low``, on
        ``sums_out`` for that one cycle (no output register)."""
        bit = delay(m, self.bit, self.cols, "edge_bit")  # the bit index of the planes at the edge
        top = self.data_bits - 1
        for r, plane in enumerate(edges):
            width = len(plane) + 1
            a = Signal(signed(width), name=f"planes_{r}")
            t = Signal(signed(width), name=f"partial_{r}")
            m.d.comb += t.eq(Mux(bit == 0, 0, a) + Mux(bit == top, -plane, plane))
            low = Signal(self.data_bits, name=f"low_{r}")  # the sum's low bits, the latest on top
            m.d.sync += [a.eq(t >> 1), low.eq(Cat(low[1:], t[0]))]
            m.d.comb += self.sums_out[r].eq(Cat(low, a).as_signed())
