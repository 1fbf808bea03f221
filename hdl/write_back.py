"""Write-back: store each requantized vector straight into the next layer's lanes.

A row tile's outputs go to a few lane memory words per vector (:mod:`colcomb.hdl.layout`): the
writes ROM lists them (address for vector 0 and slot mask) from the row tile's ``wr_first``, and
every written word repeats the ``rows`` outputs across its slots (slot ``s`` gets output
``s % rows``), so no crossbar and no transpose registers are needed. Word ``k`` of a vector that
arrives in cycle ``t`` is written in cycle ``t + WriteBack.latency + k``; the program keeps a row
tile's words within the cycles a vector streams.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.lane_fetch import memory_word_layout, vector_offset
from colcomb.hdl.params import check_int, validated
from colcomb.hdl.rom import Rom

__all__ = ["WriteBack", "memory_write_signature"]

RESULT_FIELDS = ("valid", "final", "wr_first", "wr_count", "layer")


def memory_write_signature(address_bits: int, data_bits: int, lanes_per_part: int,
                           layer: int = 1) -> wiring.Signature:
    """A write request to an activation memory, seen from the writer: write the slots of
    ``data`` selected by ``mask`` at ``addr``; they are outputs of ``layer`` (which picks the
    memory: the last layer's go to the output memory)."""
    return wiring.Signature({
        "addr": Out(unsigned(address_bits)),
        "mask": Out(lanes_per_part),
        "data": Out(memory_word_layout(data_bits, lanes_per_part)),
        "layer": Out(unsigned(layer)),
    })


class WriteBack(wiring.Component):
    """The writes ROM and the lane memory writer.

    Parameters
    ----------
    rows : int
        Output words per vector of a row tile (the array's rows).
    data_bits : int
        Bits of an activation word.
    batch : int
        Vectors per batch (the vector counter's range).
    lanes_per_part, parts : int
        The lane memory's slots per word and words per vector (a power of two).
    address_bits : int
        Width of a lane memory address.
    writes : sequence of int
        The writes ROM (:attr:`Program.writes`): address in the low ``address_bits``, the slot
        mask above.
    result : StructLayout
        The layout of ``result`` (:func:`colcomb.hdl.accumulate.result_layout`): ``valid``,
        ``final``, ``wr_first``, ``wr_count`` and ``layer``.

    Members
    -------
    result : ``In(result)``
        The next vector's outputs are on ``values`` (when ``valid``; ``final`` on a row tile's
        last vector, so the count starts again).
    values : ``In(ArrayLayout(signed(data_bits), rows))``
    memory : ``Out(memory_write_signature(address_bits, data_bits, lanes_per_part, layer_bits))``
    busy : ``Out(1)``
        Words are being written (for the sequencer's end-of-layer wait).
    """

    #: cycles from a vector on ``values`` to its first word's write (the writes ROM read)
    latency = Rom.latency

    @validated
    def __init__(self, *, rows: int, data_bits: int, batch: int, lanes_per_part: int, parts: int,
                 address_bits: int, writes: Sequence[int], result: data.StructLayout):
        self.rows = check_int("rows", rows)
        self.batch = check_int("batch", batch)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.lanes_per_part = check_int("lanes_per_part", lanes_per_part)
        self.parts = check_int("parts", parts)
        if parts & (parts - 1):
            raise ValueError(f"parts must be a power of two, not {parts!r}")
        self.address_bits = check_int("address_bits", address_bits)
        self.writes = [int(w) for w in writes] or [0]
        if not isinstance(result, data.StructLayout):
            raise TypeError(f"result must be a StructLayout, not {result!r}")
        missing = [f for f in RESULT_FIELDS if f not in result.members]
        if missing:
            raise ValueError(f"result {result!r} lacks the fields {missing}")
        self.result_layout = result
        super().__init__({
            "result": In(result),
            "values": In(data.ArrayLayout(signed(data_bits), rows)),
            "memory": Out(memory_write_signature(address_bits, data_bits, lanes_per_part,
                                                 Shape.cast(result["layer"].shape).width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lpp, arrived = self.lanes_per_part, self.result
        word = data.StructLayout({"address": unsigned(self.address_bits), "mask": unsigned(lpp)})
        m.submodules.rom = rom = Rom(width=word.size, init=self.writes, name="writes")
        entry = word(rom.data0)
        held = Signal(data.ArrayLayout(signed(self.data_bits), self.rows))
        # the vectors of a row tile arrive in order: n counts them (0 after a row tile's final)
        n = Signal(range(max(2, self.batch)))
        wrap = Signal(init=1)
        layer = Signal(self.result_layout["layer"].shape)
        next_word = Signal(self.result_layout["wr_first"].shape)
        left = Signal(self.result_layout["wr_count"].shape)
        pending = Signal()  # a word read from the ROM last cycle is written this cycle
        with m.If(arrived.valid):
            m.d.comb += [rom.addr0.eq(arrived.wr_first), rom.en0.eq(1)]
            m.d.sync += [held.eq(self.values), n.eq(Mux(wrap, 0, n + 1)), wrap.eq(arrived.final),
                         layer.eq(arrived.layer),
                         next_word.eq(arrived.wr_first + 1),
                         left.eq(arrived.wr_count - (arrived.wr_count != 0)),
                         pending.eq(arrived.wr_count != 0)]
        with m.Elif(left != 0):
            m.d.comb += [rom.addr0.eq(next_word), rom.en0.eq(1)]
            m.d.sync += [next_word.eq(next_word + 1), left.eq(left - 1), pending.eq(1)]
        with m.Else():
            m.d.sync += pending.eq(0)
        m.d.comb += [
            self.memory.addr.eq(entry.address + vector_offset(n, self.parts)),
            self.memory.mask.eq(entry.mask & pending.replicate(lpp)),
            self.memory.data.eq(Cat(*(held[s % self.rows] for s in range(lpp)))),
            self.memory.layer.eq(layer),
            self.busy.eq(pending | (left != 0)),
        ]
        return m
