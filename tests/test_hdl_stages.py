"""The sequencer's stages on their own, in the Amaranth simulator with small parameters: lane
fetch (against a model of the lane memory's read port), accumulate and write-back, each against a
plain-Python model of what it must do, with the latencies the cycle model counts."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import data
from amaranth.sim import Simulator

from colcomb.hdl.accumulate import Accumulate, result_layout
from colcomb.hdl.lane_fetch import LaneFetch
from colcomb.hdl.write_back import WriteBack


def _run(dut, bench):
    m = Module()  # a sync domain even for a combinational stage (the parallel lane fetch)
    m.submodules.dut = dut
    tick = Signal()
    m.d.sync += tick.eq(~tick)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


async def _tick_with_memory(ctx, port, memory, held):
    """One clock cycle of the lane memory's synchronous read port: the word addressed while ``en``
    is high arrives on ``data`` the next cycle and stays while ``en`` is low."""
    addr, en = ctx.get(port.addr), ctx.get(port.en)
    await ctx.tick()
    if en:
        held[0] = memory[addr]
    ctx.set(port.data, held[0])


@pytest.mark.parametrize(("serial", "parts"), [(False, 1), (True, 1), (True, 2), (True, 4)])
def test_lane_fetch_reads_each_vector_lanes_from_the_memory(serial, parts):
    cols, alpha, bits, batch = 3, 2, 5, 3
    lpp = -(-cols * alpha // parts)
    rng = np.random.default_rng(parts)
    depth = 40
    memory = rng.integers(-16, 16, (depth, lpp)).tolist()
    dut = LaneFetch(cols=cols, alpha=alpha, data_bits=bits, batch=batch, parts=parts,
                    address_bits=6, serial=serial)
    per_vector = bits if serial else 1
    seen = []

    def lane_word(base, n, i):
        return memory[base + n * parts + i // lpp][i % lpp]

    async def bench(ctx):
        ctl, held = dut.control, [[0] * lpp]
        for base in (4, 4 + batch * parts):  # two tiles
            ctx.set(ctl.base, base)
            # fetch vector n lead cycles before its first cycle; vectors follow back to back
            start = dut.lead
            for cycle in range(start + batch * per_vector):
                n_in, bit = divmod(cycle - start, per_vector)
                fetch_n = next((n for n in range(batch) if cycle == start + n * per_vector - dut.lead), None)
                ctx.set(ctl.fetch, fetch_n is not None)
                ctx.set(ctl.n, fetch_n or 0)
                ctx.set(ctl.bit, max(bit, 0))
                if cycle >= start:
                    got = [[ctx.get(dut.lanes[c][lane]) for lane in range(alpha)] for c in range(cols)]
                    want = [[lane_word(base, n_in, c * alpha + lane) for lane in range(alpha)]
                            for c in range(cols)]
                    if serial:
                        want = [[(w >> bit) & 1 for w in col] for col in want]
                    seen.append((got, want))
                await _tick_with_memory(ctx, dut.memory, memory, held)

    _run(dut, bench)
    assert len(seen) == 2 * batch * per_vector
    for got, want in seen:
        assert got == want


@pytest.mark.parametrize(("cols", "bits"), [(4, 5), (2, 2), (1, 3)])
def test_lane_fetch_column_words_stagger_like_the_skew(cols, bits):
    """Serial column words: column ``c`` shows bit ``b`` of vector ``n`` in cycle
    ``start + n * bits + b + c`` (the skew the array would otherwise add), read from word ``c``
    of the vector, with vectors back to back and two tiles."""
    alpha, batch = 3, 3
    rng = np.random.default_rng(cols)
    depth = 64
    memory = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (depth, alpha)).tolist()
    dut = LaneFetch(cols=cols, alpha=alpha, data_bits=bits, batch=batch, parts=cols,
                    address_bits=6, serial=True, staggered=True)
    assert dut.lead == 2
    checked = 0

    async def bench(ctx):
        nonlocal checked
        ctl, held = dut.control, [[0] * alpha]
        for base in (4, 4 + batch * cols):  # two tiles
            ctx.set(ctl.base, base)
            start = dut.lead
            for cycle in range(start + batch * bits + cols):
                fetch_n = next((n for n in range(batch) if cycle == start + n * bits - dut.lead), None)
                ctx.set(ctl.fetch, fetch_n is not None)
                ctx.set(ctl.n, fetch_n or 0)
                for c in range(cols):
                    n, bit = divmod(cycle - start - c, bits)
                    if cycle - start - c < 0 or n >= batch:
                        continue
                    want = [(memory[base + n * cols + c][a] >> bit) & 1 for a in range(alpha)]
                    assert [ctx.get(dut.lanes[c][a]) for a in range(alpha)] == want, (cycle, c)
                    checked += 1
                await _tick_with_memory(ctx, dut.memory, memory, held)

    _run(dut, bench)
    assert checked == 2 * batch * bits * cols


def test_lane_fetch_refuses_column_words_it_cannot_stagger():
    with pytest.raises(ValueError, match="parts == cols <= data_bits"):
        LaneFetch(cols=8, alpha=2, data_bits=4, batch=2, parts=8, address_bits=4, serial=True,
                  staggered=True)


def test_lane_fetch_refuses_parts_on_the_parallel_array():
    with pytest.raises(ValueError, match="parts"):
        LaneFetch(cols=2, alpha=2, data_bits=4, batch=2, parts=2, address_bits=4)
    with pytest.raises(ValueError, match="power of two"):
        LaneFetch(cols=2, alpha=2, data_bits=4, batch=2, parts=3, address_bits=4, serial=True)


DESCRIPTOR = data.StructLayout({"first": 1, "last": 1, "rq": 2, "wr_first": 3, "wr_count": 2,
                                "layer": 1})


def test_accumulate_sums_column_tiles_and_passes_on_the_last():
    rows, acc_bits, batch = 2, 10, 3
    descriptors = [  # a row tile in two column tiles, then a one-tile row tile
        {"first": 1, "last": 0, "rq": 0, "wr_first": 0, "wr_count": 2, "layer": 0},
        {"first": 0, "last": 1, "rq": 0, "wr_first": 0, "wr_count": 2, "layer": 0},
        {"first": 1, "last": 1, "rq": 1, "wr_first": 2, "wr_count": 1, "layer": 1},
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
                ctx.set(dut.tag, {"valid": 1, "final": n == batch - 1, "tile": tile})
                ctx.set(dut.sums, [int(v) for v in sums[tile, n]])
                fed += 1
            else:
                ctx.set(dut.tag, {"valid": 0, "final": 0, "tile": 0})
            addr = ctx.get(dut.descriptor.addr)
            if ctx.get(dut.result.valid):
                res = ctx.get(dut.result)
                results.append((cycle, res.final, res.wr_first, res.wr_count, res.layer,
                                list(ctx.get(dut.total)), ctx.get(dut.busy)))
            await ctx.tick()
            pending_descriptor = descriptors[addr]
            ctx.set(dut.descriptor.data, pending_descriptor)  # the tile ROM, one cycle later

    _run(dut, bench)
    # tile 0 keeps its sums; tile 1 (last) emits running + its own; tile 2 emits its own
    # (the accumulator memory is addressed by the vector's count: tile 1 finds tile 0's sums)
    expect = [(3 + n + Accumulate.latency, n == batch - 1, 0, 2, 0,
               [int(v) for v in sums[0, n] + sums[1, n]]) for n in range(batch)]
    expect += [(6 + n + Accumulate.latency, n == batch - 1, 2, 1, 1,
                [int(v) for v in sums[2, n]]) for n in range(batch)]
    assert [r[:6] for r in results] == expect
    assert all(r[6] for r in results)


def test_write_back_writes_each_vector_into_its_row_tile_words():
    rows, bits, lpp, parts = 3, 5, 4, 2
    address_bits = 6
    # row tile 0 writes two words per vector, row tile 1 one
    words = [(5, 0b1010), (9, 0b0001), (20, 0b0111)]
    rom = [addr | (mask << address_bits) for addr, mask in words]
    layout = result_layout(DESCRIPTOR)
    dut = WriteBack(rows=rows, data_bits=bits, batch=4, lanes_per_part=lpp, parts=parts,
                    address_bits=address_bits, writes=rom, result=layout)
    values = {(0, n): [n + 1, -n - 2, 3] for n in range(2)} | {(1, n): [-7, n, 4] for n in range(2)}
    # cycle: (row tile, vector n, words); each row tile's vectors in order, final on the last
    arrivals = {0: (0, 0, 2), 2: (0, 1, 2), 4: (1, 0, 1), 5: (1, 1, 1)}
    firsts = {0: 0, 1: 2}
    writes = []

    async def bench(ctx):
        for cycle in range(10):
            if cycle in arrivals:
                tile, n, count = arrivals[cycle]
                ctx.set(dut.result, {"valid": 1, "final": n == 1, "wr_first": firsts[tile],
                                     "wr_count": count, "layer": 0})
                ctx.set(dut.values, values[tile, n])
            else:
                ctx.set(dut.result, {"valid": 0, "final": 0, "wr_first": 0, "wr_count": 0,
                                     "layer": 0})
            mask = ctx.get(dut.memory.mask)
            if mask:
                writes.append((cycle, ctx.get(dut.memory.addr), mask, list(ctx.get(dut.memory.data))))
                assert ctx.get(dut.busy)
            await ctx.tick()

    _run(dut, bench)
    expect = []
    for cycle, (tile, n, count) in sorted(arrivals.items()):
        for k in range(count):
            addr, mask = words[firsts[tile] + k]
            slots = [values[tile, n][s % rows] for s in range(lpp)]
            expect.append((cycle + WriteBack.latency + k, addr + n * parts, mask, slots))
    assert writes == expect


@pytest.mark.parametrize("make", [
    lambda: Accumulate(rows=2, acc_bits=8, batch=2, tiles=1,
                       descriptor=data.StructLayout({"first": 1, "last": 1})),
    lambda: WriteBack(rows=2, data_bits=4, batch=2, lanes_per_part=2, parts=1, address_bits=3, writes=[0],
                      result=data.StructLayout({"valid": 1})),
])
def test_stages_refuse_layouts_without_their_fields(make):
    with pytest.raises(ValueError, match="lacks the fields"):
        make()


@pytest.mark.parametrize("late", [False, True], ids=["sums-with-tag", "sums-late"])
def test_accumulate_batch_one_reads_the_sum_written_the_cycle_before(late):
    """Batch 1, three column tiles back to back: each tile's O reads the address the previous
    tile's P1 writes in the same cycle, so the read must see the new sum (the read port is
    transparent for the write port); with ``sums_late`` the sums come a cycle after the tag."""
    descs = [{"first": 1, "last": 0, "rq": 0, "wr_first": 0, "wr_count": 1, "layer": 0},
             {"first": 0, "last": 0, "rq": 0, "wr_first": 0, "wr_count": 1, "layer": 0},
             {"first": 0, "last": 1, "rq": 1, "wr_first": 0, "wr_count": 1, "layer": 0}]
    dut = Accumulate(rows=1, acc_bits=12, batch=1, tiles=3, descriptor=DESCRIPTOR, sums_late=late)
    sums = [5, 7, 100]
    got = []

    async def bench(ctx):
        for cycle in range(8):
            t = cycle if cycle < 3 else None
            ctx.set(dut.tag, {"valid": t is not None, "final": 1, "tile": t or 0})
            s = cycle - 1 if late else cycle
            ctx.set(dut.sums, [sums[s] if 0 <= s < 3 else 0])
            addr = ctx.get(dut.descriptor.addr)
            if ctx.get(dut.result.valid):
                got.append(ctx.get(dut.total[0]))
            await ctx.tick()
            ctx.set(dut.descriptor.data, descs[addr])

    _run(dut, bench)
    assert got == [sum(sums)]


@pytest.mark.parametrize(("rows", "steps"), [(5, 3), (8, 8), (4, 2)])
def test_accumulate_in_steps_keeps_a_group_of_rows_a_word(rows, steps):
    """The serial array's accumulator (``steps > 1``): tags ``steps`` cycles apart, sums a cycle
    late; group ``g`` of a vector's totals is final ``g`` cycles after ``result.valid`` (when the
    shared requantizer reads it) and equals the column tiles' sums."""
    acc_bits, batch = 10, 3
    descriptors = [
        {"first": 1, "last": 0, "rq": 0, "wr_first": 0, "wr_count": 2, "layer": 0},
        {"first": 0, "last": 0, "rq": 0, "wr_first": 0, "wr_count": 2, "layer": 0},
        {"first": 0, "last": 1, "rq": 0, "wr_first": 0, "wr_count": 2, "layer": 0},
        {"first": 1, "last": 1, "rq": 1, "wr_first": 2, "wr_count": 1, "layer": 1},
    ]
    dut = Accumulate(rows=rows, acc_bits=acc_bits, batch=batch, tiles=len(descriptors),
                     descriptor=DESCRIPTOR, sums_late=True, steps=steps)
    group = -(-rows // steps)
    rng = np.random.default_rng(rows * 10 + steps)
    sums = rng.integers(-60, 60, (len(descriptors), batch, rows))
    tags = [(tile, n) for tile in range(len(descriptors)) for n in range(batch)]
    results, totals = [], {}

    async def bench(ctx):
        for cycle in range(len(tags) * steps + steps + 4):
            k, phase = divmod(cycle, steps)
            tagged = phase == 0 and k < len(tags)
            tile, n = tags[k] if k < len(tags) else (0, 0)
            ctx.set(dut.tag, {"valid": tagged, "final": n == batch - 1, "tile": tile})
            late = (cycle - 1) // steps if (cycle - 1) % steps == 0 else None  # the tag's sums, a cycle on
            ctx.set(dut.sums, [int(v) for v in sums[tags[late]]] if late is not None and late < len(tags)
                    else [0] * rows)
            addr = ctx.get(dut.descriptor.addr)
            if ctx.get(dut.result.valid):
                res = ctx.get(dut.result)
                results.append((cycle, res.final, res.wr_first, res.layer))
            for start, *_ in results:  # group g of the latest result, g cycles after it
                g = cycle - start
                if 0 <= g < steps:
                    totals[start, g] = [ctx.get(dut.total[i]) for i in range(min(group, rows - g * group))]
            await ctx.tick()
            ctx.set(dut.descriptor.data, descriptors[addr])

    _run(dut, bench)
    finished = [(2, n) for n in range(batch)] + [(3, n) for n in range(batch)]
    assert [(r[1], r[2], r[3]) for r in results] == [(n == batch - 1, 0 if t == 2 else 2, 0 if t == 2 else 1)
                                                    for t, n in finished]
    for (t, n), (start, *_) in zip(finished, results, strict=True):
        want = sums[:3, n].sum(axis=0) if t == 2 else sums[3, n]
        assert start == 1 + tags.index((t, n)) * steps + 1  # P1 the cycle after the sums: as with one step
        for g in range(steps):
            assert totals[start, g] == [int(v) for v in want[g * group:(g + 1) * group]]


def test_accumulate_steps_need_late_sums_and_rows_in_every_step():
    with pytest.raises(ValueError, match="sums_late"):
        Accumulate(rows=4, acc_bits=8, batch=2, tiles=1, descriptor=DESCRIPTOR, steps=2)
    with pytest.raises(ValueError, match="leaves steps without a row"):
        Accumulate(rows=4, acc_bits=8, batch=2, tiles=1, descriptor=DESCRIPTOR, sums_late=True, steps=3)
