"""What the board self-test prints on its UART, and the small machine that prints it.

The text is a *character program*: a ROM of entries, each a literal character, one decimal digit
of a counter, the end of an image's line (loop to the line's start for the next image), the
verdict (fall through to ``PASS`` or jump to ``FAIL``) or the end. :class:`ReportPrinter` runs it
one entry at a time with a few counters, so the logic does not grow with the text or with the
number of images: no wide multiplexer of whole messages, no binary-to-decimal divider. Every
number it prints is kept in binary-coded decimal (BCD) from the start: the image index and the
correct count are BCD counters, and a class index is a BCD count of the output word's position,
so the predicted class in BCD is what the argmax keeps (:func:`bcd_increment`).

With class labels (:func:`report_program` with ``classes``) the text is, for ``n`` images::

    img 0: 7 (expected 7)\\r\\n
    ...
    7/8 correct\\r\\n
    PASS\\r\\n            (or FAIL)

and without labels just ``PASS\\r\\n`` or ``FAIL\\r\\n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "MAX_CLASSES",
    "MESSAGES",
    "Op",
    "ReportPrinter",
    "ReportProgram",
    "UartTx",
    "bcd",
    "bcd_increment",
    "report_program",
    "report_text",
]

MESSAGES = {True: b"PASS\r\n", False: b"FAIL\r\n"}

#: class indices print as at most two decimal digits
MAX_CLASSES = 100


# -- the UART --------------------------------------------------------------------------------------

class UartTx(wiring.Component):
    """Transmit-only UART, 8 data bits, no parity, one stop bit, least significant bit first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (``round(clk_freq / baud)``), at least 2.

    Members
    -------
    data : ``In(8)``
        The byte to send, sampled when ``valid & ready``.
    valid : ``In(1)``
        ``data`` holds a byte to send.
    ready : ``Out(1)``
        The transmitter is idle and takes a byte this cycle.
    tx : ``Out(1, init=1)``
        The serial line (idle high).
    """

    def __init__(self, *, divisor: int):
        if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 2:
            raise ValueError(f"divisor must be an integer of at least 2 clock cycles per bit, not {divisor!r}")
        self.divisor = divisor
        super().__init__({"data": In(8), "valid": In(1), "ready": Out(1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)  # stop bit, 8 data bits, start bit (sent first)
        bits = Signal(range(11))
        timer = Signal(range(self.divisor))
        m.d.comb += [self.ready.eq(bits == 0), self.tx.eq(shreg[0])]
        with m.If(bits == 0):
            with m.If(self.valid):
                # start bit (0), the data LSB first, stop bit (1)
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.data, Const(1, 1))), bits.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits.eq(bits - 1), timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


# -- binary-coded decimal --------------------------------------------------------------------------

def bcd(n: int) -> int:
    """``n`` (>= 0) in binary-coded decimal: one nibble per decimal digit (``bcd(47) == 0x47``)."""
    if n < 0:
        raise ValueError(f"bcd needs a non-negative number, not {n}")
    return int(str(n), 16)


def bcd_increment(value: Value, digits: int) -> Value:
    """``value + 1`` for a BCD number of ``digits`` nibbles (wrapping from all nines to zero)."""
    out = []
    carry = Const(1, 1)
    for k in range(digits):
        d = value[4 * k:4 * k + 4]
        nine = d == 9
        out.append(Mux(carry, Mux(nine, 0, d + 1), d)[:4])
        carry = carry & nine
    return Cat(*out)


def bcd_digits(n: int) -> int:
    """Decimal digits of ``n`` (at least one)."""
    return len(str(max(0, n)))


# -- the character program -------------------------------------------------------------------------

class Op(IntEnum):
    """Kinds of character-program entry (the top bits of an entry; the low 8 bits are ``arg``)."""

    LIT = 0      # send the character ``arg``
    DIGIT = 1    # send nibble ``arg & 0x1F`` of the counters as a digit; a leading zero is skipped
    NEXT = 2     # end of an image's line: count a correct one; more images: jump to ``arg``
    VERDICT = 3  # passed: next entry; failed: jump to ``arg``
    END = 4      # the text is over (printed again after ``repeat_cycles``, or stop)


ARG_BITS = 8
NIBBLE_MASK = 0x1F  # DIGIT: which nibble of the counters
LAST_DIGIT = 1 << 6  # DIGIT flag: the field's last digit (printed even when zero)
ENTRY_BITS = ARG_BITS + 3


@dataclass(frozen=True)
class ReportProgram:
    """A character program and the counter layout its DIGIT entries read.

    ``entries`` are ``op << 8 | arg``; the nibbles a DIGIT entry names are, in order: the image
    index (``index_digits``), the predicted class (``class_digits``), the expected class
    (``class_digits``) and the correct count (``count_digits``), each least significant first.
    ``max_chars`` bounds the characters of one printing of the whole text and ``max_steps`` the
    entries it runs (each takes two cycles besides the UART's time).
    """

    entries: tuple[int, ...]
    vectors: int
    classes: int | None
    index_digits: int
    class_digits: int
    count_digits: int
    max_chars: int
    max_steps: int

    @property
    def labelled(self) -> bool:
        return self.classes is not None


def report_program(vectors: int, classes: int | None = None) -> ReportProgram:
    """The character program of a self-test of ``vectors`` images: with ``classes`` (the number of
    output words, at most :data:`MAX_CLASSES`) a line per image, the correct count and the verdict;
    without, the verdict alone."""
    if vectors < 1:
        raise ValueError(f"a self-test has at least one vector, not {vectors}")
    entries: list[int] = []

    def lit(text: str) -> None:
        entries.extend(Op.LIT << ARG_BITS | ord(c) for c in text)

    def digits(first_nibble: int, count: int) -> None:  # most significant first
        if first_nibble + count > NIBBLE_MASK + 1:
            raise ValueError(f"the report's numbers need {first_nibble + count} digits, more than a DIGIT "
                             f"entry names")
        for k in reversed(range(count)):
            entries.append(Op.DIGIT << ARG_BITS | (first_nibble + k) | (LAST_DIGIT if k == 0 else 0))

    index_digits = bcd_digits(vectors - 1)
    count_digits = bcd_digits(vectors)
    class_digits = 0
    chars = steps = 0
    if classes is not None:
        if not 1 <= classes <= MAX_CLASSES:
            raise ValueError(f"the self-test prints classes as at most two decimal digits: 1 to {MAX_CLASSES} "
                             f"classes (output words), not {classes}")
        class_digits = bcd_digits(classes - 1)
        pred_at, label_at, count_at = index_digits, index_digits + class_digits, index_digits + 2 * class_digits
        line_start = len(entries)
        lit("img ")
        digits(0, index_digits)
        lit(": ")
        digits(pred_at, class_digits)
        lit(" (expected ")
        digits(label_at, class_digits)
        lit(")\r\n")
        chars += vectors * (len(entries) - line_start)
        entries.append(Op.NEXT << ARG_BITS | line_start)
        steps += vectors * (len(entries) - line_start)
        mark = len(entries)
        digits(count_at, count_digits)
        lit(f"/{vectors} correct\r\n")
        chars += len(entries) - mark
        steps += len(entries) - mark
    verdict = len(entries)
    entries.append(Op.VERDICT << ARG_BITS)  # the FAIL text's address is patched in below
    lit(MESSAGES[True].decode())
    entries.append(Op.END << ARG_BITS)
    fail_at = len(entries)
    lit(MESSAGES[False].decode())
    entries.append(Op.END << ARG_BITS)
    entries[verdict] |= fail_at
    chars += max(len(m) for m in MESSAGES.values())
    steps += 2 + max(len(m) for m in MESSAGES.values())  # VERDICT, the text, END
    if len(entries) > 1 << ARG_BITS or fail_at >= 1 << ARG_BITS:
        raise ValueError(f"the report's character program has {len(entries)} entries, more than its "
                         f"{ARG_BITS}-bit jump addresses reach")
    return ReportProgram(tuple(entries), vectors, classes, index_digits, class_digits, count_digits, chars, steps)


def report_text(predicted, labels, *, passed: bool) -> str:
    """The text a labelled self-test prints once (the board's model, for the report and the
    README): a line per image with its predicted and expected class, the correct count, the
    verdict."""
    pairs = [(int(p), int(e)) for p, e in zip(predicted, labels, strict=True)]
    lines = [f"img {i}: {p} (expected {e})\r\n" for i, (p, e) in enumerate(pairs)]
    correct = sum(p == e for p, e in pairs)
    return "".join(lines) + f"{correct}/{len(lines)} correct\r\n" + MESSAGES[passed].decode()


# -- the printer -----------------------------------------------------------------------------------

class ReportPrinter(wiring.Component):
    """Runs a :class:`ReportProgram` once ``start`` rises, sending its text through a
    :class:`UartTx`; again every ``repeat_cycles`` after the end when that is set.

    Members
    -------
    start : ``In(1)``
        The test is over (level: sampled while waiting).
    ok : ``In(1)``
        The verdict (read at the VERDICT entry).
    img : ``Out(range(vectors))``
        The image whose line is being printed: the address of the caller's label ROM
        (labelled programs only).
    label : ``In(4 * class_digits)``
        That image's expected class in BCD, as a synchronous read port shows it: the word of
        ``img`` one cycle after ``img`` changes.
    pred : ``In(4 * class_digits)``
        The predicted class of the image whose line is being printed, in BCD.
    shift : ``Out(1)``
        A line is done: show the next image's ``pred`` (one pulse per line, also after the last,
        so that ``vectors`` pulses bring the first image's back).
    tx : ``Out(1, init=1)``
        The UART line.
    finished : ``Out(1)``
        The text has been sent once at least.
    """

    def __init__(self, program: ReportProgram, *, divisor: int, repeat_cycles: int | None = None):
        self.program = program
        self.divisor = divisor
        self.repeat_cycles = repeat_cycles
        cw = max(1, 4 * program.class_digits)
        super().__init__({
            "start": In(1), "ok": In(1),
            "img": Out(range(max(2, program.vectors))),
            "pred": In(cw), "label": In(cw), "shift": Out(1),
            "tx": Out(1, init=1), "finished": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        prog = self.program
        m.submodules.uart = uart = UartTx(divisor=self.divisor)
        m.d.comb += self.tx.eq(uart.tx)
        # the labelled program (40-odd entries) goes to a block RAM: in logic it costs about 55 more
        # iCE40 LUTs; the PASS/FAIL one (15 entries) stays in logic, 12 LUTs more than the two fixed
        # messages it replaced took on the README's iCEBreaker example
        m.submodules.rom = rom = memory.Memory(shape=unsigned(ENTRY_BITS), depth=max(2, len(prog.entries)),
                                               init=prog.entries,
                                               attrs={"rom_style": "block"} if prog.labelled else None)
        rd = rom.read_port()
        pc = Signal(range(max(2, len(prog.entries))))
        m.d.comb += rd.addr.eq(pc)
        op = rd.data[ARG_BITS:]
        arg = rd.data[:ARG_BITS]

        # the counters the DIGIT entries read (labelled programs only)
        img_bcd = Signal(4 * prog.index_digits)
        count_bcd = Signal(4 * max(1, prog.count_digits))
        seen = Signal()  # a nonzero digit of the current number was sent: zeros are no longer leading
        restart = [pc.eq(0), self.img.eq(0), img_bcd.eq(0), count_bcd.eq(0), seen.eq(0)]

        wait = Signal(range(max(2, (self.repeat_cycles or 1) + 1)))
        with m.FSM():
            with m.State("WAIT"):
                with m.If(self.start):
                    m.d.sync += restart
                    m.next = "LOAD"
            with m.State("LOAD"):  # the ROM (and the caller's memory) show the new address next cycle
                m.next = "EXEC"
            with m.State("EXEC"):
                with m.Switch(op):
                    with m.Case(Op.LIT):
                        m.d.comb += [uart.valid.eq(1), uart.data.eq(arg)]
                        with m.If(uart.ready):
                            m.d.sync += pc.eq(pc + 1)
                            m.next = "LOAD"
                    if prog.labelled:
                        nibbles = Cat(img_bcd, self.pred, self.label, count_bcd)
                        count = len(nibbles) // 4
                        sel = max(1, (count - 1).bit_length())  # as few select bits as the nibbles need
                        nib = Signal(4)
                        m.d.comb += nib.eq(Array(nibbles[4 * min(k, count - 1):][:4] for k in range(1 << sel))
                                           [arg[:sel]])
                        last = arg[6]
                        with m.Case(Op.DIGIT):
                            with m.If((nib == 0) & ~seen & ~last):  # a leading zero: skip it
                                m.d.sync += pc.eq(pc + 1)
                                m.next = "LOAD"
                            with m.Else():
                                m.d.comb += [uart.valid.eq(1), uart.data.eq(Cat(nib, Const(0x3, 4)))]
                                with m.If(uart.ready):
                                    m.d.sync += [pc.eq(pc + 1), seen.eq(~last)]
                                    m.next = "LOAD"
                        with m.Case(Op.NEXT):
                            m.d.comb += self.shift.eq(1)
                            with m.If(self.pred == self.label):
                                m.d.sync += count_bcd.eq(bcd_increment(count_bcd, len(count_bcd) // 4))
                            with m.If(self.img == prog.vectors - 1):
                                m.d.sync += pc.eq(pc + 1)
                            with m.Else():
                                m.d.sync += [self.img.eq(self.img + 1), pc.eq(arg),
                                             img_bcd.eq(bcd_increment(img_bcd, prog.index_digits))]
                            m.next = "LOAD"
                    with m.Case(Op.VERDICT):
                        m.d.sync += pc.eq(Mux(self.ok, pc + 1, arg))
                        m.next = "LOAD"
                    with m.Default():  # END
                        m.d.sync += [self.finished.eq(1), wait.eq(0)]
                        m.next = "REPEAT" if self.repeat_cycles else "HALT"
            if self.repeat_cycles:
                with m.State("REPEAT"):
                    m.d.sync += wait.eq(wait + 1)
                    with m.If(wait == self.repeat_cycles):
                        m.d.sync += restart
                        m.next = "LOAD"
            with m.State("HALT"):
                pass
        return m
