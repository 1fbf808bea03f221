"""The network engine: loads tiles from ROM, streams a batch through the array, accumulates,
requantizes and keeps every layer's activations on chip, in block RAM.

All activations live in block RAM laid out as the array reads them (:mod:`colcomb.hdl.layout`): a
tile's lanes for one vector are ``parts`` consecutive words, and each layer writes its outputs
straight into the next layer's lanes. Layer 0 reads the input memory, the later layers alternate
between the lane memory's two regions, the last layer writes the output memory; the input and
output memories hold two batches, so the host fills and drains one while the engine runs on the
other. No register holds a batch: the flip-flops do not grow with ``batch``.

Per tile (cycles, :mod:`colcomb.hdl.cycles`)::

    PREP   max(load_steps + Rom.latency,   load the cells, load_rows array rows per cycle from
           Rom.latency + LaneFetch.lead)   the cell ROM (Program.load_steps words); the first
                                           vector's lanes are fetched in its last cycles (an
                                           image network: WINDOW_READS x Rom.latency + lead at
                                           least, for its registered descriptor and window base)
    STREAM batch x cycles_per_vector       one vector per cycle into the array (serial: one bit
                                           per cycle), the next one's lanes fetched meanwhile
                                           (:class:`~colcomb.hdl.lane_fetch.LaneFetch`)
    DRAIN  SystolicArray.latency           until the last vector has left the array (with
                                           Program.skewed_loads: only after a layer's last tile)

With shadow weights (:attr:`Program.shadow`, a chain) the cells load into the array's shadow
registers and a ``swap`` in PREP's last cycle makes them the cells' (one cycle more for a run's
first tile); from each tile's first STREAM cycle the next tile's words are preloaded into the
shadows, so its PREP is :meth:`Sequencer.short_prep_cycles_for` (descriptor, first fetch, swap),
waiting in its first cycle while the preload still runs.

Behind the array (per vector): :class:`~colcomb.hdl.accumulate.Accumulate` (``O`` read the
descriptor and running sum, ``P1`` add this column tile and keep the sum in the accumulator
memory, or on the last column tile hand it on), the requantizer (``P2``, ``P3``; on the serial
array its rows share ``requant_lanes`` lanes, ``requant_steps - 1`` cycles more), then
:class:`~colcomb.hdl.write_back.WriteBack` (read the row tile's words from the writes ROM, write
them into the next layer's memory, one per cycle, overlapping the next tile's PREP). At a layer's end the
sequencer waits (FLUSH) until that pipeline is empty: :meth:`Sequencer.flush_cycles` after the
DRAIN.

An image network (:attr:`Program.stages`, on-chip convolution) runs each layer's (image,
position) vectors in passes over its tiles (:meth:`Sequencer._passes`): the lane fetch reads
each vector's window words from a feature map (patch and column ROMs; on the bit-parallel array
one bank per column), :class:`~colcomb.hdl.pool_write.PoolWriteBack` max-pools and writes, and
a FLUSH that ends a pass goes back to the layer's first tile until its vectors are done.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.accumulate import Accumulate, result_layout, tag_layout
from colcomb.hdl.array import SystolicArray, array_latency
from colcomb.hdl.beat_port import BeatPort
from colcomb.hdl.flash_loader import FlashLoader, FlashSignature
from colcomb.hdl.framing import beat_data
from colcomb.hdl.lane_fetch import MEMORY_READ_LATENCY, LaneFetch, memory_word_layout, vector_offset
from colcomb.hdl.params import validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.pool_write import PoolWriteBack
from colcomb.hdl.program import WINDOW_READS, Program, pack_array
from colcomb.hdl.requant import SharedRequantizer
from colcomb.hdl.rom import Rom
from colcomb.hdl.spram import Spram
from colcomb.hdl.write_back import WriteBack

__all__ = ["Sequencer", "constant_times"]


def constant_times(value: Value, k: int) -> Value:
    """``value * k`` for a constant ``k >= 0`` as shifted adds (no multiplier for a DSP mapper
    to take)."""
    terms = [value << i for i in range(int(k).bit_length()) if k >> i & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0, 1)


class Sequencer(wiring.Component):
    """Runs a compiled network (:class:`~colcomb.hdl.program.Program`) on one systolic array.

    The input vectors are written into one of the input memory's two regions through the
    ``in_*`` port (each word into every lane slot layer 0 reads it from), and the outputs are read
    from one of the output memory's two regions through ``out_*`` (identity layout): both at any
    time, also while a run uses the other regions. A pulse on ``start`` runs every layer on the
    first ``batch`` vectors of input region ``buffer`` into output region ``buffer``; ``done``
    pulses when the outputs are complete.

    Parameters
    ----------
    program : Program
        The layers compiled for the array size; fixes every width and the ROM contents.

    Members
    -------
    start : ``In(1)``
        Start a run (sampled while idle; ignored when ``batch`` is 0).
    batch : ``In(range(program.batch + 1))``
        Vectors in this run, 1..program.batch; held from ``start`` until ``done`` (no register
        of the engine holds it).
    buffer : ``In(1)``
        The run's input and output region (sampled with ``start``).
    busy : ``Out(1)``
        A run is in progress.
    done : ``Out(1)``
        One-cycle pulse: the run finished, its outputs are in its output region.
    in_en : ``In(1)``
        Take ``in_data`` as word ``in_index`` of input vector ``in_addr`` (while ``in_ready``).
    in_ready : ``Out(1)``
        Low while the previous word is still being written to its further slots (a word read by
        several row blocks of layer 0); a run may start while it is high.
    in_buffer : ``In(1)``
        The input region the word goes to.
    in_addr : ``In(range(program.batch))``
    in_index : ``In(range(program.in_beats))``
        The beat of the vector (its word with one word a beat).
    in_data : ``In(beat_data(data_bits, beat))``
        One word, or with ``program.beat > 1`` an array of that many.
    out_buffer : ``In(1)``
        The output region to read.
    out_addr : ``In(unsigned(program.address_bits))``
        Output memory word to read (in the region); its slot ``out_slot`` (with wider beats its
        ``out_slot``-th group of ``beat`` slots) appears on ``out_data`` :attr:`read_latency`
        cycles later.
    out_slot : ``In(range(program.lanes_per_part // program.beat))``
    out_data : ``Out(beat_data(data_bits, beat))``
    flash : ``Out(FlashSignature)``
        Only with the cell words in SPRAM (``program.cell_memory == "spram"``): the SPI flash
        they are loaded from out of reset (:class:`~colcomb.hdl.flash_loader.FlashLoader`).
    loaded : ``Out(1)``
        The cell words are in and their CRC matched: a run may start (SPRAM only).
    load_error : ``Out(1)``
        The loaded image's CRC did not match the design's: no run may start (SPRAM only).
    """

    #: cycles from ``out_addr`` to the word on ``out_data`` (the output memory's read port)
    read_latency = MEMORY_READ_LATENCY

    @validated
    def __init__(self, *, program: Program):
        if not isinstance(program, Program):
            raise TypeError(f"program must be a Program (Program.compile(...)), not {program!r}")
        self.program = p = program
        super().__init__({
            "start": In(1),
            "batch": In(range(p.batch + 1)),
            "buffer": In(1),
            "busy": Out(1),
            "done": Out(1),
            "in_en": In(1),
            "in_ready": Out(1),
            "in_buffer": In(1),
            "in_addr": In(range(max(2, p.batch))),
            "in_index": In(range(max(2, p.in_beats))),
            "in_data": In(beat_data(p.data_bits, p.beat)),
            "out_buffer": In(1),
            "out_addr": In(unsigned(p.address_bits)),
            "out_slot": In(range(max(2, p.lanes_per_part // p.beat))),
            "out_data": Out(beat_data(p.data_bits, p.beat)),
            **({"flash": Out(FlashSignature), "loaded": Out(1), "load_error": Out(1)}
               if p.cell_memory == "spram" else {}),
        })

    # -- the pipeline's timing, from its stages' latencies (the cycle model's source) ----------
    @staticmethod
    def prep_cycles_for(program: Program) -> int:
        """Cycles before a tile streams: the longer of loading the cells (``load_rows`` array
        rows per cycle, after the cell ROM's latency) and reading the descriptor (an image
        network's first window: :data:`~colcomb.hdl.program.WINDOW_READS`), then fetching the
        first vector's lanes."""
        lead = LaneFetch.lead_for(program.cell == "serial", program.parts, program.column_words)
        reads = WINDOW_READS if program.stages else 1
        # shadow weights: the cells swap in the PREP's last cycle, after the last row has loaded
        return max(program.load_steps + Rom.latency + program.shadow, reads * Rom.latency + lead)

    @staticmethod
    def short_prep_cycles_for(program: Program) -> int:
        """With shadow weights, the PREP of a tile whose cells loaded while the tile before
        streamed: read the descriptor, fetch the first vector's lanes, swap in the last cycle
        (once the preload is done: until then the PREP waits in its first cycle)."""
        lead = LaneFetch.lead_for(program.cell == "serial", program.parts, program.column_words)
        return max(2, Rom.latency + lead)

    @staticmethod
    def drain_cycles_for(program: Program) -> int:
        """Cycles after a tile's last vector enters before the cells may be reloaded: the
        array's latency."""
        return array_latency(program.rows, program.cols, program.cell, program.banked)

    @staticmethod
    def flush_cycles(program: Program, words_written: int) -> int:
        """Cycles of the end-of-layer wait after the DRAIN, for a last row tile that writes
        ``words_written`` lane memory words per vector: the last vector's sums (out of the array
        when DRAIN ends) pass the accumulator, the requantizer's steps and pipeline and the
        writes ROM, its words are written one per cycle, and the FSM moves on the cycle after."""
        return (Accumulate.latency_for(program.cell == "serial")
                + SharedRequantizer.latency_for(program.requant_steps, program.requant_stages)
                + (PoolWriteBack.latency if program.stages else WriteBack.latency) + words_written)

    @staticmethod
    def requantizer_for(program: Program) -> SharedRequantizer:
        """The requantizer the sequencer builds for ``program``: one lane per array row, or on
        the serial array a few lanes shared by the rows (:attr:`Program.requant_steps`). Its
        ``lane`` is what takes multipliers (DSPs)."""
        return SharedRequantizer(rows=program.rows, steps=program.requant_steps,
                                 acc_bits=program.acc_bits, data_bits=program.data_bits,
                                 max_shift=program.max_shift,
                                 clamps=[layer.requant.clamp for layer in program.layers],
                                 meta=result_layout(program.tile_layout), stages=program.requant_stages)

    @property
    def prep_cycles(self) -> int:
        return self.prep_cycles_for(self.program)

    @property
    def drain_cycles(self) -> int:
        return self.drain_cycles_for(self.program)

    def _passes(self, m: Module, p: Program, descriptor, prep, step, streaming, vector_end, vector,
                vectors, stream_final, pass_over, next_pass, layer_over, first_tile, lane_fetch,
                write_back, fetch_next_allowed, tile, run_buffer) -> None:
        """An image network's positions: each layer's vectors are (image, position) pairs, run in
        passes of at most ``chunk`` vectors (whole pooling windows) over the layer's tiles. The
        pass's start is held for the write-back; the fetch side reads each vector's window
        origin from the patch ROM and its column offsets from the columns ROM."""
        info = p.layer_info
        most = max(i["positions"] for i in info)
        q_shape = range(max(2, most))
        b_shape = range(max(2, p.batch))
        a_shape = unsigned(p.address_bits)

        def table(key, shape, minus=0):
            return Array([Const(i[key] - minus, shape) for i in info])[descriptor.layer]

        last_q = table("positions", q_shape, 1)
        last_n = table("chunk", range(max(2, p.pass_depth)), 1)
        read_stride = table("read_stride", a_shape)
        write_stride = table("write_stride", a_shape)
        m.d.comb += first_tile.eq(table("first_tile", first_tile.shape()))

        # the pass's start, held through the pass and its flush
        b0, q0 = Signal(b_shape), Signal(q_shape)
        rb0, wb0 = Signal(a_shape), Signal(a_shape)
        m.d.comb += [write_back.start.q.eq(q0), write_back.start.base.eq(wb0)]

        def advance(b, q, bases, strides):
            end = q == last_q
            return ([Mux(end, b + 1, b), Mux(end, 0, q + 1)]
                    + [Mux(end, x + d, x) for x, d in zip(bases, strides, strict=True)])

        # the streamed vector's (image, position), and the pass that follows
        bs, qs, rbs, wbs = Signal(b_shape), Signal(q_shape), Signal(a_shape), Signal(a_shape)
        nb, nq, nrb, nwb = Signal(b_shape), Signal(q_shape), Signal(a_shape), Signal(a_shape)
        over = Signal()
        last_vector = (bs == vectors - 1) & (qs == last_q)
        m.d.comb += [stream_final.eq((vector == last_n) | last_vector), pass_over.eq(over),
                     fetch_next_allowed.eq(~stream_final)]
        with m.If(prep):
            m.d.sync += [bs.eq(b0), qs.eq(q0), rbs.eq(rb0), wbs.eq(wb0)]
        with m.Elif(streaming & vector_end):
            following = advance(bs, qs, [rbs, wbs], [read_stride, write_stride])
            m.d.sync += [x.eq(y) for x, y in zip((bs, qs, rbs, wbs), following, strict=True)]
            with m.If(stream_final):
                m.d.sync += [x.eq(y) for x, y in zip((nb, nq, nrb, nwb), following, strict=True)]
                m.d.sync += over.eq(last_vector)
        with m.If(next_pass):
            m.d.sync += [b0.eq(nb), q0.eq(nq), rb0.eq(nrb), wb0.eq(nwb)]
        with m.If(layer_over):
            m.d.sync += [b0.eq(0), q0.eq(0), rb0.eq(0), wb0.eq(0)]

        # the fetched vector (one ahead of the streamed one): its window origin from the patch ROM
        m.submodules.patch_rom = patch_rom = Rom(width=p.address_bits, init=p.patches, name="patches")
        # the vector to fetch next: (bf, qf) and ``fbase``, the tile's base plus its image's map;
        # ``window``, a register, is that plus its window origin, so a window word's address is
        # one addition (the column's offset) away from registers. The patch ROM reads a vector
        # ahead: in any cycle its word is the origin of the vector after the one to fetch.
        bf, qf, fbase = Signal(b_shape), Signal(q_shape), Signal(a_shape)
        window = Signal(a_shape)
        fetch = lane_fetch.control.fetch
        after = advance(bf, qf, [fbase], [read_stride])
        after_next = advance(*after[:2], [], [])
        first_fetch = self.prep_cycles - lane_fetch.lead
        priming = prep & (step < first_fetch - 1)  # reading the first vector's own origin
        m.d.comb += [patch_rom.addr0.eq(table("patch_first", range(max(2, len(p.patches))))
                                        + Mux(priming, qf, Mux(fetch, after_next[1], after[1]))),
                     patch_rom.en0.eq(1)]
        # the (registered) descriptor is there from 2 * Rom.latency into PREP, before the last
        # of these steps
        with m.If(prep & (step < first_fetch)):
            m.d.sync += [bf.eq(b0), qf.eq(q0), fbase.eq(descriptor.base + rb0)]
        with m.Elif(fetch):
            m.d.sync += [x.eq(y) for x, y in zip((bf, qf, fbase), after, strict=True)]
        with m.If(prep & (step == first_fetch - 1)):
            m.d.sync += window.eq(fbase + patch_rom.data0)
        with m.Elif(fetch):
            m.d.sync += window.eq(after[2] + patch_rom.data0)
        m.d.comb += [lane_fetch.control.base.eq(window),
                     lane_fetch.control.n.eq(0)]
        # each tile's column offsets, read with its descriptor, held in registers with the input
        # memory's batch region added (only layer 0 reads that memory; its address adds nothing)
        m.submodules.column_rom = column_rom = Rom(
            width=p.cols * p.address_bits,
            init=[pack_array(p.column_offsets[t * p.cols:(t + 1) * p.cols], p.address_bits)
                  for t in range(len(p.tiles))], name="columns")
        read_offsets = data.ArrayLayout(unsigned(p.address_bits), p.cols)(column_rom.data0)
        region = Mux(run_buffer & (descriptor.layer == 0), p.input_region, 0)
        m.d.comb += [column_rom.addr0.eq(tile), column_rom.en0.eq(prep & (step == 0))]
        with m.If(prep):  # the ROM's word is there from step Rom.latency, before the first fetch
            m.d.sync += [lane_fetch.offsets[c].eq(read_offsets[c] + region) for c in range(p.cols)]

    def elaborate(self, platform):
        m = Module()
        p = self.program
        # vectors a tile streams at most: the batch, or an image network's pass
        rows, batch_size, word_bits = p.rows, p.pass_depth, p.data_bits
        lpp, tiles = p.lanes_per_part, len(p.tiles)
        serial = p.cell == "serial"
        per_vector = p.cycles_per_vector

        m.submodules.array = array = SystolicArray(
            rows=rows, cols=p.cols, alpha=p.alpha, weight_bits=p.weight_bits,
            data_bits=word_bits, acc_bits=p.acc_bits, dsp_cells=p.dsp_cells, cell=p.cell,
            onehot=p.onehot, skewed_input=p.column_words, registered_lanes=p.banked,
            skewed_loads=p.skewed_loads, load_rows=p.load_rows, shadow=p.shadow)
        # a cell ROM word: load_rows rows of cells (Program.tile_cells)
        cell_addr = Signal(range(max(2, len(p.cells))))
        cell_en = Signal()
        cell_data = Signal(p.cell_bits)
        if p.cell_memory == "spram":  # loaded from the SPI flash out of reset
            m.submodules.cell_ram = cell_ram = Spram(width=p.cell_bits, depth=max(2, len(p.cells)))
            m.submodules.loader = loader = FlashLoader(words=p.cells, width=p.cell_bits)
            wiring.connect(m, wiring.flipped(self.flash), loader.flash)
            assert Spram.latency == Rom.latency
            m.d.comb += [
                cell_ram.addr.eq(Mux(loader.done, cell_addr, loader.addr)),
                cell_ram.en.eq(cell_en),
                cell_data.eq(cell_ram.data),
                cell_ram.write_en.eq(loader.write_en),
                cell_ram.write_data.eq(loader.write_data),
                self.loaded.eq(loader.done & ~loader.error),
                self.load_error.eq(loader.done & loader.error),
            ]
        else:
            m.submodules.cell_rom = cell_rom = Rom(width=p.cell_bits, init=p.cells, name="cells")
            m.d.comb += [cell_rom.addr0.eq(cell_addr), cell_rom.en0.eq(cell_en), cell_data.eq(cell_rom.data0)]
        descriptor_layout = p.tile_layout
        m.submodules.tile_rom = tile_rom = Rom(width=descriptor_layout.size, init=p.descriptors,
                                               ports=2, name="tiles")
        m.submodules.rq_rom = rq_rom = Rom(width=p.requant_layout.size, init=p.requant,
                                           name="requant")
        m.submodules.requant = rq = self.requantizer_for(p)
        network = p.stages is not None
        m.submodules.lane_fetch = lane_fetch = LaneFetch(
            cols=p.cols, alpha=p.alpha, data_bits=word_bits, batch=batch_size, parts=p.parts,
            address_bits=p.address_bits, serial=serial, staggered=p.column_words, gather=network)
        m.submodules.accumulate = accumulate = Accumulate(
            rows=rows, acc_bits=p.acc_bits, batch=batch_size, tiles=tiles,
            descriptor=descriptor_layout, sums_late=serial,
            steps=p.requant_steps)  # the serial array: a group of rows a cycle, as the requantizer takes them
        if network:
            m.submodules.write_back = write_back = PoolWriteBack(
                rows=rows, data_bits=word_bits, lanes_per_part=lpp, address_bits=p.address_bits,
                layers=p.layer_info, positions=p.positions, writes=p.writes,
                write_layout=p.write_layout, result=result_layout(descriptor_layout))
        else:
            m.submodules.write_back = write_back = WriteBack(
                rows=rows, data_bits=word_bits, batch=batch_size, lanes_per_part=lpp, parts=p.parts,
                address_bits=p.address_bits, writes=p.writes,
                result=result_layout(descriptor_layout))

        # the activation memories (hdl/layout.py), one word = lanes_per_part lanes: layer 0's
        # lanes (written by the host), the later layers' lanes, the outputs (read by the host);
        # the input and output memories hold two batches, so the host fills and drains one
        # while the engine runs the other
        word = memory_word_layout(word_bits, lpp)
        depths = p.memory_depths
        memories = {}
        in_slots = p.input_slots_per_word

        def activation_memory(name: str, label: str) -> tuple:
            width = in_slots * word_bits if name == "input" else word.size
            mem = memory.Memory(shape=unsigned(width), depth=depths[name], init=[],
                                attrs={"ram_style": "block"})  # not LUT RAM or flip-flops when shallow
            m.submodules[label] = mem
            return mem.read_port(), mem.write_port(granularity=word_bits)

        for name in ("lanes", "output"):
            memories[name] = activation_memory(name, f"{name}_memory")
        if p.beat > 1:  # wider beats: one memory per bank, read as one word (Program.beat_banks)
            memories["input"] = self._beat_banks(m)
        else:
            memories["input"] = activation_memory("input", "input_memory")
        input_read, input_write = memories["input"]
        lane_read, lane_write = memories["lanes"]
        output_read, output_write = memories["output"]
        assert MEMORY_READ_LATENCY == 1  # what a synchronous read port gives
        # banked (an image network on the bit-parallel array): a copy of the input and lane
        # memories per further column, read at that column's address; every bank takes the same
        # writes, a cycle late from registers (they fan out over the chip; nothing reads a
        # word within a cycle of its write: the engine starts a batch, a layer or a pass at least
        # a PREP later)
        bank_reads = [(input_read, lane_read)]
        if p.banked:  # input banks only for the columns layer 0 reads (Program.input_banks)
            banks = {"input": [input_write], "lanes": [lane_write]}
            for c in range(1, p.cols):
                ports = []
                for name in ("input", "lanes"):
                    if name == "input" and c >= p.input_banks:
                        ports.append(None)
                        continue
                    read, write = activation_memory(name, f"{name}_memory_{c}")
                    banks[name].append(write)
                    ports.append(read)
                bank_reads.append(tuple(ports))
            input_write, lane_write = (wiring.Signature({
                "addr": Out(port.addr.shape()), "data": Out(port.data.shape()), "en": Out(port.en.shape()),
            }).create(path=(f"{name}_write",)) for name, port in (("input", input_write), ("lanes", lane_write)))
            for name, logical in (("input", input_write), ("lanes", lane_write)):
                for port in banks[name]:
                    m.d.sync += [port.addr.eq(logical.addr), port.data.eq(logical.data), port.en.eq(logical.en)]

        # -- sequencer state ----------------------------------------------------------------
        steps = p.load_steps  # cell ROM words (load cycles) per tile
        cell_base = Signal(range(max(2, tiles * steps)))
        tile = Signal(range(max(2, tiles)))
        step = Signal(range(max(2, self.prep_cycles)))
        vector = Signal(range(max(2, batch_size)))
        vectors = self.batch  # held by the caller for the whole run
        drain_step = Signal(range(max(2, self.drain_cycles)))
        if network:  # held in a register: the passes' control starts from flip-flops, not a RAM
            descriptor = Signal(descriptor_layout)
            m.d.sync += descriptor.eq(tile_rom.data0)
        else:
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
        elif p.max_spacing > 1:  # a tile's vectors enter every `spacing` cycles (Tile.spacing)
            tick = Signal(range(p.max_spacing))
            m.d.comb += vector_end.eq(tick == descriptor.spacing)
            with m.If(streaming):
                m.d.sync += tick.eq(Mux(vector_end, 0, tick + 1))
        else:
            m.d.comb += vector_end.eq(1)

        # shadow weights: the next tile's cells load while this one streams (the preload);
        # `preloaded` says this tile's PREP only reads its descriptor, fetches and swaps
        preloaded = Signal()
        pre_reading = Signal()
        pre_step = Signal(range(max(2, steps)))
        pre_addr = Signal.like(cell_base)
        prep_len = Signal(range(self.prep_cycles + 1))
        prep_wait = Signal()  # a preloaded PREP waits in its first cycle for the preload's last row
        m.d.comb += prep_len.eq(Mux(preloaded, self.short_prep_cycles_for(p), self.prep_cycles) if p.shadow
                                else self.prep_cycles)
        m.d.comb += [
            cell_addr.eq(Mux(pre_reading, pre_addr, cell_base + step)),
            tile_rom.addr0.eq(tile),
        ]

        def next_tile():
            m.d.sync += [tile.eq(tile + 1), cell_base.eq(cell_base + steps), step.eq(0)]

        run_buffer = Signal()  # the batch's region of the input and output memories
        # an image network runs each layer in passes of whole pooling windows (Program.layer_info
        # "chunk"): stream_final marks a pass's last vector; pass_over that it ended the layer
        stream_final = Signal()
        pass_over = Signal()
        next_pass = Signal()
        layer_over = Signal()
        fetch_next_allowed = Signal()
        first_tile = Signal.like(tile)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start & (self.batch != 0)):
                    m.d.sync += [tile.eq(0), cell_base.eq(0), step.eq(0),
                                 run_buffer.eq(self.buffer), preloaded.eq(0)]
                    m.next = "PREP"
            with m.State("PREP"):
                m.d.comb += [
                    prep.eq(1),
                    tile_rom.en0.eq(step == 0),
                ]
                with m.If(~prep_wait):
                    m.d.sync += step.eq(step + 1)
                with m.If(step == prep_len - 1):
                    m.d.sync += [step.eq(0), vector.eq(0)]
                    if p.shadow:  # the next tile's cells load while this one streams
                        with m.If(tile != tiles - 1):
                            m.d.sync += [pre_reading.eq(1), pre_step.eq(0), pre_addr.eq(cell_base + steps),
                                         preloaded.eq(1)]
                        with m.Else():
                            m.d.sync += preloaded.eq(0)
                    m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += streaming.eq(1)
                with m.If(vector_end):
                    m.d.sync += vector.eq(vector + 1)
                with m.If(vector_end & stream_final):
                    m.d.sync += drain_step.eq(0)
                    if p.skewed_loads:  # the next tile loads behind the last vector
                        with m.If(descriptor.layer_end):
                            m.next = "DRAIN"
                        with m.Else():
                            next_tile()
                            m.next = "PREP"
                    else:
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
                with m.If(~pipeline_busy & ~pass_over):  # the layer's next pass: its tiles again
                    m.d.comb += next_pass.eq(1)
                    m.d.sync += [tile.eq(first_tile), cell_base.eq(first_tile * steps), step.eq(0)]
                    m.next = "PREP"
                with m.Elif(~pipeline_busy):
                    m.d.comb += layer_over.eq(1)
                    with m.If(descriptor.net_end):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        next_tile()
                        m.next = "PREP"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        if network:
            self._passes(m, p, descriptor, prep, step, streaming, vector_end, vector, vectors,
                         stream_final, pass_over, next_pass, layer_over, first_tile, lane_fetch,
                         write_back, fetch_next_allowed, tile, run_buffer)
        else:
            m.d.comb += [stream_final.eq(vector == vectors - 1), pass_over.eq(1),
                         fetch_next_allowed.eq(vector != vectors - 1)]

        # -- PREP: the cell ROM shifts load_rows array rows per cycle into the array ----------
        reading = prep & (step < steps) & ~preloaded | pre_reading
        m.d.comb += cell_en.eq(reading)
        loading = delay(m, reading, Rom.latency, "loading")
        m.d.comb += [array.load.eq(loading), array.w_in.eq(cell_data)]
        if p.shadow:
            with m.If(pre_reading):
                m.d.sync += [pre_step.eq(pre_step + 1), pre_addr.eq(pre_addr + 1)]
                with m.If(pre_step == steps - 1):
                    m.d.sync += pre_reading.eq(0)
            m.d.comb += [
                prep_wait.eq(prep & preloaded & (step == 0) & (pre_reading | loading)),
                array.swap.eq(prep & (step == prep_len - 1)),  # the array has drained: all at once
            ]

        # -- lane fetch: vector 0 in PREP's last cycles, vector v + 1 while v streams ---------
        lead = lane_fetch.lead
        fetch_next = Signal()
        if serial:
            m.d.comb += fetch_next.eq(streaming & (bit == per_vector - lead) & fetch_next_allowed)
        else:  # in a vector's last cycle (spaced vectors hold their lanes for `spacing` cycles)
            m.d.comb += fetch_next.eq(streaming & vector_end & fetch_next_allowed)
        m.d.comb += [
            lane_fetch.control.fetch.eq((prep & (step == prep_len - lead)) | fetch_next),
            lane_fetch.control.bit.eq(bit),
        ]
        if not network:
            m.d.comb += [
                lane_fetch.control.n.eq(Mux(prep, 0, vector + 1)),
                lane_fetch.control.base.eq(descriptor.base),  # valid from PREP step Rom.latency
            ]
        first_layer = descriptor.layer == 0
        fetch = lane_fetch.memory
        m.d.comb += array.lanes_in.eq(lane_fetch.lanes)
        for c, (in_read, ln_read) in enumerate(bank_reads):
            address = lane_fetch.banks[c] if p.banked else fetch.addr
            words = lane_fetch.bank_data[c] if p.banked else fetch.data
            m.d.comb += [
                ln_read.addr.eq(address),
                ln_read.en.eq(fetch.en & ~first_layer),
                words.eq(Mux(first_layer, 0 if in_read is None else in_read.data, ln_read.data)),
            ]
            if in_read is not None:
                m.d.comb += [
                    # an image network's column offsets hold the batch region already
                    in_read.addr.eq(address + (0 if network else Mux(run_buffer, p.input_region, 0))),
                    in_read.en.eq(fetch.en & first_layer),
                ]
        out_slot = Signal.like(self.out_slot)
        m.d.sync += out_slot.eq(self.out_slot)
        m.d.comb += [
            output_read.addr.eq(self.out_addr + Mux(self.out_buffer, p.output_region, 0)),
            output_read.en.eq(1),
        ]
        if p.beat > 1:  # the out_slot-th group of beat slots
            groups = data.ArrayLayout(data.ArrayLayout(signed(word_bits), p.beat), lpp // p.beat)
            m.d.comb += self.out_data.eq(groups(output_read.data)[out_slot])
        else:
            m.d.comb += self.out_data.eq(word(output_read.data)[out_slot])

        # -- the tag that travels with each vector through the array -------------------------
        tag_shape = tag_layout(tiles)
        entering = Signal(tag_shape)
        m.d.comb += [entering.valid.eq(streaming & vector_end), entering.final.eq(stream_final),
                     entering.tile.eq(tile)]
        in_array = []
        tag = entering
        # the serial array's sums are there for one cycle: the accumulator takes the tag a
        # cycle ahead of them (Accumulate sums_late)
        for i in range(array.latency - serial):
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
            rq_rom.en0.eq(1),
        ]
        # the requant ROM: word 0 of the vector in P1 (it reaches P2 as the word arrives), then
        # the further words of a vector the shared requantizer takes in steps
        if p.requant_steps > 1:
            rq_first = Signal.like(accumulate.requant_row)
            with m.If(~rq.more):
                m.d.sync += rq_first.eq(accumulate.requant_row)
            m.d.comb += rq_rom.addr0.eq(Mux(rq.more, rq_first + rq.step + 1, accumulate.requant_row))
        else:
            m.d.comb += rq_rom.addr0.eq(accumulate.requant_row)

        # -- P2..: requantize (over requant_steps cycles on the serial array) -----------------
        p2 = accumulate.result
        coeffs = p.requant_layout(rq_rom.data0)
        m.d.comb += [rq.valid.eq(p2.valid), rq.layer.eq(p2.layer), rq.sums.eq(accumulate.total),
                     rq.meta.eq(p2)]
        for r in range(p.requant_lanes):
            m.d.comb += [rq.bias[r].eq(coeffs[r].bias), rq.mult[r].eq(coeffs[r].mult),
                         rq.shift[r].eq(coeffs[r].shift)]

        # -- then: write the outputs into the next layer's lanes --------------------------------
        m.d.comb += [write_back.result.eq(rq.out_meta), write_back.result.valid.eq(rq.out_valid),
                     write_back.values.eq(rq.out)]

        # -- the input port: each word into every slot layer 0 reads it from ------------------
        if p.beat > 1:
            m.submodules.beat_port = beats = BeatPort(program=p)
            m.d.comb += [beats.en.eq(self.in_en), self.in_ready.eq(beats.ready), beats.index.eq(self.in_index),
                         beats.data.eq(self.in_data),
                         beats.base.eq(self._input_base(self.in_addr, self.in_buffer, network))]
            for port, write in zip(input_write, beats.writes, strict=True):
                m.d.comb += [port.addr.eq(write.addr), port.data.eq(write.data), port.en.eq(write.en)]
        else:
            self._word_port(m, input_write, network)
        # the write-back: the last layer's outputs to the output memory, the rest to the lanes
        writing = write_back.memory
        last_layer = writing.layer == len(p.layers) - 1
        for port, offset, mine in ((lane_write, 0, ~last_layer),
                                   (output_write, Mux(run_buffer, p.output_region, 0), last_layer)):
            m.d.comb += [
                port.addr.eq(writing.addr + offset),
                port.data.eq(writing.data),
                port.en.eq(Mux(mine, writing.mask, 0)),
            ]
        m.d.comb += pipeline_busy.eq(
            Cat(*in_array, accumulate.busy, p2.valid, rq.busy, write_back.busy).any())
        return m

    def _input_base(self, vector: Value, buffer: Value, network: bool) -> Value:
        """Address of input vector ``vector``'s word 0 in region ``buffer`` of the input memory."""
        p = self.program
        offset = (constant_times(vector, p.layer_info[0]["read_stride"]) if network
                  else vector_offset(vector, p.parts))
        return offset + Mux(buffer, p.input_region, 0)

    def _beat_banks(self, m: Module) -> tuple:
        """The input memory as :attr:`Program.beat_banks` memories (slot ``s`` of a word in bank
        ``s % banks``): a read port of whole words and a write port per bank."""
        p = self.program
        d, banks, per_bank = p.data_bits, p.beat_banks, p.beat_bank_slots
        read = wiring.Signature({"addr": Out(unsigned(p.address_bits)), "en": Out(1),
                                 "data": Out(p.input_slots_per_word * d)}).create(path=("input_read",))
        writes, datas = [], []
        for b in range(banks):
            mem = memory.Memory(shape=unsigned(per_bank * d), depth=p.memory_depths["input"], init=[],
                                attrs={"ram_style": "block"})
            m.submodules[f"input_memory_{b}"] = mem
            port = mem.read_port()
            m.d.comb += [port.addr.eq(read.addr), port.en.eq(read.en)]
            datas.append(port.data)
            writes.append(mem.write_port(granularity=d))
        m.d.comb += read.data.eq(Cat(*(datas[s % banks].word_select(s // banks, d)
                                       for s in range(p.input_slots_per_word))))
        return read, writes

    def _word_port(self, m: Module, input_write, network: bool) -> None:
        """The input port of one word a beat: the word's input map entries, one a cycle."""
        p = self.program
        word_bits, in_slots = p.data_bits, p.input_slots_per_word
        m.submodules.in_rom = in_rom = Rom(width=p.input_layout.size, init=p.input_map, name="inputs")
        entries = p.input_layout(in_rom.data0)
        in_vector = Signal.like(self.in_addr)
        in_word = Signal.like(self.in_data)
        have = Signal()  # a word taken last cycle (or still being written): its ROM entry is out
        entry = Signal(range(max(2, p.input_fanout)))
        current = entries[entry]
        last_entry = Signal()
        if p.input_fanout > 1:
            m.d.comb += last_entry.eq((entry == p.input_fanout - 1)
                                      | ~entries.as_value().bit_select(
                                          (entry + 1) * p.input_layout.elem_shape.size, 1))
        else:
            m.d.comb += last_entry.eq(1)
        m.d.comb += self.in_ready.eq(~have | last_entry)
        in_buffer = Signal()
        take = self.in_en & self.in_ready
        m.d.comb += [in_rom.addr0.eq(self.in_index), in_rom.en0.eq(take)]
        with m.If(take):
            m.d.sync += [have.eq(1), entry.eq(0), in_vector.eq(self.in_addr), in_word.eq(self.in_data),
                         in_buffer.eq(self.in_buffer)]
        with m.Elif(have & ~last_entry):
            m.d.sync += entry.eq(entry + 1)
        with m.Else():
            m.d.sync += have.eq(0)
        m.d.comb += input_write.addr.eq(current.address + self._input_base(in_vector, in_buffer, network))
        if p.input_run:
            # row runs (Program.row_runs): the last input_run pixels, the newest in the top slot,
            # written whole; a row's last pixel's further entries (the right border's runs) shift
            # zeros in, which are also the next row's left border
            run = Signal(data.ArrayLayout(signed(word_bits), in_slots))
            window = Cat(*(run[s] for s in range(1, in_slots)), Mux(entry == 0, in_word, 0))
            with m.If(have):
                m.d.sync += run.eq(window)
            m.d.comb += [input_write.data.eq(window),
                         input_write.en.eq(Mux(have & current.valid, (1 << in_slots) - 1, 0))]
        else:
            m.d.comb += [
                input_write.data.eq(Cat(*([in_word] * in_slots))),
                input_write.en.eq(Mux(have & current.valid, Const(1, in_slots) << current.slot, 0)),
            ]
