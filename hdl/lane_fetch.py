"""Lane fetch: while a tile is prepared, load each array lane's input channel from the activation
buffer into a shift register; while the batch streams, shift one vector per cycle into the array.

The lane ROM holds, per tile, the buffer row (input channel) that feeds each of the ``cols x
alpha`` lanes, or ``buffer_rows`` for an unused lane (it carries zero). During PREP, at step
``s`` (0, 1, ...) of the tile: step 0 reads the tile's lane word from the ROM; at step
``Rom.latency + i`` lane ``i``'s channel is addressed on the buffer; its row arrives
:data:`BUFFER_READ_LATENCY` cycles later and is stored in lane ``i``'s register. The last lane is
therefore stored :attr:`LaneFetch.latency` steps after it is counted: a tile's PREP lasts at
least ``cols * alpha + LaneFetch.latency`` cycles (:func:`colcomb.hdl.cycles.prep_cycles`).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.program import bits_for, lane_layout
from colcomb.hdl.rom import Rom

__all__ = ["BUFFER_READ_LATENCY", "LaneFetch", "buffer_read_signature", "buffer_row_layout",
           "fetch_control_signature"]

#: cycles from an address on an activation buffer's read port to the row (a synchronous memory
#: read port); the sequencer's buffers provide this
BUFFER_READ_LATENCY = 1


def buffer_row_layout(data_bits: int, batch: int) -> data.ArrayLayout:
    """One activation buffer row: word ``i`` of every vector of the batch (vector 0 lowest)."""
    return data.ArrayLayout(signed(data_bits), batch)


def buffer_read_signature(buffer_rows: int, data_bits: int, batch: int) -> wiring.Signature:
    """A read port of an activation buffer, seen from the reader: ``addr`` out (the lane source
    index, ``buffer_rows`` meaning the zero lane), ``data`` in :data:`BUFFER_READ_LATENCY` later."""
    return wiring.Signature({
        "addr": Out(unsigned(bits_for(buffer_rows))),
        "data": In(buffer_row_layout(data_bits, batch)),
    })


def fetch_control_signature(tiles: int, steps: int) -> wiring.Signature:
    """What the sequencer's FSM tells the lane fetch, seen from the FSM: the current ``tile``,
    ``prep`` (the tile is being prepared) with ``step`` (cycle of PREP, 0..steps-1), and ``shift``
    (a vector streams into the array this cycle)."""
    return wiring.Signature({
        "tile": Out(range(max(2, tiles))),
        "prep": Out(1),
        "step": Out(range(max(2, steps))),
        "shift": Out(1),
    })


class LaneFetch(wiring.Component):
    """The lane ROM, the lane source lookup and the lane shift registers.

    Parameters
    ----------
    cols, alpha : int
        The array's columns and lanes per column (``cols * alpha`` lanes).
    data_bits : int
        Bits of an activation word.
    batch : int
        Vectors per buffer row (the length of each shift register).
    buffer_rows : int
        Rows of an activation buffer; a lane source equal to it is the zero lane.
    sources : sequence of int
        The lane ROM: per tile, ``cols * alpha`` source indices of ``bits_for(buffer_rows)``
        bits each, lane ``c * alpha + l`` (column ``c``, lane ``l``) lowest first.
    steps : int
        Cycles of a tile's PREP (at least ``cols * alpha + latency``).
    serial : bool
        Feed the bit-serial array: each shift moves one bit (not one word) towards the array, and
        each lane is one wire (bit 0 of its register).

    Members
    -------
    control : ``In(fetch_control_signature(len(sources), steps))``
    buffer : ``Out(buffer_read_signature(buffer_rows, data_bits, batch))``
    lanes : ``Out(ArrayLayout(lane_layout(data_bits, alpha), cols))``
        Each lane's current word (vector 0 of its register), wired to the array's ``lanes_in``
        (serial: ``unsigned(1)`` lanes, the register's lowest bit).
    """

    #: steps from counting a lane to holding its channel: the lane ROM read, then the buffer read
    latency = Rom.latency + BUFFER_READ_LATENCY

    @validated
    def __init__(self, *, cols: int, alpha: int, data_bits: int, batch: int, buffer_rows: int,
                 sources: Sequence[int], steps: int, serial: bool = False):
        self.cols = check_int("cols", cols)
        self.alpha = check_int("alpha", alpha)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.batch = check_int("batch", batch)
        self.buffer_rows = check_int("buffer_rows", buffer_rows)
        self.sources = [int(w) for w in sources]
        if not self.sources:
            raise ValueError(f"sources needs one word per tile, got {list(sources)!r}")
        self.steps = check_int("steps", steps, cols * alpha + self.latency)
        self.serial = bool(serial)
        lane = data.ArrayLayout(unsigned(1), alpha) if self.serial else lane_layout(data_bits, alpha)
        super().__init__({
            "control": In(fetch_control_signature(len(self.sources), steps)),
            "buffer": Out(buffer_read_signature(buffer_rows, data_bits, batch)),
            "lanes": Out(data.ArrayLayout(lane, cols)),
        })

    @property
    def lane_count(self) -> int:
        return self.cols * self.alpha

    @property
    def zero_lane(self) -> int:
        """The source index of an unused lane."""
        return self.buffer_rows

    def elaborate(self, platform):
        m = Module()
        ctl = self.control
        lane_count, word_bits = self.lane_count, self.data_bits
        source_bits = bits_for(self.buffer_rows)
        source_layout = data.ArrayLayout(unsigned(source_bits), lane_count)  # column-major
        m.submodules.rom = rom = Rom(width=source_layout.size, init=self.sources, name="lanes")
        m.d.comb += [rom.addr0.eq(ctl.tile), rom.en0.eq(ctl.prep & (ctl.step == 0))]

        # step Rom.latency + i: address lane i's source row
        sources = source_layout(rom.data0)
        lane = Signal(range(max(2, lane_count + 1)))
        m.d.comb += lane.eq(ctl.step - Rom.latency)
        counting = ctl.prep & (ctl.step >= Rom.latency) & (ctl.step < lane_count + Rom.latency)
        source = Signal(unsigned(source_bits))
        m.d.comb += [
            source.eq(Array(sources[i] for i in range(lane_count))[lane]),
            self.buffer.addr.eq(source),
        ]
        # BUFFER_READ_LATENCY later: the row arrives; store it (or zero) in the lane's register
        request_layout = data.StructLayout({
            "valid": 1, "lane": Shape.cast(range(max(2, lane_count + 1))), "zero": 1})
        request = Signal(request_layout)
        m.d.comb += [request.valid.eq(counting), request.lane.eq(lane),
                     request.zero.eq(source == self.zero_lane)]
        arrived = delay(m, request, BUFFER_READ_LATENCY, "arrived")
        row = self.buffer.data.as_value()
        for i in range(lane_count):
            shift_reg = Signal(buffer_row_layout(word_bits, self.batch),
                               name=f"lanebuf_{i // self.alpha}_{i % self.alpha}")
            with m.If(arrived.valid & (arrived.lane == i)):
                m.d.sync += shift_reg.eq(Mux(arrived.zero, 0, row))
            with m.Elif(ctl.shift):  # one vector (serial: one bit) per cycle towards word 0
                m.d.sync += shift_reg.eq(shift_reg.as_value()[1 if self.serial else word_bits:])
            m.d.comb += self.lanes[i // self.alpha][i % self.alpha].eq(
                shift_reg.as_value()[0] if self.serial else shift_reg[0])
        return m
