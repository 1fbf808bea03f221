"""The input port for stream beats of several words: a beat's words written in few cycles.

With ``beat`` words a beat (:attr:`colcomb.hdl.program.Program.beat`) the input memory is split
into :attr:`~colcomb.hdl.program.Program.beat_banks` memories by slot (slot ``s`` of a word in
bank ``s % banks``), each with its own write port, so that one cycle writes one address in
every bank. The compiler schedules each beat of a vector (:attr:`Program.input_beats`: which
word of the beat goes to which bank slot, at which address, in which cycle) into the beat ROM;
this port steps through a beat's cycles and takes the next beat in its last one, so a beat costs
the cycles of its schedule (one when its words' slots fall in different banks).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.framing import beat_data
from colcomb.hdl.params import validated
from colcomb.hdl.program import Program
from colcomb.hdl.rom import Rom

__all__ = ["BeatPort", "bank_write_layout"]


def bank_write_layout(program: Program) -> data.StructLayout:
    """One bank's write: its address, its slots' words and a write enable per slot."""
    p = program
    return data.StructLayout({"addr": unsigned(p.address_bits),
                              "data": data.ArrayLayout(unsigned(p.data_bits), p.beat_bank_slots),
                              "en": unsigned(p.beat_bank_slots)})


class BeatPort(wiring.Component):
    """Writes each taken beat's words into the input memory's banks by the beat ROM's schedule.

    Members
    -------
    en : ``In(1)``
        Take ``data`` as beat ``index`` of a vector whose region starts at ``base`` (while
        ``ready``).
    ready : ``Out(1)``
        Low while the previous beat has further cycles to write.
    index : ``In(range(program.in_beats))``
    data : ``In(beat_data(data_bits, beat))``
    base : ``In(unsigned(program.address_bits))``
        Address of the vector's word 0 (its vector offset and buffer region).
    writes : ``Out(ArrayLayout(bank_write_layout(program), program.beat_banks))``
        Each bank's write port, a cycle after the beat is taken and on its further cycles.
    """

    @validated
    def __init__(self, *, program: Program):
        if not isinstance(program, Program):
            raise TypeError(f"program must be a Program (Program.compile(...)), not {program!r}")
        if program.beat < 2:
            raise ValueError(f"the beat port is for beats of several words, not {program.beat!r}")
        self.program = p = program
        super().__init__({
            "en": In(1),
            "ready": Out(1),
            "index": In(range(max(2, p.in_beats))),
            "data": In(beat_data(p.data_bits, p.beat)),
            "base": In(unsigned(p.address_bits)),
            "writes": Out(data.ArrayLayout(bank_write_layout(p), p.beat_banks)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.program
        m.submodules.beat_rom = rom = Rom(width=p.beat_layout.size, init=p.beat_map, name="beats")
        entry = p.beat_layout(rom.data0)
        have = Signal()  # a beat is being written: its current cycle's entry is on the ROM's output
        pointer = Signal(range(max(2, len(p.beat_map))))  # the ROM address of that entry
        words = Signal.like(self.data)
        base = Signal.like(self.base)
        last = entry.last
        m.d.comb += self.ready.eq(~have | last)
        take = self.en & self.ready
        # the entries of a vector's beats follow each other in the ROM: the next beat's first is
        # the entry after the current one, a vector's first beat starts the ROM over
        address = Signal.like(pointer)
        with m.If(take):
            m.d.comb += address.eq(Mux(self.index == 0, 0, pointer + 1))
            m.d.sync += [have.eq(1), words.eq(self.data), base.eq(self.base)]
        with m.Elif(have & ~last):
            m.d.comb += address.eq(pointer + 1)
        with m.Else():
            m.d.comb += address.eq(pointer)
            m.d.sync += have.eq(0)
        m.d.sync += pointer.eq(address)
        m.d.comb += [rom.addr0.eq(address), rom.en0.eq(1)]
        beat_words = words.as_value()
        for b in range(p.beat_banks):
            bank, write = entry.banks[b], self.writes[b]
            m.d.comb += write.addr.eq(bank.address + base)
            for s in range(p.beat_bank_slots):
                slot = bank.slots[s]
                m.d.comb += [write.data[s].eq(beat_words.word_select(slot.word, p.data_bits)),
                             write.en[s].eq(have & slot.valid)]
        return m
