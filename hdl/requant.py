"""The output stage of a layer: bias, integer multiplier, shift with round half up, clamp."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated
from colcomb.hdl.program import bits_for
from colcomb.packer.packed import MAX_SHIFT, MULTIPLIER_BITS

__all__ = ["Requantizer"]


class Requantizer(wiring.Component):
    """``lanes`` parallel requantizers, pipelined, :attr:`latency` = 2 cycles.

    For each lane: ``y = (sum + bias) * mult``; ``y = (y + 2**(shift-1)) >> shift`` (arithmetic
    shift, i.e. round half up; no rounding term when ``shift == 0``); clamp to ``[lo, hi]``.
    Bias, multiplier and shift come per lane (the row's, from the requantization ROM); the clamp
    per layer (constants chosen by ``layer``). Exactly :func:`colcomb.packer.golden.requantize`.

    The per-row shift is a barrel shifter after the multiplier. Rounding needs no variable
    constant: ``((2 y) >> shift) + 1) >> 1`` equals ``(y + 2**(shift-1)) >> shift`` for
    ``shift >= 1`` and ``y`` for ``shift == 0``.

    Parameters
    ----------
    lanes : int
        Values per cycle (the array's rows).
    acc_bits, data_bits : int
        Width of the sums and biases; width of the outputs.
    max_shift : int
        Largest shift any row uses (0..62); sizes the ``shift`` inputs and the barrel shifter.
    clamps : sequence of (int, int)
        Clamp bounds of each layer, inside the ``data_bits`` range.

    Members
    -------
    valid : ``In(1)``
        The inputs hold a value to requantize.
    layer : ``In(range(len(clamps)))``
        Which layer's clamp applies.
    sums, bias : ``In(ArrayLayout(signed(acc_bits), lanes))``
        Accumulator values and biases.
    mult : ``In(ArrayLayout(unsigned(16), lanes))``
        Multipliers.
    shift : ``In(ArrayLayout(unsigned(bits_for(max_shift)), lanes))``
        Right shifts.
    out_valid : ``Out(1)``
        ``valid`` delayed by :attr:`latency`.
    out : ``Out(ArrayLayout(signed(data_bits), lanes))``
        The requantized values of the inputs :attr:`latency` cycles before.
    """

    latency = 2

    @validated
    def __init__(self, *, lanes: int, acc_bits: int = 32, data_bits: int = 8,
                 max_shift: int = 0, clamps: Sequence[tuple[int, int]] = ((-128, 127),)):
        self.lanes = check_int("lanes", lanes)
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.max_shift = check_int("max_shift", max_shift, 0)
        if self.max_shift > MAX_SHIFT:
            raise ValueError(f"max_shift {max_shift!r} is outside [0, {MAX_SHIFT}]")
        self.clamps = tuple((int(lo), int(hi)) for lo, hi in clamps)
        if not self.clamps:
            raise ValueError(f"need one clamp per layer, got clamps={clamps!r}")
        d_lo, d_hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
        for lo, hi in self.clamps:
            if not d_lo <= lo <= hi <= d_hi:
                raise ValueError(f"clamp {(lo, hi)!r} is not an ordered range inside the "
                                 f"{data_bits}-bit output [{d_lo}, {d_hi}]")
        super().__init__({
            "valid": In(1),
            "layer": In(range(max(2, len(self.clamps)))),
            "sums": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "bias": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "mult": In(data.ArrayLayout(unsigned(MULTIPLIER_BITS), lanes)),
            "shift": In(data.ArrayLayout(unsigned(bits_for(self.max_shift)), lanes)),
            "out_valid": Out(1),
            "out": Out(data.ArrayLayout(signed(data_bits), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        prod_bits = self.acc_bits + 1 + MULTIPLIER_BITS + 1
        layer1 = Signal.like(self.layer)
        valid1 = Signal()
        m.d.sync += [layer1.eq(self.layer), valid1.eq(self.valid), self.out_valid.eq(valid1)]

        lo = Array(Const(c[0], signed(self.data_bits)) for c in self.clamps)
        hi = Array(Const(c[1], signed(self.data_bits)) for c in self.clamps)
        for i in range(self.lanes):
            prod = Signal(signed(prod_bits), name=f"prod_{i}")
            shift = Signal.like(self.shift[i], name=f"shift_{i}")
            m.d.sync += [prod.eq((self.sums[i] + self.bias[i]) * self.mult[i]),
                         shift.eq(self.shift[i])]
            halves = Signal(signed(prod_bits + 1), name=f"halves_{i}")  # y / 2**(shift-1)
            doubled = Cat(Const(0, 1), prod).as_signed()
            # no shifter at all when every row's shift is 0 (the ROM field then holds 0)
            m.d.comb += halves.eq(doubled >> shift if self.max_shift else doubled)
            rounded = Signal(signed(prod_bits + 1), name=f"rounded_{i}")
            m.d.comb += rounded.eq((halves + 1) >> 1)
            with m.If(rounded < lo[layer1]):
                m.d.sync += self.out[i].eq(lo[layer1])
            with m.Elif(rounded > hi[layer1]):
                m.d.sync += self.out[i].eq(hi[layer1])
            with m.Else():
                m.d.sync += self.out[i].eq(rounded)
        return m
