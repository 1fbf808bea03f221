"""The cell, the array and the requantizer in Amaranth's simulator, against numpy/golden."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from colcomb.hdl.array import SystolicArray
from colcomb.hdl.cell import Cell
from colcomb.hdl.requant import Requantizer
from colcomb.packer.golden import requantize
from colcomb.packer.packed import Requant


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("alpha", [1, 2, 3, 4, 8])
def test_cell_picks_lane_multiplies_and_passes_through(alpha):
    rng = np.random.default_rng(alpha)
    dut = Cell(weight_bits=8, data_bits=8, acc_bits=20, alpha=alpha)
    checked = []

    async def bench(ctx):
        for _ in range(40):
            w = int(rng.integers(-128, 128))
            sel = int(rng.integers(0, alpha))
            ctx.set(dut.w_in, {"weight": w, "select": sel} if alpha > 1 else {"weight": w})
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            assert ctx.get(dut.w_out.weight) == w
            lanes = [int(v) for v in rng.integers(-128, 128, alpha)]
            psum = int(rng.integers(-(1 << 18), 1 << 18))
            ctx.set(dut.lanes_in, lanes)
            ctx.set(dut.psum_in, psum)
            await ctx.tick()
            expect = psum + w * lanes[sel]
            expect = (expect + (1 << 19)) % (1 << 20) - (1 << 19)  # 20-bit two's complement
            assert ctx.get(dut.psum_out) == expect
            assert [ctx.get(dut.lanes_out[i]) for i in range(alpha)] == lanes
            checked.append(expect)

    _run(dut, bench)
    assert len(checked) == 40


def test_cell_most_negative_weight_and_input():
    dut = Cell(weight_bits=8, data_bits=8, acc_bits=32, alpha=2)

    async def bench(ctx):
        ctx.set(dut.w_in, {"weight": -128, "select": 1})
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        ctx.set(dut.lanes_in, [127, -128])
        ctx.set(dut.psum_in, -(1 << 31) + 16384)
        await ctx.tick()
        assert ctx.get(dut.psum_out) == -(1 << 31) + 16384 + 16384

    _run(dut, bench)


@pytest.mark.parametrize(
    ("kwargs", "exc", "quoted"),
    [
        ({"alpha": 0}, ValueError, "0"),
        ({"alpha": 2.5}, TypeError, "2.5"),
        ({"weight_bits": 1}, ValueError, "1"),
        ({"acc_bits": "32"}, TypeError, "'32'"),
    ],
)
def test_cell_rejects_bad_parameters(kwargs, exc, quoted):
    with pytest.raises(exc, match=quoted):
        Cell(**kwargs)


@pytest.mark.parametrize(("rows", "cols"), [(0, 2), (2, 0), (-1, 1)])
def test_array_rejects_bad_size(rows, cols):
    with pytest.raises(ValueError, match=str(min(rows, cols))):
        SystolicArray(rows=rows, cols=cols)


@pytest.mark.parametrize(("rows", "cols", "alpha"), [(1, 1, 1), (3, 2, 4), (2, 5, 2)])
def test_array_streams_one_vector_per_cycle(rows, cols, alpha):
    """Load random cells, stream vectors back to back, get W x lanes[select] row sums."""
    rng = np.random.default_rng(rows * 10 + cols)
    dut = SystolicArray(rows=rows, cols=cols, alpha=alpha, acc_bits=24)
    w = rng.integers(-128, 128, (rows, cols))
    s = rng.integers(0, alpha, (rows, cols))
    xs = rng.integers(-128, 128, (12, cols, alpha))
    picked = np.take_along_axis(xs[:, None, :, :], np.broadcast_to(s[None, :, :, None],
                                (12, rows, cols, 1)), axis=3)[..., 0]
    expect = (picked * w[None]).sum(axis=2)
    got = []

    async def bench(ctx):
        ctx.set(dut.load, 1)
        for r in reversed(range(rows)):  # bottom row first
            ctx.set(dut.w_in, [{"weight": int(w[r, c]), "select": int(s[r, c])} if alpha > 1
                               else {"weight": int(w[r, c])} for c in range(cols)])
            await ctx.tick()
        ctx.set(dut.load, 0)
        for t in range(12 + dut.latency):
            if t < 12:
                ctx.set(dut.lanes_in, [[int(v) for v in xs[t, c]] for c in range(cols)])
            await ctx.tick()
            if t + 1 >= dut.latency and len(got) < 12:
                got.append([ctx.get(dut.sums_out[r]) for r in range(rows)])

    _run(dut, bench)
    assert np.array_equal(np.array(got), expect)


def test_requantizer_equals_golden_requantize():
    """Per-lane shifts that differ within one vector (0, 1, 15, 40, 62 side by side), exact
    halves (ties round up), the most negative sum, and each layer's clamp."""
    rng = np.random.default_rng(7)
    lanes = 5
    clamps = [(-128, 127), (0, 127), (0, 48), (-5, 5)]
    dut = Requantizer(lanes=lanes, acc_bits=32, data_bits=8, max_shift=62, clamps=clamps)
    cases = []
    for layer, clamp in enumerate(clamps):
        for k in range(16):
            acc = rng.integers(-(1 << 30), 1 << 30, lanes)
            bias = rng.integers(-(1 << 30), 1 << 30, lanes)
            mult = rng.integers(0, 1 << 16, lanes)
            shift = rng.permutation([0, 1, 15, 40, 62]) if k % 2 else rng.integers(0, 63, lanes)
            if k == 0:  # exact halves: ties round up
                shift = np.array([1, 2, 7, 20, 29])
                acc = np.array([1, -1, 3, -3, -5]) * (1 << (shift - 1))
                bias[:] = 0
                mult[:] = 1
            if k == 1:
                acc[:] = -(1 << 30)
                bias[:] = -(1 << 30)  # most negative accumulator + bias
                mult[:] = (1 << 16) - 1
            rq = Requant(bias=bias, multiplier=mult, shift=shift, activation="none", clamp=clamp)

            class _L:
                requant = rq
                acc_bits = 32
                name = "t"

            cases.append((layer, acc, bias, mult, shift, requantize(_L, acc[None, :])[0]))
    got = []

    async def bench(ctx):
        for t in range(len(cases) + dut.latency):
            if t < len(cases):
                layer, acc, bias, mult, shift, _ = cases[t]
                ctx.set(dut.valid, 1)
                ctx.set(dut.layer, layer)
                ctx.set(dut.sums, [int(v) for v in acc])
                ctx.set(dut.bias, [int(v) for v in bias])
                ctx.set(dut.mult, [int(v) for v in mult])
                ctx.set(dut.shift, [int(v) for v in shift])
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append([ctx.get(dut.out[i]) for i in range(lanes)])

    _run(dut, bench)
    expect = np.array([c[5] for c in cases])
    assert len({tuple(v) for v in expect}) > len(cases) // 2  # the cases do not all saturate
    assert np.array_equal(np.array(got), expect)


