"""The cell, the array and the requantizer in Amaranth's simulator, against numpy/golden."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal, signed
from amaranth.sim import Simulator

from colcomb.hdl.array import SystolicArray, psum_bits
from colcomb.hdl.cell import Cell
from colcomb.hdl.requant import Requantizer, SharedRequantizer
from colcomb.packer.golden import requantize
from colcomb.packer.packed import Requant


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("onehot", [False, True], ids=["binary", "onehot"])
@pytest.mark.parametrize("multiplier", ["dsp", "logic"])
@pytest.mark.parametrize("alpha", [1, 2, 3, 4, 8])
def test_cell_picks_lane_multiplies_and_adds(alpha, multiplier, onehot):
    rng = np.random.default_rng(alpha)
    dut = Cell(weight_bits=8, data_bits=8, alpha=alpha, psum_in_bits=19, psum_out_bits=20,
               multiplier=multiplier, onehot=onehot)
    checked = []

    async def bench(ctx):
        for _ in range(40):
            w = int(rng.integers(-128, 128))
            sel = int(rng.integers(0, alpha))
            select = 1 << sel if onehot else sel
            ctx.set(dut.w_in, {"weight": w, "select": select} if alpha > 1 else {"weight": w})
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            assert ctx.get(dut.w_out.weight) == w
            lanes = [int(v) for v in rng.integers(-128, 128, alpha)]
            psum = int(rng.integers(-(1 << 18), 1 << 18))
            ctx.set(dut.lanes, lanes)
            ctx.set(dut.psum_in, psum)
            await ctx.tick()
            expect = psum + w * lanes[sel]  # fits 20 bits: no wrap-around to model
            assert ctx.get(dut.psum_out) == expect
            checked.append(expect)

    _run(dut, bench)
    assert len(checked) == 40


@pytest.mark.parametrize("multiplier", ["dsp", "logic"])
def test_cell_extreme_weights_and_inputs(multiplier):
    """Every corner of the signed ranges, through both multipliers, at the narrowest widths."""
    dut = Cell(weight_bits=8, data_bits=8, alpha=2, psum_in_bits=16, psum_out_bits=17,
               multiplier=multiplier)
    corners = [-128, -127, -1, 0, 1, 127]

    async def bench(ctx):
        for w in corners:
            ctx.set(dut.w_in, {"weight": w, "select": 1})
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            for x in corners:
                for psum in (-(1 << 15), (1 << 15) - 1):
                    ctx.set(dut.lanes, [0, x])
                    ctx.set(dut.psum_in, psum)
                    await ctx.tick()
                    assert ctx.get(dut.psum_out) == psum + w * x, (w, x, psum)

    _run(dut, bench)


class _CellBank(Elaboratable):
    """``n`` logic-multiplier cells side by side on one lane, one partial sum and one ``load``:
    ``n`` products a cycle in the simulator."""

    def __init__(self, n: int, **kwargs):
        self.cells = [Cell(multiplier="logic", **kwargs) for _ in range(n)]
        self.load = Signal()
        self.lane = Signal(signed(kwargs["data_bits"]))
        self.psum = Signal(signed(max(1, kwargs["psum_in_bits"])))

    def elaborate(self, platform):
        m = Module()
        for i, cell in enumerate(self.cells):
            m.submodules[f"cell{i}"] = cell
            m.d.comb += [cell.load.eq(self.load), cell.lanes[0].eq(self.lane)]
            if cell.psum_in_bits:
                m.d.comb += cell.psum_in.eq(self.psum)
        return m


def _check_logic_products(weight_bits: int, data_bits: int, psum_in_bits: int, weights, lanes,
                          seed: int, bank: int = 16) -> int:
    """Every ``weights`` x ``lanes`` product through logic-multiplier cells (``bank`` weights
    loaded at a time), checked as ``psum_in + weight * lane`` against integer arithmetic with a
    random partial sum each cycle (none with ``psum_in_bits`` 0); returns the products checked."""
    product_bits = weight_bits + data_bits
    out_bits = max(product_bits, psum_in_bits) + 1 if psum_in_bits else product_bits
    dut = _CellBank(bank, weight_bits=weight_bits, data_bits=data_bits, psum_in_bits=psum_in_bits,
                    psum_out_bits=out_bits)
    rnd = random.Random(seed)
    room = (1 << (out_bits - 1)) - (1 << (product_bits - 2))  # |psum| that cannot wrap
    bound = min(room, 1 << (psum_in_bits - 1)) if psum_in_bits else 0
    weights = list(weights)
    checked = []

    async def bench(ctx):
        for start in range(0, len(weights), bank):
            group = weights[start:start + bank]
            for cell, w in zip(dut.cells, group, strict=False):
                ctx.set(cell.w_in, {"weight": w})
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            for x in lanes:
                psum = rnd.randrange(-bound, bound) if bound else 0
                ctx.set(dut.lane, x)
                ctx.set(dut.psum, psum)
                await ctx.tick()
                for cell, w in zip(dut.cells, group, strict=False):
                    got = ctx.get(cell.psum_out)
                    if got != psum + w * x:
                        raise AssertionError(f"{w} * {x} + {psum}: got {got}, want {psum + w * x}")
                    checked.append(got)

    _run(dut, bench)
    return len(checked)


def test_logic_multiplier_every_8_bit_weight_and_lane():
    """All 65,536 signed 8 x 8 products (-128 included), each added to a partial sum."""
    values = range(-128, 128)
    assert _check_logic_products(8, 8, 19, values, values, 8) == 65536


def test_logic_multiplier_left_edge_every_8_bit_weight():
    """The left edge (no incoming sum; the last adder only adds the recoding's carry): every
    weight against the corners and a spread of lanes."""
    lanes = [-128, -127, -65, -64, -2, -1, 0, 1, 2, 63, 64, 126, 127, *random.Random(5).sample(range(-128, 128), 19)]
    assert _check_logic_products(8, 8, 0, range(-128, 128), lanes, 9, bank=32) == 256 * 32


@pytest.mark.parametrize(("weight_bits", "data_bits"),
                         [(2, 2), (3, 5), (4, 4), (5, 3), (6, 4), (7, 3), (9, 2), (10, 2)])
@pytest.mark.parametrize("psum_in", [False, True], ids=["left-edge", "with-psum"])
def test_logic_multiplier_every_product_at_small_widths(weight_bits, data_bits, psum_in):
    """Every weight width takes its own path through the recoding (how many mode digits, an odd
    number of Booth bits): every product of the signed ranges."""
    ws = range(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1))
    xs = range(-(1 << (data_bits - 1)), 1 << (data_bits - 1))
    n = _check_logic_products(weight_bits, data_bits, weight_bits + data_bits + 1 if psum_in else 0,
                              ws, xs, weight_bits)
    assert n == len(ws) * len(xs)


@pytest.mark.parametrize(("weight_bits", "data_bits"), [(16, 16), (13, 11), (32, 32)])
def test_logic_multiplier_wide_operands(weight_bits, data_bits):
    """Wide operands: the extremes of both ranges and random values."""
    rnd = random.Random(weight_bits * 100 + data_bits)

    def corners(bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return [lo, lo + 1, -1, 0, 1, hi - 1, hi] + [rnd.randrange(lo, hi + 1) for _ in range(9)]

    ws, xs = corners(weight_bits), corners(data_bits)
    assert _check_logic_products(weight_bits, data_bits, weight_bits + data_bits + 2, ws, xs, 3, bank=8) == 16 * 16


def test_logic_multiplier_holds_no_mul_cell():
    """The logic cell must stay out of yosys' DSP mappers: no ``$mul`` in its netlist (the DSP
    cell, for contrast, has one)."""
    from amaranth.back import rtlil

    def netlist(multiplier):
        return rtlil.convert(Cell(alpha=8, psum_in_bits=19, psum_out_bits=19, multiplier=multiplier, onehot=True))

    assert "$mul" in netlist("dsp")
    assert "$mul" not in netlist("logic")


def test_cell_refuses_a_partial_sum_narrower_than_its_input():
    with pytest.raises(ValueError, match="psum_out_bits must be at least 19, not 18"):
        Cell(weight_bits=8, data_bits=8, psum_in_bits=19, psum_out_bits=18)
    with pytest.raises(ValueError, match="multiplier must be one of dsp, logic, not 'booth'"):
        Cell(multiplier="booth")


def test_partial_sums_grow_one_bit_per_doubling_up_to_the_accumulator():
    assert [psum_bits(8, 8, n) for n in (1, 2, 3, 4, 5, 8, 9, 64)] == [16, 17, 18, 18, 19, 19, 20, 22]
    assert psum_bits(8, 8, 64, acc_bits=20) == 20
    # the widest sum of n products fits: n * (-128 * -128) <= 2^(bits-1) - 1
    for n in range(1, 70):
        assert n * 128 * 128 <= (1 << (psum_bits(8, 8, n) - 1)) - 1


@pytest.mark.parametrize(
    ("kwargs", "exc", "quoted"),
    [
        ({"alpha": 0}, ValueError, "0"),
        ({"alpha": 2.5}, TypeError, "2.5"),
        ({"weight_bits": 1}, ValueError, "1"),
        ({"psum_in_bits": "32"}, TypeError, "'32'"),
    ],
)
def test_cell_rejects_bad_parameters(kwargs, exc, quoted):
    with pytest.raises(exc, match=quoted):
        Cell(**kwargs)


@pytest.mark.parametrize(("rows", "cols"), [(0, 2), (2, 0), (-1, 1)])
def test_array_rejects_bad_size(rows, cols):
    with pytest.raises(ValueError, match=str(min(rows, cols))):
        SystolicArray(rows=rows, cols=cols)


@pytest.mark.parametrize(("rows", "cols", "alpha", "dsp_cells"),
                         [(1, 1, 1, None), (3, 2, 4, 0), (2, 5, 2, 3), (4, 8, 8, None)])
def test_array_streams_one_vector_per_cycle(rows, cols, alpha, dsp_cells):
    """Load random cells, stream vectors back to back, get W x lanes[select] row sums."""
    rng = np.random.default_rng(rows * 10 + cols)
    dut = SystolicArray(rows=rows, cols=cols, alpha=alpha, acc_bits=24, dsp_cells=dsp_cells)
    assert dut.latency == cols
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


@pytest.mark.parametrize("stages", [2, 3])
def test_requantizer_equals_golden_requantize(stages):
    """Per-lane shifts that differ within one vector (0, 1, 15, 40, 62 side by side), exact
    halves (ties round up), the most negative sum, and each layer's clamp; in either pipeline."""
    rng = np.random.default_rng(7)
    lanes = 5
    clamps = [(-128, 127), (0, 127), (0, 48), (-5, 5)]
    dut = Requantizer(lanes=lanes, acc_bits=32, data_bits=8, max_shift=62, clamps=clamps, stages=stages)
    assert dut.latency == stages
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


