"""The memories a compiled design builds, listed without elaborating it.

The resource estimate (:mod:`colcomb.fpga.estimate`) prices every memory of the engine in block
RAM; elaborating a design to find them takes up to a second on a large array, too slow for a
design search over hundreds of configs. :func:`memories` reads the same :class:`Program`
attributes the sequencer builds its memories from, so it takes microseconds; the tests hold it to
the elaborated design's memories, one for one.
"""

from __future__ import annotations

from dataclasses import dataclass

from colcomb.hdl.program import Program, pack_array

__all__ = ["MemorySpec", "memories"]


@dataclass(frozen=True)
class MemorySpec:
    """One memory: ``depth`` words of ``width`` bits; ``rom`` (initialised, never written) or a RAM
    with one write port of ``granularity``-bit lanes (None: whole words); ``block``: asks for
    block RAM (``ram_style``); ``read_ports`` synchronous read ports; ``spram``: an iCE40 SPRAM."""

    name: str
    depth: int
    width: int
    rom: bool
    block: bool = False
    granularity: int | None = None
    read_ports: int = 1
    transparent: bool = False
    spram: bool = False
    #: a ROM's bits that differ between its words (synthesis drops the bits every word has alike)
    varying: int | None = None

    @property
    def bits(self) -> int:
        return self.depth * self.width

    @property
    def used_width(self) -> int:
        return self.width if self.varying is None else self.varying


def _rom(name: str, width: int, words: list[int], ports: int = 1) -> MemorySpec:
    """A :class:`~colcomb.hdl.rom.Rom` of ``words`` (at least two deep; one word is padded with 0)."""
    ones, common = 0, (1 << width) - 1
    for w in (words if len(words) > 1 else [*words, 0]):
        ones |= int(w)
        common &= int(w)
    return MemorySpec(name, max(2, len(words)), width, rom=True, read_ports=ports,
                      varying=bin(ones & ~common).count("1"))


def memories(p: Program) -> list[MemorySpec]:
    """Every memory of :class:`~colcomb.hdl.top.Top` for ``p``, in the sequencer's order."""
    out = []
    if p.cell_memory == "spram":
        # written a nibble at a time (:class:`~colcomb.hdl.spram.Spram`): whole nibbles wide
        out.append(MemorySpec("cell_ram", max(2, len(p.cells)), -(-p.cell_bits // 4) * 4, rom=False, spram=True))
    else:
        out.append(_rom("cells", p.cell_bits, p.cells))
    out.append(_rom("tiles", p.tile_layout.size, p.descriptors, ports=2))
    out.append(_rom("requant", p.requant_layout.size, p.requant))
    steps = p.requant_steps
    group = -(-p.rows // steps)
    per_vector = 1 << (steps - 1).bit_length()
    out.append(MemorySpec("accumulate", max(2, p.pass_depth * per_vector), group * p.acc_bits, rom=False,
                          block=True, transparent=True))
    if p.stages is not None:
        out.append(_rom("positions", len(p.writes).bit_length() or 1, p.positions))
        out.append(_rom("writes", p.write_layout.size, p.writes))
    else:
        out.append(_rom("writes", p.address_bits + p.lanes_per_part, p.writes))
    depths, d = p.memory_depths, p.data_bits
    word = p.lanes_per_part * d

    def ram(name: str, width: int, depth: int) -> MemorySpec:
        return MemorySpec(name, depth, width, rom=False, block=True, granularity=d)

    out += [ram("lanes", word, depths["lanes"]), ram("output", word, depths["output"])]
    if p.beat > 1:
        out += [ram(f"input_{b}", p.beat_bank_slots * d, depths["input"]) for b in range(p.beat_banks)]
    else:
        out.append(ram("input", p.input_slots_per_word * d, depths["input"]))
    if p.banked:
        for c in range(1, p.cols):
            if c < p.input_banks:
                out.append(ram(f"input_{c}", p.input_slots_per_word * d, depths["input"]))
            out.append(ram(f"lanes_{c}", word, depths["lanes"]))
    if p.stages is not None:
        out.append(_rom("patches", p.address_bits, p.patches))
        out.append(_rom("columns", p.cols * p.address_bits,
                        [pack_array(p.column_offsets[t * p.cols:(t + 1) * p.cols], p.address_bits)
                         for t in range(len(p.tiles))]))
    if p.beat > 1:
        out.append(_rom("beats", p.beat_layout.size, p.beat_map))
    else:
        out.append(_rom("inputs", p.input_layout.size, p.input_map))
    return out
