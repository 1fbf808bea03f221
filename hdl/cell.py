"""One processing element of the column-combined systolic array."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated
from colcomb.hdl.program import cell_layout, lane_layout

__all__ = ["Cell"]


class Cell(wiring.Component):
    """A weight-stationary cell with an ``alpha``-input lane multiplexer (bit-parallel).

    The cell holds a signed weight and a select. Every cycle it picks input lane ``select``,
    multiplies it by the weight and adds the partial sum coming from its left neighbour. Lanes and
    the partial sum are registered on their way out, so a vector moves one cell per cycle. With
    ``alpha = 1`` there is no multiplexer and no select register: the plain dense cell.

    Parameters
    ----------
    weight_bits, data_bits, acc_bits : int
        Widths of the weight, of each input lane and of the partial sum (two's complement).
    alpha : int
        Input lanes per column (columns combined in one packed column).

    Members
    -------
    load : ``In(1)``
        Shift the weight chain: the cell takes ``w_in`` (weight and select) this cycle.
    w_in : ``In(cell_layout(weight_bits, alpha))``
        The word shifted in from the cell above (row 0: from the ROM).
    w_out : ``Out(cell_layout(weight_bits, alpha))``
        The held word, towards the cell below.
    lanes_in : ``In(ArrayLayout(signed(data_bits), alpha))``
        The column's input lanes from the cell above.
    lanes_out : ``Out(ArrayLayout(signed(data_bits), alpha))``
        ``lanes_in`` delayed one cycle, towards the cell below.
    psum_in : ``In(signed(acc_bits))``
        Partial sum from the left neighbour (0 at the left edge).
    psum_out : ``Out(signed(acc_bits))``
        ``psum_in + weight * lanes_in[select]``, registered, truncated to ``acc_bits`` (two's
        complement wrap-around; the generator refuses layers that could overflow).
    """

    @validated
    def __init__(self, *, weight_bits: int = 8, data_bits: int = 8, acc_bits: int = 32,
                 alpha: int = 1):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        self.alpha = check_int("alpha", alpha)
        cl = cell_layout(weight_bits, alpha)
        ll = lane_layout(data_bits, alpha)
        super().__init__({
            "load": In(1),
            "w_in": In(cl),
            "w_out": Out(cl),
            "lanes_in": In(ll),
            "lanes_out": Out(ll),
            "psum_in": In(signed(acc_bits)),
            "psum_out": Out(signed(acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        held = Signal(self.w_in.shape())
        with m.If(self.load):
            m.d.sync += held.eq(self.w_in)
        m.d.comb += self.w_out.eq(held)

        if self.alpha == 1:
            picked = self.lanes_in[0]
        else:
            picked = Signal(signed(self.data_bits))
            with m.Switch(held.select):
                for lane in range(self.alpha):
                    with m.Case(lane):
                        m.d.comb += picked.eq(self.lanes_in[lane])
                # selects >= alpha never come from the program; they read lane 0
                with m.Default():
                    m.d.comb += picked.eq(self.lanes_in[0])
        m.d.sync += [
            self.lanes_out.eq(self.lanes_in),
            self.psum_out.eq(self.psum_in + held.weight * picked),
        ]
        return m
