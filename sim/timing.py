"""Cycle counts of a bench run, from the cycles at which the stream words were transferred.

Both benches (the per-cycle cocotb bench and the fast harness bench) record the cycle of every
input and output transfer and compute their figures here, so that the two report the same numbers
for the same run.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["steady_cycles_per_vector", "timing"]


def timing(in_cycles: Sequence[int], out_cycles: Sequence[int], batch: int, in_words: int, out_words: int,
           vectors: int) -> dict:
    """``cycles`` from the first input word to the last output word; ``compute_cycles`` summed
    over batches from the last input word to the first output word (the engine's run, without the
    stream I/O); ``cycles_per_inference`` (:func:`steady_cycles_per_vector`, None when the stream
    has fewer than two full batches). All 0/None when words are missing."""
    if len(in_cycles) == 0 or len(out_cycles) < vectors * out_words:
        return {"cycles": 0, "compute_cycles": 0, "cycles_per_inference": None}
    compute = 0
    for start in range(0, vectors, batch):
        stop = min(vectors, start + batch)
        compute += int(out_cycles[start * out_words]) - int(in_cycles[stop * in_words - 1])
    return {
        "cycles": int(out_cycles[vectors * out_words - 1]) - int(in_cycles[0]) + 1,
        "compute_cycles": compute,
        "cycles_per_inference": steady_cycles_per_vector(out_cycles, batch, out_words, vectors),
    }


def steady_cycles_per_vector(out_cycles: Sequence[int], batch: int, out_words: int, vectors: int) -> float | None:
    """Steady-state cycles per vector: the cycles between the final output words of the last two
    full batches, over the batch (the cycle model's definition,
    :func:`colcomb.hdl.cycles.cycles_per_inference`); the first batches' latency, while the
    receiver, engine and sender fill up, does not count when the stream is long enough. None with
    fewer than two full batches or missing words."""
    full = vectors // batch
    if full < 2 or len(out_cycles) < full * batch * out_words:
        return None
    before = int(out_cycles[(full - 1) * batch * out_words - 1])
    last = int(out_cycles[full * batch * out_words - 1])
    return (last - before) / batch
