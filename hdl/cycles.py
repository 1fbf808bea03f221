"""The cycle model: how many cycles a batch takes, in one place.

Every number comes from the pipeline the generator builds: the PREP, DRAIN and end-of-layer
FLUSH lengths from the sequencer (:meth:`Sequencer.prep_cycles_for`, which its FSM counts,
:meth:`Sequencer.drain_cycles_for`, :meth:`Sequencer.flush_cycles`, themselves sums of the
stages' ``latency`` constants) and the hand-overs between the top's receiver, engine and sender
(:attr:`Top.start_latency`, :attr:`Top.send_latency`), which work on three batches at once.
The cost report, the simulation watchdog and the board self-test all call this module; the tests
check it against the cycle counts Verilator and the Amaranth simulator measure.
"""

from __future__ import annotations

from collections.abc import Sequence

from colcomb.core.errors import ColcombError
from colcomb.hdl.program import Program
from colcomb.hdl.rom import Rom
from colcomb.hdl.sequencer import Sequencer
from colcomb.hdl.top import Top

__all__ = ["BATCH_OVERHEAD", "WATCHDOG_FACTOR", "WATCHDOG_SLACK", "cycle_summary", "cycles_per_inference",
           "drain_cycles", "engine_cycles", "flush_cycles", "network_cycles", "prep_cycles",
           "steady_cycles_per_inference", "stream_cycles", "tile_cycles", "watchdog_budget", "watchdog_cycles"]

#: cycles a lone batch takes in :class:`~colcomb.hdl.top.Top` besides its input port cycles, the
#: engine and one per output word: the hand-overs receiver -> engine -> sender, and the sender
#: noticing the finished batch
BATCH_OVERHEAD = Top.start_latency + 1 + Top.send_latency
#: the watchdog allows this many times the model's cycles (times any stall slowdown) ...
WATCHDOG_FACTOR = 4
#: ... plus this many: a stuck design is caught, a slow consumer is not mistaken for one
WATCHDOG_SLACK = 1000


def prep_cycles(program: Program) -> int:
    """Cycles of a tile's PREP (load the cells, fetch the first vector's lanes)."""
    return Sequencer.prep_cycles_for(program)


def drain_cycles(program: Program) -> int:
    """Cycles of a tile's DRAIN (the last vector leaves the array)."""
    return Sequencer.drain_cycles_for(program)


def tile_cycles(program: Program, vectors: int, last: bool = True, spacing: int = 1) -> int:
    """Engine cycles of one tile for a batch of ``vectors``: prepare, stream (``data_bits``
    cycles per vector on the serial array, times the tile's ``spacing``), drain (with
    :attr:`Program.skewed_loads` only a layer's ``last`` tile of a pass drains)."""
    drain = drain_cycles(program) if last or not program.skewed_loads else 0
    return prep_cycles(program) + vectors * program.cycles_per_vector * spacing + drain


def flush_cycles(program: Program, words_written: int) -> int:
    """Cycles of the end-of-layer wait after a last row tile that writes ``words_written`` lane
    memory words per vector."""
    return Sequencer.flush_cycles(program, words_written)


def engine_cycles(program: Program, vectors: int, layer: int | None = None) -> int:
    """Cycles the sequencer is busy running one batch of ``vectors`` (1..batch) vectors through
    every layer (or only through ``layer``'s tiles, with its end-of-layer flush)."""
    if not 1 <= vectors <= program.batch:
        raise ColcombError(f"a batch holds 1..{program.batch} vectors, not {vectors}")
    if program.stages:
        return sum(_layer_passes(program, vectors, li) for li in range(len(program.layers))
                   if layer is None or li == layer)
    if program.shadow:
        return _shadow_cycles(program, vectors, layer)
    tiles = [t for t in program.tiles if layer is None or t.layer == layer]
    return sum(tile_cycles(program, vectors, t.layer_end, t.spacing)
               + (flush_cycles(program, t.wr_count) if t.layer_end else 0) for t in tiles)


