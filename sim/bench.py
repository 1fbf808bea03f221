"""The cocotb test module: drive inputs, monitor outputs, check them against the golden model.

Run through :mod:`colcomb.sim.runner` (it builds the Verilog once and starts this module); the
run's configuration comes as a JSON file named by the ``COLCOMB_BENCH`` environment variable:

``manifest``
    the manifest folder; the reference model runs the golden model on its layers
``inputs``
    a ``.npy`` of (vectors, in_words) input integers
``design``
    the generator's ``<top>.json`` (data width, batch size, words per vector)
``result``
    where this module writes its result JSON
``idle``, ``stall``, ``seed``
    probability of an idle input cycle and of a stalled output cycle, and their seed
``max_cycles``
    give up after this many cycles (a hung design fails instead of running forever)
``drain_cycles``
    after the last expected output word, keep accepting words for this many cycles: a word that
    follows the final ``last`` is a protocol error, not something left unread
"""

from __future__ import annotations

import time

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout

from colcomb.hdl.framing import batch_last_flags
from colcomb.sim.bench_run import load_run, write_result
from colcomb.sim.scoreboard import Scoreboard
from colcomb.sim.stream import StreamDriver, StreamMonitor
from colcomb.sim.timing import timing

PERIOD_NS = 10


@cocotb.test()
async def network_matches_golden_model(dut):
    """Every output word of every vector equals the golden model's."""
    run = load_run()
    cfg, expected = run.cfg, run.expected
    vectors, batch = run.vectors, run.batch
    in_beats, out_beats = run.in_beats, run.out_beats

    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    if hasattr(dut, "fast"):  # the harness (colcomb.sim.harness): its ports pass through to the design
        dut.fast.value = 0
        dut.go.value = 0
    driver = StreamDriver(dut, dut.clk, data_bits=run.payload_bits, period_ns=PERIOD_NS,
                          idle=cfg.get("idle", 0.0), seed=cfg.get("seed", 0))
    monitor = StreamMonitor(dut, dut.clk, data_bits=run.payload_bits, period_ns=PERIOD_NS,
                            stall=cfg.get("stall", 0.0), seed=cfg.get("seed", 0) + 1)
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)
    monitor.start()

    beats = run.input_beats()
    lasts = batch_last_flags(vectors, in_beats, batch)
    wall = time.perf_counter()
    start_cycle = get_sim_time("ns") / PERIOD_NS
    timed_out = False
    try:
        await with_timeout(_run(driver, monitor, beats, lasts, vectors * out_beats,
                                dut.clk, cfg.get("drain_cycles", 64)),
                           cfg.get("max_cycles", 10**7) * PERIOD_NS, "ns")
    except SimTimeoutError:
        timed_out = True
    wall = time.perf_counter() - wall
    sim_cycles = get_sim_time("ns") / PERIOD_NS - start_cycle

    words, padding = run.output_words([b.data for b in monitor.received])
    board = Scoreboard(expected)
    board.check(words, [b.last for b in monitor.received], batch, beat=run.beat, padding=padding)
    if timed_out:
        board.protocol_errors.append(
            f"timed out after {cfg.get('max_cycles')} cycles with {len(driver.sent)} of "
            f"{len(beats)} input and {len(monitor.received)} of {vectors * out_beats} output "
            f"beats transferred"
        )
    write_result(run, board, words, wall=wall, sim_cycles=sim_cycles,
                 timing=timing([b.cycle for b in driver.sent], [b.cycle for b in monitor.received], batch,
                               in_beats, out_beats, vectors))
    assert board.passed, board.summary()


async def _run(driver, monitor, beats, lasts, total, clk, drain: int) -> None:
    """Send every beat, wait for the expected output beats, then watch ``drain`` more cycles
    (the monitor keeps accepting) so that trailing beats are seen, not left in the design."""
    await driver.send(beats, lasts)
    await monitor.wait_for(total)
    await ClockCycles(clk, drain)
