"""One processing element of the column-combined systolic array."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.multiplier import multiply_add, recode_weight
from colcomb.hdl.params import check_int, validated
from colcomb.hdl.program import cell_layout, lane_layout

__all__ = ["MULTIPLIERS", "Cell", "cell_ports", "hold_weight"]

#: how a cell multiplies: ``"dsp"`` writes ``weight * lane`` (yosys maps it to a DSP block where
#: the synthesis script asks for DSPs); ``"logic"`` recodes the stationary weight into radix-4
#: digits as it loads and sums the digits' multiples of the lane in carry chains
#: (:mod:`colcomb.hdl.multiplier`): no ``$mul`` cell, so no DSP mapper takes it, and a design can
#: keep cells beyond a device's DSP count in LUTs
MULTIPLIERS = ("dsp", "logic")


class Cell(wiring.Component):
    """A weight-stationary cell with an ``alpha``-input lane multiplexer (bit-parallel).

    The cell holds a signed weight and a select. Every cycle it picks input lane ``select``,
    multiplies it by the weight and adds the partial sum coming from its left neighbour; the sum is
    registered, so a vector moves one column per cycle. The lanes are not registered: a column's
    lanes reach all of its cells in the same cycle (no per-cell lane flip-flops). With
    ``alpha = 1`` there is no multiplexer and no select register: the plain dense cell.

    Partial sums are only as wide as they can grow: a cell adds one product to ``psum_in_bits``
    and emits ``psum_out_bits``, truncating; the array sizes them so the sum cannot wrap
    (:func:`colcomb.hdl.array.psum_bits`).

    Parameters
    ----------
    weight_bits, data_bits : int
        Widths of the weight and of each input lane (two's complement).
    alpha : int
        Input lanes per column (columns combined in one packed column).
    psum_in_bits : int
        Width of the incoming partial sum; 0 for the left edge (no input port).
    psum_out_bits : int
        Width of the outgoing partial sum, at least ``psum_in_bits`` (default:
        ``max(psum_in_bits, weight_bits + data_bits)``, plus one when there is an input).
    multiplier : str
        One of :data:`MULTIPLIERS`.
    onehot : bool
        The select holds one bit per lane (an AND-OR multiplexer) instead of the lane's index.

    Members
    -------
    load : ``In(1)``
        Shift the weight chain: the cell takes ``w_in`` (weight and select) this cycle.
    w_in : ``In(cell_layout(weight_bits, alpha, onehot))``
        The word shifted in from the cell above (row 0: from the ROM).
    w_out : ``Out(cell_layout(weight_bits, alpha, onehot))``
        The held word, towards the cell below.
    lanes : ``In(ArrayLayout(signed(data_bits), alpha))``
        The column's input lanes (shared by every cell of the column).
    psum_in : ``In(signed(psum_in_bits))``
        Partial sum from the left neighbour (absent when ``psum_in_bits`` is 0).
    psum_out : ``Out(signed(psum_out_bits))``
        ``psum_in + weight * lanes[select]``, registered.
    """

    @validated
    def __init__(self, *, weight_bits: int = 8, data_bits: int = 8, alpha: int = 1,
                 psum_in_bits: int = 0, psum_out_bits: int | None = None, multiplier: str = "dsp",
                 onehot: bool = False):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.alpha = check_int("alpha", alpha)
        self.psum_in_bits = check_int("psum_in_bits", psum_in_bits, 0)
        product = weight_bits + data_bits
        if psum_out_bits is None:
            psum_out_bits = max(psum_in_bits, product) + (psum_in_bits > 0)
        self.psum_out_bits = check_int("psum_out_bits", psum_out_bits, max(2, psum_in_bits))
        if multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {multiplier!r}")
        self.multiplier = multiplier
        self.onehot = bool(onehot)
        super().__init__(cell_ports(cell_layout(weight_bits, alpha, self.onehot), lane_layout(data_bits, alpha),
                                    psum_in_bits, psum_out_bits))

    def elaborate(self, platform):
        m = Module()
        held = hold_weight(m, self)

        if self.alpha == 1:
            picked = self.lanes[0]
        elif self.onehot:
            # an AND-OR of the lanes, one select bit each: 5 LUT4s per bit on iCE40, where the
            # index tree takes 7 (an unused select pattern reads zero or an OR of lanes)
            picked = Signal(signed(self.data_bits))
            terms = [self.lanes[i].as_unsigned() & held.select[i].replicate(self.data_bits)
                     for i in range(self.alpha)]
            m.d.comb += picked.eq(_or(terms))
        else:
            # an indexed read becomes one balanced mux tree; selects >= alpha never come from
            # the program (they read an arbitrary lane)
            picked = Signal(signed(self.data_bits))
            m.d.comb += picked.eq(self.lanes[held.select])

        psum_in = self.psum_in if self.psum_in_bits else None
        if self.multiplier == "dsp":
            product = Signal(signed(self.weight_bits + self.data_bits))
            m.d.comb += product.eq(held.weight * picked)
            total = product if psum_in is None else psum_in + product
        else:
            digits = recode_weight(m, self.w_in.weight, self.load, held.weight)
            total = multiply_add(m, digits, picked, psum_in)
        m.d.sync += self.psum_out.eq(total)
        return m


def cell_ports(word, lanes, psum_in_bits: int, psum_out_bits: int) -> dict:
    """The ports every cell kind has: the weight chain (``load``, ``w_in``, ``w_out``), the
    column's ``lanes`` and the partial sums (no ``psum_in`` at the left edge)."""
    ports = {"load": In(1), "w_in": In(word), "w_out": Out(word), "lanes": In(lanes),
             "psum_out": Out(signed(psum_out_bits))}
    if psum_in_bits:
        ports["psum_in"] = In(signed(psum_in_bits))
    return ports


def hold_weight(m: Module, cell: wiring.Component) -> Signal:
    """The cell's weight-and-select register, loaded from ``w_in`` on ``load`` and passed down
    the column on ``w_out``."""
    held = Signal(cell.w_in.shape())
    with m.If(cell.load):
        m.d.sync += held.eq(cell.w_in)
    m.d.comb += cell.w_out.eq(held)
    return held


def _or(values: list):
    """The OR of ``values`` (a balanced tree)."""
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]
