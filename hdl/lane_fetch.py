"""Lane fetch: read each vector's lanes from the lane memory into the array.

The lane memory (:mod:`colcomb.hdl.layout`) holds a tile's lanes for vector ``n`` in ``parts``
consecutive words at ``base + n * parts``, so fetching a vector is ``parts`` reads, whatever the
batch. On the bit-parallel array (one part) the read port's data are the lanes: a read issued in
the cycle before the vector enters the array. On the serial array the ``parts`` words of the next
vector are read while the current one streams its bits, gathered in a register and handed to the
bit-plane multiplexers when it starts; a vector's fetch begins :meth:`LaneFetch.lead_for` cycles
before it enters the array.

With *column words* (``staggered``: a word per array column, ``parts == cols <= data_bits``) the
serial array needs no gathering register and no skew: column ``c``'s word is read ``c`` cycles
after column 0's, straight into that column's shift register, just as the systolic skew wants
column ``c`` to start ``c`` cycles later; each register shifts out one bit per cycle. The reads of
one vector end before the next vector's begin (``cols <= data_bits``: one read per cycle at
most), so one port and ``cols * alpha * data_bits`` flip-flops feed the array.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated
from colcomb.hdl.program import lane_layout

__all__ = ["MEMORY_READ_LATENCY", "LaneFetch", "fetch_control_signature", "memory_read_signature",
           "memory_word_layout", "vector_offset"]

#: cycles from an address on the lane memory's read port to its word (a synchronous read port)
MEMORY_READ_LATENCY = 1


def vector_offset(n, parts: int):
    """Where vector ``n``'s words start from a tile's vector-0 address: ``n * parts``, a shift
    (``parts`` is a power of two)."""
    return n << (parts - 1).bit_length()


def memory_word_layout(data_bits: int, lanes_per_part: int) -> data.ArrayLayout:
    """One lane memory word: ``lanes_per_part`` activation words (slot 0 lowest)."""
    return data.ArrayLayout(signed(data_bits), lanes_per_part)


def memory_read_signature(address_bits: int, data_bits: int, lanes_per_part: int) -> wiring.Signature:
    """A read port of the lane memory, seen from the reader: ``addr`` and ``en`` out, the word
    in :data:`MEMORY_READ_LATENCY` later (it holds while ``en`` is low)."""
    return wiring.Signature({
        "addr": Out(unsigned(address_bits)),
        "en": Out(1),
        "data": In(memory_word_layout(data_bits, lanes_per_part)),
    })


def fetch_control_signature(address_bits: int, batch: int, data_bits: int) -> wiring.Signature:
    """What the sequencer tells the lane fetch, seen from the sequencer: ``fetch`` vector ``n`` of
    the tile whose lanes start at ``base`` (a pulse :meth:`LaneFetch.lead_for` cycles before the
    vector enters the array), and the ``bit`` the serial array takes this cycle."""
    return wiring.Signature({
        "fetch": Out(1),
        "n": Out(range(max(2, batch))),
        "base": Out(unsigned(address_bits)),
        "bit": Out(range(max(2, data_bits))),
    })


class LaneFetch(wiring.Component):
    """Reads vector after vector of a tile's lanes from the lane memory.

    Parameters
    ----------
    cols, alpha : int
        The array's columns and lanes per column (``cols * alpha`` lanes).
    data_bits : int
        Bits of an activation word.
    batch : int
        Vectors per batch (the width of ``n``).
    parts : int
        Lane memory words per vector (a power of two; 1 on the bit-parallel array).
    address_bits : int
        Width of a lane memory address.
    serial : bool
        Feed the bit-serial array: each lane is one wire, bit ``bit`` of its word.
    staggered : bool
        Serial column words (``parts == cols <= data_bits``): column ``c``'s word read ``c``
        cycles after column 0's into its own shift register, the lanes already skewed.
    gather : bool
        Column words at ``offsets[c]`` from the vector's address, not at ``c``: the words of a
        convolution window, anywhere in a feature map (:meth:`Program._build_images`).

    Members
    -------
    control : ``In(fetch_control_signature(address_bits, batch, data_bits))``
    memory : ``Out(memory_read_signature(address_bits, data_bits, lanes_per_part))``
    offsets : ``In(ArrayLayout(unsigned(address_bits), cols))``
        Only with ``gather``: each column word's offset, held for the tile.
    lanes : ``Out(ArrayLayout(lane_layout(data_bits, alpha), cols))``
        The lanes of the vector in the array, wired to the array's ``lanes_in`` (serial:
        ``unsigned(1)`` lanes; staggered: column ``c`` already ``c`` cycles late, the array's
        ``skewed_input``).
    """

    @staticmethod
    def lead_for(serial: bool, parts: int, staggered: bool = False) -> int:
        """Cycles from ``fetch`` to the vector's first cycle in the array: one read (parallel),
        ``parts`` reads and the hand-over to the bit multiplexers (serial), or column 0's read
        and its load into the shift register (serial, column words)."""
        if not serial:
            return MEMORY_READ_LATENCY
        return MEMORY_READ_LATENCY + (1 if staggered else parts)

    @validated
    def __init__(self, *, cols: int, alpha: int, data_bits: int, batch: int, parts: int,
                 address_bits: int, serial: bool = False, staggered: bool = False, gather: bool = False):
        self.cols = check_int("cols", cols)
        self.alpha = check_int("alpha", alpha)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.batch = check_int("batch", batch)
        self.parts = check_int("parts", parts)
        if parts & (parts - 1):
            raise ValueError(f"parts must be a power of two, not {parts!r}")
        if not serial and parts != 1 and not (gather and parts == cols):
            raise ValueError(f"the bit-parallel array reads one word per vector (or one per column from "
                             f"banks, gather), not parts={parts!r}")
        self.address_bits = check_int("address_bits", address_bits)
        self.serial = bool(serial)
        self.staggered = bool(staggered)
        if staggered and not (serial and parts == cols <= data_bits):
            raise ValueError(f"column words (staggered) need the serial array with parts == cols <= "
                             f"data_bits, not serial={serial!r}, parts={parts!r}, cols={cols!r}, "
                             f"data_bits={data_bits!r}")
        self.gather = bool(gather)
        if gather and serial and not staggered:
            raise ValueError(f"gather reads column words: it needs staggered=True, not {staggered!r}")
        self.lanes_per_part = -(-cols * alpha // parts)
        lane = data.ArrayLayout(unsigned(1), alpha) if self.serial else lane_layout(data_bits, alpha)
        members = {
            "control": In(fetch_control_signature(address_bits, batch, data_bits)),
            "memory": Out(memory_read_signature(address_bits, data_bits, self.lanes_per_part)),
            "lanes": Out(data.ArrayLayout(lane, cols)),
        }
        if gather:
            members["offsets"] = In(data.ArrayLayout(unsigned(address_bits), cols))
        if gather and not serial:  # banks: every column's word in the same cycle
            members["banks"] = Out(data.ArrayLayout(unsigned(address_bits), cols))
            members["bank_data"] = In(data.ArrayLayout(memory_word_layout(data_bits, self.lanes_per_part), cols))
        super().__init__(members)

    @property
    def lead(self) -> int:
        return self.lead_for(self.serial, self.parts, self.staggered)

    def elaborate(self, platform):
        m = Module()
        ctl, mem = self.control, self.memory
        lanes, lpp = self.cols * self.alpha, self.lanes_per_part
        vector_base = Signal(unsigned(self.address_bits))
        m.d.comb += vector_base.eq(ctl.base + vector_offset(ctl.n, self.parts))
        if not self.serial:
            m.d.comb += [mem.addr.eq(vector_base), mem.en.eq(ctl.fetch)]
            if self.gather:  # a bank per column, each read at its column's offset
                for c in range(self.cols):
                    m.d.comb += [self.banks[c].eq(vector_base + self.offsets[c]),
                                 self.lanes[c].eq(self.bank_data[c])]
            else:
                for i in range(lanes):
                    m.d.comb += self.lanes[i // self.alpha][i % self.alpha].eq(mem.data[i])
            return m

        if self.staggered:
            return self._column_words(m, vector_base)

        # serial: read the parts one per cycle; the last one joins the others on its arrival
        part = Signal(range(self.parts + 1))
        address = Signal(unsigned(self.address_bits))
        reading = Signal()
        with m.If(ctl.fetch):
            m.d.sync += [part.eq(1), address.eq(vector_base + 1)]
        with m.Elif(part != 0):
            m.d.sync += [part.eq(part + 1), address.eq(address + 1)]
            with m.If(part == self.parts - 1):
                m.d.sync += part.eq(0)
        m.d.comb += [
            reading.eq(ctl.fetch | (part != 0)),
            mem.addr.eq(address),
            mem.en.eq(reading),
        ]
        with m.If(ctl.fetch):
            m.d.comb += mem.addr.eq(vector_base)
        arrived_part = Signal(range(max(2, self.parts)))
        arrived = Signal()
        m.d.sync += [arrived.eq(reading), arrived_part.eq(Mux(ctl.fetch, 0, part))]
        gathered = [Signal(memory_word_layout(self.data_bits, lpp), name=f"next_{q}")
                    for q in range(self.parts - 1)]
        current = Signal(data.ArrayLayout(memory_word_layout(self.data_bits, lpp), self.parts))
        for q in range(self.parts - 1):
            with m.If(arrived & (arrived_part == q)):
                m.d.sync += gathered[q].eq(mem.data)
        with m.If(arrived & (arrived_part == self.parts - 1)):
            m.d.sync += current.eq(Cat(*gathered, mem.data))
        for i in range(lanes):
            word = current[i // lpp][i % lpp]
            m.d.comb += self.lanes[i // self.alpha][i % self.alpha].eq(
                word.bit_select(ctl.bit, 1))
        return m

    def _column_words(self, m: Module, vector_base: Value) -> Module:
        """Serial, a word per column: column ``c``'s read ``c`` cycles after column 0's, each
        loaded into its column's shift register as it arrives."""
        ctl, mem, cols = self.control, self.memory, self.cols
        col = Signal(range(max(2, cols)))  # the next column to read
        address = Signal(unsigned(self.address_bits))
        more = Signal()
        if self.gather:
            # the window's words: the vector's address plus each column's offset
            held = Signal(unsigned(self.address_bits))
            with m.If(ctl.fetch):
                m.d.sync += held.eq(vector_base)
            m.d.comb += address.eq(held + self.offsets[col])
            first = vector_base + self.offsets[0]
        else:
            first = vector_base + 0
        with m.If(ctl.fetch):
            m.d.sync += [col.eq(1), more.eq(cols > 1)]
            if not self.gather:
                m.d.sync += address.eq(vector_base + 1)
        with m.Elif(more):
            m.d.sync += [col.eq(col + 1), more.eq(col + 1 < cols)]
            if not self.gather:
                m.d.sync += address.eq(address + 1)
        m.d.comb += [mem.addr.eq(Mux(ctl.fetch, first, address)), mem.en.eq(ctl.fetch | more)]
        arrived = Signal()
        arrived_col = Signal.like(col)
        m.d.sync += [arrived.eq(mem.en), arrived_col.eq(Mux(ctl.fetch, 0, col))]
        for c in range(cols):
            bits = Signal(data.ArrayLayout(unsigned(self.data_bits), self.alpha), name=f"column_{c}")
            with m.If(arrived & (arrived_col == c)):
                m.d.sync += bits.eq(mem.data)
            with m.Else():
                m.d.sync += [bits[a].eq(bits[a] >> 1) for a in range(self.alpha)]
            for a in range(self.alpha):
                m.d.comb += self.lanes[c][a].eq(bits[a][0])
        return m
