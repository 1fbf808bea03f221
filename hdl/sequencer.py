"""The network engine: loads tiles from ROM, streams a batch through the array, accumulates,
requantizes and keeps every layer's activations on chip.

Activation buffers are *channel-major*: row ``i`` of a buffer holds word ``i`` (input channel /
output row) of every vector of the batch, ``batch x data_bits`` bits. Two buffers alternate:
layer ``k`` reads buffer ``k % 2`` and writes buffer ``1 - k % 2``.

Per tile (cycles)::

    PREP   max(rows + 1,              load the cells, one array row per cycle from the cell ROM
           cols*alpha + 2)            (read latency 1: rows 0..R-1 arrive in cycles 1..R), and
                                      meanwhile fetch the cols*alpha lane channels (one buffer
                                      row each) into the lane shift registers
    STREAM batch                      one vector per cycle into the array (the shift registers
                                      move one word per cycle)
    DRAIN  rows + cols - 1            until the last vector has left the array

Behind the array (per vector): ``O`` read descriptor and running sum, ``P1`` add this column
tile and keep the sum in the accumulator memory, or on the last column tile hand it to the
requantizer (``P2``, ``P3``), ``P4`` store the outputs in the transpose registers (``rows`` x
``batch`` words). After the batch's last vector the ``count`` valid rows are written back into
the destination buffer at rows ``offset ..``, one buffer row per cycle (overlapping the next
tile's PREP). At a layer's end the sequencer waits for the write-back before the next layer.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.array import SystolicArray
from colcomb.hdl.params import validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.program import Program, bits_for, cell_layout
from colcomb.hdl.requant import Requantizer
from colcomb.hdl.rom import Rom

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
    out_index : ``In(range(program.width))``
        Output word (row of the final buffer) to read; it appears on ``out_data`` one cycle
        later.
    out_data : ``Out(ArrayLayout(signed(data_bits), program.batch))``
        Word ``out_index`` of every vector of the batch.
    """

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
            "out_index": In(range(max(2, p.width))),
            "out_data": Out(data.ArrayLayout(signed(p.data_bits), p.batch)),
        })

    @property
    def prep_cycles(self) -> int:
        return self.program.prep_cycles

    @property
    def drain_cycles(self) -> int:
        return self.program.drain_cycles

    def elaborate(self, platform):
        m = Module()
        p = self.program
        R, C, A, D, ACC, W, B = (p.rows, p.cols, p.alpha, p.data_bits, p.acc_bits, p.width,
                                 p.batch)
        n_tiles = len(p.tiles)
        lanes_total = C * A

        m.submodules.array = arr = SystolicArray(
            rows=R, cols=C, alpha=A, weight_bits=p.weight_bits, data_bits=D, acc_bits=ACC)
        row_layout = data.ArrayLayout(cell_layout(p.weight_bits, A), C)
        lane_idx_layout = data.ArrayLayout(unsigned(p.lane_bits), lanes_total)  # c-major
        m.submodules.cell_rom = cell_rom = Rom(width=row_layout.size, init=p.cells, name="cells")
        m.submodules.lane_rom = lane_rom = Rom(width=lane_idx_layout.size, init=p.lanes,
                                               name="lanes")
        tl = p.tile_layout
        m.submodules.tile_rom = tile_rom = Rom(width=tl.size, init=p.descriptors, ports=2,
                                               name="tiles")
        m.submodules.rq_rom = rq_rom = Rom(width=p.requant_layout.size, init=p.requant,
                                           name="requant")
        m.submodules.requant = rq = Requantizer(
            lanes=R, acc_bits=ACC, data_bits=D, max_shift=p.max_shift,
            clamps=[layer.requant.clamp for layer in p.layers])

        row_shape = data.ArrayLayout(signed(D), B)  # one buffer row: a word of every vector
        rd, wr = [], []
        for b in range(2):
            mem = memory.Memory(shape=unsigned(B * D), depth=max(2, W), init=[])
            m.submodules[f"act{b}"] = mem
            rd.append(mem.read_port())
            wr.append(mem.write_port(granularity=D))
        m.submodules.acc = acc_mem = memory.Memory(
            shape=unsigned(R * ACC), depth=max(2, B), init=[])
        acc_rd = acc_mem.read_port()
        acc_wr = acc_mem.write_port()

        # -- sequencer state ----------------------------------------------------------------
        tile = Signal(range(max(2, n_tiles)))
        cell_base = Signal(range(max(2, n_tiles * R)))
        k = Signal(range(max(2, self.prep_cycles)))
        n = Signal(range(max(2, B)))
        nbatch = Signal(range(B + 1))
        cnt = Signal(range(max(2, self.drain_cycles)))
        desc = tl(tile_rom.data0)
        prep = Signal()
        streaming = Signal()
        loading = Signal()
        post_busy = Signal()

        m.d.comb += [
            cell_rom.addr0.eq(cell_base + k),
            tile_rom.addr0.eq(tile),
            lane_rom.addr0.eq(tile),
        ]
        m.d.sync += loading.eq(0)

        def advance():
            m.d.sync += [tile.eq(tile + 1), cell_base.eq(cell_base + R), k.eq(0)]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start & (self.batch != 0)):
                    m.d.sync += [tile.eq(0), cell_base.eq(0), k.eq(0), nbatch.eq(self.batch)]
                    m.next = "PREP"
            with m.State("PREP"):
                m.d.comb += [
                    prep.eq(1),
                    cell_rom.en0.eq(k < R),
                    tile_rom.en0.eq(k == 0),
                    lane_rom.en0.eq(k == 0),
                ]
                m.d.sync += [loading.eq(k < R), k.eq(k + 1)]
                with m.If(k == self.prep_cycles - 1):
                    m.d.sync += [k.eq(0), n.eq(0)]
                    m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += streaming.eq(1)
                m.d.sync += n.eq(n + 1)
                with m.If(n == nbatch - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == self.drain_cycles - 1):
                    with m.If(desc.layer_end):
                        m.next = "FLUSH"
                    with m.Else():
                        advance()
                        m.next = "PREP"
            with m.State("FLUSH"):
                with m.If(~post_busy):
                    with m.If(desc.net_end):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        advance()
                        m.next = "PREP"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        m.d.comb += [arr.load.eq(loading), arr.w_in.eq(cell_rom.data0)]

        # -- PREP: fetch lane channel f at cycle f + 1, store it at cycle f + 2 -------------
        parity = desc.layer[0]  # valid from PREP cycle 1
        lane_idx = lane_idx_layout(lane_rom.data0)
        f = Signal(range(max(2, lanes_total + 1)))
        m.d.comb += f.eq(k - 1)
        fetching = prep & (k >= 1) & (k <= lanes_total)
        idx = Signal(unsigned(p.lane_bits))
        m.d.comb += idx.eq(Array(lane_idx[i] for i in range(lanes_total))[f])
        got_valid = Signal()
        got_slot = Signal.like(f)
        got_zero = Signal()
        m.d.sync += [
            got_valid.eq(fetching),
            got_slot.eq(f),
            got_zero.eq(idx == p.zero_lane),
        ]
        fetched = Mux(parity, rd[1].data, rd[0].data)
        lanebufs = []
        for i in range(lanes_total):
            buf = Signal(row_shape, name=f"lanebuf_{i // A}_{i % A}")
            lanebufs.append(buf)
            with m.If(got_valid & (got_slot == i)):
                m.d.sync += buf.eq(Mux(got_zero, 0, fetched))
            with m.Elif(streaming):  # shift one vector per cycle towards word 0
                m.d.sync += buf.eq(buf.as_value()[D:])
            m.d.comb += arr.lanes_in[i // A][i % A].eq(buf[0])

        for b in range(2):
            m.d.comb += [
                rd[b].addr.eq(Mux(self.busy, idx, self.out_index)),
                rd[b].en.eq(1),
            ]
        final = len(p.layers) % 2
        m.d.comb += self.out_data.eq(rd[final].data)

        # -- the tag that travels with each vector through the array -------------------------
        tag_layout = data.StructLayout({"valid": 1, "final": 1, "n": unsigned(len(n)),
                                        "tile": unsigned(len(tile))})
        tag0 = Signal(tag_layout)
        m.d.comb += [tag0.valid.eq(streaming), tag0.final.eq(n == nbatch - 1), tag0.n.eq(n),
                     tag0.tile.eq(tile)]
        taps = []
        tag = tag0
        for i in range(arr.latency):
            reg = Signal(tag_layout, name=f"tag_{i}")
            m.d.sync += reg.eq(tag)
            taps.append(reg.valid)
            tag = reg

        # -- O: read the descriptor and the running sum --------------------------------------
        m.d.comb += [
            tile_rom.addr1.eq(tag.tile), tile_rom.en1.eq(1),
            acc_rd.addr.eq(tag.n), acc_rd.en.eq(1),
        ]
        sums_layout = data.ArrayLayout(signed(ACC), R)
        p1 = Signal(tag_layout)
        p1_sums = Signal(sums_layout)
        m.d.sync += [p1.eq(tag), p1_sums.eq(arr.sums_out)]

        # -- P1: add the column tile, keep the sum or requantize it ---------------------------
        d1 = tl(tile_rom.data1)
        running = sums_layout(acc_rd.data)
        total = Signal(sums_layout)
        for r in range(R):
            m.d.comb += total[r].eq(Mux(d1.first, p1_sums[r], running[r] + p1_sums[r]))
        m.d.comb += [
            acc_wr.addr.eq(p1.n),
            acc_wr.data.eq(total),
            acc_wr.en.eq(p1.valid & ~d1.last),
            rq_rom.addr0.eq(d1.rq),
            rq_rom.en0.eq(1),
        ]
        side_layout = data.StructLayout({
            "valid": 1, "final": 1, "n": unsigned(len(n)), "offset": unsigned(bits_for(W)),
            "count": unsigned(bits_for(R)), "layer": unsigned(len(d1.layer)),
        })
        p2 = Signal(side_layout)
        p2_sums = Signal(sums_layout)
        m.d.sync += [
            p2.valid.eq(p1.valid & d1.last), p2.final.eq(p1.final), p2.n.eq(p1.n),
            p2.offset.eq(d1.offset), p2.count.eq(d1.count), p2.layer.eq(d1.layer),
            p2_sums.eq(total),
        ]

        # -- P2..P3: requantize ------------------------------------------------------------
        coeffs = p.requant_layout(rq_rom.data0)
        m.d.comb += [rq.valid.eq(p2.valid), rq.layer.eq(p2.layer), rq.sums.eq(p2_sums)]
        for r in range(R):
            m.d.comb += [rq.bias[r].eq(coeffs[r].bias), rq.mult[r].eq(coeffs[r].mult),
                         rq.shift[r].eq(coeffs[r].shift)]
        p3 = delay(m, p2, 1, "p3")
        p4 = delay(m, p3, 1, "p4")
        assert rq.latency == 2

        # -- P4: transpose registers; then write back one buffer row per cycle ---------------
        outbufs = [Signal(row_shape, name=f"outbuf_{r}") for r in range(R)]
        wb_left = Signal(range(R + 1))
        wb_row = Signal(range(max(2, W)))
        wb_dst = Signal()
        with m.If(wb_left != 0):
            m.d.sync += [wb_left.eq(wb_left - 1), wb_row.eq(wb_row + 1)]
            for r in range(R):
                m.d.sync += outbufs[r].eq(outbufs[r + 1] if r + 1 < R else 0)
        with m.Elif(p4.valid):
            for r in range(R):
                m.d.sync += outbufs[r][p4.n].eq(rq.out[r])
            with m.If(p4.final):
                m.d.sync += [wb_left.eq(p4.count), wb_row.eq(p4.offset),
                             wb_dst.eq(~p4.layer[0])]

        in_en = Signal(B)
        m.d.comb += in_en.eq(Const(1, B) << self.in_addr)
        for b in range(2):
            with m.If(self.busy):
                m.d.comb += [
                    wr[b].addr.eq(wb_row),
                    wr[b].data.eq(outbufs[0]),
                    wr[b].en.eq(Mux((wb_left != 0) & (wb_dst == b), (1 << B) - 1, 0)),
                ]
            if b == 0:
                with m.Elif(self.in_en):
                    m.d.comb += [
                        wr[b].addr.eq(self.in_index),
                        wr[b].data.eq(Cat(*([self.in_data] * B))),
                        wr[b].en.eq(in_en),
                    ]
        m.d.comb += post_busy.eq(
            Cat(*taps, p1.valid, p2.valid, p3.valid, p4.valid, wb_left != 0).any())
        return m
