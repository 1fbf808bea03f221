"""Write-back: gather a row tile's outputs per vector, then write them into the destination
activation buffer one buffer row per cycle.

Each requantized vector arrives as ``rows`` words (one per output row); the transpose registers
keep them as ``rows`` buffer rows of ``batch`` words (register ``r`` holds output row ``r`` of
every vector). When the batch's final vector has arrived, the ``count`` valid rows are written to
the destination buffer at rows ``offset ..``, one per cycle, shifting the registers towards row 0.
Storing a vector takes :attr:`WriteBack.latency` = 1 cycle; the writes follow it.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.lane_fetch import buffer_row_layout
from colcomb.hdl.params import check_int, validated

__all__ = ["WriteBack", "buffer_write_signature"]

RESULT_FIELDS = ("valid", "final", "n", "offset", "count", "layer")


def buffer_write_signature(buffer_rows: int, data_bits: int, batch: int) -> wiring.Signature:
    """The write-back's request to the activation buffers, seen from the writer: write ``data``
    (a whole buffer row) at ``addr`` of buffer ``target`` while ``en``."""
    return wiring.Signature({
        "en": Out(1),
        "target": Out(1),
        "addr": Out(range(max(2, buffer_rows))),
        "data": Out(buffer_row_layout(data_bits, batch)),
    })


class WriteBack(wiring.Component):
    """The transpose registers and the write-back counter.

    Parameters
    ----------
    rows : int
        Output words per vector of a row tile (the array's rows).
    data_bits : int
        Bits of an activation word.
    batch : int
        Vectors per batch (words per buffer row).
    buffer_rows : int
        Rows of an activation buffer.
    result : StructLayout
        The layout of ``result`` (:func:`colcomb.hdl.accumulate.result_layout`): ``valid``,
        ``final``, ``n``, ``offset``, ``count`` and ``layer`` (its parity picks the source
        buffer; the outputs go to the other one).

    Members
    -------
    result : ``In(result)``
        Vector ``n``'s outputs are on ``values`` (when ``valid``).
    values : ``In(ArrayLayout(signed(data_bits), rows))``
    buffer : ``Out(buffer_write_signature(buffer_rows, data_bits, batch))``
    busy : ``Out(1)``
        Rows are being written (for the sequencer's end-of-layer wait).
    """

    #: cycles from a vector on ``values`` to it being held in the transpose registers
    latency = 1

    @validated
    def __init__(self, *, rows: int, data_bits: int, batch: int, buffer_rows: int,
                 result: data.StructLayout):
        self.rows = check_int("rows", rows)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.batch = check_int("batch", batch)
        self.buffer_rows = check_int("buffer_rows", buffer_rows)
        if not isinstance(result, data.StructLayout):
            raise TypeError(f"result must be a StructLayout, not {result!r}")
        missing = [f for f in RESULT_FIELDS if f not in result.members]
        if missing:
            raise ValueError(f"result {result!r} lacks the fields {missing}")
        super().__init__({
            "result": In(result),
            "values": In(data.ArrayLayout(signed(data_bits), rows)),
            "buffer": Out(buffer_write_signature(buffer_rows, data_bits, batch)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows = self.rows
        arrived = self.result
        transpose = [Signal(buffer_row_layout(self.data_bits, self.batch), name=f"outbuf_{r}")
                     for r in range(rows)]
        rows_left = Signal(range(rows + 1))
        row = Signal(range(max(2, self.buffer_rows)))
        target = Signal()
        with m.If(rows_left != 0):
            m.d.sync += [rows_left.eq(rows_left - 1), row.eq(row + 1)]
            for r in range(rows):
                m.d.sync += transpose[r].eq(transpose[r + 1] if r + 1 < rows else 0)
        with m.Elif(arrived.valid):
            for r in range(rows):
                m.d.sync += transpose[r][arrived.n].eq(self.values[r])
            with m.If(arrived.final):
                m.d.sync += [rows_left.eq(arrived.count), row.eq(arrived.offset),
                             target.eq(~arrived.layer[0])]
        m.d.comb += [
            self.buffer.en.eq(rows_left != 0),
            self.buffer.target.eq(target),
            self.buffer.addr.eq(row),
            self.buffer.data.eq(transpose[0]),
            self.busy.eq(rows_left != 0),
        ]
        return m
