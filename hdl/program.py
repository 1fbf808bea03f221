"""The tile program: a network of packed layers compiled for one R x C array.

This is the Python half of the generator. It checks that the layers fit the hardware, cuts every
layer into tiles, lays the activations out in the lane memory (:mod:`colcomb.hdl.layout`) and
computes the contents of the ROMs the sequencer reads:

- ``cells``: :attr:`Program.load_steps` words per tile, each the ``cols`` cell words of
  :attr:`Program.load_rows` of its rows; a tile's words are stored bottom rows first, because
  they are shifted into the array from row 0 (after the last shift the first word sits in the
  last rows; :meth:`Program.tile_cells` reads them back).
- ``tiles``: one word per tile, the descriptor of :attr:`Program.tile_layout` (accumulate or start
  fresh, requantize and write, where its lanes are read and its outputs written, layer ends).
- ``requant``: :attr:`Program.requant_steps` words per row tile, bias, multiplier and shift of
  :attr:`Program.requant_lanes` of its rows each (:attr:`Program.requant_layout`): one word of
  all ``rows`` rows on the bit-parallel array; on the serial array a vector's rows share fewer
  requantizer lanes over its ``data_bits`` cycles.
- ``writes``: the lane memory words each row tile writes per vector (address of vector 0 and the
  slot mask, :attr:`Program.write_layout`); a row tile's words are consecutive.
- ``inputs``: for each input word (layer 0's input channel), the slots it is written to.

Tiling: for each layer, each row block, each row tile of that block (rows reordered so the
outputs land in few lane memory words, :func:`colcomb.hdl.layout.pack_rows`), each column tile of
``cols`` packed columns of that block, in that order. A block without packed columns still gets
one all-zero column tile, so its rows are written (as requantized bias).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from colcomb.core.errors import ColcombError
from colcomb.hdl.config import CELL_MEMORIES, CELLS, PASS_VECTORS, REQUANT_STAGES, ConfigError, HardwareConfig
from colcomb.hdl.flash_loader import FLASH_OFFSET, flash_image, load_cycles, word_bytes
from colcomb.hdl.framing import beat_words
from colcomb.hdl.layout import LaneGeometry, RowTile, Slot, pack_rows, place_lanes
from colcomb.hdl.network import Stage
from colcomb.hdl.spram import SPRAM_BLOCKS, SPRAM_DEPTH, SPRAM_WIDTH, spram_blocks
from colcomb.packer.golden import accumulator_bound
from colcomb.packer.packed import (
    MULTIPLIER_BITS,
    PackedLayer,
    dense_equivalent,
    select_bits,
    signed_range,
)
from colcomb.packer.rom import cell_words

__all__ = [
    "CELLS",
    "CELL_MEMORIES",
    "REQUANT_STAGES",
    "Program",
    "bits_for",
    "cell_layout",
    "dense_equivalent",
    "lane_layout",
    "pack_struct",
]


def _row_tile(channels: list[int], rows: int) -> RowTile:
    """A row tile computing ``channels`` in its first rows, writing no repeated words."""
    return RowTile(tuple(channels + [None] * (rows - len(channels))), ())


#: ROM reads (one cycle each) before an image network's tile fetches its first window: the
#: descriptor and its register, the patch ROM's origin and its sum with the map's base
WINDOW_READS = 4


def bits_for(value: int) -> int:
    """Bits of an unsigned field that holds 0..value (at least one)."""
    return max(1, int(value).bit_length())


def cell_layout(weight_bits: int, alpha: int, onehot: bool = False) -> data.StructLayout:
    """A cell word: the signed weight in the low bits, the select above it (the words
    :func:`colcomb.packer.rom.cell_words` encodes), or with ``onehot`` one select bit per lane
    (an AND-OR multiplexer, cheaper than a mux tree in iCE40 LUT4s); the dense cell (alpha = 1)
    has no select field."""
    if alpha == 1:
        return data.StructLayout({"weight": signed(weight_bits)})
    return data.StructLayout({"weight": signed(weight_bits),
                              "select": unsigned(alpha if onehot else select_bits(alpha))})


def lane_layout(data_bits: int, alpha: int) -> data.ArrayLayout:
    """The ``alpha`` input lanes one array column carries."""
    return data.ArrayLayout(signed(data_bits), alpha)


def _struct_fields(layout: data.StructLayout) -> tuple[tuple[str, int, int], ...]:
    """(name, bit mask, offset) of each field, kept on the layout object: reading them from the
    layout costs more than the packing (a compile packs a million words)."""
    fields = layout.__dict__.get("_colcomb_fields")
    if fields is None:
        fields = tuple((name, (1 << fld.width) - 1, fld.offset) for name, fld in layout)
        layout.__dict__["_colcomb_fields"] = fields
    return fields


def pack_struct(layout: data.StructLayout, values: dict) -> int:
    """The integer of a struct word (two's complement fields truncated to their widths)."""
    word = 0
    for name, mask, offset in _struct_fields(layout):
        word |= (int(values.get(name, 0)) & mask) << offset
    return word


def pack_array(values: Sequence[int], width: int) -> int:
    """Concatenate ``values`` (element 0 in the low bits), each truncated to ``width`` bits."""
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (i * width)
    return word


@dataclass(frozen=True)
class Tile:
    """One weight load of the array: row tile ``channels`` (the output channel of each array row,
    None for an idle row) of one row block, packed columns [col_start, col_start + cols) of that
    block."""

    layer: int
    block: int
    channels: tuple[int | None, ...]
    col_start: int
    first: bool  # first column tile of its row tile: the accumulator starts fresh
    last: bool  # last column tile: requantize and write the outputs
    rq: int  # the row tile's first word in the requant ROM
    base: int  # lane memory address of the tile's lanes for vector 0
    wr_first: int  # index of the row tile's first word in the writes ROM
    wr_count: int  # words the row tile writes per vector
    layer_end: bool = False
    net_end: bool = False
    spacing: int = 1  # cycles between two vectors entering (times cycles_per_vector)

    @property
    def count(self) -> int:
        """Rows that compute a channel."""
        return sum(ch is not None for ch in self.channels)


def default_parts(cell: str, lanes: int, data_bits: int, cols: int | None = None) -> int:
    """Lane memory words per vector: 1 on the bit-parallel array (a vector per cycle). On the
    serial array a word per column (*column words*, read one column a cycle, as the skew wants
    them: :class:`~colcomb.hdl.lane_fetch.LaneFetch`) where ``cols`` is a power of two no larger
    than ``data_bits``; otherwise (or without ``cols``) the largest power of two below
    ``data_bits`` (the words are read while the previous vector streams, one per cycle), but no
    more than there are lanes. :meth:`Program.compile` falls back from column words to the
    latter where they would cut a network into more tiles."""
    if cell != "serial":
        return 1
    if cols is not None and not cols & (cols - 1) and cols <= data_bits:
        return cols
    parts = 1
    while parts * 2 < data_bits and parts * 2 <= lanes:
        parts *= 2
    return parts


@dataclass
class Program:
    """Layers compiled for an array of ``rows`` x ``cols`` cells; build with :meth:`compile`."""

    layers: list[PackedLayer]
    #: the hardware config it was compiled for (array, cell, batch, beat, passes, memories, ...)
    config: HardwareConfig
    alpha: int
    weight_bits: int
    data_bits: int
    acc_bits: int
    #: cells (row-major) whose multiplier is DSP-mappable; the rest use logic (None: all)
    dsp_cells: int | None = None
    #: lane memory words per vector (a power of two; :func:`default_parts`)
    parts: int = 1
    #: the cells' select is one bit per lane (:func:`cell_layout`), not a lane index
    onehot: bool = False
    tiles: list[Tile] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    descriptors: list[int] = field(default_factory=list)
    requant: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    #: per input word: the (address of vector 0, slot) words of the input memory it is written to
    input_slots: list[list[Slot]] = field(default_factory=list)
    #: image networks whose first conv layer combines kernel positions of one kernel row: the
    #: input memory's words are *row runs* of this many pixels (the kernel width; 0: none), see
    #: :meth:`row_runs`
    input_run: int = 0
    #: words of one batch's region in the input, lane and output memories (each holds two:
    #: the input and output memories one per batch in flight, the lane memory one per layer
    #: parity)
    input_region: int = 0
    lane_region: int = 0
    output_region: int = 0
    #: an image network run on chip (:mod:`colcomb.hdl.network`): one stage per layer; None for a
    #: chain of matrices (every layer's vectors are the batch's inputs)
    stages: list[Stage] | None = None
    #: image networks: per layer, the constants of :attr:`layer_constants`
    layer_info: list[dict] = field(default_factory=list)
    #: image networks: the window origin (address in the padded input map) of every computed
    #: position, layer after layer (a linear layer has one position, origin 0)
    patches: list[int] = field(default_factory=list)
    #: image networks: per tile, the ``cols`` column words' offsets from a vector's address
    column_offsets: list[int] = field(default_factory=list)
    #: image networks: per row tile and output position, the first word of its writes
    positions: list[int] = field(default_factory=list)

    # -- the config's choices ------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return self.config.rows

    @property
    def cols(self) -> int:
        return self.config.cols

    @property
    def batch(self) -> int:
        return self.config.batch

    @property
    def cell(self) -> str:
        """The array's cell kind, one of :data:`CELLS`."""
        return self.config.cell

    @property
    def pass_vectors(self) -> int:
        """Image networks: the most vectors of one pass (:data:`PASS_VECTORS` unless set)."""
        return self.config.passes

    @property
    def beat(self) -> int:
        """Activation words per stream beat, in and out (:attr:`input_beats`, :mod:`colcomb.hdl.top`)."""
        return self.config.beat

    @property
    def shadow(self) -> bool:
        """A chain of matrices with shadow weights: each tile's cells load while the tile before
        streams (:class:`~colcomb.hdl.array.SystolicArray` ``shadow``)."""
        return self.config.shadow

    @property
    def cell_memory(self) -> str:
        """Where the cell words live, one of :data:`CELL_MEMORIES`."""
        return self.config.cell_memory

    @property
    def requant_stages(self) -> int:
        """The requantizer's pipeline depth (:class:`~colcomb.hdl.requant.Requantizer` ``stages``)."""
        return self.config.requant_stages

    # -- derived sizes ------------------------------------------------------------------------
    @property
    def pass_depth(self) -> int:
        """Vectors a tile streams at most (the accumulator memory's depth): the batch, or in an
        image network the longest pass (:attr:`pass_vectors`), whichever is more."""
        return max([self.batch] + [info["chunk"] for info in self.layer_info])

    @property
    def lane_count(self) -> int:
        return self.cols * self.alpha

    @property
    def banked(self) -> bool:
        """An image network on the bit-parallel array: the lane and input memories are copied once
        per column (*banks*, every write to all), so the ``cols`` words of a vector's windows
        are read in one cycle, one from each bank. The array registers those words once more
        (``registered_lanes``): no path from a block RAM through a lane multiplexer into a
        multiplier."""
        return self.stages is not None and self.cell == "parallel"

    @property
    def input_banks(self) -> int:
        """Banks of the input memory: one per column that layer 0 reads (its widest tile's packed
        columns; a conv layer combined per kernel row reads few), the columns beyond reading
        zeros from it, so a wide array keeps few copies of the input; every column without
        banks (1)."""
        if not self.banked:
            return 1
        blocks = self.layers[0].blocks
        return max([1] + [min(self.cols, blocks[t.block].packed_columns - t.col_start)
                          for t in self.tiles if t.layer == 0])

    @property
    def skewed_loads(self) -> bool:
        """Each array column loads its weights as late as its lanes arrive (column ``c``: ``c``
        cycles after column 0), so a tile's PREP follows its last vector at once and only a
        layer's last tile of a pass waits out the DRAIN: on the banked array, whose tiles are
        short next to the drain (:class:`colcomb.hdl.array.SystolicArray` ``skewed_loads``)."""
        return self.banked

    @property
    def load_rows(self) -> int:
        """Array rows whose cells load per cycle: on the banked array as many as keep the load
        within the window's :data:`WINDOW_READS` (8 rows: 2 a cycle), so that a tile's PREP is
        no longer than its first window needs; otherwise one. The cell ROM's words are that
        many rows wide (the same bits in fewer, wider words)."""
        return -(-self.rows // WINDOW_READS) if self.banked else 1

    @property
    def cell_bits(self) -> int:
        """Bits of a cell ROM word: :attr:`load_rows` rows of ``cols`` cells."""
        return data.ArrayLayout(cell_layout(self.weight_bits, self.alpha, self.onehot),
                                self.load_rows * self.cols).size

    @property
    def load_cycles(self) -> int:
        """Cycles from reset until the engine can start: the flash loader's with the cell words
        in SPRAM (:func:`colcomb.hdl.flash_loader.load_cycles`), else none."""
        if self.cell_memory != "spram":
            return 0
        return load_cycles(len(self.cells), self.cell_bits)

    @property
    def flash_image(self) -> bytes:
        """The cell words as the flash holds them with the cells in SPRAM
        (:func:`colcomb.hdl.flash_loader.flash_image`)."""
        return flash_image(self.cells, self.cell_bits)

    def check_cell_memory(self) -> None:
        """Refuse cell words the SPRAM cannot hold: at most :data:`SPRAM_BLOCKS` blocks side by
        side (64 bits a word) and :data:`SPRAM_DEPTH` words."""
        if self.cell_memory != "spram":
            return
        bits, words = self.cell_bits, len(self.cells)
        if spram_blocks(bits) > SPRAM_BLOCKS:
            per_cell = bits // (self.load_rows * self.cols)
            most = max(1, SPRAM_BLOCKS * SPRAM_WIDTH // per_cell // self.load_rows)
            raise ConfigError("cell_memory", f"a cell word of this array is {bits} bits ("
                               f"{self.load_rows * self.cols} cells of {per_cell}), which needs {spram_blocks(bits)} "
                               f"SPRAM blocks side by side; the "
                               f"iCE40UP5K has {SPRAM_BLOCKS} ({SPRAM_BLOCKS * SPRAM_WIDTH} bits): use at most "
                               f"{most} columns or keep the cells in block RAM (--cell-memory rom)")
        if words > SPRAM_DEPTH:
            raise ConfigError("cell_memory", f"the network has {words} cell words, more than an SPRAM's "
                               f"{SPRAM_DEPTH}: use a larger array or keep the cells in block RAM (--cell-memory rom)")

    @property
    def load_steps(self) -> int:
        """Cell ROM words (load cycles) per tile: ``ceil(rows / load_rows)``."""
        return -(-self.rows // self.load_rows)

    def tile_cells(self, index: int) -> list[int]:
        """Tile ``index``'s cell ROM content as one word per array row, row 0 first: the row
        words :attr:`cells` stores :attr:`load_rows` to a word, bottom rows first."""
        k, n = self.load_rows, self.load_steps
        width = data.ArrayLayout(cell_layout(self.weight_bits, self.alpha, self.onehot), self.cols).size
        words = self.cells[index * n: (index + 1) * n]
        return [words[n - 1 - r // k] >> (r % k * width) & ((1 << width) - 1) for r in range(self.rows)]

    @property
    def column_words(self) -> bool:
        """The serial array reads a lane memory word per column, staggered like the skew
        (:func:`default_parts`)."""
        return self.cell == "serial" and self.parts == self.cols <= self.data_bits

    @property
    def geometry(self) -> LaneGeometry:
        return LaneGeometry(self.lane_count, self.parts, self.batch)

    @property
    def lanes_per_part(self) -> int:
        """Activation words per lane memory word."""
        return self.geometry.lanes_per_part

    @property
    def memory_depths(self) -> dict[str, int]:
        """Words of the three activation memories (:mod:`colcomb.hdl.layout`): ``input`` (layer
        0's lanes, written by the host), ``lanes`` (the later layers' lanes) and ``output`` (the
        network's outputs, read by the host), two regions each."""
        lanes = self.lane_region if self.stages else 2 * self.lane_region
        return {"input": max(2, 2 * self.input_region), "lanes": max(2, lanes),
                "output": max(2, 2 * self.output_region)}

    @property
    def address_bits(self) -> int:
        return bits_for(max(self.memory_depths.values()) - 1)

    @property
    def in_words(self) -> int:
        """Input words per vector (per image: channels x height x width of an image network)."""
        if self.stages:
            c, h, w = self.stages[0].in_shape
            return c * h * w
        return self.layers[0].cols

    @property
    def out_words(self) -> int:
        return self.layers[-1].rows

    @property
    def input_slots_per_word(self) -> int:
        """Slots of an input memory word: all ``lanes_per_part`` of a lane memory word, or in an
        image network only the slots layer 0's inputs use (a one-channel image: one slot), the
        rest of the lanes reading zero."""
        if not self.stages:
            return self.lanes_per_part
        if self.input_run:
            return self.input_run
        return 1 + max([0] + [s.slot for slots in self.input_slots for s in slots])

    @property
    def input_cycles(self) -> int:
        """Cycles the input port takes per vector: one per lane slot each word is written to
        (at least one per word); with wider beats, the cycles of every beat's schedule
        (:attr:`input_beats`)."""
        if self.beat > 1:
            return sum(len(cycles) for cycles in self.input_beats)
        return sum(max(1, len(slots)) for slots in self.input_slots)

    # -- wider stream beats -------------------------------------------------------------------
    def check_beat(self) -> None:
        """Refuse a ``beat`` the hardware cannot carry: it must be a power of two that divides the
        lanes of a memory word (a beat of outputs is read from one output memory word), and the
        banked array (its input copies) and row runs (their shift register) take one word a
        beat."""
        k, lpp = self.beat, self.lanes_per_part
        if k == 1:
            return
        if lpp % k:
            raise ConfigError("beat", f"a beat of {k} words must divide the {lpp} lanes of a memory word on this "
                               f"array (its outputs are read a memory word at a time); use --beat "
                               f"{max(d for d in (1, 2, 4, 8, 16, 32, 64) if lpp % d == 0 and d <= lpp)} or less")
        if self.banked:
            raise ConfigError("beat", f"a beat of {k} words: the bit-parallel array runs a CNN with a copy of "
                               f"the input memory per column, which takes one word a cycle; use --beat 1 or --cell "
                               f"serial")
        if self.input_run:
            raise ConfigError("beat", f"a beat of {k} words: conv1 combined per kernel row reads row runs, "
                               f"which the input port builds one pixel a cycle; use --beat 1")

    @property
    def in_beats(self) -> int:
        """Input beats per vector: its words ``beat`` at a time, the last beat padded."""
        return beat_words(self.in_words, self.beat)

    @property
    def out_beats(self) -> int:
        """Output beats per vector (the sender's cycles per vector)."""
        return beat_words(self.out_words, self.beat)

    @property
    def beat_banks(self) -> int:
        """Memories the input memory is split into for wider beats: slot ``s`` of a word lives in
        bank ``s % beat_banks``, so that a cycle writes one address in each bank."""
        return max(1, min(self.beat, self.input_slots_per_word))

    @property
    def beat_bank_slots(self) -> int:
        """Slots of one bank's word."""
        return -(-self.input_slots_per_word // self.beat_banks)

    @cached_property
    def input_beats(self) -> list[list[dict[int, tuple[int, dict[int, int]]]]]:
        """The input port's schedule, per beat of a vector: its cycles, each
        ``{bank: (address of vector 0, {slot in the bank: word of the beat})}``. Every beat word's
        slots (:attr:`input_slots`) are written once; a cycle writes one address per bank, so
        words whose slots share a bank at different addresses take further cycles (assigned
        first come, first served); a beat that writes nothing still takes a cycle."""
        nb, k = self.beat_banks, self.beat
        schedule = []
        for b in range(self.in_beats):
            pending = [(i, s.address, s.slot) for i in range(k) if b * k + i < self.in_words
                       for s in self.input_slots[b * k + i]]
            cycles = []
            while pending or not cycles:
                cycle: dict[int, tuple[int, dict[int, int]]] = {}
                left = []
                for i, address, slot in pending:
                    bank, pos = slot % nb, slot // nb
                    if bank not in cycle:
                        cycle[bank] = (address, {pos: i})
                    elif cycle[bank][0] == address and pos not in cycle[bank][1]:
                        cycle[bank][1][pos] = i
                    else:
                        left.append((i, address, slot))
                cycles.append(cycle)
                pending = left
            schedule.append(cycles)
        return schedule

    @property
    def beat_layout(self) -> data.StructLayout:
        """A beat schedule ROM word (one cycle of :attr:`input_beats`): per bank the address and
        per bank slot whether it is written and from which word of the beat; ``last``: the beat's
        last cycle."""
        slot = data.StructLayout({"valid": 1, "word": unsigned(bits_for(self.beat - 1))})
        bank = data.StructLayout({"address": unsigned(self.address_bits),
                                  "slots": data.ArrayLayout(slot, self.beat_bank_slots)})
        return data.StructLayout({"last": 1, "banks": data.ArrayLayout(bank, self.beat_banks)})

    @property
    def beat_map(self) -> list[int]:
        """The beat schedule ROM: :attr:`input_beats` flattened, a vector's beats in order."""
        layout = self.beat_layout
        bank_layout = layout["banks"].shape.elem_shape
        slot_layout = bank_layout["slots"].shape.elem_shape
        words = []
        for cycles in self.input_beats:
            for n, cycle in enumerate(cycles):
                banks = []
                for bank in range(self.beat_banks):
                    address, slots = cycle.get(bank, (0, {}))
                    packed = [pack_struct(slot_layout, {"valid": int(pos in slots), "word": slots.get(pos, 0)})
                              for pos in range(self.beat_bank_slots)]
                    banks.append(pack_struct(bank_layout, {
                        "address": address, "slots": pack_array(packed, slot_layout.size)}))
                words.append(pack_struct(layout, {"last": int(n == len(cycles) - 1),
                                                  "banks": pack_array(banks, bank_layout.size)}))
        return words

    @property
    def input_fanout(self) -> int:
        """Most slots any input word is written to (one per row block of layer 0 reading it)."""
        return max([1] + [len(s) for s in self.input_slots])

    @property
    def tile_layout(self) -> data.StructLayout:
        fields = {
            "first": 1,
            "last": 1,
            "layer_end": 1,
            "net_end": 1,
            "rq": unsigned(bits_for(max(len(self.requant) - 1, 1))),
            "base": unsigned(self.address_bits),
            "wr_first": unsigned(bits_for(max(len(self.writes) - 1, 1))),
            "wr_count": unsigned(bits_for(self.max_writes)),
            "layer": unsigned(bits_for(len(self.layers) - 1)),
        }
        if self.max_spacing > 1:  # only a design with spaced tiles stores the spacing - 1
            fields["spacing"] = unsigned(bits_for(self.max_spacing - 1))
        return data.StructLayout(fields)

    @property
    def max_spacing(self) -> int:
        """The widest spacing of any tile's vectors (:attr:`Tile.spacing`)."""
        return max([1] + [t.spacing for t in self.tiles])

    @property
    def write_layout(self) -> data.StructLayout:
        """A writes ROM word: the lane memory address for vector 0 and the slot mask. An image
        network's words (:meth:`_build_images`) are per output position (address for image 0),
        ``last`` on a position's last word, and ``single``: every slot gets the output of array
        row ``row`` (a flattened feature map's value goes to its own slot), not slot ``s`` the
        output of row ``s % rows``."""
        fields = {"address": unsigned(self.address_bits), "mask": unsigned(self.lanes_per_part)}
        if self.stages:
            fields.update({"single": 1, "row": unsigned(bits_for(self.rows - 1)), "last": 1})
        return data.StructLayout(fields)

    @property
    def input_layout(self) -> data.ArrayLayout:
        """An input map word: for each of :attr:`input_fanout` slots ``valid``, the address for
        vector 0 and the slot."""
        return data.ArrayLayout(
            data.StructLayout({"valid": 1, "address": unsigned(self.address_bits),
                               "slot": unsigned(bits_for(self.lanes_per_part - 1))}),
            self.input_fanout)

    @cached_property
    def input_map(self) -> list[int]:
        """The input map ROM: per input word, its slots packed in :attr:`input_layout`."""
        elem = self.input_layout.elem_shape
        return [pack_array([pack_struct(elem, {"valid": 1, "address": s.address, "slot": s.slot})
                            for s in slots], elem.size)
                for slots in self.input_slots]

    @property
    def max_writes(self) -> int:
        """Lane memory words a row tile may write per vector: one per cycle of a vector."""
        return self.cycles_per_vector

    @property
    def max_shift(self) -> int:
        """Largest requantization shift of any row of any layer (sizes the shift fields)."""
        return max(int(layer.requant.shift.max(initial=0)) for layer in self.layers)

    @property
    def requant_steps(self) -> int:
        """Cycles the requantizer spends on a vector
        (:class:`~colcomb.hdl.requant.SharedRequantizer`): 1 on the bit-parallel array (a vector
        per cycle, a requantizer lane per row); on the serial array, where a vector comes every
        ``data_bits`` cycles, as many as leave ``ceil(rows / data_bits)`` lanes (8 rows: one
        lane, 8 steps)."""
        if self.cell != "serial":
            return 1
        return -(-self.rows // -(-self.rows // self.data_bits))

    @property
    def requant_lanes(self) -> int:
        """Rows requantized per cycle (the requantizer's multipliers)."""
        return -(-self.rows // self.requant_steps)

    @property
    def requant_layout(self) -> data.ArrayLayout:
        """A requant ROM word: for each of :attr:`requant_lanes` rows its bias, multiplier and
        shift (the lowest row in the low bits)."""
        return data.ArrayLayout(
            data.StructLayout({"bias": signed(self.acc_bits), "mult": unsigned(MULTIPLIER_BITS),
                               "shift": unsigned(bits_for(self.max_shift))}),
            self.requant_lanes,
        )

    @property
    def cycles_per_vector(self) -> int:
        """Cycles a vector streams through the array: 1, or ``data_bits`` for the serial cell."""
        return self.data_bits if self.cell == "serial" else 1

    def dense_macs(self) -> int:
        """Multiply-accumulates of one vector through the dense layers (sum of rows x cols; of
        an image network, one image: each layer's times its output positions)."""
        if self.stages:
            return sum(layer.rows * layer.cols * st.out_size[0] * st.out_size[1]
                       for layer, st in zip(self.layers, self.stages, strict=True))
        return sum(layer.rows * layer.cols for layer in self.layers)

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "cols": self.cols,
            "alpha": self.alpha,
            "weight_bits": self.weight_bits,
            "data_bits": self.data_bits,
            "acc_bits": self.acc_bits,
            "batch": self.batch,
            "dsp_cells": 0 if self.cell == "serial" else (self.rows * self.cols if self.dsp_cells is None
                                                          else self.dsp_cells),
            "cell": self.cell,
            "select": "one-hot" if self.onehot else "binary",
            "cycles_per_vector": self.cycles_per_vector,
            "activation_memories": {**self.memory_depths, "bits_per_word": self.lanes_per_part * self.data_bits,
                                    "parts": self.parts},
            "in_words": self.in_words,
            "out_words": self.out_words,
            "beat": self.beat,
            "shadow": self.shadow,
            "cell_memory": self.cell_memory,
            "requant_stages": self.requant_stages,
            **({"cell_words": len(self.cells), "cell_bits": self.cell_bits,
                "flash_image_bytes": len(self.cells) * word_bytes(self.cell_bits),
                "flash_offset": FLASH_OFFSET, "load_cycles": self.load_cycles}
               if self.cell_memory == "spram" else {}),
            "tiles": len(self.tiles),
            "row_tiles": len(self.requant) // self.requant_steps,
            "layers": [
                {
                    "name": layer.name,
                    "shape": list(layer.shape),
                    "alpha": layer.alpha,
                    "packed_columns": layer.packed_columns,
                    "tiles": sum(1 for t in self.tiles if t.layer == i),
                    "row_tiles": sum(1 for t in self.tiles if t.layer == i and t.last),
                }
                for i, layer in enumerate(self.layers)
            ],
            "dense_macs_per_vector": self.dense_macs(),
            **({"image_network": [
                {"layer": st.layer, "kind": st.kind, "in_shape": list(st.in_shape), "kernel": list(st.kernel),
                 "stride": list(st.stride), "padding": list(st.padding), "pool": st.pool,
                 "positions_per_image": st.positions} for st in self.stages],
                "pass_vectors": self.pass_vectors, "load_rows": self.load_rows,
                "input_run": self.input_run, "input_banks": self.input_banks,
                "input_bits_per_word": self.input_slots_per_word * self.data_bits} if self.stages else {}),
        }

    # -- compilation --------------------------------------------------------------------------
    @classmethod
    def compile(
        cls,
        layers: Sequence[PackedLayer],
        config: HardwareConfig,
        *,
        weight_bits: int | None = None,
        data_bits: int | None = None,
        acc_bits: int | None = None,
        dsp_cells: int | None = None,
        parts: int | None = None,
        onehot: bool = False,
        stages: Sequence[Stage] | None = None,
    ) -> Program:
        """Check ``layers`` against the array of ``config`` and compute the ROM images.

        Widths default to the widest any layer needs (the accumulator: its worst case,
        :func:`~colcomb.packer.golden.accumulator_bound`). Raises :class:`ColcombError` for layers
        that do not chain, a layer wider than the hardware widths, or a layer whose worst-case
        accumulator could overflow ``acc_bits``; errors name the config's field (``rows``,
        ``beat``, ...), which the CLI maps to its flag.

        With ``stages`` (:func:`colcomb.hdl.network.stages_of`, one per layer) the layers are an
        image network the engine runs from image to outputs (:meth:`_build_images`): on the
        serial array with column words, its conv layers packed per feature map or not combined,
        each layer in passes of at most ``config.pass_vectors`` vectors (default
        :data:`PASS_VECTORS`; the accumulator memory is that deep).

        ``config.beat``: activation words per stream beat (:meth:`check_beat`); ``shadow``: a
        chain's next tile loads into shadow weights while a tile streams (:attr:`shadow`);
        ``cell_memory``: where the cell words live (:data:`CELL_MEMORIES`,
        :meth:`check_cell_memory`); ``requant_stages``: the requantizer's pipeline depth, 2 or 3
        (a register after its shifter: a cycle more per layer flush, a shorter critical path).
        ``dsp_cells`` (cells whose multiplier is DSP-mapped), ``parts`` (lane memory words per
        vector) and ``onehot`` (the select's encoding) are decided by synthesis and the compiler.
        """
        if not isinstance(config, HardwareConfig):
            raise ColcombError(f"config must be a HardwareConfig, not {config!r}")
        rows, cols, cell, beat = config.rows, config.cols, config.cell, config.beat
        if dsp_cells is not None and (not isinstance(dsp_cells, (int, np.integer)) or isinstance(dsp_cells, bool)
                                      or dsp_cells < 0):
            raise ColcombError(f"dsp_cells must be a non-negative integer or None, not {dsp_cells!r}")
        if config.shadow and stages is not None:
            raise ConfigError("shadow", "shadow weights are for a chain of matrices: a CNN run whole on chip loads "
                              "its tiles behind each pass's vectors already (the banked array) or per pass; leave "
                              "shadow out or pick the layers with --layer")
        if stages is None and config.pass_vectors is not None and config.pass_vectors != PASS_VECTORS:
            raise ConfigError("pass_vectors", f"passes of {config.pass_vectors} vectors are for a CNN run whole "
                              "on chip; a chain of matrices runs each tile over its batch: leave the pass length out")
        layers = list(layers)
        if not layers:
            raise ColcombError("the network has no layers; pack at least one layer")
        for layer in layers:
            layer.validate()
        if stages is not None:
            stages = list(stages)
            if [st.layer for st in stages] != [layer.name for layer in layers]:
                raise ColcombError(f"the stages {[st.layer for st in stages]} do not name the layers "
                                   f"{[layer.name for layer in layers]} in order")
            if stages[-1].conv:
                raise ColcombError(f"the network ends with conv layer {stages[-1].layer!r}; the engine's outputs "
                                   f"are a linear layer's (flatten and add one)")
            if cols & (cols - 1) or (cell == "serial" and cols > max(la.data_bits for la in layers)):
                raise ConfigError("cols", f"on-chip convolution reads a word per array column: a power-of-two column "
                                   f"count (on the serial array no larger than the data width), not {cols}; use "
                                   f"--cols 2, 4 or 8")
            if parts is not None and parts != cols:
                raise ColcombError(f"on-chip convolution reads a word per column: parts must be {cols}, not {parts!r}")
            parts = int(cols)
        for prev, nxt in itertools.pairwise(layers if stages is None else []):
            if nxt.cols != prev.rows:
                raise ColcombError(
                    f"layer {nxt.name!r} takes {nxt.cols} inputs but {prev.name!r} gives "
                    f"{prev.rows} outputs; the hardware runs only layers whose shapes chain: pick such a "
                    f"chain (or one layer) with --layer NAME"
                )
        wb = max(layer.bits for layer in layers) if weight_bits is None else weight_bits
        db = max(layer.data_bits for layer in layers) if data_bits is None else data_bits
        # the accumulator only as wide as the worst case of any layer needs (the manifest's
        # acc_bits is an upper limit): narrower sums shrink the accumulator memory, the pipeline
        # registers and the requantizer's multipliers
        acc_need = max(2, max(accumulator_bound(layer).bit_length() + 1 for layer in layers))
        ab = acc_need if acc_bits is None else acc_bits
        for label, value, need in (
            ("weight_bits", wb, max(layer.bits for layer in layers)),
            ("data_bits", db, max(layer.data_bits for layer in layers)),
            ("acc_bits", ab, acc_need),
        ):
            if not isinstance(value, int) or value < need:
                raise ColcombError(f"{label} {value!r} is narrower than the layers need ({need})")
        for layer in layers:
            bound = accumulator_bound(layer)
            hi = signed_range(layer.acc_bits)[1]
            if bound > hi:
                raise ColcombError(
                    f"layer {layer.name!r}: the accumulator could reach {bound} (|weights| x "
                    f"largest input + |bias|), beyond the {layer.acc_bits}-bit accumulator's "
                    f"{hi}; widen acc_bits or use fewer weight/data bits"
                )
        alpha = max(layer.alpha for layer in layers)
        lanes = int(cols) * alpha
        choose = parts is None
        if parts is None:
            parts = default_parts(cell, lanes, db, int(cols))
        if (not isinstance(parts, (int, np.integer)) or isinstance(parts, bool) or parts < 1
                or parts & (parts - 1)):
            raise ColcombError(f"parts must be a power of two, not {parts!r}")
        per_vector = db if cell == "serial" else 1
        column_words = cell == "serial" and parts == cols <= per_vector
        banked = stages is not None and cell == "parallel"  # a memory bank per column
        if parts > 1 and parts >= per_vector and not column_words and not banked:
            raise ColcombError(f"parts {parts} must be below the {per_vector} cycles a vector streams "
                               f"(the words of the next vector are read meanwhile)"
                               + (f", or equal to the {cols} columns" if cell == "serial" else "")
                               + "; use fewer parts")
        if parts > lanes:
            raise ColcombError(f"parts {parts} exceeds the array's {lanes} lanes; use fewer parts")
        if onehot and cell != "parallel":
            raise ColcombError("a one-hot select is for the bit-parallel cell; the serial cell picks one bit")
        def build(words: int) -> Program:
            prog = cls(
                layers=layers,
                config=config,
                alpha=alpha,
                weight_bits=wb,
                data_bits=db,
                acc_bits=ab,
                dsp_cells=None if dsp_cells is None else min(int(dsp_cells), rows * cols),
                parts=int(words),
                onehot=bool(onehot),
                stages=stages,
            )
            if stages is None:
                prog._build()
            else:
                prog._build_images()
            return prog

        prog = build(parts)
        if choose and prog.column_words and len(layers) > 1 and stages is None:
            # a column word holds fewer lanes than a gathered one (a quarter on 8 x 8 at 8-bit
            # data), so a row tile's outputs may spread over more words and the later layers
            # over more row tiles: keep column words (fewer flip-flops and LUTs) only if they
            # cost no tiles
            gathered = build(default_parts(cell, lanes, db))
            if len(gathered.tiles) < len(prog.tiles):
                prog = gathered
        words = prog.parts
        while choose and prog.lanes_per_part % beat and stages is None and words > 1:
            # a wider beat is read from one output memory word: fewer, wider words may carry it
            words //= 2
            prog = build(words)
        prog.check_beat()
        prog.check_cell_memory()
        return prog

    # -- the layout and the ROM images --------------------------------------------------------
    def _input_tiles(self, layer: PackedLayer) -> list[tuple[int, int, list[list[int]]]]:
        """Layer ``layer``'s input tiles in program order: (block, first packed column, lane slot
        of every member of each column) with the members spread over the slots
        (:func:`place_lanes`)."""
        C = self.cols
        out = []
        for bi, block in enumerate(layer.blocks):
            g = block.packed_columns
            for ct in range(max(1, -(-g // C))):
                sizes = [len(block.groups[ct * C + c]) for c in range(max(0, min(C, g - ct * C)))]
                out.append((bi, ct * C, place_lanes(sizes, self.alpha, self.lanes_per_part, self.rows)))
        return out

    def region_of(self, k: int) -> int:
        """First address of layer ``k``'s input (``len(layers)``: the network's output) in its
        memory: layer 0 and the output at 0 of their own memories (the batch's region is added
        at run time), the later layers alternating between the lane memory's two regions (in an
        image network each its own region: a feature map's zero border is never written)."""
        if k == 0 or k == len(self.layers):
            return 0
        if self.stages:
            return sum(info["region_words"] for info in self.layer_info[1:k])
        return ((k - 1) % 2) * self.lane_region

    def _needs(self, k: int, inputs: list) -> dict[int, list[Slot]]:
        """Where each input channel of layer ``k`` (``len(layers)``: the network's output, in the
        identity layout) must be written, as slots of vector 0."""
        geo = self.geometry
        region = self.region_of(k)
        needs: dict[int, list[Slot]] = {}
        if k == len(self.layers):
            for w in range(self.out_words):
                tile, lane = divmod(w, geo.lanes_per_part * geo.parts)
                needs[w] = [Slot(*geo.address(region, tile, lane))]
            return needs
        layer = self.layers[k]
        for j, (bi, col0, placement) in enumerate(inputs[k]):
            groups = layer.blocks[bi].groups
            for c, slots in enumerate(placement):
                for member, lane in zip(groups[col0 + c], slots, strict=True):
                    needs.setdefault(int(member), []).append(
                        Slot(*geo.address(region, j, c * self.alpha + lane)))
        return needs

    def _build(self) -> None:
        R, C = self.rows, self.cols
        geo = self.geometry
        inputs = [self._input_tiles(layer) for layer in self.layers]
        out_tiles = -(-self.out_words // (geo.lanes_per_part * geo.parts))
        self.input_region = len(inputs[0]) * geo.tile_words
        self.lane_region = max([0] + [len(t) for t in inputs[1:]]) * geo.tile_words
        self.output_region = out_tiles * geo.tile_words
        first = self._needs(0, inputs)
        self.input_slots = [first.get(w, []) for w in range(self.in_words)]
        wl = self.write_layout
        tiles: list[Tile] = []
        row_tiles: list[tuple[int, RowTile]] = []
        # (layer, block, first packed column) -> (input tile index, lane slots of its members)
        where = {(li, bi, col0): (j, placement) for li, tiles_in in enumerate(inputs)
                 for j, (bi, col0, placement) in enumerate(tiles_in)}
        for li, layer in enumerate(self.layers):
            needs = self._needs(li + 1, inputs)
            region = self.region_of(li)
            for bi, block in enumerate(layer.blocks):
                n_ct = max(1, -(-block.packed_columns // C))
                for rt in pack_rows(needs, range(block.row_start, block.row_stop), R, self.max_writes):
                    rq_index = len(row_tiles) * self.requant_steps
                    wr_first = len(self.writes)
                    row_tiles.append((li, rt))
                    self.writes.extend(pack_struct(wl, {"address": addr, "mask": mask})
                                       for addr, mask in rt.writes)
                    for ct in range(n_ct):
                        j = where[li, bi, ct * C][0]
                        tiles.append(Tile(li, bi, rt.channels, ct * C, ct == 0, ct == n_ct - 1, rq_index,
                                          region + j * geo.tile_words, wr_first, len(rt.writes)))
            if tiles and tiles[-1].layer == li:
                tiles[-1] = replace(tiles[-1], layer_end=True, net_end=li == len(self.layers) - 1)
        self.tiles = tiles
        self._fill_roms(row_tiles, where)

    def row_runs(self, k: int) -> int:
        """The run length (the kernel width) when conv layer ``k`` reads *row runs*, else 0.

        A layer whose packed columns combine kernel positions of one kernel row of one channel
        (a one-channel layer combined per kernel row, :func:`colcomb.train.prune.combine_mask`)
        reads them in one word, if that word holds the run of the row: word ``c * Hp * Wp + y * Wp
        + x`` holds pixels ``x - kw + 1 .. x`` of row ``y`` of channel ``c``, one a slot, and a
        column reads the word at its kernel row's offset plus ``kw - 1``, each member the slot of
        its kernel column. Only layer 0 can: the host's pixels pass a shift register of ``kw``
        words on their way in, which writes each pixel's run in one word, and at a row's end the
        runs of its right border: ``pw`` zeros shifted in, which are also the next row's left
        border (the padding is the same on both sides), so no run needs clearing."""
        layer, st = self.layers[k], self.stages[k]
        kh, kw = st.kernel
        groups = [g for block in layer.blocks for g in block.groups]
        across = [g for g in groups if len({int(m) % (kh * kw) for m in g}) > 1]
        if not across:
            return 0  # no column combines kernel positions
        advice = ("pack conv layers per feature map (--per-feature-map, which combines a one-channel first "
                  "layer per kernel row) or leave them uncombined")
        # every combined column must lie in one kernel row of one channel, of the first layer
        bad = [g for g in groups if len({(int(m) // (kh * kw), int(m) % (kh * kw) // kw) for m in g}) > 1]
        if bad:
            why, g = f"they lie in different kernel rows or channels; {advice}", bad[0]
        elif k:
            why, g = f"only the first layer, whose pixels the host writes, reads row runs; {advice}", across[0]
        elif kw > self.lanes_per_part:
            why, g = (f"a run of {kw} pixels is wider than a word's {self.lanes_per_part} lanes: combine with alpha "
                      f"{kw} or more"), across[0]
        else:
            return kw
        raise ColcombError(f"conv layer {layer.name!r}: packed column {list(g)} combines input columns at different "
                           f"kernel positions or channels, which on chip a column reads from one word: {why}")

    def channel_words(self, k: int) -> tuple[dict[int, tuple[int, int]], int]:
        """Where conv layer ``k``'s input channels lie in a pixel's words: channel -> (word,
        slot), and the words per pixel. Channels ``alpha * w ..`` in word ``w`` when every packed
        column combines channels of one such group; a word per channel with row runs
        (:meth:`row_runs`); otherwise one word per channel group of the layer's per feature map
        combining (its members in ascending order)."""
        layer, st, A = self.layers[k], self.stages[k], self.alpha
        kk = st.kernel[0] * st.kernel[1]
        if self.row_runs(k):
            return {c: (c, 0) for c in range(st.in_shape[0])}, st.in_shape[0]
        sets = {frozenset(int(m) // kk for m in g) for block in layer.blocks for g in block.groups}
        channels = st.in_shape[0]
        if all(len({c // A for c in s}) == 1 for s in sets):
            return {c: divmod(c, A) for c in range(channels)}, -(-channels // A)
        owner: dict[int, frozenset] = {}
        for s in sets:
            for c in s:
                if owner.setdefault(c, s) != s:
                    raise ColcombError(
                        f"conv layer {layer.name!r}: input channel {c} is grouped with channels "
                        f"{sorted(owner[c])} in one row block and {sorted(s)} in another; on chip a pixel's "
                        f"channels lie in one layout: pack it without row blocks (--row-block)")
        groups = sorted(sets, key=min)
        return {c: (w, sorted(g).index(c)) for w, g in enumerate(groups) for c in g}, len(groups)

    def _conv_tiles(self, k: int,
                    where: dict[int, tuple[int, int]]) -> list[tuple[int, int, list[list[int]], list[int]]]:
        """Conv layer ``k``'s input tiles: (block, first packed column, the lane of every member
        of each column, each column word's offset from a window's origin). A packed column reads
        one word of the input feature map: its members are channels of one word (``where``,
        :meth:`channel_words`) at one kernel position (per feature map combining)."""
        layer, st, C = self.layers[k], self.stages[k], self.cols
        hp, wp = st.padded_size
        kh, kw = st.kernel
        if k == 0 and self.input_run:  # a column reads its kernel row's run; a member, its kernel column's slot
            out = []
            for bi, block in enumerate(layer.blocks):
                n = block.packed_columns
                for ct in range(max(1, -(-n // C))):
                    members = [[divmod(int(m), kh * kw) for m in block.groups[g]]
                               for g in range(ct * C, min(n, ct * C + C))]
                    offsets = [ch * hp * wp + pos // kw * wp + kw - 1 for ch, pos in (g[0] for g in members)]
                    lanes = [[pos % kw for _, pos in g] for g in members]
                    out.append((bi, ct * C, lanes, offsets + [0] * (C - len(offsets))))
            return out
        out = []
        for bi, block in enumerate(layer.blocks):
            n = block.packed_columns
            for ct in range(max(1, -(-n // C))):
                lanes, offsets = [], []
                for g in range(ct * C, min(n, ct * C + C)):
                    members = [divmod(int(m), kh * kw) for m in block.groups[g]]
                    keys = {(where[ch][0], pos) for ch, pos in members}
                    if len(keys) != 1:
                        raise ColcombError(
                            f"conv layer {layer.name!r}: packed column {g} of block {bi} combines input columns "
                            f"{list(block.groups[g])}, which lie at different kernel positions; on chip a packed "
                            f"column reads one feature-map word: pack conv layers per feature map "
                            f"(--per-feature-map) or leave them uncombined")
                    (word, pos), = keys
                    ky, kx = divmod(pos, kw)
                    offsets.append(word * hp * wp + ky * wp + kx)
                    lanes.append([where[ch][1] for ch, _ in members])
                offsets += [0] * (C - len(offsets))
                out.append((bi, ct * C, lanes, offsets))
        return out

    def _build_images(self) -> None:
        """The ROM images of an image network (:attr:`stages`), on the serial array with column
        words (``parts == cols``, a word holds one column's ``alpha`` lanes).

        A conv layer's input is a feature map in its memory region: image ``b``'s word
        ``group * Hp * Wp + y * Wp + x`` holds channels ``group * alpha ..`` of pixel (y, x) of
        the zero-bordered map, a channel per slot. Its vectors are the output positions of each
        image (:meth:`Stage.patch_origins`, in pooling-window order); column ``c`` of a tile reads
        the word at ``image base + window origin + column_offsets[c]``. A linear layer's input is
        laid out as in a chain of matrices (vector ``b`` = image ``b``). Each row tile writes, per
        output position after pooling, the words the position table points at: a pixel word of the
        next conv layer's map, or one slot per value of the flattened map in the next linear
        layer's lanes."""
        R, C = self.rows, self.cols
        geo = self.geometry
        stages, layers = self.stages, self.layers
        n_layers = len(layers)
        per_vector = self.cycles_per_vector
        inputs = []
        self.layer_info = []
        # each conv layer's input channels in a pixel's words: (channel -> (word, slot), words),
        # which also refuses columns no word holds
        maps = {k: self.channel_words(k) for k, st in enumerate(stages) if st.conv}
        self.input_run = self.row_runs(0) if stages[0].conv else 0
        for k, (layer, st) in enumerate(zip(layers, stages, strict=True)):
            if st.conv:
                tiles_in = self._conv_tiles(k, maps[k][0])
                hp, wp = st.padded_size
                image_words = maps[k][1] * hp * wp
                origins = [r * wp + c for r, c in st.patch_origins()]
                region = self.batch * image_words
            else:
                tiles_in = [(bi, col0, placement, list(range(C)))
                            for bi, col0, placement in self._input_tiles(layer)]
                image_words, origins, region = self.parts, [0], len(tiles_in) * geo.tile_words
            inputs.append(tiles_in)
            window, most = st.pool * st.pool, self.pass_vectors
            if window > most:
                raise ColcombError(f"layer {layer.name!r} max-pools {st.pool}x{st.pool} windows, more than a "
                                   f"pass's {most} vectors hold; allow passes of {window} or more")
            # vectors per pass of the layer's tiles: whole pooling windows, and no more than a
            # batch of images gives the layer (a longer pass would only deepen the accumulator;
            # a layer's positions are whole windows)
            self.layer_info.append({"positions": st.positions, "pool": st.pool, "emitted": st.emitted,
                                    "chunk": min(most - most % window, self.batch * st.positions),
                                    "read_stride": image_words, "region_words": region,
                                    "patch_first": len(self.patches)})
            self.patches.extend(origins)
        for k, info in enumerate(self.layer_info):
            info["write_stride"] = self.layer_info[k + 1]["read_stride"] if k + 1 < n_layers else self.parts
        self.input_region = self.layer_info[0]["region_words"]
        self.lane_region = sum(info["region_words"] for info in self.layer_info[1:])
        self.output_region = -(-self.out_words // (geo.lanes_per_part * geo.parts)) * geo.tile_words
        plain = [[(bi, col0, placement) for bi, col0, placement, _ in tiles_in] for tiles_in in inputs]
        # the host writes each input word (a pixel of image 0, or a feature) into its slots
        st0 = stages[0]
        if st0.conv:
            ch0, h0, w0 = st0.in_shape
            hp, wp = st0.padded_size
            ph, pw = st0.padding
            words = maps[0][0]
            if self.input_run:
                # each pixel's run ends in its own word; a row's last pixel also writes the runs
                # of the right border (zeros shifted in)
                self.input_slots = [[Slot(c * hp * wp + (y + ph) * wp + x + pw + j, 0)
                                     for j in range(1 + (pw if x == w0 - 1 else 0))]
                                    for c in range(ch0) for y in range(h0) for x in range(w0)]
            else:
                self.input_slots = [[Slot(words[c][0] * hp * wp + (y + ph) * wp + x + pw, words[c][1])]
                                    if c in words else []
                                    for c in range(ch0) for y in range(h0) for x in range(w0)]
        else:
            first = self._needs(0, plain)
            self.input_slots = [first.get(w, []) for w in range(self.in_words)]
        wl = self.write_layout
        where = {(li, bi, col0): (j, placement) for li, tiles_in in enumerate(inputs)
                 for j, (bi, col0, placement, _) in enumerate(tiles_in)}
        offsets = {(li, bi, col0): off for li, tiles_in in enumerate(inputs) for bi, col0, _, off in tiles_in}
        tiles: list[Tile] = []
        row_tiles: list[tuple[int, RowTile]] = []
        for li, (layer, st) in enumerate(zip(layers, stages, strict=True)):
            info = self.layer_info[li]
            info["first_tile"] = len(tiles)
            window_cycles = st.pool * st.pool * per_vector  # cycles between two output positions
            next_words = maps[li + 1][0] if li + 1 in maps else None  # the next conv layer's pixel words
            needs = {} if next_words is not None else self._needs(li + 1, plain)
            for bi, block in enumerate(layer.blocks):
                channels = range(block.row_start, block.row_stop)
                n_ct = max(1, -(-block.packed_columns // C))
                spacing, budget = 1, window_cycles
                if st.conv and next_words is None:
                    # a flattened map: any channel in any row, each value written to its own slots,
                    # as many channels a row tile as leave each position's writes in the budget;
                    # the bit-parallel array may space the last column tile's vectors out for
                    # more writes a position (fewer row tiles), where that costs fewer cycles
                    spacing, tiles_rt = self._spaced_flattened_tiles(li, channels, needs, window_cycles, n_ct)
                    budget, single = window_cycles * spacing, True
                else:
                    if next_words is not None:
                        # a pixel word per channel group, the same words at every position
                        wanted = {ch: [Slot(*next_words[ch])] for ch in channels if ch in next_words}
                    else:
                        wanted = {ch: needs[ch] for ch in channels if needs.get(ch)}
                    tiles_rt = pack_rows(wanted, channels, R, budget)
                    # repeated words put a channel in the row of its slot's residue: where that
                    # costs row tiles (few slots a word), one slot per write from any row instead
                    wanted_list = list(wanted)
                    packed = [_row_tile(wanted_list[i: i + R], R) for i in range(0, len(wanted_list), R)]
                    single = len(tiles_rt) > len(packed) and all(
                        sum(len(wanted[ch]) for ch in rt.channels if ch is not None) <= budget for rt in packed)
                    if single:
                        tiles_rt = packed
                for rt in tiles_rt:
                    rq_index = len(row_tiles) * self.requant_steps
                    pos_first = len(self.positions)
                    row_tiles.append((li, rt))
                    for u in range(st.emitted):
                        entries = self._position_writes(li, u, rt, needs, single, next_words)
                        if len(entries) > budget:  # pack_rows and _flattened_tiles keep to the budget
                            raise ColcombError(
                                f"layer {layer.name!r} writes {len(entries)} words per output position, but a "
                                f"position leaves the array every {budget} cycles")
                        self.positions.append(len(self.writes))
                        entries = entries or [{"address": 0, "mask": 0}]
                        entries[-1]["last"] = 1
                        self.writes.extend(pack_struct(wl, e) for e in entries)
                    for ct in range(n_ct):
                        j = where[li, bi, ct * C][0]
                        base = self.region_of(li) + (0 if st.conv else j * geo.tile_words)
                        tiles.append(Tile(li, bi, rt.channels, ct * C, ct == 0, ct == n_ct - 1, rq_index,
                                          base, pos_first, 1, spacing=spacing if ct == n_ct - 1 else 1))
                        self.column_offsets.extend(offsets[li, bi, ct * C])
            if tiles and tiles[-1].layer == li:
                tiles[-1] = replace(tiles[-1], layer_end=True, net_end=li == n_layers - 1)
        self.tiles = tiles
        self._fill_roms(row_tiles, where)

    def _spaced_flattened_tiles(self, k: int, channels: range, needs: dict[int, list[Slot]],
                                window_cycles: int, n_ct: int) -> tuple[int, list[RowTile]]:
        """:meth:`_flattened_tiles` with the spacing of the last column tile's vectors
        (:attr:`Tile.spacing`, bit-parallel array only) that streams the fewest cycles: each row
        tile streams ``n_ct - 1`` column tiles at one vector per cycle and the last at one per
        ``spacing``, whose writes then get ``spacing`` times the cycles."""
        best, error = None, None
        for spacing in (1, 2, 4, 8) if self.cell == "parallel" else (1,):
            try:
                tiles_rt = self._flattened_tiles(k, channels, needs, window_cycles * spacing)
            except ColcombError as exc:  # a channel needed at more slots than the budget
                error = error or exc
                continue
            cost = len(tiles_rt) * (n_ct - 1 + spacing)
            if best is None or cost < best[0]:
                best = (cost, spacing, tiles_rt)
            if len(tiles_rt) == -(-len(channels) // self.rows):  # no fewer row tiles to win
                break
        if best is None:
            raise error
        return best[1], best[2]

    def _flattened_tiles(self, k: int, channels: range, needs: dict[int, list[Slot]],
                         budget: int) -> list[RowTile]:
        """Row tiles of conv layer ``k`` whose outputs are flattened into a linear layer: channels
        in order, a tile closed when another channel would make some output position's writes
        (one per slot its value is needed at) exceed ``budget``."""
        st, R = self.stages[k], self.rows
        tiles: list[RowTile] = []
        current: list[int] = []
        load = [0] * st.emitted
        for ch in channels:
            cost = [len(needs.get(ch * st.emitted + u, ())) for u in range(st.emitted)]
            if max(cost, default=0) > budget:
                raise ColcombError(
                    f"layer {self.layers[k].name!r}: channel {ch}'s values are needed at {max(cost)} lane slots "
                    f"of the next layer, more than the {budget} writes a position has time for; pack the next "
                    f"layer with fewer row blocks")
            if len(current) == R or any(a + c > budget for a, c in zip(load, cost, strict=True)):
                tiles.append(_row_tile(current, R))
                current, load = [], [0] * st.emitted
            current.append(ch)
            load = [a + c for a, c in zip(load, cost, strict=True)]
        if current:
            tiles.append(_row_tile(current, R))
        return tiles

    def _position_writes(self, k: int, u: int, rt: RowTile, needs: dict[int, list[Slot]], single: bool,
                         words: dict[int, tuple[int, int]] | None) -> list[dict]:
        """The words row tile ``rt`` of layer ``k`` writes for output position ``u`` of image 0:
        its repeated words (``rt.writes``), or with ``single`` one slot per word, from the row
        that computes it; ``words``: the next conv layer's channel words (None: the next layer
        is linear)."""
        st = self.stages[k]
        live = [(r, ch) for r, ch in enumerate(rt.channels) if ch is not None]
        if words is not None:
            nxt = self.stages[k + 1]
            hp, wp = nxt.padded_size
            ph, pw = nxt.padding
            py, px = divmod(u, st.pooled_size[1])
            at = self.region_of(k + 1) + (py + ph) * wp + px + pw
            if single:
                return [{"address": at + words[ch][0] * hp * wp, "mask": 1 << words[ch][1], "single": 1, "row": r}
                        for r, ch in live if ch in words]
            return [{"address": at + group * hp * wp, "mask": mask} for group, mask in rt.writes]
        if st.conv or single:  # flattened: feature channel * positions + u
            feature = (lambda ch: ch * st.emitted + u) if st.conv else (lambda ch: ch)
            return [{"address": s.address, "mask": 1 << s.slot, "single": 1, "row": r}
                    for r, ch in live for s in needs.get(feature(ch), [])]
        return [{"address": address, "mask": mask} for address, mask in rt.writes]

    def _fill_roms(self, row_tiles: list[tuple[int, RowTile]],
                   where: dict[tuple[int, int, int], tuple[int, list[list[int]]]]) -> None:
        """The requant, cell and descriptor ROMs of :attr:`tiles`: ``where`` gives each input
        tile's lane slot of every member of each column."""
        R, C, A = self.rows, self.cols, self.alpha
        cl = cell_layout(self.weight_bits, A, self.onehot)
        rl = self.requant_layout.elem_shape
        lanes = self.requant_lanes
        for li, rt in row_tiles:
            rq = self.layers[li].requant
            words = [pack_struct(rl, {"bias": rq.bias[ch], "mult": rq.multiplier[ch], "shift": rq.shift[ch]})
                     if ch is not None else 0 for ch in rt.channels]
            words += [0] * (lanes * self.requant_steps - len(words))
            self.requant.extend(pack_array(words[k: k + lanes], rl.size)
                                for k in range(0, len(words), lanes))
        tl = self.tile_layout
        cell_size, k, n = cl.size, self.load_rows, self.load_steps  # amaranth recomputes a layout's size
        for t in self.tiles:
            layer = self.layers[t.layer]
            block = layer.blocks[t.block]
            placement = where[t.layer, t.block, t.col_start][1]
            w = np.zeros((R, C), np.int64)
            s = np.zeros((R, C), np.int64)
            n_cols = len(placement)
            for r, ch in enumerate(t.channels):
                if ch is None or not n_cols:
                    continue
                row = ch - block.row_start
                w[r, :n_cols] = block.weights[row, t.col_start: t.col_start + n_cols]
                sel = block.selects[row, t.col_start: t.col_start + n_cols]
                for c in range(n_cols):
                    # the member's lane slot; a zero weight multiplies any lane to zero
                    s[r, c] = placement[c][int(sel[c])] if w[r, c] and A > 1 else 0
            rows = [pack_array([pack_struct(cl, {"weight": w[r, c], "select": 1 << int(s[r, c])}) for c in range(C)]
                               if self.onehot and A > 1 else cell_words(w[r], s[r], self.weight_bits), cell_size)
                    for r in range(R)]
            for step in range(n):  # bottom rows first: they are shifted furthest
                first = (n - 1 - step) * k
                self.cells.append(pack_array(rows[first: first + k] + [0] * (first + k - R), cell_size * C))
            self.descriptors.append(pack_struct(tl, {
                "first": t.first, "last": t.last, "layer_end": t.layer_end, "net_end": t.net_end,
                "rq": t.rq, "base": t.base, "wr_first": t.wr_first, "wr_count": t.wr_count,
                "layer": t.layer, "spacing": t.spacing - 1}))
