"""A simulation model of an SPI NOR flash holding an image: what the loader reads in a bench.

Enough of a W25Q-style flash for :class:`~colcomb.hdl.flash_loader.FlashLoader`, timed as the
real one on the design's clock (SCK at most half of it):

- it starts in deep power-down (as an iCE40 may leave it after configuration), where it ignores
  every command but ``0xAB``; that one takes effect when CS rises, and commands are ignored
  ``wake_cycles`` more (tRES1);
- awake, ``0x03`` and a 24-bit address stream bytes from there, most significant bit first;
- COPI is taken as it was before SCK rose (a loader that changes it with the rising edge fails);
- CIPO changes in the first cycle SCK is low (a real flash: within tCLQV of the falling edge), so
  a loader must sample it while SCK is high, not a cycle after SCK falls.

Addresses outside the image read ``0xFF`` (erased).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.flash_loader import FLASH_OFFSET, READ, WAKE, FlashSignature
from colcomb.hdl.params import check_int, validated

__all__ = ["SpiFlashModel", "TopWithFlash"]


class SpiFlashModel(wiring.Component):
    """An SPI flash with ``image`` at byte ``offset`` (simulation only); ``asleep``: in deep
    power-down at reset; ``wake_cycles``: tRES1 in cycles of the clock (64: 3 us at 21 MHz).

    Members
    -------
    flash : ``In(FlashSignature)``
        The flash's side of the SPI pins.
    """

    @validated
    def __init__(self, *, image: bytes, offset: int = FLASH_OFFSET, asleep: bool = True, wake_cycles: int = 64):
        if not isinstance(image, (bytes, bytearray)) or not image:
            raise ValueError(f"the flash image must be non-empty bytes, not {type(image).__name__}")
        self.image = bytes(image)
        self.offset = check_int("offset", offset, 0)
        self.asleep = bool(asleep)
        self.wake_cycles = check_int("wake_cycles", wake_cycles)
        super().__init__({"flash": In(FlashSignature)})

    def elaborate(self, platform):
        m = Module()
        pins = self.flash
        m.submodules.mem = mem = memory.Memory(shape=unsigned(8), depth=max(2, len(self.image)),
                                               init=list(self.image))
        byte_read = mem.read_port(domain="comb")
        last_sck, last_copi, last_cs = Signal(), Signal(), Signal()
        m.d.sync += [last_sck.eq(pins.sck), last_copi.eq(pins.copi), last_cs.eq(pins.cs)]
        rising, falling = pins.sck & ~last_sck, ~pins.sck & last_sck
        awake = Signal(init=not self.asleep)
        waking = Signal()  # 0xAB came: wake when CS rises
        resume = Signal(range(self.wake_cycles + 1))  # cycles of tRES1 left
        shift = Signal(32)
        count = Signal(range(33))
        reading = Signal()
        listening = Signal()  # awake when the command began
        address = Signal(24)
        bit = Signal(3)
        index = Signal(25)
        out_bit = Signal()
        m.d.comb += [index.eq(address - self.offset), byte_read.addr.eq(index)]
        inside = (address >= self.offset) & (index < len(self.image))
        byte = Mux(inside, byte_read.data, 0xFF)
        next_bit = byte.bit_select((7 - bit)[:3], 1)
        m.d.comb += pins.cipo.eq(Mux(falling & reading, next_bit, out_bit))
        with m.If(resume != 0):
            m.d.sync += resume.eq(resume - 1)
            with m.If(resume == 1):
                m.d.sync += awake.eq(1)
        with m.If(~pins.cs):
            m.d.sync += [count.eq(0), reading.eq(0), bit.eq(0)]
            with m.If(last_cs & waking):
                m.d.sync += [waking.eq(0), resume.eq(self.wake_cycles)]
        with m.Elif(rising & ~reading):
            word = shift << 1 | last_copi  # COPI as it was before the edge
            m.d.sync += [shift.eq(word), count.eq(count + 1)]
            with m.If(count == 0):
                m.d.sync += listening.eq(awake)
            with m.If((count == 7) & (word[:8] == WAKE) & ~awake):
                m.d.sync += waking.eq(1)
            with m.If((count == 31) & (word[24:32] == READ) & listening):
                m.d.sync += [reading.eq(1), address.eq(word[:24]), bit.eq(0)]
        with m.Elif(falling & reading):
            m.d.sync += [out_bit.eq(next_bit), bit.eq(bit + 1)]
            with m.If(bit == 7):
                m.d.sync += address.eq(address + 1)
        return m


class TopWithFlash(wiring.Component):
    """:class:`~colcomb.hdl.top.Top` of a program whose cell words live in SPRAM, wired to a
    :class:`SpiFlashModel` holding their image: the same stream ports as a top without the flash,
    so the benches run it unchanged (the first batch waits :attr:`Program.load_cycles`).

    Parameters
    ----------
    program : Program
        Compiled with ``cell_memory="spram"``.
    image : bytes or None
        What the flash holds at :data:`FLASH_OFFSET` (default: the program's own image; another
        one shows what a wrong flash does).

    Members
    -------
    i, o, busy :
        As :class:`~colcomb.hdl.top.Top`'s (``top``, whose ``flash_error`` a bench may watch).
    """

    @validated
    def __init__(self, *, program, image: bytes | None = None):
        from colcomb.hdl.framing import word_layout
        from colcomb.hdl.program import Program

        if not isinstance(program, Program) or program.cell_memory != "spram":
            raise ValueError("TopWithFlash needs a Program compiled with cell_memory='spram'")
        from colcomb.hdl.top import Top

        self.program = program
        self.top = Top(program=program)
        self.image = program.flash_image if image is None else bytes(image)
        layout = word_layout(program.data_bits, program.beat)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout)), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        m.submodules.flash = flash = SpiFlashModel(image=self.image)
        wiring.connect(m, top.flash, flash.flash)
        wiring.connect(m, wiring.flipped(self.i), top.i)
        wiring.connect(m, top.o, wiring.flipped(self.o))
        m.d.comb += self.busy.eq(top.busy)
        return m