@pytest.mark.parametrize(("rows", "steps", "gap", "stages"),
                         [(7, 3, 0, 2), (8, 8, 0, 2), (8, 8, 5, 2), (4, 1, 0, 2), (8, 8, 5, 3), (4, 1, 3, 3)])
def test_shared_requantizer_equals_golden_requantize(rows, steps, gap, stages):
    """Rows shared over fewer lanes: each vector's rows in ``steps`` cycles, vectors back to back
    (every ``steps`` cycles) or with idle cycles between; the bench plays the requant ROM (one
    cycle of latency, addressed from ``more``/``step`` as the sequencer does) and the
    accumulator (the step's rows in the step's cycle, junk otherwise). Outputs and the vector's
    meta against :func:`requantize` per vector; ``busy`` from each vector's first step to its
    outputs (the sequencer's end-of-layer wait counts on it)."""
    from amaranth.lib import data

    rng = np.random.default_rng(rows * 10 + steps)
    clamps = [(-128, 127), (0, 127)]
    meta = data.StructLayout({"tag": 8})
    dut = SharedRequantizer(rows=rows, steps=steps, acc_bits=24, data_bits=8, max_shift=30,
                            clamps=clamps, meta=meta, stages=stages)
    assert dut.latency == steps - 1 + stages
    lanes = dut.lanes
    assert lanes == -(-rows // steps)
    vectors = []
    for v in range(6):
        rq = Requant(bias=rng.integers(-2000, 2000, rows), multiplier=rng.integers(0, 1 << 12, rows),
                     shift=rng.integers(22, 31, rows), activation="none", clamp=clamps[v % 2])
        acc = rng.integers(-(1 << 20), 1 << 20, rows)

        class _L:
            requant = rq
            acc_bits = 24
            name = "t"

        vectors.append((v % 2, acc, rq, requantize(_L, acc[None, :])[0]))
    got, tags, busy, out_at = [], [], [], []

    def coefficients(v, step):
        rq = vectors[v][2]
        rows_of = [r for r in range(step * lanes, step * lanes + lanes)]
        pick = [r if r < rows else 0 for r in rows_of]
        return ([int(rq.bias[r]) for r in pick], [int(rq.multiplier[r]) for r in pick],
                [int(rq.shift[r]) for r in pick])

    async def bench(ctx):
        starts = {v * (steps + gap): v for v in range(len(vectors))}
        current = None  # the vector whose steps run
        word = (0, 0)  # (vector, step) the "ROM" was addressed with last cycle
        for t in range(len(vectors) * (steps + gap) + dut.latency + 2):
            if word is not None:
                bias, mult, shift = coefficients(*word)
                ctx.set(dut.bias, bias)
                ctx.set(dut.mult, mult)
                ctx.set(dut.shift, shift)
            v = starts.get(t)
            ctx.set(dut.valid, v is not None)
            if v is not None:
                layer, acc, _, _ = vectors[v]
                current = v
                ctx.set(dut.layer, layer)
                ctx.set(dut.meta, {"tag": 100 + v})
            k = t - (current or 0) * (steps + gap)  # the step of the current vector this cycle
            if current is not None and 0 <= k < steps:
                acc = vectors[current][1]
                ctx.set(dut.sums, [int(acc[r]) if r < rows else 0 for r in range(k * lanes, (k + 1) * lanes)])
            else:
                ctx.set(dut.sums, [int(x) for x in rng.integers(-999, 999, lanes)])
            # the address for next cycle: this vector's next word, or word 0 of the next vector
            if ctx.get(dut.more):
                word = (current, ctx.get(dut.step) + 1)
            else:
                nxt = starts.get(t + 1)
                word = (nxt, 0) if nxt is not None else None
            busy.append(ctx.get(dut.busy))
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append([ctx.get(dut.out[r]) for r in range(rows)])
                tags.append(ctx.get(dut.out_meta.tag))
                out_at.append(t + 1)

    _run(dut, bench)
    assert tags == [100 + v for v in range(len(vectors))]
    for v, end in enumerate(out_at):
        assert end - v * (steps + gap) == dut.latency
        assert all(busy[v * (steps + gap):end]), f"vector {v}: busy dropped while it was in flight"
    assert len(np.unique([v[3] for v in vectors])) > rows  # not all saturated
    assert np.array_equal(np.array(got), np.array([v[3] for v in vectors]))


@pytest.mark.parametrize("steps", [9, 5, 7])
def test_shared_requantizer_rejects_steps_without_a_row(steps):
    """8 rows in 9 steps, or in 5..7 (two lanes, which need only 4): some steps would have no
    row to requantize."""
    with pytest.raises(ValueError, match=f"steps {steps} leaves steps without a row"):
        SharedRequantizer(rows=8, steps=steps)


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


@pytest.mark.parametrize(("rows", "cols", "alpha", "data_bits"),
                         [(1, 1, 1, 8), (3, 4, 8, 8), (2, 3, 3, 4), (2, 2, 2, 2)])
def test_serial_array_streams_bit_planes(rows, cols, alpha, data_bits):
    """The bit-serial array: vectors enter one bit of every lane per cycle, LSB first, back to
    back; the row sums equal W x lanes[select] (numpy), extreme values included."""
    rng = np.random.default_rng(rows * 100 + cols * 10 + alpha)
    lo, hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
    dut = SystolicArray(rows=rows, cols=cols, alpha=alpha, data_bits=data_bits, acc_bits=24, cell="serial")
    assert dut.cycles_per_vector == data_bits and dut.latency == cols + 1
    w = rng.integers(-128, 128, (rows, cols))
    w[0, 0] = -128
    s = rng.integers(0, alpha, (rows, cols))
    n = 6
    xs = rng.integers(lo, hi + 1, (n, cols, alpha))
    xs[0], xs[1] = lo, hi
    picked = np.take_along_axis(xs[:, None, :, :], np.broadcast_to(s[None, :, :, None],
                                (n, rows, cols, 1)), axis=3)[..., 0]
    expect = (picked * w[None]).sum(axis=2)
    got = []

    async def bench(ctx):
        ctx.set(dut.load, 1)
        for r in reversed(range(rows)):
            ctx.set(dut.w_in, [{"weight": int(w[r, c]), "select": int(s[r, c])} if alpha > 1
                               else {"weight": int(w[r, c])} for c in range(cols)])
            await ctx.tick()
        ctx.set(dut.load, 0)
        for t in range(n * data_bits + dut.latency):
            v, b = divmod(t, data_bits)
            if v < n:
                ctx.set(dut.bit, b)
                ctx.set(dut.lanes_in, [[(int(xs[v, c, a]) >> b) & 1 for a in range(alpha)]
                                       for c in range(cols)])
            await ctx.tick()
            done = t + 1 - dut.latency  # the cycle whose bits entered latency cycles ago
            if done >= 0 and done % data_bits == data_bits - 1 and len(got) < n:
                got.append([ctx.get(dut.sums_out[r]) for r in range(rows)])

    _run(dut, bench)
    assert np.array_equal(np.array(got), expect)


def test_serial_cell_gates_the_weight_with_the_selected_bit():
    from colcomb.hdl.serial_cell import SerialCell

    dut = SerialCell(weight_bits=8, alpha=3, psum_in_bits=10, psum_out_bits=11)

    async def bench(ctx):
        ctx.set(dut.w_in, {"weight": -77, "select": 2})
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        for lanes, psum, expect in (([0, 0, 1], 5, -72), ([1, 1, 0], 5, 5), ([1, 1, 1], -512, -589)):
            ctx.set(dut.lanes, lanes)
            ctx.set(dut.psum_in, psum)
            await ctx.tick()
            assert ctx.get(dut.psum_out) == expect

    _run(dut, bench)


def _two_tiles_back_to_back(dut, rng, n: int, words) -> tuple[np.ndarray, np.ndarray]:
    """Two random tiles through ``dut`` back to back: each loads ``words(w, s)`` (its ``w_in``
    values in order, one a cycle) and streams ``n`` vectors right after. Returns the row sums of
    the ``2 n`` vectors and what they should be (each vector against its own tile's weights)."""
    rows, cols, alpha = dut.rows, dut.cols, dut.alpha
    tiles = [(rng.integers(-128, 128, (rows, cols)), rng.integers(0, alpha, (rows, cols))) for _ in range(2)]
    xs = rng.integers(-128, 128, (2, n, cols, alpha))
    expect = []
    for (w, s), x in zip(tiles, xs, strict=True):
        picked = np.take_along_axis(x[:, None, :, :], np.broadcast_to(s[None, :, :, None],
                                    (n, rows, cols, 1)), axis=3)[..., 0]
        expect.extend((picked * w[None]).sum(axis=2))
    schedule = []  # ("load", w_in value) or ("lanes", tile, vector)
    for k, (w, s) in enumerate(tiles):
        schedule += [("load", word) for word in words(w, s)]
        schedule += [("lanes", k, v) for v in range(n)]
    entered, got = [], {}

    async def bench(ctx):
        for t in range(len(schedule) + dut.latency + 1):
            ctx.set(dut.load, 0)
            if t < len(schedule):
                if schedule[t][0] == "load":
                    ctx.set(dut.load, 1)
                    ctx.set(dut.w_in, schedule[t][1])
                else:
                    _, k, v = schedule[t]
                    ctx.set(dut.lanes_in, [[int(x) for x in xs[k, v, c]] for c in range(cols)])
                    entered.append(t)
            await ctx.tick()
            for j, t0 in enumerate(entered):
                if t + 1 - dut.latency == t0:
                    got[j] = [ctx.get(dut.sums_out[r]) for r in range(rows)]

    _run(dut, bench)
    return np.array([got[j] for j in range(2 * n)]), np.array(expect)


def _row_words(w, s, r: int, alpha: int) -> list[dict]:
    """Row ``r``'s cell words (weight, and select where alpha > 1)."""
    return [{"weight": int(w[r, c]), "select": int(s[r, c])} if alpha > 1 else {"weight": int(w[r, c])}
            for c in range(w.shape[1])]


@pytest.mark.parametrize(("rows", "cols", "alpha"), [(1, 1, 1), (3, 4, 2), (2, 5, 8)])
@pytest.mark.parametrize("skewed", [True, False])
def test_array_skewed_loads_follow_the_last_vector(rows, cols, alpha, skewed):
    """With ``skewed_loads`` (and ``registered_lanes``) the next tile's cells load from the
    cycle after the previous tile's last vector entered, and every vector of both tiles still
    meets its own tile's weights; without the skew the same schedule overwrites the weights
    under the last vectors (where there are columns for them to be in flight)."""
    rng = np.random.default_rng(rows * 100 + cols * 10 + alpha)
    dut = SystolicArray(rows=rows, cols=cols, alpha=alpha, acc_bits=24, registered_lanes=True,
                        skewed_loads=skewed)
    assert dut.latency == cols + 1
    got, expect = _two_tiles_back_to_back(
        dut, rng, 4, lambda w, s: [_row_words(w, s, r, alpha) for r in reversed(range(rows))])
    # unskewed, only a one-column array has no vector in flight past the load
    assert np.array_equal(got, expect) == (skewed or cols == 1)


@pytest.mark.parametrize(("rows", "cols", "alpha", "k"), [(5, 3, 2, 2), (8, 2, 4, 2), (6, 2, 2, 3), (3, 2, 2, 3)])
def test_array_loads_several_rows_a_cycle(rows, cols, alpha, k):
    """``load_rows`` k: a tile loads in ceil(rows / k) cycles, each word k rows wide (row j of the
    word to row j, bottom rows first, the missing rows of a last partial word ignored), back to
    back with skewed loads; both tiles' vectors meet their own weights."""
    rng = np.random.default_rng(rows * 100 + cols * 10 + k)
    dut = SystolicArray(rows=rows, cols=cols, alpha=alpha, acc_bits=24, registered_lanes=True,
                        skewed_loads=True, load_rows=k)
    steps = -(-rows // k)
    junk = [{"weight": 99, "select": 1}] * cols  # a row beyond the array: shifted out unread

    def words(w, s):  # the word of rows k*i .. k*i + k - 1, the bottom rows' first
        return [[cell for r in range(k * i, k * i + k) for cell in (_row_words(w, s, r, alpha) if r < rows else junk)]
                for i in reversed(range(steps))]

    got, expect = _two_tiles_back_to_back(dut, rng, 3, words)
    assert np.array_equal(got, expect)


def test_array_refuses_more_load_rows_than_rows():
    with pytest.raises(ValueError, match="load_rows must be at most rows \\(2\\), not 3"):
        SystolicArray(rows=2, cols=2, load_rows=3)


@pytest.mark.parametrize("option", ["registered_lanes", "skewed_loads"])
def test_array_refuses_delaying_lanes_that_arrive_skewed(option):
    """The serial column-word fetch skews the lanes itself: the array cannot also delay them."""
    with pytest.raises(ValueError, match="skewed_input=True"):
        SystolicArray(rows=2, cols=2, cell="serial", skewed_input=True, **{option: True})
