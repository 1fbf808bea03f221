"""The output stage of a layer: bias, integer multiplier, shift with round half up, clamp.

:class:`Requantizer` is ``lanes`` parallel requantizers; :class:`SharedRequantizer` runs a
vector's ``rows`` sums through fewer lanes over several cycles, for an array whose vectors come
no more often than that (the serial array: one every ``data_bits`` cycles), so 8 rows take one
lane, one multiplier, instead of eight.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated
from colcomb.hdl.pipeline import delay
from colcomb.hdl.program import REQUANT_STAGES, bits_for
from colcomb.packer.packed import MAX_SHIFT, MULTIPLIER_BITS

__all__ = ["Requantizer", "SharedRequantizer"]


class Requantizer(wiring.Component):
    """``lanes`` parallel requantizers, pipelined, :attr:`latency` = ``stages`` cycles.

    For each lane: ``y = (sum + bias) * mult``; ``y = (y + 2**(shift-1)) >> shift`` (arithmetic
    shift, i.e. round half up; no rounding term when ``shift == 0``); clamp to ``[lo, hi]``.
    Bias, multiplier and shift come per lane (the row's, from the requantization ROM); the clamp
    per layer (constants chosen by ``layer``). Exactly :func:`colcomb.packer.golden.requantize`.

    The per-row shift is a barrel shifter after the multiplier. Rounding needs no variable
    constant: ``((2 y) >> shift) + 1) >> 1`` equals ``(y + 2**(shift-1)) >> shift`` for
    ``shift >= 1`` and ``y`` for ``shift == 0``.

    Parameters
    ----------
    lanes : int
        Values per cycle (the array's rows).
    acc_bits, data_bits : int
        Width of the sums and biases; width of the outputs.
    max_shift : int
        Largest shift any row uses (0..62); sizes the ``shift`` inputs and the barrel shifter.
    clamps : sequence of (int, int)
        Clamp bounds of each layer, inside the ``data_bits`` range.
    stages : int
        Pipeline depth, one of :data:`REQUANT_STAGES`: 2 (the product, then the shift, rounding
        and clamp), or 3 (a register after the shift: the rounding and clamp get a cycle of their
        own, a shorter critical path where the shifter and the clamp's comparisons are slow).

    Members
    -------
    valid : ``In(1)``
        The inputs hold a value to requantize.
    layer : ``In(range(len(clamps)))``
        Which layer's clamp applies.
    sums, bias : ``In(ArrayLayout(signed(acc_bits), lanes))``
        Accumulator values and biases.
    mult : ``In(ArrayLayout(unsigned(16), lanes))``
        Multipliers.
    shift : ``In(ArrayLayout(unsigned(bits_for(max_shift)), lanes))``
        Right shifts.
    out_valid : ``Out(1)``
        ``valid`` delayed by :attr:`latency`.
    out : ``Out(ArrayLayout(signed(data_bits), lanes))``
        The requantized values of the inputs :attr:`latency` cycles before.
    """

    @validated
    def __init__(self, *, lanes: int, acc_bits: int = 32, data_bits: int = 8,
                 max_shift: int = 0, clamps: Sequence[tuple[int, int]] = ((-128, 127),), stages: int = 2):
        if stages not in REQUANT_STAGES:
            raise ValueError(f"stages must be one of {REQUANT_STAGES}, not {stages!r}")
        #: cycles from ``valid`` to ``out_valid``
        self.latency = stages
        self.lanes = check_int("lanes", lanes)
        self.acc_bits = check_int("acc_bits", acc_bits, 2)
        self.data_bits = check_int("data_bits", data_bits, 2)
        self.max_shift = check_int("max_shift", max_shift, 0)
        if self.max_shift > MAX_SHIFT:
            raise ValueError(f"max_shift {max_shift!r} is outside [0, {MAX_SHIFT}]")
        self.clamps = tuple((int(lo), int(hi)) for lo, hi in clamps)
        if not self.clamps:
            raise ValueError(f"need one clamp per layer, got clamps={clamps!r}")
        d_lo, d_hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
        for lo, hi in self.clamps:
            if not d_lo <= lo <= hi <= d_hi:
                raise ValueError(f"clamp {(lo, hi)!r} is not an ordered range inside the "
                                 f"{data_bits}-bit output [{d_lo}, {d_hi}]")
        super().__init__({
            "valid": In(1),
            "layer": In(range(max(2, len(self.clamps)))),
            "sums": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "bias": In(data.ArrayLayout(signed(acc_bits), lanes)),
            "mult": In(data.ArrayLayout(unsigned(MULTIPLIER_BITS), lanes)),
            "shift": In(data.ArrayLayout(unsigned(bits_for(self.max_shift)), lanes)),
            "out_valid": Out(1),
            "out": Out(data.ArrayLayout(signed(data_bits), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        prod_bits = self.acc_bits + 1 + MULTIPLIER_BITS + 1
        # the layer (its clamp) and valid follow the value through the stages
        layer_at = delay(m, self.layer, self.latency - 1, "layer_at")
        m.d.comb += self.out_valid.eq(delay(m, self.valid, self.latency, "valid_at"))

        lo = Array(Const(c[0], signed(self.data_bits)) for c in self.clamps)
        hi = Array(Const(c[1], signed(self.data_bits)) for c in self.clamps)
        for i in range(self.lanes):
            prod = Signal(signed(prod_bits), name=f"prod_{i}")
            shift = Signal.like(self.shift[i], name=f"shift_{i}")
            m.d.sync += [prod.eq((self.sums[i] + self.bias[i]) * self.mult[i]),
                         shift.eq(self.shift[i])]
            halves = Signal(signed(prod_bits + 1), name=f"halves_{i}")  # y / 2**(shift-1)
            doubled = Cat(Const(0, 1), prod).as_signed()
            # no shifter at all when every row's shift is 0 (the ROM field then holds 0)
            shifted = doubled >> shift if self.max_shift else doubled
            if self.latency == 3:
                m.d.sync += halves.eq(shifted)
            else:
                m.d.comb += halves.eq(shifted)
            rounded = Signal(signed(prod_bits + 1), name=f"rounded_{i}")
            m.d.comb += rounded.eq((halves + 1) >> 1)
            with m.If(rounded < lo[layer_at]):
                m.d.sync += self.out[i].eq(lo[layer_at])
            with m.Elif(rounded > hi[layer_at]):
                m.d.sync += self.out[i].eq(hi[layer_at])
            with m.Else():
                m.d.sync += self.out[i].eq(rounded)
        return m


class SharedRequantizer(wiring.Component):
    """A vector's ``rows`` row sums requantized ``lanes = ceil(rows / steps)`` at a time, in
    ``steps`` cycles.

    Step ``k`` requantizes rows ``k * lanes .. k * lanes + lanes - 1`` with the coefficients the
    caller presents that cycle: word ``k`` of the row tile's ``steps`` requant ROM words, which
    the caller reads one cycle ahead (``more``/``step`` say which). A new vector may come every
    ``steps`` cycles; ``sums`` holds the step's rows in the step's cycle (the accumulator makes
    them a group a cycle, :class:`~colcomb.hdl.accumulate.Accumulate` ``steps``), ``layer`` and
    ``meta`` hold until the next ``valid`` (the accumulator's output registers do). With
    ``steps == 1`` it is exactly :class:`Requantizer`.

    Parameters
    ----------
    rows, steps : int
        Row sums per vector and cycles per vector (``lanes = ceil(rows / steps)``).
    acc_bits, data_bits, max_shift, clamps :
        As for :class:`Requantizer`.
    meta : Layout
        What travels with a vector (its write-back descriptor), handed out with its outputs.
    stages : int
        The lanes' pipeline depth (:class:`Requantizer`).

    Members
    -------
    valid : ``In(1)``
        A vector's ``sums`` are in (step 0 runs this cycle).
    layer : ``In(range(len(clamps)))``
    sums : ``In(ArrayLayout(signed(acc_bits), lanes))``
        The rows of this cycle's step (all rows when ``steps == 1``).
    meta : ``In(meta)``
    more : ``Out(1)``
        A further step of this vector runs next cycle: present coefficient word ``step + 1``
        then (otherwise word 0 of whichever vector comes next).
    step : ``Out(range(steps))``
        The step running this cycle.
    bias, mult, shift : ``In(ArrayLayout(..., lanes))``
        The coefficients of this cycle's step.
    out_valid : ``Out(1)``
        The vector's outputs are on ``out`` (one cycle), :attr:`latency` cycles after ``valid``.
    out : ``Out(ArrayLayout(signed(data_bits), rows))``
    out_meta : ``Out(meta)``
    busy : ``Out(1)``
        A vector is in flight (for the sequencer's end-of-layer wait).
    """

    @validated
    def __init__(self, *, rows: int, steps: int = 1, acc_bits: int = 32, data_bits: int = 8,
                 max_shift: int = 0, clamps: Sequence[tuple[int, int]] = ((-128, 127),),
                 meta: data.Layout | None = None, stages: int = 2):
        self.rows = check_int("rows", rows)
        self.steps = check_int("steps", steps)
        self.lanes = -(-rows // steps)
        if -(-rows // self.lanes) != steps:
            raise ValueError(f"steps {steps!r} leaves steps without a row: {rows} rows over "
                             f"{self.lanes} lanes take {-(-rows // self.lanes)} steps")
        self.lane = Requantizer(lanes=self.lanes, acc_bits=acc_bits, data_bits=data_bits,
                                max_shift=max_shift, clamps=clamps, stages=stages)
        self.meta_layout = data.StructLayout({}) if meta is None else meta
        lane = self.lane.signature.members
        super().__init__({
            "valid": In(1),
            "layer": In(lane["layer"].shape),
            "sums": In(data.ArrayLayout(signed(acc_bits), self.lanes)),
            "meta": In(self.meta_layout),
            "more": Out(1),
            "step": Out(range(max(2, steps))),
            "bias": In(lane["bias"].shape),
            "mult": In(lane["mult"].shape),
            "shift": In(lane["shift"].shape),
            "out_valid": Out(1),
            "out": Out(data.ArrayLayout(signed(data_bits), rows)),
            "out_meta": Out(self.meta_layout),
            "busy": Out(1),
        })

    @staticmethod
    def latency_for(steps: int, stages: int = 2) -> int:
        """Cycles from ``valid`` to ``out_valid``: the steps, then the lane's ``stages``."""
        return steps - 1 + stages

    @property
    def latency(self) -> int:
        return self.latency_for(self.steps, self.lane.latency)

    def elaborate(self, platform):
        m = Module()
        m.submodules.lane = lane = self.lane
        steps, lanes = self.steps, self.lanes
        k = Signal(range(max(2, steps)))  # the next step of a running vector
        running = Signal()
        step = Signal(range(max(2, steps)))
        active = Signal()
        m.d.comb += [step.eq(Mux(self.valid, 0, k)), active.eq(self.valid | running)]
        m.d.sync += [k.eq(step + 1), running.eq(active & (step + 1 < steps))]
        m.d.comb += [self.step.eq(step), self.more.eq(active & (step + 1 < steps))]

        m.d.comb += [lane.valid.eq(active), lane.layer.eq(self.layer),
                     lane.bias.eq(self.bias), lane.mult.eq(self.mult), lane.shift.eq(self.shift)]
        for i in range(lanes):
            m.d.comb += lane.sums[i].eq(self.sums[i])

        # the lane's outputs of each step but the last wait in `kept`; the last joins them
        done_step = Signal.like(step)
        m.d.comb += done_step.eq(delay(m, step, lane.latency, "done_step"))
        kept = Signal(data.ArrayLayout(signed(self.lane.data_bits), self.rows))
        last = steps - 1
        for r in range(self.rows):
            s, i = divmod(r, lanes)
            if s < last:
                with m.If(lane.out_valid & (done_step == s)):
                    m.d.sync += kept[r].eq(lane.out[i])
                m.d.comb += self.out[r].eq(kept[r])
            else:
                m.d.comb += self.out[r].eq(lane.out[i])
        m.d.comb += self.out_valid.eq(lane.out_valid & (done_step == last))

        # the vector's meta: taken with its last step, out with its outputs
        if steps > 1:
            held = Signal(self.meta_layout)
            with m.If(self.valid):
                m.d.sync += held.eq(self.meta)
            current = Mux(self.valid, self.meta, held)
        else:
            current = self.meta
        meta_last = Signal(self.meta_layout)
        with m.If(active & (step == last)):
            m.d.sync += meta_last.eq(current)
        out_meta = delay(m, meta_last, lane.latency - 1, "out_meta")
        # busy while any stage of the lane holds a step (the last one is out_valid's)
        in_lane = [delay(m, active, k, f"in_lane_{k}") for k in range(1, lane.latency)]
        m.d.comb += [self.out_meta.eq(out_meta), self.busy.eq(Cat(active, *in_lane, lane.out_valid).any())]
        return m