def _shadow_cycles(program: Program, vectors: int, layer: int | None) -> int:
    """:func:`engine_cycles` with shadow weights: every tile but the run's first loads while the
    tile before streams (from that tile's first STREAM cycle: ``load_steps`` reads, the loads a
    ROM latency later), so its PREP is the short one, waiting in its first cycle for a preload
    that is not yet done."""
    short, full = Sequencer.short_prep_cycles_for(program), prep_cycles(program)
    drain, preload = drain_cycles(program), program.load_steps + Rom.latency
    total, since = 0, None  # cycles from the preload's start to this tile's PREP
    for i, t in enumerate(program.tiles):
        stream = vectors * program.cycles_per_vector * t.spacing
        flush = flush_cycles(program, t.wr_count) if t.layer_end else 0
        prep = full if i == 0 else short + max(0, preload - since)
        if layer is None or t.layer == layer:
            total += prep + stream + drain + flush
        since = stream + drain + flush
    return total


def _layer_passes(program: Program, images: int, li: int) -> int:
    """Engine cycles of layer ``li`` of an image network for ``images`` images: its
    ``images * positions`` vectors in passes of at most ``chunk`` over all its tiles, each pass
    ending with the flush of its last vector's words."""
    info = program.layer_info[li]
    tiles = [t for t in program.tiles if t.layer == li]
    if not tiles:  # no output of the layer is read: it is not computed
        return 0
    last = tiles[-1]
    total = images * info["positions"]
    pool_n = info["pool"] ** 2
    cycles = 0
    for start in range(0, total, info["chunk"]):
        size = min(info["chunk"], total - start)
        u = (start + size - 1) % info["positions"] // pool_n
        first = program.positions[last.wr_first + u]
        end = (program.positions[last.wr_first + u + 1] if last.wr_first + u + 1 < len(program.positions)
               else len(program.writes))
        cycles += (sum(tile_cycles(program, size, t is last, t.spacing) for t in tiles)
                   + flush_cycles(program, end - first))
    return cycles


def network_cycles(program: Program, vectors: int) -> dict:
    """Cycles of :class:`colcomb.hdl.top.Top` for ``vectors`` vectors sent back to back in batches
    of ``program.batch`` to a consumer that is always ready (:func:`stream_cycles`)."""
    engine_by_batch = [engine_cycles(program, b) for b in range(1, program.batch + 1)]
    return stream_cycles(engine_by_batch, program.input_cycles, program.out_beats, vectors,
                         load_cycles=program.load_cycles)


def stream_cycles(engine_by_batch: Sequence[int], in_cycles: int, out_cycles: int,
                  vectors: int, *, load_cycles: int = 0) -> dict:
    """:func:`network_cycles` from a design's numbers (:func:`cycle_summary`):
    ``engine_by_batch[b - 1]`` is the engine's cycles for a batch of ``b`` vectors, ``in_cycles``
    the input port's cycles per vector (``in_cycles_per_vector``), ``out_cycles`` the sender's
    (``out_cycles_per_vector``: a beat a cycle), ``load_cycles`` the cycle from which the engine
    may first start (:attr:`Program.load_cycles`: the cell words loading from flash).

    The top's three processes, batch by batch: the receiver takes ``in_cycles`` per vector into
    a free input buffer (freed when the engine finishes the batch two before); the engine starts
    once the batch is in and the output buffer of the batch two before has been sent; the sender
    sends one beat per cycle once the engine is done. Returns the cycles from the first input
    word to the last output word (``total``), the engine's share (``engine``), the rest
    (``io``), the batch count and ``finished``, the cycle each batch's last word left."""
    if vectors < 1:
        raise ColcombError(f"vectors must be at least 1, not {vectors}")
    batch = len(engine_by_batch)
    sizes = [min(batch, vectors - start) for start in range(0, vectors, batch)]
    received, finished, sent = [], [], []  # the cycle of each process's last act per batch
    rx_start = 0
    for k, b in enumerate(sizes):
        if k >= 2:  # the input buffer is free once the engine finished the batch two before
            rx_start = max(rx_start, finished[k - 2] + 1)
        received.append(rx_start + in_cycles * b)
        rx_start = received[k] + 1
        start = received[k] + Top.start_latency
        if k == 0:
            start = max(start, load_cycles)
        if k >= 1:
            start = max(start, finished[k - 1] + 1)
        if k >= 2:
            start = max(start, sent[k - 2] + 1)
        finished.append(start + int(engine_by_batch[b - 1]))
        notice = finished[k] + 1 if k == 0 else max(finished[k] + 1, sent[k - 1] + 1)
        sent.append(notice + Top.send_latency + out_cycles * b - 1)
    total = sent[-1] + 1
    engine = sum(int(engine_by_batch[b - 1]) for b in sizes)
    return {"engine": engine, "io": total - engine, "total": total, "batches": len(sizes),
            "finished": sent}


