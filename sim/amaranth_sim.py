"""Run the generated top in Amaranth's own simulator: no Verilator, no build step.

Slower per cycle than Verilator but starts at once, so the unit tests use it for many small
designs; the cocotb/Verilator bench (:mod:`colcomb.sim.runner`) is the reference flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.flash_model import TopWithFlash
from colcomb.hdl.framing import split_payload, stream_payloads, unpack_beats
from colcomb.hdl.program import Program
from colcomb.hdl.top import Top
from colcomb.packer.packed import PackedLayer

__all__ = ["PySimResult", "run_top"]


@dataclass
class PySimResult:
    outputs: np.ndarray  # (vectors, out_words)
    lasts: list[bool]  # the last flag of every output beat
    cycles: int  # first input word to last output word
    compute_cycles: int  # summed over batches: last input word -> first output word
    padding: list[int]  # the words that pad each vector's last output beat (zero)


def run_top(
    design: Sequence[PackedLayer] | Program,
    x: np.ndarray,
    config: HardwareConfig | None = None,
    *,
    max_cycles: int = 200_000,
) -> PySimResult:
    """Stream ``x`` (vectors, in_words) through :class:`~colcomb.hdl.top.Top` (of a compiled
    ``design``, or of layers compiled for ``config``) in batches of the config's ``batch`` vectors
    and collect the outputs (cell words in SPRAM: through
    :class:`~colcomb.hdl.flash_model.TopWithFlash`, the flash holding their image)."""
    if isinstance(design, Program):
        program = design
    elif config is None:
        raise ColcombError("run_top needs the hardware config to compile layers for")
    else:
        program = Program.compile(design, config)
    # cell words in SPRAM: the top with a model of the flash holding their image
    dut = TopWithFlash(program=program) if program.cell_memory == "spram" else Top(program=program)
    x = np.asarray(x, np.int64)
    vectors = x.shape[0]
    k, bits = program.beat, program.data_bits
    payloads = stream_payloads(x, bits, program.batch, k)
    total_out = vectors * program.out_beats
    sent: list[int] = []
    received: list[tuple[int, int, bool]] = []

    async def bench(ctx):
        cycle = 0
        i = 0
        ctx.set(dut.o.ready, 1)
        while len(received) < total_out:
            if cycle > max_cycles:
                raise RuntimeError(f"no result after {max_cycles} cycles")
            if i < len(payloads):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.as_value(), payloads[i])
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload.as_value())
            if i < len(payloads) and i_ready:
                sent.append(cycle)
                i += 1
            if o_valid:
                received.append((cycle, *split_payload(o_payload, k * bits)))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    out, padding = unpack_beats([d for _, d, _ in received], bits, k, program.out_words)
    compute = 0
    for start in range(0, vectors, program.batch):
        stop = min(vectors, start + program.batch)
        compute += received[start * program.out_beats][0] - sent[stop * program.in_beats - 1]
    return PySimResult(np.array(out, np.int64).reshape(vectors, program.out_words),
                       [last for _, _, last in received], received[-1][0] - sent[0] + 1, compute, padding)
