"""Board tops that prove the packed network on the device itself.

:class:`SelfTest` is the board-independent core: the network (:class:`~colcomb.hdl.top.Top`),
a ROM of test input words and a ROM of the golden output words. Out of reset it streams every
input word into the network, compares every output word (data and ``last`` flag) with the stored
golden word, and then raises ``done`` with ``passed`` or ``failed``, and prints ``PASS\\r\\n`` or
``FAIL\\r\\n`` on a transmit-only 8N1 UART (again ``repeat_cycles`` after the text ends when that
is set, so a terminal opened later still sees it). A watchdog fails the test when the network
stops answering. Given the class label of each test input, the core also finds the largest output
word of each vector as the words stream by and prints the predicted and the expected class of each
image and the correct count before the verdict (:mod:`colcomb.fpga.uart_report`).

:class:`BoardTop` puts the core on an amaranth-boards platform: the clock (the board oscillator,
or a PLL for a requested frequency: ``SB_PLL40_PAD``/``SB_PLL40_CORE`` on iCE40, ``EHXPLLL`` on
ECP5), a power-on reset held until the PLL locks, pass/fail LEDs and the UART pin.

The PLL parameter solvers :func:`ice40_pll` and :func:`ecp5_pll` follow the rules of icestorm's
``icepll`` and prjtrellis' ``ecppll``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    unsigned,
)
from amaranth.lib import io, memory, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import Out

from colcomb.core.errors import ColcombError
from colcomb.fpga.uart_report import MESSAGES, ReportPrinter, UartTx, bcd, bcd_increment, report_program
from colcomb.hdl.cycles import watchdog_cycles
from colcomb.hdl.flash_loader import FlashSignature
from colcomb.hdl.framing import stream_payloads
from colcomb.hdl.program import Program
from colcomb.hdl.top import Top

__all__ = [
    "MESSAGES",
    "BoardTop",
    "PllConfig",
    "SelfTest",
    "UartTx",
    "ecp5_pll",
    "ice40_pll",
    "stream_words",
]

# -- the self-test core ----------------------------------------------------------------------------

def stream_words(values: np.ndarray, data_bits: int, batch: int | None = None) -> list[int]:
    """ROM words of a stream of vectors (rows of ``values``): each value in the low ``data_bits``
    bits, the ``last`` flag above it on the final word, and, with ``batch``, also on the final
    word of every ``batch`` vectors (:class:`~colcomb.hdl.top.Top` ends each output batch so)."""
    arr = np.asarray(values, np.int64)
    if arr.ndim != 2:
        arr = arr.reshape(1, -1)
    if arr.size == 0:
        return []
    return stream_payloads(arr, data_bits, batch or None)




class SelfTest(wiring.Component):
    """The network plus its own test: stored inputs in, outputs checked against stored goldens.

    Parameters
    ----------
    program : Program
        The compiled network (:meth:`Program.compile`).
    inputs : array of int, shape (vectors, program.in_words)
        Test input vectors (in the ``data_bits`` range).
    expected : array of int, shape (vectors, program.out_words)
        The outputs the network must produce (the golden model's).
    clk_freq : float
        Frequency of the ``sync`` clock in Hz (sets the UART divisor).
    baud : int
        UART bit rate (default 115200).
    repeat_cycles : int or None
        Print the report again every this many cycles after it ends (None: once).
    timeout_cycles : int or None
        Fail when the outputs are not all in after this many cycles (default: a generous bound).
    labels : array of int, shape (vectors,), or None
        The class of each input vector (0 .. out_words - 1, at most
        :data:`~colcomb.fpga.uart_report.MAX_CLASSES` classes). With labels the core also finds
        the largest output word of each vector as it streams out (the first on ties, like
        ``numpy.argmax``) and prints a line per vector, ``img 3: 7 (expected 7)``, then
        ``K/N correct``, before the verdict. A wrong prediction is not a FAIL: the verdict is the
        bit-exact comparison with ``expected`` alone.

    Members
    -------
    done : ``Out(1)``
        Every expected output word arrived (or the watchdog fired).
    passed : ``Out(1)``
        ``done`` and every word matched.
    failed : ``Out(1)``
        ``done`` and a word differed, or the watchdog fired.
    errors : ``Out(16)``
        Mismatching output words (saturates).
    cycles : ``Out(32)``
        Cycles from reset to ``done`` (frozen after it).
    tx : ``Out(1, init=1)``
        UART line carrying the report (:mod:`colcomb.fpga.uart_report`) after ``done``.
    flash : ``Out(FlashSignature)``
        With the cell words in SPRAM: the SPI flash they load from. A flash that does not hold
        the design's image (:mod:`colcomb.hdl.flash_loader`) fails the test as soon as it is read.
    """

    def __init__(self, *, program: Program, inputs, expected, clk_freq: float, baud: int = 115200,
                 repeat_cycles: int | None = None, timeout_cycles: int | None = None, labels=None):
        if not isinstance(program, Program):
            raise TypeError(f"program must be a Program (Program.compile(...)), not {program!r}")
        if program.beat != 1:
            raise ValueError(f"the self-test streams one word a beat, not {program.beat}: compile with beat=1")
        x = np.asarray(inputs)
        y = np.asarray(expected)
        if x.ndim != 2 or x.shape[1] != program.in_words or x.shape[0] < 1:
            raise ValueError(f"inputs must have shape (vectors >= 1, {program.in_words}), got {list(x.shape)}")
        if y.shape != (x.shape[0], program.out_words):
            raise ValueError(f"expected must have shape {[x.shape[0], program.out_words]}, got {list(y.shape)}")
        lo, hi = -(1 << (program.data_bits - 1)), (1 << (program.data_bits - 1)) - 1
        for label, arr in (("inputs", x), ("expected", y)):
            if arr.min() < lo or arr.max() > hi:
                raise ValueError(f"{label} range [{arr.min()}, {arr.max()}] does not fit {program.data_bits} bits")
        if clk_freq <= 0 or baud <= 0:
            raise ValueError(f"clk_freq {clk_freq!r} and baud {baud!r} must be positive")
        divisor = round(clk_freq / baud)
        if divisor < 2:
            raise ValueError(f"a {clk_freq} Hz clock is too slow for {baud} baud")
        if labels is not None:
            lab = np.asarray(labels)
            if lab.shape != (x.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"labels must be {x.shape[0]} integers (one per input vector), "
                                 f"got {lab.dtype} {list(lab.shape)}")
            if lab.min() < 0 or lab.max() >= program.out_words:
                raise ValueError(f"labels range [{lab.min()}, {lab.max()}] is outside the network's "
                                 f"{program.out_words} output words (classes 0 .. {program.out_words - 1})")
            labels = lab.astype(np.int64)
        self.program = program
        self.inputs = x.astype(np.int64)
        self.expected = y.astype(np.int64)
        self.labels = labels
        self.report = report_program(x.shape[0], None if labels is None else program.out_words)
        self.clk_freq = float(clk_freq)
        self.baud = int(baud)
        self.divisor = divisor
        self.repeat_cycles = repeat_cycles
        self.timeout_cycles = (watchdog_cycles(program, x.shape[0]) if timeout_cycles is None
                               else int(timeout_cycles))
        super().__init__({
            "done": Out(1),
            "passed": Out(1),
            "failed": Out(1),
            "errors": Out(16),
            "cycles": Out(32),
            "tx": Out(1, init=1),
            **({"flash": Out(FlashSignature)} if program.cell_memory == "spram" else {}),
        })

    @property
    def vectors(self) -> int:
        return self.inputs.shape[0]

    def elaborate(self, platform):
        m = Module()
        p = self.program
        word_bits = p.data_bits
        in_words = stream_words(self.inputs, word_bits)
        out_words = stream_words(self.expected, word_bits, batch=p.batch)
        m.submodules.net = net = Top(program=p)
        flash_bad = Const(0)
        if p.cell_memory == "spram":
            wiring.connect(m, wiring.flipped(self.flash), net.flash)
            flash_bad = net.flash_error

        m.submodules.in_rom = in_rom = memory.Memory(shape=unsigned(word_bits + 1), depth=max(2, len(in_words)),
                                                     init=in_words)
        m.submodules.gold_rom = gold_rom = memory.Memory(shape=unsigned(word_bits + 1), depth=max(2, len(out_words)),
                                                         init=out_words)
        in_rd = in_rom.read_port()
        gold_rd = gold_rom.read_port()

        # -- feed: the read port shows the word at `i_idx` (its address is the next index) -----
        i_idx = Signal(range(len(in_words) + 1))
        primed = Signal()
        sending = Signal()
        m.d.sync += primed.eq(1)
        m.d.comb += sending.eq(primed & (i_idx < len(in_words)))
        take = sending & net.i.ready
        i_next = Signal.like(i_idx)
        m.d.comb += [
            i_next.eq(i_idx + take),
            in_rd.addr.eq(i_next),
            net.i.valid.eq(sending),
            net.i.payload.eq(in_rd.data),
        ]
        m.d.sync += i_idx.eq(i_next)

        # -- check: compare each output word with the golden word at `o_idx` -------------------
        done = Signal()
        timeout = Signal()
        o_idx = Signal(range(len(out_words) + 1))
        got = Signal(word_bits + 1)
        m.d.comb += [got.eq(net.o.payload), net.o.ready.eq(~done)]
        beat = net.o.valid & ~done
        o_next = Signal.like(o_idx)
        m.d.comb += [o_next.eq(o_idx + beat), gold_rd.addr.eq(o_next)]
        m.d.sync += o_idx.eq(o_next)
        with m.If(beat):
            with m.If((got != gold_rd.data) & (self.errors != 0xFFFF)):
                m.d.sync += self.errors.eq(self.errors + 1)
            with m.If(o_idx == len(out_words) - 1):
                m.d.sync += done.eq(1)
        with m.If(~done):
            with m.If((self.cycles == self.timeout_cycles) | flash_bad):
                m.d.sync += [done.eq(1), timeout.eq(1)]
            with m.Else():
                m.d.sync += self.cycles.eq(self.cycles + 1)

        ok = (self.errors == 0) & ~timeout
        m.d.comb += [self.done.eq(done), self.passed.eq(done & ok), self.failed.eq(done & ~ok)]

        # -- report over the UART ------------------------------------------------------------
        m.submodules.report = report = ReportPrinter(self.report, divisor=self.divisor,
                                                     repeat_cycles=self.repeat_cycles)
        m.d.comb += [report.start.eq(done), report.ok.eq(ok), self.tx.eq(report.tx)]
        if self.labels is not None:
            self._argmax(m, beat, got[:word_bits].as_signed(), report)
        return m

    def _argmax(self, m: Module, beat, value, report: ReportPrinter) -> None:
        """Watch the output words as they stream out: keep each vector's largest word (the first
        of equals) and its position, counted in BCD, and shift the winner into a register of all
        the vectors' classes, which the printer rotates one class per line (so the first vector's
        is at the bottom again when the report is printed again). ``value`` is the word of this
        ``beat``. The labels are a small ROM the printer addresses by image."""
        rep = self.report
        cw = 4 * rep.class_digits
        # a shift register rather than a memory: no address decoder and no read multiplexer, only
        # the top class has a 2-way select (iCE40: 4 flip-flops and next to no LUTs per vector)
        classes = Signal(cw * self.vectors)
        pos = Signal(cw)  # BCD position of this word in its vector
        best = Signal(value.shape())
        arg = Signal(cw)
        better = Signal()
        end = Signal()
        m.d.comb += [better.eq((pos == 0) | (value > best)), end.eq(pos == bcd(self.program.out_words - 1))]
        with m.If(beat):
            with m.If(better):
                m.d.sync += [best.eq(value), arg.eq(pos)]
            with m.If(end):
                m.d.sync += pos.eq(0)
            with m.Else():
                m.d.sync += pos.eq(bcd_increment(pos, rep.class_digits))
        with m.If(report.shift):
            m.d.sync += classes.eq(Cat(classes[cw:], classes[:cw]))
        with m.Elif(beat & end):
            m.d.sync += classes.eq(Cat(classes[cw:], Mux(better, pos, arg)))
        m.d.comb += report.pred.eq(classes[:cw])

        m.submodules.labels = labels = memory.Memory(shape=unsigned(cw), depth=max(2, self.vectors),
                                                     init=[bcd(int(v)) for v in self.labels])
        rd = labels.read_port()
        m.d.comb += [rd.addr.eq(report.img), report.label.eq(rd.data)]


# -- PLLs ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PllConfig:
    """A PLL setting: its primitive's parameters and the frequency it really makes."""

    family: str
    f_in: float
    f_out: float
    f_vco: float
    params: dict

    def summary(self) -> dict:
        return {"family": self.family, "f_in_mhz": self.f_in / 1e6, "f_out_mhz": self.f_out / 1e6,
                "f_vco_mhz": self.f_vco / 1e6, "params": dict(self.params)}


