"""The fast cocotb test module: no Python on any clock cycle.

The driver and the monitor are the harness's memories and FSM (:mod:`colcomb.sim.harness`), the
clock is cocotb's GPI clock (it toggles in C), and this module only sets the run up, waits for the
harness's ``done`` with one trigger, reads the captured words once and checks them in bulk with the
same reference model and scoreboard as the per-cycle bench (:mod:`colcomb.sim.bench`).

Run through :mod:`colcomb.sim.runner`; the configuration JSON named by ``COLCOMB_BENCH`` has the
per-cycle bench's keys plus ``files``: the paths of the harness's memory images (``in``, ``out``,
``out_cycles``, ``in_cycles``), which the runner also passes to the simulator as plusargs.
"""

from __future__ import annotations

import time

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout

from colcomb.sim.bench_run import load_run, write_result
from colcomb.sim.harness import read_image, split_payloads, threshold
from colcomb.sim.scoreboard import Scoreboard
from colcomb.sim.timing import timing

PERIOD_NS = 10
RESET_CYCLES = 3


@cocotb.test()
async def network_matches_golden_model_fast(dut):
    """Every output word of every vector equals the golden model (harness-driven streams)."""
    run = load_run()
    cfg, expected = run.cfg, run.expected
    vectors, batch = run.vectors, run.batch
    in_beats, out_beats = run.in_beats, run.out_beats
    n_out = vectors * out_beats
    max_cycles = int(cfg.get("max_cycles", 10**7))

    # everything the harness needs is set once, before the clock runs
    dut.fast.value = 1
    dut.go.value = 0
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    dut.o__ready.value = 0
    dut.n_in.value = vectors * in_beats
    dut.n_out.value = n_out
    dut.drain.value = int(cfg.get("drain_cycles", 64))
    dut.max_cycles.value = max_cycles
    dut.idle_thr.value = threshold(float(cfg.get("idle", 0.0)))
    dut.stall_thr.value = threshold(float(cfg.get("stall", 0.0)))
    dut.seed.value = int(cfg.get("seed", 0)) & 0xFFFFFFFF
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    await ClockCycles(dut.clk, RESET_CYCLES)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)
    dut.go.value = 1

    wall = time.perf_counter()
    start_cycle = get_sim_time("ns") / PERIOD_NS
    harness_hung = False
    try:  # the harness has its own watchdog; this one only guards against a broken harness
        await with_timeout(RisingEdge(dut.done), (max_cycles + 1000) * PERIOD_NS, "ns")
    except SimTimeoutError:
        harness_hung = True
    wall = time.perf_counter() - wall
    sim_cycles = get_sim_time("ns") / PERIOD_NS - start_cycle

    files = cfg["files"]
    payload = read_image(files["out"])
    out_cycles = read_image(files["out_cycles"])
    in_cycles = read_image(files["in_cycles"])
    received = int(dut.out_count.value.to_unsigned())
    datas, lasts = split_payloads(payload, run.payload_bits)
    words, padding = run.output_words(datas)

    board = Scoreboard(expected)
    board.check(words, lasts, batch, beat=run.beat, padding=padding)
    if received > len(payload):  # beats past the output memory: counted, not stored
        board.protocol_errors.append(f"{received} output beats taken, {len(payload)} stored")
    if harness_hung or int(dut.timed_out.value) == 1:
        board.protocol_errors.append(
            f"timed out after {max_cycles} cycles with {int(dut.in_count.value.to_unsigned())} of "
            f"{vectors * in_beats} input and {received} of {n_out} output beats transferred"
        )
    write_result(run, board, words, wall=wall, sim_cycles=sim_cycles,
                 timing=timing(in_cycles, out_cycles, batch, in_beats, out_beats, vectors), bench="fast")
    assert board.passed, board.summary()