def test_requantizer_rejects_bad_clamp():
    with pytest.raises(ValueError, match=r"\(0, 300\)"):
        Requantizer(lanes=1, max_shift=0, clamps=[(0, 300)])


def test_requantizer_rejects_bad_shift():
    with pytest.raises(ValueError, match="63"):
        Requantizer(lanes=1, max_shift=63)


def test_requantizer_without_shifter_when_every_shift_is_zero():
    """max_shift = 0 builds no shifter: y = clamp(sum + bias) * mult, as the golden model."""
    rng = np.random.default_rng(3)
    dut = Requantizer(lanes=3, acc_bits=20, data_bits=8, max_shift=0, clamps=[(-128, 127)])
    acc = rng.integers(-300, 300, (10, 3))
    bias = rng.integers(-40, 40, 3)
    mult = np.array([0, 1, 2])
    rq = Requant(bias=bias, multiplier=mult, shift=0, activation="none", clamp=(-128, 127))

    class _L:
        requant = rq
        acc_bits = 20
        name = "t"

    expect = requantize(_L, acc)
    got = []

    async def bench(ctx):
        ctx.set(dut.bias, [int(v) for v in bias])
        ctx.set(dut.mult, [int(v) for v in mult])
        for t in range(len(acc) + dut.latency):
            ctx.set(dut.valid, int(t < len(acc)))
            if t < len(acc):
                ctx.set(dut.sums, [int(v) for v in acc[t]])
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append([ctx.get(dut.out[i]) for i in range(3)])

    _run(dut, bench)
    assert len(np.unique(expect)) > 5 and np.array_equal(np.array(got), expect)