def ice40_pll(f_in: float, f_out: float) -> PllConfig:
    """SB_PLL40 setting (simple feedback) closest to ``f_out``; the rules of icestorm's icepll:
    PFD = f_in / (DIVR+1) in [10, 133] MHz, VCO = PFD * (DIVF+1) in [533, 1066] MHz,
    out = VCO / 2**DIVQ in [16, 275] MHz."""
    if not 16e6 <= f_out <= 275e6:
        raise ColcombError(f"an iCE40 PLL makes 16..275 MHz, not {f_out / 1e6:g} MHz; pick a --clock in that range")
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not 10e6 <= pfd <= 133e6:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533e6 <= vco <= 1066e6:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if not 16e6 <= out <= 275e6:
                    continue
                key = (abs(out - f_out), divr)
                if best is None or key < best[0]:
                    best = (key, divr, divf, divq, pfd, vco, out)
    if best is None:
        raise ColcombError(f"no iCE40 PLL setting makes {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    _, divr, divf, divq, pfd, vco, out = best
    filter_range = next(i for i, lim in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, float("inf")), 1) if pfd < lim)
    params = {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range}
    return PllConfig("ice40", f_in, out, vco, params)


def ecp5_pll(f_in: float, f_out: float) -> PllConfig:
    """EHXPLLL setting (feedback from CLKOP) closest to ``f_out``; the rules of prjtrellis'
    ecppll: PFD = f_in / CLKI_DIV >= 3.125 MHz, out = PFD * CLKFB_DIV, VCO = out * CLKOP_DIV in
    [400, 800] MHz, out in [3.125, 400] MHz."""
    if not 3.125e6 <= f_out <= 400e6:
        raise ColcombError(f"an ECP5 PLL makes 3.125..400 MHz, not {f_out / 1e6:g} MHz; pick a --clock in that range")
    best = None
    for clki in range(1, 129):
        pfd = f_in / clki
        if pfd < 3.125e6:
            break
        if pfd > 400e6:
            continue
        for fb in range(1, 81):
            out = pfd * fb
            if out > 400e6:
                break
            if out < 3.125e6:
                continue
            for op in range(1, 129):
                vco = out * op
                if vco > 800e6:
                    break
                if vco < 400e6:
                    continue
                key = (abs(out - f_out), abs(vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, clki, fb, op, vco, out)
    if best is None:
        raise ColcombError(f"no ECP5 PLL setting makes {f_out / 1e6:g} MHz from {f_in / 1e6:g} MHz")
    _, clki, fb, op, vco, out = best
    params = {"CLKI_DIV": clki, "CLKFB_DIV": fb, "CLKOP_DIV": op, "CLKOP_CPHASE": (op - 1) // 2}
    return PllConfig("ecp5", f_in, out, vco, params)


def _pll_instance(cfg: PllConfig, *, clk_in, clk_out, lock, pad: bool) -> Instance:
    if cfg.family == "ice40":
        prm = cfg.params
        common = dict(
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=Const(prm["DIVR"], 4), p_DIVF=Const(prm["DIVF"], 7), p_DIVQ=Const(prm["DIVQ"], 3),
            p_FILTER_RANGE=Const(prm["FILTER_RANGE"], 3),
            i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=clk_out, o_LOCK=lock,
        )
        if pad:
            return Instance("SB_PLL40_PAD", i_PACKAGEPIN=clk_in, **common)
        return Instance("SB_PLL40_CORE", p_PLLOUT_SELECT="GENCLK", i_REFERENCECLK=clk_in, **common)
    prm = cfg.params
    return Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{cfg.f_in / 1e6:g}",
        a_FREQUENCY_PIN_CLKOP=f"{cfg.f_out / 1e6:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=prm["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=prm["CLKOP_DIV"],
        p_CLKOP_CPHASE=prm["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        p_CLKFB_DIV=prm["CLKFB_DIV"],
        i_RST=Const(0), i_STDBY=Const(0), i_CLKI=clk_in, i_CLKFB=clk_out,
        i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(0), i_PHASESTEP=Const(0),
        i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0),
        o_CLKOP=clk_out, o_LOCK=lock,
    )


# -- the board top ---------------------------------------------------------------------------------

class BoardTop(Elaboratable):
    """:class:`SelfTest` on an amaranth-boards platform.

    Parameters
    ----------
    program, inputs, expected, baud, labels :
        As for :class:`SelfTest`.
    pll : PllConfig or None
        None: run from the board oscillator (the platform's default ``sync`` domain). Otherwise a
        PLL for ``pll.f_out``, fed by the oscillator; the core is held in reset until it locks.
    pll_pad : bool
        iCE40 only: the oscillator pin is the PLL's dedicated pad (``SB_PLL40_PAD``); otherwise
        ``SB_PLL40_CORE`` takes the buffered clock.
    pass_led, fail_led : (name, number)
        Board resources lit for a pass and for a fail (None: not shown).
    uart : (name, number) or None
        The UART resource whose ``tx`` pin prints the verdict.
    """

    def __init__(self, *, program: Program, inputs, expected, pll: PllConfig | None = None,
                 pll_pad: bool = False, pass_led=("led", 0), fail_led=("led", 1), uart=("uart", 0),
                 baud: int = 115200, labels=None):
        self.program = program
        self.labels = labels
        self.inputs = inputs
        self.expected = expected
        self.pll = pll
        self.pll_pad = pll_pad
        self.pass_led = pass_led
        self.fail_led = fail_led
        self.uart = uart
        self.baud = baud
        self.core: SelfTest | None = None

    def elaborate(self, platform):
        m = Module()
        if self.pll is None:
            f_clk = platform.default_clk_frequency
        else:
            f_clk = self.pll.f_out
            m.domains.sync = cd_sync = ClockDomain("sync")
            clk_port = platform.request(platform.default_clk, dir="-")
            pll_clk = Signal(name="pll_clk")
            lock = Signal()
            if self.pll.family == "ice40" and self.pll_pad:
                clk_in = clk_port.io
            else:
                m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
                clk_in = clk_buf.i
            m.submodules.pll = _pll_instance(self.pll, clk_in=clk_in, clk_out=pll_clk, lock=lock,
                                             pad=self.pll_pad)
            m.d.comb += cd_sync.clk.eq(pll_clk)
            # no constraint on the PLL's output here: nextpnr (ice40 and ecp5) derives it from the
            # oscillator pin's constraint and the PLL's dividers ("Derived frequency constraint")
            # power-on reset: wait for lock, then 15 us more (iCE40 BRAMs read zero right after
            # configuration), counted in a reset-less domain on the PLL clock
            m.domains.por = ClockDomain("por", reset_less=True, local=True)
            m.d.comb += ClockSignal("por").eq(pll_clk)
            locked = Signal()
            m.submodules.lock_sync = FFSynchronizer(lock, locked, o_domain="por")
            delay = max(16, int(15e-6 * f_clk))
            timer = Signal(range(delay + 1))
            ready = Signal()
            with m.If(~locked):
                m.d.por += [timer.eq(0), ready.eq(0)]
            with m.Elif(timer == delay):
                m.d.por += ready.eq(1)
            with m.Else():
                m.d.por += timer.eq(timer + 1)
            m.d.comb += ResetSignal("sync").eq(~ready)

        m.submodules.core = core = SelfTest(
            program=self.program, inputs=self.inputs, expected=self.expected, clk_freq=f_clk,
            baud=self.baud, repeat_cycles=int(f_clk),  # the report again a second after it ends
            labels=self.labels,
        )
        self.core = core
        for name, res, value in (("pass_led", self.pass_led, core.passed),
                                 ("fail_led", self.fail_led, core.failed)):
            if res is not None:
                m.submodules[name] = buf = io.Buffer("o", platform.request(*res, dir="-"))
                m.d.comb += buf.o.eq(value)
        if self.uart is not None:
            m.submodules.uart_tx = buf = io.Buffer("o", platform.request(*self.uart, dir="-").tx)
            m.d.comb += buf.o.eq(core.tx)
        if self.program.cell_memory == "spram":  # the cell words' image, in the configuration flash
            pins = platform.request("spi_flash_1x", 0, dir="-")
            outputs = {"cs": core.flash.cs, "clk": core.flash.sck, "copi": core.flash.copi}
            outputs.update({name: 0 for name in ("wp", "hold") if hasattr(pins, name)})  # inactive
            for name, value in outputs.items():
                m.submodules[f"flash_{name}"] = buf = io.Buffer("o", getattr(pins, name))
                m.d.comb += buf.o.eq(value)
            m.submodules.flash_cipo = buf = io.Buffer("i", pins.cipo)
            m.d.comb += core.flash.cipo.eq(buf.i)
        return m
