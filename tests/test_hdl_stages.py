"""The sequencer's stages on their own, in the Amaranth simulator with small parameters: lane
fetch, accumulate and write-back, each against a plain-Python model of what it must do, with the
latencies the cycle model counts."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from colcomb.hdl.accumulate import Accumulate, result_layout
from colcomb.hdl.lane_fetch import BUFFER_READ_LATENCY, LaneFetch
from colcomb.hdl.program import bits_for, pack_array
from colcomb.hdl.write_back import WriteBack


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_lane_fetch_loads_each_lane_and_shifts_one_vector_per_cycle():
    cols, alpha, bits, batch, buffer_rows = 2, 2, 4, 3, 5
    rng = np.random.default_rng(1)
    buffer = rng.integers(-8, 8, (buffer_rows, batch))
    tiles = [[4, 0, 5, 2], [1, 1, 3, 5]]  # lane c*alpha+l sources; 5 = the zero lane
    sources = [pack_array(t, bits_for(buffer_rows)) for t in tiles]
    steps = cols * alpha + LaneFetch.latency
    dut = LaneFetch(cols=cols, alpha=alpha, data_bits=bits, batch=batch,
                    buffer_rows=buffer_rows, sources=sources, steps=steps)
    seen = []

    async def bench(ctx):
        ctl = dut.control
        for tile, lane_sources in enumerate(tiles):
            ctx.set(ctl.tile, tile)
            ctx.set(ctl.prep, 1)
            for step in range(steps):
                ctx.set(ctl.step, step)
                addr = ctx.get(dut.buffer.addr)
                await ctx.tick()
                assert BUFFER_READ_LATENCY == 1
                # past the buffer's rows (the zero lane) the memory returns anything
                row = buffer[addr] if addr < buffer_rows else np.full(batch, 7)
                ctx.set(dut.buffer.data, [int(v) for v in row])  # the row, one cycle later
            ctx.set(ctl.prep, 0)
            ctx.set(ctl.shift, 1)
            for vector in range(batch):
                got = [[ctx.get(dut.lanes[c][lane]) for lane in range(alpha)] for c in range(cols)]
                want = [[0 if lane_sources[c * alpha + lane] == buffer_rows
                         else int(buffer[lane_sources[c * alpha + lane], vector])
                         for lane in range(alpha)] for c in range(cols)]
                seen.append((got, want))
                await ctx.tick()
            ctx.set(ctl.shift, 0)

    _run(dut, bench)
    assert len(seen) == len(tiles) * batch
    for got, want in seen:
        assert got == want


def test_lane_fetch_refuses_a_prep_shorter_than_its_latency():
    with pytest.raises(ValueError, match="steps"):
        LaneFetch(cols=2, alpha=2, data_bits=4, batch=2, buffer_rows=4, sources=[0],
                  steps=2 * 2 + LaneFetch.latency - 1)


DESCRIPTOR = data.StructLayout({"first": 1, "last": 1, "rq": 2, "offset": 3, "count": 2,
                                "layer": 1})


def test_accumulate_sums_column_tiles_and_passes_on_the_last():
    rows, acc_bits, batch = 2, 10, 3
    descriptors = [  # a row tile in two column tiles, then a one-tile row tile
        {"first": 1, "last": 0, "rq": 0, "offset": 0, "count": 2, "layer": 0},
        {"first": 0, "last": 1, "rq": 0, "offset": 0, "count": 2, "layer": 0},
        {"first": 1, "last": 1, "rq": 1, "offset": 2, "count": 1, "layer": 1},
    ]
    dut = Accumulate(rows=rows, acc_bits=acc_bits, batch=batch, tiles=len(descriptors),
                     descriptor=DESCRIPTOR)
    rng = np.random.default_rng(2)
    sums = rng.integers(-200, 200, (len(descriptors), batch, rows))
    results = []

    async def bench(ctx):
        fed = 0
        tags = [(tile, n) for tile in range(len(descriptors)) for n in range(batch)]
        pending_descriptor = None
        for cycle in range(len(tags) + 6):
            if fed < len(tags):
                tile, n = tags[fed]
                ctx.set(dut.tag, {"valid": 1, "final": n == batch - 1, "n": n, "tile": tile})
                ctx.set(dut.sums, [int(v) for v in sums[tile, n]])
                fed += 1
            else:
                ctx.set(dut.tag, {"valid": 0, "final": 0, "n": 0, "tile": 0})
            addr = ctx.get(dut.descriptor.addr)
            if ctx.get(dut.result.valid):
                res = ctx.get(dut.result)
                results.append((cycle, res.n, res.final, res.offset, res.count, res.layer,
                                list(ctx.get(dut.total)), ctx.get(dut.busy)))
            await ctx.tick()
            pending_descriptor = descriptors[addr]
            ctx.set(dut.descriptor.data, pending_descriptor)  # the tile ROM, one cycle later

    _run(dut, bench)
    # tile 0 keeps its sums; tile 1 (last) emits running + its own; tile 2 emits its own
    expect = [(3 + n + Accumulate.latency, n, n == batch - 1, 0, 2, 0,
               [int(v) for v in sums[0, n] + sums[1, n]]) for n in range(batch)]
    expect += [(6 + n + Accumulate.latency, n, n == batch - 1, 2, 1, 1,
                [int(v) for v in sums[2, n]]) for n in range(batch)]
    assert [r[:7] for r in results] == expect
    assert all(r[7] for r in results)


def test_write_back_transposes_and_writes_the_valid_rows():
    rows, bits, batch, buffer_rows = 3, 4, 2, 6
    layout = result_layout(batch, DESCRIPTOR)
    dut = WriteBack(rows=rows, data_bits=bits, batch=batch, buffer_rows=buffer_rows,
                    result=layout)
    values = [[1, -2, 3], [-4, 5, -6]]  # vector n's outputs, row by row
    writes = []

    async def bench(ctx):
        for cycle in range(8):
            if cycle < batch:
                ctx.set(dut.result, {"valid": 1, "final": cycle == batch - 1, "n": cycle,
                                     "offset": 3, "count": 2, "layer": 0})
                ctx.set(dut.values, values[cycle])
            else:
                ctx.set(dut.result, {"valid": 0, "final": 0, "n": 0, "offset": 0, "count": 0,
                                     "layer": 0})
            port = dut.buffer
            if ctx.get(port.en):
                writes.append((cycle, ctx.get(port.addr), ctx.get(port.target),
                               list(ctx.get(port.data)), ctx.get(dut.busy)))
            else:
                assert not ctx.get(dut.busy)
            await ctx.tick()

    _run(dut, bench)
    first = batch - 1 + WriteBack.latency  # the cycle after the final vector arrived
    assert writes == [(first + r, 3 + r, 1, [values[0][r], values[1][r]], 1) for r in range(2)]


@pytest.mark.parametrize("make", [
    lambda: Accumulate(rows=2, acc_bits=8, batch=2, tiles=1,
                       descriptor=data.StructLayout({"first": 1, "last": 1})),
    lambda: WriteBack(rows=2, data_bits=4, batch=2, buffer_rows=4,
                      result=data.StructLayout({"valid": 1})),
])
def test_stages_refuse_layouts_without_their_fields(make):
    with pytest.raises(ValueError, match="lacks the fields"):
        make()
