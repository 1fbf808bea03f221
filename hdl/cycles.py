"""The sequencer's cycle model: how many cycles a batch takes, in one place.

The cost report, the simulation watchdog and the board self-test all call this module; the
tests check it against the cycle counts Verilator measures.
"""

from __future__ import annotations

from colcomb.core.errors import ColcombError
from colcomb.hdl.program import Program

#: cycles the sequencer spends at the end of each layer beyond writing back the rows of the
#: layer's last tile (one buffer row per cycle): the post-array pipeline (accumulator read, add,
#: two requantizer stages, transpose registers) and the FSM step
FLUSH_CYCLES = 5
#: cycles per batch in :class:`colcomb.hdl.top.Top` besides one per input and output word: the
#: start pulse and addressing the first output word
BATCH_OVERHEAD = 2


def tile_cycles(program: Program, vectors: int) -> int:
    """Engine cycles of one tile (:meth:`Program.tile_cycles`: prepare the tile, stream the
    vectors, drain the array)."""
    return program.tile_cycles(vectors)


def engine_cycles(program: Program, vectors: int, layer: int | None = None) -> int:
    """Cycles the sequencer is busy running one batch of ``vectors`` (1..batch) vectors through
    every layer (or only through ``layer``'s tiles, with its end-of-layer flush)."""
    if not 1 <= vectors <= program.batch:
        raise ColcombError(f"a batch holds 1..{program.batch} vectors, not {vectors}")
    tiles = [t for t in program.tiles if layer is None or t.layer == layer]
    flush = sum(FLUSH_CYCLES + t.count for t in tiles if t.layer_end)
    return sum(tile_cycles(program, vectors) for _ in tiles) + flush


def network_cycles(program: Program, vectors: int) -> dict:
    """Cycles of :class:`colcomb.hdl.top.Top` for ``vectors`` vectors sent back to back in batches
    of ``program.batch`` to a consumer that is always ready: per batch, one cycle per input word,
    the engine, one cycle per output word and :data:`BATCH_OVERHEAD`."""
    if vectors < 1:
        raise ColcombError(f"vectors must be at least 1, not {vectors}")
    engine = io = 0
    batches = 0
    for start in range(0, vectors, program.batch):
        b = min(program.batch, vectors - start)
        engine += engine_cycles(program, b)
        io += (program.in_words + program.out_words) * b + BATCH_OVERHEAD
        batches += 1
    return {"engine": engine, "io": io, "total": engine + io, "batches": batches}


def watchdog_cycles(program: Program, vectors: int, *, slowdown: float = 1.0) -> int:
    """A generous cycle budget for streaming ``vectors`` vectors through ``program`` (the
    watchdog's default): four times a per-tile estimate, plus slack."""
    p = program
    batches = -(-vectors // p.batch)
    per_batch = len(p.tiles) * (p.tile_cycles(p.batch) + 16) + 16 * len(p.layers)
    io_words = vectors * (p.in_words + p.out_words + 2)
    return int(4 * slowdown * (batches * per_batch + io_words)) + 4096