def cycles_per_inference(engine_by_batch: Sequence[int], in_cycles: int, out_cycles: int,
                         batches: int = 8) -> float:
    """Steady-state cycles per vector of a long stream of full batches: the cycles between the
    last two batches' final output words, over the batch (:func:`stream_cycles`)."""
    batch = len(engine_by_batch)
    done = stream_cycles(engine_by_batch, in_cycles, out_cycles, batch * batches)["finished"]
    return (done[-1] - done[-2]) / batch


def steady_cycles_per_inference(program: Program) -> float:
    """:func:`cycles_per_inference` of ``program``'s full batches (only a full batch's engine
    cycles are needed for them)."""
    full = engine_cycles(program, program.batch)
    return cycles_per_inference([0] * (program.batch - 1) + [full], program.input_cycles, program.out_beats)


def watchdog_budget(model_cycles: int, *, slowdown: float = 1.0) -> int:
    """The watchdog's cycle budget for a stream the model says takes ``model_cycles``;
    ``slowdown`` (>= 1) scales it for a producer or consumer that idles or stalls."""
    if slowdown < 1.0:
        raise ColcombError(f"slowdown must be at least 1, not {slowdown}")
    return int(WATCHDOG_FACTOR * slowdown * model_cycles) + WATCHDOG_SLACK


def watchdog_cycles(program: Program, vectors: int, *, slowdown: float = 1.0) -> int:
    """The watchdog's default budget for streaming ``vectors`` vectors through ``program``:
    :func:`watchdog_budget` of :func:`network_cycles`."""
    return watchdog_budget(network_cycles(program, vectors)["total"], slowdown=slowdown)


def cycle_summary(program: Program) -> dict:
    """The model's numbers for a design's JSON: per tile, per layer end, per batch, and the
    engine cycles of each batch size (``engine_cycles[b - 1]`` for ``b`` vectors) with which a
    reader of the JSON computes :func:`network_cycles` without the program."""
    prep, drain = prep_cycles(program), drain_cycles(program)
    short = Sequencer.short_prep_cycles_for(program)
    engine = [engine_cycles(program, b) for b in range(1, program.batch + 1)]
    return {
        "prep_cycles": prep,
        **({"short_prep_cycles": short} if program.shadow else {}),
        "drain_cycles": drain,
        "cycles_per_tile": (f"{prep} prep"
                            + (f" (a preloaded tile: {short}, or more while its preload runs)" if program.shadow
                               else "") + " + batch"
                            + (f" x {program.cycles_per_vector}" if program.cycles_per_vector > 1 else "")
                            + f" + {drain} drain"),
        "flush_cycles": (f"{flush_cycles(program, 0)} + words written per vector by the layer's last "
                         "row tile"),
        "batch_overhead_cycles": BATCH_OVERHEAD,
        "load_cycles": program.load_cycles,
        "in_cycles_per_vector": program.input_cycles,
        "out_cycles_per_vector": program.out_beats,
        "cycles_per_inference": cycles_per_inference(engine, program.input_cycles, program.out_beats),
        "engine_cycles": engine,
    }
