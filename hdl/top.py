"""The top level: a valid/ready input stream of words, the engine, a valid/ready output stream.

Stream format (both directions, :mod:`colcomb.hdl.framing`): one activation word per beat, payload
``{data: signed(data_bits), last: 1}`` (``data`` in the low bits). Input: the words of vector 0
(layer 0's ``cols`` words, index 0 first), then vector 1, ...; ``last`` on the final word of the
batch's final vector. A batch ends at ``last`` or when ``batch`` vectors have arrived, whichever
comes first (``last`` inside a vector ends the batch there; that vector's missing words are
undefined). Output: the last layer's ``rows`` words of each vector in order, ``last`` on the final
word of the batch. ``i.ready`` is low from the end of a batch's input until its last output word
has been accepted: a batch is received, computed, then sent. Input words are taken and output
words leave at one per cycle (after one cycle to address the first output word); an input word
that layer 0's row blocks read from several lane slots holds ``i.ready`` low while it is written
to the further ones.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.framing import word_layout
from colcomb.hdl.params import validated
from colcomb.hdl.program import Program
from colcomb.hdl.sequencer import Sequencer

__all__ = ["Top", "word_layout"]


class Top(wiring.Component):
    """The column-combined network accelerator with stream interfaces.

    Parameters
    ----------
    program : Program
        The network compiled for the array (:meth:`Program.compile`).

    Members
    -------
    i : ``In(stream.Signature(word_layout(data_bits)))``
        Input words (``i.payload.data``, ``i.payload.last``, ``i.valid``, ``i.ready``).
    o : ``Out(stream.Signature(word_layout(data_bits)))``
        Output words, same format.
    busy : ``Out(1)``
        The engine is computing (between the end of input and the first output).
    """

    #: cycles per batch besides one per input and output word and the engine's run: the START
    #: state (one cycle pulsing the engine's ``start``) and the READ state (addressing the first
    #: output word, :attr:`Sequencer.read_latency` before it is offered)
    batch_overhead = 1 + Sequencer.read_latency

    @validated
    def __init__(self, *, program: Program):
        if not isinstance(program, Program):
            raise TypeError(f"program must be a Program (Program.compile(...)), not {program!r}")
        self.program = program
        layout = word_layout(program.data_bits)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.program
        m.submodules.engine = eng = Sequencer(program=p)
        assert Sequencer.read_latency == 1, "the READ state waits one cycle for the first word"
        n = Signal(range(p.batch + 1))
        j = Signal(range(max(2, p.in_words, p.out_words)))
        nbatch = Signal(range(p.batch + 1))
        m.d.comb += self.busy.eq(eng.busy)

        # where output word j of vector n lives (identity layout of the output region): slot,
        # part and tile counters beside j, so the address needs no division
        geo = p.geometry
        slot = Signal(range(max(2, geo.lanes_per_part)))
        part = Signal(range(max(2, geo.parts)))
        tile_offset = Signal(unsigned(p.address_bits + 1))
        vector_base = Signal(unsigned(p.address_bits + 1))
        n_slot, n_part = Signal.like(slot), Signal.like(part)
        n_tile_offset, n_vector_base = Signal.like(tile_offset), Signal.like(vector_base)
        j_next = Signal.like(j)

        with m.FSM():
            with m.State("RECV"):
                m.d.comb += [
                    self.i.ready.eq(eng.in_ready),
                    eng.in_en.eq(self.i.valid),
                    eng.in_addr.eq(n),
                    eng.in_index.eq(j),
                    eng.in_data.eq(self.i.payload.data),
                ]
                with m.If(self.i.valid & eng.in_ready):
                    vec_end = j == p.in_words - 1
                    with m.If(self.i.payload.last | (vec_end & (n == p.batch - 1))):
                        m.d.sync += [nbatch.eq(n + 1), n.eq(0), j.eq(0)]
                        m.next = "START"
                    with m.Elif(vec_end):
                        m.d.sync += [n.eq(n + 1), j.eq(0)]
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("START"):  # once the last word is in all its slots
                with m.If(eng.in_ready):
                    m.d.comb += [eng.start.eq(1), eng.batch.eq(nbatch)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(eng.done):
                    m.d.sync += [slot.eq(0), part.eq(0), tile_offset.eq(0),
                                 vector_base.eq(p.output_region)]
                    m.next = "READ"
            with m.State("READ"):  # one state: Sequencer.read_latency == 1
                m.d.comb += [eng.out_addr.eq(vector_base), eng.out_slot.eq(0)]
                m.next = "SEND"
            with m.State("SEND"):
                vec_end = j == p.out_words - 1
                batch_end = vec_end & (n == nbatch - 1)
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.data.eq(eng.out_data),
                    self.o.payload.last.eq(batch_end),
                    j_next.eq(Mux(vec_end, 0, j + 1)),
                ]
                # the position of the word after this one
                m.d.comb += [n_slot.eq(slot + 1), n_part.eq(part), n_tile_offset.eq(tile_offset),
                             n_vector_base.eq(vector_base)]
                with m.If(vec_end):
                    m.d.comb += [n_slot.eq(0), n_part.eq(0), n_tile_offset.eq(0),
                                 n_vector_base.eq(vector_base + geo.parts)]
                with m.Elif(slot == geo.lanes_per_part - 1):
                    m.d.comb += n_slot.eq(0)
                    if geo.parts > 1:
                        m.d.comb += n_part.eq(part + 1)
                        with m.If(part == geo.parts - 1):
                            m.d.comb += [n_part.eq(0), n_tile_offset.eq(tile_offset + geo.tile_words)]
                    else:
                        m.d.comb += n_tile_offset.eq(tile_offset + geo.tile_words)
                # the engine's read port has one cycle of latency: while a word is offered,
                # address the word that follows it when this one is taken
                with m.If(self.o.ready):
                    m.d.comb += [eng.out_addr.eq(n_vector_base + n_tile_offset + n_part),
                                 eng.out_slot.eq(n_slot)]
                    m.d.sync += [j.eq(j_next), slot.eq(n_slot), part.eq(n_part),
                                 tile_offset.eq(n_tile_offset), vector_base.eq(n_vector_base)]
                    with m.If(batch_end):
                        m.d.sync += n.eq(0)
                        m.next = "RECV"
                    with m.Elif(vec_end):
                        m.d.sync += n.eq(n + 1)
                with m.Else():
                    m.d.comb += [eng.out_addr.eq(vector_base + tile_offset + part),
                                 eng.out_slot.eq(slot)]
        return m
