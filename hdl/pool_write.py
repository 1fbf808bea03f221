"""Write-back of an image network: max-pool each layer's vectors, write each output position.

A layer of an image network (:meth:`~colcomb.hdl.program.Program._build_images`) sends its
positions through the array in pooling-window order, so pooling is a running maximum over
``pool * pool`` consecutive requantized vectors. Each pooled vector (output position ``u`` of
image ``b``) is written where the next layer reads it: the row tile's position table entry for
``u`` points at its first word in the writes ROM, and the words follow until one is marked
``last``; each word's address is for image 0, image ``b``'s lies ``b * write_stride`` further.
A word either repeats the rows across its slots (slot ``s`` gets row ``s % rows``: a pixel word
of the next feature map) or gives every slot one row's value (``single``: a flattened map's
value into its lane of the next linear layer).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated
from colcomb.hdl.rom import Rom
from colcomb.hdl.write_back import memory_write_signature

__all__ = ["PoolWriteBack", "chunk_start_layout"]


def chunk_start_layout(positions: int, address_bits: int) -> data.StructLayout:
    """Where a pass over a layer's tiles starts: position ``q`` of the image whose words start
    ``base`` into the written memory."""
    return data.StructLayout({"q": unsigned(max(1, (positions - 1).bit_length())),
                              "base": unsigned(address_bits)})


class PoolWriteBack(wiring.Component):
    """The max-pooling writer of an image network's layer outputs.

    Parameters
    ----------
    rows, data_bits : int
        Outputs per vector and their width.
    lanes_per_part, address_bits : int
        The written memories' slots per word and address width.
    layers : sequence of dict
        Per layer ``positions`` (vectors per image), ``pool`` (window side, a power of two) and
        ``write_stride`` (words between two images' outputs), as in
        :attr:`Program.layer_info`.
    positions : sequence of int
        The position table (:attr:`Program.positions`): per row tile and output position, the
        first writes ROM word.
    writes : sequence of int
        The writes ROM (:attr:`Program.writes`) in ``write_layout``.
    write_layout : StructLayout
        ``address``, ``mask``, ``single``, ``row``, ``last``.
    result : StructLayout
        The arriving vector's fields (:func:`colcomb.hdl.accumulate.result_layout`): ``valid``,
        ``final`` (a row tile's last vector of the pass), ``wr_first`` (its position table
        entry for output position 0) and ``layer``.

    Members
    -------
    result : ``In(result)``
    values : ``In(ArrayLayout(signed(data_bits), rows))``
    start : ``In(chunk_start_layout(...))``
        The pass's first vector (held while the pass's vectors arrive).
    memory : ``Out(memory_write_signature(...))``
    busy : ``Out(1)``
    """

    #: cycles from a window's last vector on ``values`` to its first word's write (the position
    #: table read, then the writes ROM read)
    latency = 2 * Rom.latency

    @validated
    def __init__(self, *, rows: int, data_bits: int, lanes_per_part: int, address_bits: int,
                 layers: Sequence[dict], positions: Sequence[int], writes: Sequence[int],
                 write_layout: data.StructLayout, result: data.StructLayout):
        self.rows = check_int("rows", rows)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.lanes_per_part = check_int("lanes_per_part", lanes_per_part)
        self.address_bits = check_int("address_bits", address_bits)
        self.layers = [dict(info) for info in layers]
        if not self.layers:
            raise ValueError("layers must list at least one layer")
        for info in self.layers:
            pool = info.get("pool")
            if not isinstance(pool, int) or pool < 1 or pool & (pool - 1):
                raise ValueError(f"pool must be a power of two, not {pool!r}")
        self.positions = [int(v) for v in positions] or [0]
        self.writes = [int(v) for v in writes] or [0]
        self.write_layout = write_layout
        self.result_layout = result
        most = max(info["positions"] for info in self.layers)
        super().__init__({
            "result": In(result),
            "values": In(data.ArrayLayout(signed(data_bits), rows)),
            "start": In(chunk_start_layout(most, address_bits)),
            "memory": Out(memory_write_signature(address_bits, data_bits, lanes_per_part,
                                                 Shape.cast(result["layer"].shape).width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, lpp, arrived = self.rows, self.lanes_per_part, self.result
        q_shape = self.start.q.shape()

        def table(values, shape):
            return Array([Const(v, shape) for v in values])[arrived.layer]

        last_q = table([info["positions"] - 1 for info in self.layers], q_shape)
        stride = table([info["write_stride"] for info in self.layers], unsigned(self.address_bits))
        # a pooling window is 1 << pool_log consecutive positions
        logs = [2 * (info["pool"].bit_length() - 1) for info in self.layers]
        pool_log = table(logs, range(max(logs) + 1))
        m.submodules.positions = pos_rom = Rom(width=len(self.writes).bit_length() or 1,
                                               init=self.positions, name="positions")
        m.submodules.writes = rom = Rom(width=self.write_layout.size, init=self.writes, name="writes")
        entry = self.write_layout(rom.data0)

        # this vector's position and image base: the pass's start, or one on from the last
        wrap = Signal(init=1)  # the next vector is a row tile's first of the pass
        q = Signal(q_shape)
        base = Signal(unsigned(self.address_bits))
        this_q = Signal(q_shape)
        this_base = Signal.like(base)
        end_of_image = q == last_q
        m.d.comb += [
            this_q.eq(Mux(wrap, self.start.q, Mux(end_of_image, 0, q + 1))),
            this_base.eq(Mux(wrap, self.start.base, Mux(end_of_image, base + stride, base))),
        ]
        phase_mask = Signal(q_shape)
        m.d.comb += phase_mask.eq((Const(1, q_shape.width + 1) << pool_log) - 1)
        window_start = (this_q & phase_mask) == 0
        window_end = (this_q & phase_mask) == phase_mask
        position = this_q >> pool_log

        running = Signal(data.ArrayLayout(signed(self.data_bits), rows))
        pooled = Signal.like(running)
        for r in range(rows):
            v = self.values[r]
            m.d.comb += pooled[r].eq(Mux(window_start | (v > running[r]), v, running[r]))
        held = Signal.like(running)
        held_base = Signal.like(base)
        layer = Signal.like(arrived.layer)
        emit = Signal()
        with m.If(arrived.valid):
            m.d.sync += [q.eq(this_q), base.eq(this_base), wrap.eq(arrived.final), running.eq(pooled)]
            with m.If(window_end):
                m.d.sync += layer.eq(arrived.layer)
                m.d.comb += emit.eq(1)
        m.d.comb += [pos_rom.addr0.eq(arrived.wr_first + position), pos_rom.en0.eq(emit)]

        # the writes: the position table entry, then word after word until the last
        looked = Signal()  # the position table's word arrives this cycle
        pending = Signal()  # a writes ROM word arrives this cycle
        pointer = Signal.like(pos_rom.data0)
        m.d.sync += looked.eq(emit)
        more = pending & ~entry.last
        # the pooled vector, kept from the cycle before its first write (vectors arrive at least
        # data_bits cycles apart): a position's words end before the next position's values
        # replace it, if they number at most the cycles between two positions
        with m.If(looked):
            m.d.sync += [held.eq(running), held_base.eq(base)]
        with m.If(looked):
            m.d.comb += [rom.addr0.eq(pos_rom.data0), rom.en0.eq(1)]
            m.d.sync += [pointer.eq(pos_rom.data0 + 1), pending.eq(1)]
        with m.Elif(more):
            m.d.comb += [rom.addr0.eq(pointer), rom.en0.eq(1)]
            m.d.sync += pointer.eq(pointer + 1)
        with m.Else():
            m.d.sync += pending.eq(0)
        chosen = held[entry.row] if rows > 1 else held[0]
        m.d.comb += [
            self.memory.addr.eq(entry.address + held_base),
            self.memory.mask.eq(entry.mask & pending.replicate(lpp)),
            self.memory.data.eq(Cat(*(Mux(entry.single, chosen, held[s % rows]) for s in range(lpp)))),
            self.memory.layer.eq(layer),
            self.busy.eq(looked | pending | emit),
        ]
        return m
