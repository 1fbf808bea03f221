"""The bit-serial processing element: the paper's cell (activations one bit per cycle)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, unsigned
from amaranth.lib import data, wiring

from colcomb.hdl.cell import cell_ports, hold_weight
from colcomb.hdl.params import check_int, validated
from colcomb.hdl.program import cell_layout

__all__ = ["SerialCell"]


class SerialCell(wiring.Component):
    """A weight-stationary cell whose ``alpha`` input lanes are one wire each.

    Activations arrive one bit per cycle, least significant first (bit-plane ``b`` of the
    vector in cycle ``b``). The cell picks lane ``select`` (an ``alpha``-to-1 multiplexer of single
    bits), gates its parallel weight with that bit and adds the result to the partial sum from
    its left neighbour: the row computes ``sum_c weight_c * x_c[b]``, one bit-plane per cycle,
    and the array's edge weights the planes by ``2^b`` (``-2^(data_bits-1)`` for the sign bit), a
    serial-parallel multiply-accumulate spread over the row. No multiplier: an adder of
    ``psum_out_bits`` bits is the cell's only arithmetic.

    Parameters
    ----------
    weight_bits : int
        Width of the weight (two's complement).
    alpha : int
        Input lanes (wires) per column.
    psum_in_bits : int
        Width of the incoming bit-plane partial sum; 0 for the left edge (no input port).
    psum_out_bits : int
        Width of the outgoing partial sum, at least ``max(2, psum_in_bits)``; the array sizes it
        so a sum of ``n`` weights never wraps.

    Members
    -------
    load : ``In(1)``
        Shift the weight chain: the cell takes ``w_in`` this cycle.
    w_in : ``In(cell_layout(weight_bits, alpha))``
        The word shifted in from the cell above (row 0: from the ROM).
    w_out : ``Out(cell_layout(weight_bits, alpha))``
        The held word, towards the cell below.
    lanes : ``In(ArrayLayout(unsigned(1), alpha))``
        This cycle's bit of every lane of the column (shared by the column's cells).
    psum_in : ``In(signed(psum_in_bits))``
        Partial sum of the bit-plane from the left neighbour (absent when ``psum_in_bits`` is 0).
    psum_out : ``Out(signed(psum_out_bits))``
        ``psum_in + (weight if lanes[select] else 0)``, registered.
    """

    @validated
    def __init__(self, *, weight_bits: int = 8, alpha: int = 1, psum_in_bits: int = 0,
                 psum_out_bits: int | None = None):
        self.weight_bits = check_int("weight_bits", weight_bits, 2)
        self.alpha = check_int("alpha", alpha)
        self.psum_in_bits = check_int("psum_in_bits", psum_in_bits, 0)
        if psum_out_bits is None:
            psum_out_bits = max(psum_in_bits, weight_bits) + (psum_in_bits > 0)
        self.psum_out_bits = check_int("psum_out_bits", psum_out_bits, max(2, psum_in_bits))
        super().__init__(cell_ports(cell_layout(weight_bits, alpha), data.ArrayLayout(unsigned(1), alpha),
                                    psum_in_bits, psum_out_bits))

    def elaborate(self, platform):
        m = Module()
        held = hold_weight(m, self)
        bit = self.lanes[0] if self.alpha == 1 else self.lanes.as_value().bit_select(held.select, 1)
        term = Mux(bit, held.weight, 0)
        m.d.sync += self.psum_out.eq(term if not self.psum_in_bits else self.psum_in + term)
        return m
