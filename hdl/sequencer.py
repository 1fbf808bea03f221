"""The network engine: loads tiles from ROM, streams a batch through the array, accumulates,
requantizes and keeps every layer's activations on chip.

Activation buffers are *channel-major*: row ``i`` of a buffer holds word ``i`` (input channel /
output row) of every vector of the batch, ``batch x data_bits`` bits. Two buffers alternate:
layer ``k`` reads buffer ``k % 2`` and writes buffer ``1 - k % 2``.

Per tile (cycles, :mod:`colcomb.hdl.cycles`)::

    PREP   max(rows + Rom.latency,         load the cells, one array row per cycle from the cell
           cols*alpha + LaneFetch.latency) ROM (rows 0..rows-1 arrive in cycles 1..rows), and
                                           meanwhile fetch the cols*alpha lane channels (one
                                           buffer row each) into the lane shift registers
                                           (:class:`~colcomb.hdl.lane_fetch.LaneFetch`)
    STREAM batch x cycles_per_vector       one vector per cycle into the array (the shift
                                           registers move one word per cycle; serial: one bit)
    DRAIN  SystolicArray.latency           until the last vector has left the array

Behind the array (per vector): :class:`~colcomb.hdl.accumulate.Accumulate` (``O`` read the
descriptor and running sum, ``P1`` add this column tile and keep the sum in the accumulator
memory, or on the last column tile hand it on), the requantizer (``P2``, ``P3``), then
:class:`~colcomb.hdl.write_back.WriteBack` (``P4`` store the outputs in the transpose registers,
``rows`` x ``batch`` words; after the batch's last vector write the ``count`` valid rows into the
destination buffer at rows ``offset ..``, one buffer row per cycle, overlapping the next tile's
PREP). At a layer's end the sequencer waits (FLUSH) until that pipeline is empty:
:meth:`Sequencer.flush_cycles` after the DRAIN.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.accumulate import Accumulate, result_layout, tag_layout
from colcomb.hdl.array import SystolicArray, array_latency
from colcomb.hdl.lane_fetch import BUFFER_READ_LATENCY, LaneFetch
from colcomb.hdl.params import validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.program import Program, cell_layout
from colcomb.hdl.requant import Requantizer
from colcomb.hdl.rom import Rom
from colcomb.hdl.write_back import WriteBack

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """Runs a compiled network (:class:`~colcomb.hdl.program.Program`) on one systolic array.

    While idle, the input vectors are written into activation buffer 0 through the ``in_*``
    port and, after a run, the outputs are read from the final buffer through ``out_*``. A pulse
    on ``start`` runs every layer on the first ``batch`` vectors; ``done`` pulses when the outputs
    are complete.

    Parameters
    ----------
    program : Program
        The layers compiled for the array size; fixes every width and the ROM contents.

    Members
    -------
    start : ``In(1)``
        Start a run (sampled while idle; ignored when ``batch`` is 0).
    batch : ``In(range(program.batch + 1))``
        Vectors in this run, 1..program.batch.
    busy : ``Out(1)``
        A run is in progress (the ``in_*``/``out_*`` ports are ignored).
    done : ``Out(1)``
        One-cycle pulse: the run finished, outputs are in the final buffer.
    in_en : ``In(1)``
        Write ``in_data`` as word ``in_index`` of input vector ``in_addr``.
    in_addr : ``In(range(program.batch))``
    in_index : ``In(range(program.in_words))``
    in_data : ``In(signed(data_bits))``
    out_index : ``In(range(program.buffer_rows))``
        Output word (row of the final buffer) to read; it appears on ``out_data``
        :attr:`read_latency` cycles later.
    out_data : ``Out(ArrayLayout(signed(data_bits), program.batch))``
        Word ``out_index`` of every vector of the batch.
    """

    #: cycles from ``out_index`` to the word on ``out_data`` (the buffer's read port)
    read_latency = BUFFER_READ_LATENCY

    @validated
    def __init__(self, *, program: Program):
        if not isinstance(program, Program):
            raise TypeError(f"program must be a Program (Program.compile(...)), not {program!r}")
        self.program = p = program
        depth = max(2, p.batch)
        super().__init__({
            "start": In(1),
            "batch": In(range(p.batch + 1)),
            "busy": Out(1),
            "done": Out(1),
            "in_en": In(1),
            "in_addr": In(range(depth)),
            "in_index": In(range(max(2, p.in_words))),
            "in_data": In(signed(p.data_bits)),
            "out_index": In(range(max(2, p.buffer_rows))),
            "out_data": Out(data.ArrayLayout(signed(p.data_bits), p.batch)),
        })

    # -- the pipeline's timing, from its stages' latencies (the cycle model's source) ----------
    @staticmethod
    def prep_cycles_for(program: Program) -> int:
        """Cycles before a tile streams: the longer of loading the cells (one array row per
        cycle, after the cell ROM's latency) and fetching the ``cols x alpha`` lane channels."""
        return max(program.rows + Rom.latency,
                   program.cols * program.alpha + LaneFetch.latency)

    @staticmethod
    def drain_cycles_for(program: Program) -> int:
        """Cycles after a tile's last vector enters before the cells may be reloaded: the
        array's latency."""
        return array_latency(program.rows, program.cols, program.cell)

    @staticmethod
    def flush_cycles(rows_written: int) -> int:
        """Cycles of the end-of-layer wait after the DRAIN, for a last tile that writes back
        ``rows_written`` rows: the last vector's sums (out of the array when DRAIN ends) pass
        the accumulator, the requantizer and the transpose registers, the rows are written one
        per cycle, and the FSM moves on the cycle after."""
        return Accumulate.latency + Requantizer.latency + WriteBack.latency + rows_written

    @staticmethod
    def requantizer_for(program: Program) -> Requantizer:
        """The requantizer the sequencer builds for ``program``: one lane per array row."""
        return Requantizer(lanes=program.rows, acc_bits=program.acc_bits, data_bits=program.data_bits,
                           max_shift=program.max_shift,
                           clamps=[layer.requant.clamp for layer in program.layers])

    @property
    def prep_cycles(self) -> int:
        return self.prep_cycles_for(self.program)

    @property
    def drain_cycles(self) -> int:
        return self.drain_cycles_for(self.program)

    def elaborate(self, platform):
        m = Module()
        p = self.program
        rows, batch_size, word_bits = p.rows, p.batch, p.data_bits
        tiles = len(p.tiles)

        m.submodules.array = array = SystolicArray(
            rows=rows, cols=p.cols, alpha=p.alpha, weight_bits=p.weight_bits,
            data_bits=word_bits, acc_bits=p.acc_bits, dsp_cells=p.dsp_cells, cell=p.cell)
        serial = p.cell == "serial"
        row_of_cells = data.ArrayLayout(cell_layout(p.weight_bits, p.alpha), p.cols)
        m.submodules.cell_rom = cell_rom = Rom(width=row_of_cells.size, init=p.cells,
                                               name="cells")
        descriptor_layout = p.tile_layout
        m.submodules.tile_rom = tile_rom = Rom(width=descriptor_layout.size, init=p.descriptors,
                                               ports=2, name="tiles")
        m.submodules.rq_rom = rq_rom = Rom(width=p.requant_layout.size, init=p.requant,
                                           name="requant")
        m.submodules.requant = rq = self.requantizer_for(p)
        m.submodules.lane_fetch = lane_fetch = LaneFetch(
            cols=p.cols, alpha=p.alpha, data_bits=word_bits, batch=batch_size,
            buffer_rows=p.buffer_rows, sources=p.lanes, steps=self.prep_cycles, serial=serial)
        m.submodules.accumulate = accumulate = Accumulate(
            rows=rows, acc_bits=p.acc_bits, batch=batch_size, tiles=tiles,
            descriptor=descriptor_layout)
        m.submodules.write_back = write_back = WriteBack(
            rows=rows, data_bits=word_bits, batch=batch_size, buffer_rows=p.buffer_rows,
            result=result_layout(batch_size, descriptor_layout))

        # two activation buffers: one buffer row = a word of every vector
        buffer_read, buffer_write = [], []
        for b in range(2):
            mem = memory.Memory(shape=unsigned(batch_size * word_bits),
                                depth=max(2, p.buffer_rows), init=[])
            m.submodules[f"act{b}"] = mem
            buffer_read.append(mem.read_port())
            buffer_write.append(mem.write_port(granularity=word_bits))
        assert BUFFER_READ_LATENCY == 1  # what a synchronous read port gives

        # -- sequencer state ----------------------------------------------------------------
        tile = Signal(range(max(2, tiles)))
        cell_base = Signal(range(max(2, tiles * rows)))
        step = Signal(range(max(2, self.prep_cycles)))
        vector = Signal(range(max(2, batch_size)))
        vectors = Signal(range(batch_size + 1))
        drain_step = Signal(range(max(2, self.drain_cycles)))
        descriptor = descriptor_layout(tile_rom.data0)
        prep = Signal()
        streaming = Signal()
        pipeline_busy = Signal()
        # the serial array takes a vector in data_bits cycles, one bit of every word per cycle
        bit = Signal(range(max(2, word_bits)))
        vector_end = Signal()
        if serial:
            m.d.comb += [vector_end.eq(bit == word_bits - 1), array.bit.eq(bit)]
            with m.If(streaming):
                m.d.sync += bit.eq(Mux(vector_end, 0, bit + 1))
        else:
            m.d.comb += vector_end.eq(1)

        m.d.comb += [
            cell_rom.addr0.eq(cell_base + step),
            tile_rom.addr0.eq(tile),
        ]

        def next_tile():
            m.d.sync += [tile.eq(tile + 1), cell_base.eq(cell_base + rows), step.eq(0)]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start & (self.batch != 0)):
                    m.d.sync += [tile.eq(0), cell_base.eq(0), step.eq(0),
                                 vectors.eq(self.batch)]
                    m.next = "PREP"
            with m.State("PREP"):
                m.d.comb += [
                    prep.eq(1),
                    cell_rom.en0.eq(step < rows),
                    tile_rom.en0.eq(step == 0),
                ]
                m.d.sync += step.eq(step + 1)
                with m.If(step == self.prep_cycles - 1):
                    m.d.sync += [step.eq(0), vector.eq(0)]
                    m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += streaming.eq(1)
                with m.If(vector_end):
                    m.d.sync += vector.eq(vector + 1)
                with m.If(vector_end & (vector == vectors - 1)):
                    m.d.sync += drain_step.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.sync += drain_step.eq(drain_step + 1)
                with m.If(drain_step == self.drain_cycles - 1):
                    with m.If(descriptor.layer_end):
                        m.next = "FLUSH"
                    with m.Else():
                        next_tile()
                        m.next = "PREP"
            with m.State("FLUSH"):
                with m.If(~pipeline_busy):
                    with m.If(descriptor.net_end):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        next_tile()
                        m.next = "PREP"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))

        # -- PREP: the cell ROM shifts one array row per cycle into the array ------------------
        loading = delay(m, prep & (step < rows), Rom.latency, "loading")
        m.d.comb += [array.load.eq(loading), array.w_in.eq(cell_rom.data0)]

        # -- PREP and STREAM: lane fetch from the source buffer --------------------------------
        source_parity = descriptor.layer[0]  # valid from PREP step 1
        m.d.comb += [
            lane_fetch.control.tile.eq(tile),
            lane_fetch.control.prep.eq(prep),
            lane_fetch.control.step.eq(step),
            lane_fetch.control.shift.eq(streaming),
            lane_fetch.buffer.data.eq(
                Mux(source_parity, buffer_read[1].data, buffer_read[0].data)),
            array.lanes_in.eq(lane_fetch.lanes),
        ]
        for b in range(2):
            m.d.comb += [
                buffer_read[b].addr.eq(Mux(self.busy, lane_fetch.buffer.addr, self.out_index)),
                buffer_read[b].en.eq(1),
            ]
        final_buffer = len(p.layers) % 2
        m.d.comb += self.out_data.eq(buffer_read[final_buffer].data)

        # -- the tag that travels with each vector through the array -------------------------
        tag_shape = tag_layout(batch_size, tiles)
        entering = Signal(tag_shape)
        m.d.comb += [entering.valid.eq(streaming & vector_end), entering.final.eq(vector == vectors - 1),
                     entering.n.eq(vector), entering.tile.eq(tile)]
        in_array = []
        tag = entering
        for i in range(array.latency):
            reg = Signal(tag_shape, name=f"tag_{i}")
            m.d.sync += reg.eq(tag)
            in_array.append(reg.valid)
            tag = reg

        # -- O, P1: accumulate the column tiles ------------------------------------------------
        m.d.comb += [
            accumulate.tag.eq(tag),
            accumulate.sums.eq(array.sums_out),
            tile_rom.addr1.eq(accumulate.descriptor.addr), tile_rom.en1.eq(1),
            accumulate.descriptor.data.eq(tile_rom.data1),
            rq_rom.addr0.eq(accumulate.requant_row),
            rq_rom.en0.eq(1),
        ]

        # -- P2..P3: requantize ------------------------------------------------------------
        p2 = accumulate.result
        coeffs = p.requant_layout(rq_rom.data0)
        m.d.comb += [rq.valid.eq(p2.valid), rq.layer.eq(p2.layer), rq.sums.eq(accumulate.total)]
        for r in range(rows):
            m.d.comb += [rq.bias[r].eq(coeffs[r].bias), rq.mult[r].eq(coeffs[r].mult),
                         rq.shift[r].eq(coeffs[r].shift)]
        p3 = delay(m, p2, 1, "p3")
        p4 = delay(m, p3, 1, "p4")
        assert rq.latency == 2

        # -- P4: transpose registers, then write back one buffer row per cycle ---------------
        m.d.comb += [write_back.result.eq(p4), write_back.values.eq(rq.out)]
        in_vector_mask = Signal(batch_size)
        m.d.comb += in_vector_mask.eq(Const(1, batch_size) << self.in_addr)
        writing = write_back.buffer
        for b in range(2):
            with m.If(self.busy):
                m.d.comb += [
                    buffer_write[b].addr.eq(writing.addr),
                    buffer_write[b].data.eq(writing.data),
                    buffer_write[b].en.eq(
                        Mux(writing.en & (writing.target == b), (1 << batch_size) - 1, 0)),
                ]
            if b == 0:
                with m.Elif(self.in_en):
                    m.d.comb += [
                        buffer_write[b].addr.eq(self.in_index),
                        buffer_write[b].data.eq(Cat(*([self.in_data] * batch_size))),
                        buffer_write[b].en.eq(in_vector_mask),
                    ]
        m.d.comb += pipeline_busy.eq(
            Cat(*in_array, accumulate.busy, p2.valid, p3.valid, p4.valid,
                write_back.busy).any())
        return m
