"""The output stage of a layer: bias, integer multiplier, shift with round half up, clamp."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated
from colcomb.hdl.program import bits_for
from colcomb.packer.packed import MULTIPLIER_BITS

__all__ = ["Requantizer"]


class Requantizer(wiring.Component):
    """``lanes`` parallel requantizers, pipelined, :attr:`latency` = 2 cycles.

    For each lane: ``y = (sum + bias) * mult``; ``y = (y + 2**(shift-1)) >> shift`` (arithmetic
    shift, i.e. round half up; no rounding term when ``shift == 0``); clamp to ``[lo, hi]``. The
    shift and clamp are per layer (constants chosen by ``layer``); bias and multiplier per lane.
    Exactly :func:`colcomb.packer.golden.requantize`.

    Parameters
    ----------
    lanes : int
        Values per cycle (the array's rows).
    acc_bits, data_bits : int
        Width of the sums and biases; width of the outputs.
    shifts : sequence of int
        Right shift of each layer (0..62).
    clamps : sequence of (int, int)
        Clamp bounds of each layer, inside the ``data_bits`` range.

    Members
    -------
    valid : ``In(1)``
        The inputs hold a value to requantize.
    layer : ``In(range(len(shifts)))``
        Which layer's shift and clamp apply.
    sums, bias : ``In(ArrayLayout(signed(acc_bits), lanes))``
        Accumulator values and biases.
    mult : ``In(ArrayLayout(unsigned(16), lanes))``
        Multipliers.
    out_valid : ``Out(1)``
        ``valid`` delayed by :attr:`latency`.
    out : ``Out(ArrayLayout(signed(data_bits), lanes))``
        The requantized values of the inputs :attr:`latency` cycles before.
    """

    latency = 2

    @validated
    def __init__(self, *, lanes: int, acc_bits: int = 32, data_bits: int = 8,
                 shifts: Sequence[int] = (0,), clamps: Sequence[tuple[int, int]] = ((-128, 127),)):
        self.lanes = check_int("lanes", lanes)
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.shifts = tuple(int(s) for s in shifts)
        self.clamps = tuple((int(lo), int(hi)) for lo, hi in clamps)
        if not self.shifts or len(self.shifts) != len(self.clamps):
            raise ValueError(f"need one shift and one clamp per layer, got shifts={shifts!r}, "
                             f"clamps={clamps!r}")
        for s in self.shifts:
            if not 0 <= s <= 62:
                raise ValueError(f"shift {s!r} is outside [0, 62]")
        d_lo, d_hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
        for lo, hi in self.clamps:
            if not d_lo <= lo <= hi <= d_hi:
                raise ValueError(f"clamp {(lo, hi)!r} is not an ordered range inside the "
                                 f"{data_bits}-bit output [{d_lo}, {d_hi}]")
        super().__init__({
            "valid": In(1),
            "layer": In(range(max(2, len(self.shifts)))),
            "sums": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "bias": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "mult": In(data.ArrayLayout(unsigned(MULTIPLIER_BITS), lanes)),
            "out_valid": Out(1),
            "out": Out(data.ArrayLayout(signed(data_bits), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        prod_bits = self.acc_bits + 1 + MULTIPLIER_BITS + 1
        max_shift = max(self.shifts)
        sum_bits = max(prod_bits, max_shift + 1) + 1
        layer1 = Signal.like(self.layer)
        valid1 = Signal()
        m.d.sync += [layer1.eq(self.layer), valid1.eq(self.valid), self.out_valid.eq(valid1)]

        rnd = Array(Const((1 << (s - 1)) if s else 0, unsigned(max(1, max_shift))) for s in self.shifts)
        sh = Array(Const(s, unsigned(bits_for(max_shift))) for s in self.shifts)
        lo = Array(Const(c[0], signed(self.data_bits)) for c in self.clamps)
        hi = Array(Const(c[1], signed(self.data_bits)) for c in self.clamps)
        for i in range(self.lanes):
            prod = Signal(signed(prod_bits), name=f"prod_{i}")
            m.d.sync += prod.eq((self.sums[i] + self.bias[i]) * self.mult[i])
            rounded = Signal(signed(sum_bits), name=f"rounded_{i}")
            m.d.comb += rounded.eq((prod + rnd[layer1]) >> sh[layer1])
            with m.If(rounded < lo[layer1]):
                m.d.sync += self.out[i].eq(lo[layer1])
            with m.Elif(rounded > hi[layer1]):
                m.d.sync += self.out[i].eq(hi[layer1])
            with m.Else():
                m.d.sync += self.out[i].eq(rounded)
        return m
