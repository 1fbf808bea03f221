"""The top level: a valid/ready input stream of words, the engine, a valid/ready output stream.

Stream format (both directions, :mod:`colcomb.hdl.framing`): ``program.beat`` activation words per
beat (one by default), payload ``{data: signed(data_bits), last: 1}`` (``data`` in the low bits;
with wider beats ``data`` is an array of words, word 0 lowest). Input: the words of vector 0
(layer 0's ``cols`` words, index 0 first), then vector 1, ...; a vector's last beat is padded, so
each vector starts a beat; ``last`` on the final beat of the batch's final vector. A batch ends at
``last`` or when ``batch`` vectors have arrived, whichever comes first (``last`` inside a vector
ends the batch there; that vector's missing words are undefined). Output: the last layer's
``rows`` words of each vector in order, framed the same way (padding words zero), ``last`` on the
final beat of the batch.

Three processes run at once, each on its own batch: the receiver fills one of two input buffers,
the engine runs a received batch from one input buffer into one of two output buffers, and the
sender drains a finished one. So batch ``k + 1`` is received while batch ``k`` is computed and
batch ``k - 1`` is sent; in steady state a batch costs the longest of the three
(:mod:`colcomb.hdl.cycles`). Output beats leave at one per cycle (after one cycle to address the
first output word of a batch). Input beats are taken one per cycle unless the input port needs
more: an input word that layer 0's row blocks read from several lane slots holds ``i.ready`` low
while it is written to the further ones, and a wider beat takes the cycles of its schedule
(:mod:`colcomb.hdl.beat_port`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.flash_loader import FlashSignature
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
    i : ``In(stream.Signature(word_layout(data_bits, beat)))``
        Input beats (``i.payload.data``, ``i.payload.last``, ``i.valid``, ``i.ready``).
    o : ``Out(stream.Signature(word_layout(data_bits, beat)))``
        Output beats, same format.
    busy : ``Out(1)``
        The engine is computing (between the end of input and the first output).
    flash : ``Out(FlashSignature)``
        Only with the cell words in SPRAM: the SPI flash holding their image
        (:mod:`colcomb.hdl.flash_loader`). Input is taken while they load; the first batch
        starts once they are in, :attr:`Program.load_cycles` after reset.
    flash_error : ``Out(1)``
        Only with the cell words in SPRAM: the flash does not hold this design's image (its
        CRC differs); the engine never starts.
    """

    #: cycles between the processes' hand-overs (:mod:`colcomb.hdl.cycles` counts with them):
    #: a received batch reaches the engine's start one cycle after its last word's last slot
    #: write, the engine's ``done`` reaches the sender one cycle later, which addresses the
    #: first word for :attr:`Sequencer.read_latency` before offering it
    start_latency = 1
    send_latency = 1 + Sequencer.read_latency

    @validated
    def __init__(self, *, program: Program):
        if not isinstance(program, Program):
            raise TypeError(f"program must be a Program (Program.compile(...)), not {program!r}")
        self.program = program
        layout = word_layout(program.data_bits, program.beat)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "busy": Out(1),
            **({"flash": Out(FlashSignature), "flash_error": Out(1)} if program.cell_memory == "spram" else {}),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.program
        m.submodules.engine = eng = Sequencer(program=p)
        assert Sequencer.read_latency == 1, "the READ state waits one cycle for the first word"
        m.d.comb += self.busy.eq(eng.busy)
        loaded = 1
        if p.cell_memory == "spram":
            wiring.connect(m, wiring.flipped(self.flash), eng.flash)
            m.d.comb += self.flash_error.eq(eng.load_error)
            loaded = eng.loaded
        count_shape = range(p.batch + 1)
        # per buffer: a received batch waiting for the engine (its vector count) / a computed
        # batch waiting for the sender; 0 = empty
        received = [Signal(count_shape, name=f"received_{b}") for b in range(2)]
        computed = [Signal(count_shape, name=f"computed_{b}") for b in range(2)]

        # -- the receiver -------------------------------------------------------------------
        rx_buffer = Signal()
        n = Signal(range(p.batch + 1))
        j = Signal(range(max(2, p.in_beats)))  # the vector's beat
        rx_done = Signal()  # the batch's last word was taken: wait for its slot writes
        with m.FSM(name="receiver"):
            with m.State("RECV"):
                free = Mux(rx_buffer, received[1], received[0]) == 0
                m.d.comb += [
                    self.i.ready.eq(eng.in_ready & free),
                    eng.in_en.eq(self.i.valid & free),
                    eng.in_buffer.eq(rx_buffer),
                    eng.in_addr.eq(n),
                    eng.in_index.eq(j),
                    eng.in_data.eq(self.i.payload.data),
                ]
                with m.If(self.i.valid & self.i.ready):
                    vec_end = j == p.in_beats - 1
                    with m.If(self.i.payload.last | (vec_end & (n == p.batch - 1))):
                        m.d.sync += [n.eq(n + 1), j.eq(0)]
                        m.next = "FINISH"
                    with m.Elif(vec_end):
                        m.d.sync += [n.eq(n + 1), j.eq(0)]
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
            with m.State("FINISH"):  # once the last word is in all its slots
                with m.If(eng.in_ready):
                    m.d.comb += rx_done.eq(1)
                    m.d.sync += [n.eq(0), rx_buffer.eq(~rx_buffer)]
                    m.next = "RECV"

        # -- the engine: the next received batch, once its output buffer is free ------------
        run_buffer = Signal()
        finished = Signal()
        ready_count = Mux(run_buffer, received[1], received[0])
        out_free = Mux(run_buffer, computed[1], computed[0]) == 0
        # the running batch's count stays in its receive slot until the engine is done
        m.d.comb += eng.batch.eq(ready_count)
        with m.FSM(name="runner"):
            with m.State("WAIT"):
                with m.If((ready_count != 0) & out_free & loaded):
                    m.d.comb += [eng.start.eq(1),
                                 eng.buffer.eq(run_buffer)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(eng.done):
                    m.d.comb += finished.eq(1)
                    m.d.sync += run_buffer.eq(~run_buffer)
                    m.next = "WAIT"

        # -- the sender ---------------------------------------------------------------------
        tx_buffer = Signal()
        sent = Signal()
        vectors = Mux(tx_buffer, computed[1], computed[0])
        # where output word j of vector n lives (the output memory's identity layout): slot and
        # part counters beside j, the word's address kept as it moves, so no division
        geo = p.geometry
        k = Signal(range(max(2, p.out_beats)))  # the vector's beat
        v = Signal(range(p.batch + 1))
        groups = geo.lanes_per_part // p.beat  # a beat is a group of beat slots of a word
        slot = Signal(range(max(2, groups)))
        part = Signal(range(max(2, geo.parts)))
        address = Signal(unsigned(p.address_bits + 1))
        vector_base = Signal(unsigned(p.address_bits + 1))
        n_slot, n_part = Signal.like(slot), Signal.like(part)
        n_address, n_vector_base = Signal.like(address), Signal.like(vector_base)
        k_next = Signal.like(k)
        m.d.comb += eng.out_buffer.eq(tx_buffer)
        with m.FSM(name="sender"):
            with m.State("IDLE"):
                with m.If(vectors != 0):
                    m.d.sync += [slot.eq(0), part.eq(0), address.eq(0), vector_base.eq(0),
                                 k.eq(0), v.eq(0)]
                    m.next = "READ"
            with m.State("READ"):  # one state: Sequencer.read_latency == 1
                m.d.comb += [eng.out_addr.eq(address), eng.out_slot.eq(0)]
                m.next = "SEND"
            with m.State("SEND"):
                vec_end = k == p.out_beats - 1
                batch_end = vec_end & (v == vectors - 1)
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.data.eq(eng.out_data),
                    self.o.payload.last.eq(batch_end),
                    k_next.eq(Mux(vec_end, 0, k + 1)),
                ]
                tail = p.out_words % p.beat
                if tail:  # a vector's last beat: its padding words are zero
                    with m.If(vec_end):
                        for i in range(tail, p.beat):
                            m.d.comb += self.o.payload.data[i].eq(0)
                # the position of the word after this one: the next slot; the next part; the
                # next tile's first part (tile_words further on); the next vector's first word
                m.d.comb += [n_slot.eq(slot + 1), n_part.eq(part), n_address.eq(address),
                             n_vector_base.eq(vector_base)]
                with m.If(vec_end):
                    m.d.comb += [n_slot.eq(0), n_part.eq(0), n_vector_base.eq(vector_base + geo.parts),
                                 n_address.eq(vector_base + geo.parts)]
                with m.Elif(slot == groups - 1):
                    m.d.comb += n_slot.eq(0)
                    if geo.parts > 1:
                        m.d.comb += [n_part.eq(part + 1), n_address.eq(address + 1)]
                        with m.If(part == geo.parts - 1):
                            m.d.comb += [n_part.eq(0),
                                         n_address.eq(address + geo.tile_words - (geo.parts - 1))]
                    else:
                        m.d.comb += n_address.eq(address + geo.tile_words)
                # the output memory's read port has one cycle of latency: while a word is
                # offered, address the word that follows it when this one is taken
                with m.If(self.o.ready):
                    m.d.comb += [eng.out_addr.eq(n_address), eng.out_slot.eq(n_slot)]
                    m.d.sync += [k.eq(k_next), slot.eq(n_slot), part.eq(n_part),
                                 address.eq(n_address), vector_base.eq(n_vector_base)]
                    with m.If(batch_end):
                        m.d.comb += sent.eq(1)
                        m.d.sync += tx_buffer.eq(~tx_buffer)
                        m.next = "IDLE"
                    with m.Elif(vec_end):
                        m.d.sync += v.eq(v + 1)
                with m.Else():
                    m.d.comb += [eng.out_addr.eq(address), eng.out_slot.eq(slot)]

        # -- the buffers' hand-overs ----------------------------------------------------------
        for b in range(2):
            with m.If(rx_done & (rx_buffer == b)):
                m.d.sync += received[b].eq(n)
            with m.Elif(finished & (run_buffer == b)):
                m.d.sync += received[b].eq(0)
            with m.If(finished & (run_buffer == b)):
                m.d.sync += computed[b].eq(ready_count)  # the finished run's vectors
            with m.Elif(sent & (tx_buffer == b)):
                m.d.sync += computed[b].eq(0)
        return m
