"""Accumulate: add each vector's row sums for one column tile to its running sums.

A row tile of a layer is computed as several column tiles in turn; the running sums of every
vector of the batch wait in the accumulator memory between them. Per vector (one per cycle,
tagged with its index ``n`` and tile), two stages:

- O: read the tile's descriptor (tile ROM) and the vector's running sums (accumulator memory);
- P1: the total is this tile's sums (first column tile) or running + this tile's sums; on the
  last column tile it leaves for the requantizer (with the descriptor's ``wr_first``,
  ``wr_count`` and ``layer``), otherwise it is written back to the accumulator memory.

So :attr:`Accumulate.latency` = 2 cycles from a tag on ``tag`` to the result on ``result``. With
``sums_late`` (the serial array) the tag comes a cycle ahead of its sums, which P1 takes straight
from the array: :meth:`Accumulate.latency_for` counts from the sums.

With ``steps > 1`` (the serial array, whose vectors come every ``data_bits`` cycles) the memory
holds ``ceil(rows / steps)`` sums a word and a vector's rows in ``steps`` words: P1 adds the first
group of rows and the following cycles one group each, from a register that holds the vector's
later sums, and each group's total goes out as it is made, one group-wide register. The shared
requantizer takes that group the cycle after (:class:`~colcomb.hdl.requant.SharedRequantizer`
with group inputs), so the result is as early as with one word a vector, and the memory, the
adder and the output register are a group wide: on iCE40 a word of 8 x 19 bits takes 10 block
RAMs at any depth, 512 x 19 bits takes 3.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated

__all__ = ["Accumulate", "descriptor_read_signature", "result_layout", "sums_layout",
           "tag_layout"]

DESCRIPTOR_FIELDS = ("first", "last", "rq", "wr_first", "wr_count", "layer")


def tag_layout(tiles: int) -> data.StructLayout:
    """What travels with each vector through the array: ``valid``, ``final`` (last vector of the
    batch) and its ``tile``. A tile's vectors arrive in order, so the stages behind the array
    count them rather than carry their index (no register grows with the batch)."""
    return data.StructLayout({"valid": 1, "final": 1, "tile": Shape.cast(range(max(2, tiles)))})


def result_layout(descriptor: data.StructLayout) -> data.StructLayout:
    """What travels with a finished vector's sums to the requantizer and the write-back:
    ``valid``, ``final``, and from the tile's descriptor the lane memory words to write
    (``wr_first``, ``wr_count``) and the ``layer`` (vectors arrive in order: the write-back counts
    them)."""
    return data.StructLayout({
        "valid": 1, "final": 1,
        "wr_first": descriptor["wr_first"].shape, "wr_count": descriptor["wr_count"].shape,
        "layer": descriptor["layer"].shape,
    })


def sums_layout(rows: int, acc_bits: int) -> data.ArrayLayout:
    """The ``rows`` row sums of one vector."""
    return data.ArrayLayout(signed(acc_bits), rows)


def descriptor_read_signature(tiles: int, descriptor: data.StructLayout) -> wiring.Signature:
    """A read port of the tile ROM, seen from the reader: ``addr`` out, the descriptor in one
    cycle later (the ROM's port stays enabled)."""
    return wiring.Signature({"addr": Out(range(max(2, tiles))), "data": In(descriptor)})


class Accumulate(wiring.Component):
    """The accumulator memory and the column-tile adder behind the array.

    Parameters
    ----------
    rows : int
        Row sums per vector (the array's rows).
    acc_bits : int
        Bits of a sum.
    batch : int
        Vectors per batch (the accumulator memory's depth).
    tiles : int
        Tiles of the program (the width of the tag's tile field).
    descriptor : StructLayout
        The tile descriptor (:attr:`Program.tile_layout`); uses its ``first``, ``last``, ``rq``,
        ``wr_first``, ``wr_count`` and ``layer`` fields.
    sums_late : bool
        ``sums`` come a cycle after their tag, in P1, which adds them without a register of its
        own (the serial array: its edge's sum is there for one cycle, no output register).
    steps : int
        Cycles a vector's rows take, ``ceil(rows / steps)`` a cycle (needs ``sums_late``; tags at
        least ``steps`` cycles apart); 1: all rows in P1.

    Members
    -------
    tag : ``In(tag_layout(tiles))``
        The vector whose sums are on ``sums`` this cycle (with ``sums_late``: next cycle).
    sums : ``In(sums_layout(rows, acc_bits))``
        Its row sums for the current column tile (the array's ``sums_out``).
    descriptor : ``Out(descriptor_read_signature(tiles, descriptor))``
        The tile ROM port that reads the tag's descriptor.
    requant_row : ``Out(descriptor["rq"].shape)``
        The requant ROM word of the vector in P1 (its row tile's first word), read alongside.
    result : ``Out(result_layout(descriptor))``
        A vector's final sums are valid on ``total`` (last column tile); they and the fields
        other than ``valid`` hold until the next result.
    total : ``Out(sums_layout(rows, acc_bits))``, with ``steps > 1`` ``Out(sums_layout(group, acc_bits))``
        With ``steps > 1`` one group of rows: group ``g`` of the result ``g`` cycles after
        ``result.valid`` (the cycle the shared requantizer takes it).
    busy : ``Out(1)``
        A vector is in O..P1 or its later steps (for the sequencer's end-of-layer wait).
    """

    #: cycles from a tag on ``tag`` to its result on ``result``: O, then P1
    latency = 2

    @classmethod
    def latency_for(cls, sums_late: bool) -> int:
        """Cycles from a vector's sums on ``sums`` to its result on ``result``."""
        return cls.latency - bool(sums_late)

    @validated
    def __init__(self, *, rows: int, acc_bits: int, batch: int, tiles: int,
                 descriptor: data.StructLayout, sums_late: bool = False, steps: int = 1):
        self.rows = check_int("rows", rows)
        self.steps = check_int("steps", steps)
        self.group = -(-self.rows // self.steps)  # rows a step
        if -(-self.rows // self.group) != self.steps:
            raise ValueError(f"steps {steps!r} leaves steps without a row: {rows} rows in groups of "
                             f"{self.group} take {-(-self.rows // self.group)} steps")
        if self.steps > 1 and not sums_late:
            raise ValueError(f"steps {steps!r} > 1 is for the serial array's late sums (sums_late=True)")
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        self.batch = check_int("batch", batch)
        self.tiles = check_int("tiles", tiles)
        if not isinstance(descriptor, data.StructLayout):
            raise TypeError(f"descriptor must be a StructLayout, not {descriptor!r}")
        missing = [f for f in DESCRIPTOR_FIELDS if f not in dict(descriptor.members)]
        if missing:
            raise ValueError(f"descriptor {descriptor!r} lacks the fields {missing}")
        self.descriptor_layout = descriptor
        self.sums_late = bool(sums_late)
        super().__init__({
            "tag": In(tag_layout(tiles)),
            "sums": In(sums_layout(rows, acc_bits)),
            "descriptor": Out(descriptor_read_signature(tiles, descriptor)),
            "requant_row": Out(descriptor["rq"].shape),
            "result": Out(result_layout(descriptor)),
            "total": Out(sums_layout(self.group if self.steps > 1 else rows, acc_bits)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layout = sums_layout(self.rows, self.acc_bits)
        # in block RAM at every batch: yosys would put a shallow one in LUT RAM (ECP5) and
        # register its address, a deep one in a DP16KD, so the flip-flops would step with the
        # batch. The read port is transparent for the write port (O would see P1's new sum);
        # the sequencer never makes them meet on one address (tiles are PREP + DRAIN apart),
        # and so a DP16KD needs no register of its read data
        # (with steps: a word per group of rows, a vector's words at n * words_per_vector)
        per_vector = 1 << (self.steps - 1).bit_length()  # the steps, rounded up to a power of two
        m.submodules.acc = running_sums = memory.Memory(
            shape=unsigned(self.group * self.acc_bits), depth=max(2, self.batch * per_vector), init=[],
            attrs={"ram_style": "block"})
        running_write = running_sums.write_port()
        running_read = running_sums.read_port(transparent_for=(running_write,))

        # -- O: read the descriptor and the running sums ------------------------------------
        # vectors are counted: p1_n is the index of the latest tag (the vector in P1), the one
        # in O is the next, or 0 after a batch's final vector (one register, not two)
        p1_n = Signal(range(max(2, self.batch)))
        wrap = Signal(init=1)
        n = Signal.like(p1_n)
        m.d.comb += n.eq(Mux(wrap, 0, p1_n + 1))
        with m.If(self.tag.valid):
            m.d.sync += [p1_n.eq(n), wrap.eq(self.tag.final)]
        m.d.comb += [self.descriptor.addr.eq(self.tag.tile), running_read.en.eq(1)]
        p1 = Signal(self.tag.shape())
        m.d.sync += p1.eq(self.tag)
        tile = self.descriptor.data
        out_total = Signal(self.total.shape(), name="p2_sums")
        if self.steps == 1:
            m.d.comb += running_read.addr.eq(n)
            if self.sums_late:  # the sums arrive in P1
                p1_sums = self.sums
            else:
                p1_sums = Signal(layout)
                m.d.sync += p1_sums.eq(self.sums)

            # -- P1: add the column tile; keep the total or pass it on -----------------------
            running = layout(running_read.data)
            total = Signal(layout)
            for r in range(self.rows):
                m.d.comb += total[r].eq(Mux(tile.first, p1_sums[r], running[r] + p1_sums[r]))
            m.d.comb += [
                running_write.addr.eq(p1_n),
                running_write.data.eq(total),
                running_write.en.eq(p1.valid & ~tile.last),
            ]
            with m.If(p1.valid & tile.last):
                m.d.sync += out_total.eq(total)
            stepping = Const(0)
        else:
            stepping = self._steps(m, p1, p1_n, n, tile, running_read, running_write, out_total, per_vector)
        m.d.comb += self.requant_row.eq(tile.rq)
        result = self.result
        # the outputs are P1's registers: valid from the cycle after P1
        out = Signal(result.shape(), name="p2")
        # a result holds until the next one (the shared requantizer reads it over several cycles)
        m.d.sync += out.valid.eq(p1.valid & tile.last)
        with m.If(p1.valid & tile.last):
            m.d.sync += [
                out.final.eq(p1.final), out.wr_first.eq(tile.wr_first), out.wr_count.eq(tile.wr_count),
                out.layer.eq(tile.layer),
            ]
        m.d.comb += [
            result.eq(out),
            self.total.eq(out_total),
            self.busy.eq(p1.valid | stepping | out.valid),
        ]
        return m

    def _steps(self, m: Module, p1, p1_n, n, tile, running_read, running_write, out_total, per_vector: int):
        """P1 and the cycles after it with ``steps > 1``: one group of rows a cycle (the
        first group's sums straight from the array, the later ones from ``held``), group ``g``
        at address ``n * per_vector + g``. Returns the signal that is high on the later steps."""
        group, steps, bits = self.group, self.steps, self.acc_bits
        group_layout = data.ArrayLayout(signed(bits), group)

        def rows_of(sums, g: int, first_row: int = 0) -> Value:
            """Group ``g``'s rows of ``sums`` (which begin at row ``first_row``), zeros past the last."""
            return Cat(*(sums[r - first_row] if r < self.rows else Const(0, signed(bits))
                         for r in range(g * group, (g + 1) * group)))

        held = Signal(sums_layout(self.rows - group, bits))  # the vector's sums of the later steps
        first, last = Signal(), Signal()  # its descriptor's, for the later steps
        stepping = Signal()
        j = Signal(range(max(2, steps)))  # the later step running
        with m.If(p1.valid):
            m.d.sync += [held.eq(self.sums.as_value()[group * bits:]), first.eq(tile.first), last.eq(tile.last),
                         j.eq(1), stepping.eq(1)]
        with m.Elif(stepping):
            m.d.sync += [j.eq(j + 1), stepping.eq(j + 1 < steps)]
        step = Signal.like(j)
        m.d.comb += step.eq(Mux(p1.valid, 0, j))
        is_first, is_last = Mux(p1.valid, tile.first, first), Mux(p1.valid, tile.last, last)
        later = Array([Const(0, group * bits)] + [rows_of(held, g, group) for g in range(1, steps)])
        own = group_layout(Mux(p1.valid, rows_of(self.sums, 0), later[j]))
        running = group_layout(running_read.data)
        total = Signal(group_layout)
        for i in range(group):
            m.d.comb += total[i].eq(Mux(is_first, own[i], running[i] + own[i]))
        shift = per_vector.bit_length() - 1  # a power of two: the count shifted
        base = p1_n << shift
        # O reads the vector's first group; each step reads the next one
        m.d.comb += [
            running_read.addr.eq(Mux(self.tag.valid, n << shift, base + step + 1)),
            running_write.addr.eq(base + step),
            running_write.data.eq(total),
            running_write.en.eq((p1.valid | stepping) & ~is_last),
        ]
        with m.If((p1.valid | stepping) & is_last):
            m.d.sync += out_total.eq(total)
        return stepping
