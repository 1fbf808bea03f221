"""Copy the cell words from the board's SPI flash into SPRAM at power-up.

The iCEBreaker's UP5K has 30 block RAMs and four SPRAMs; a LeNet-5's packed weights alone fill
half the block RAMs, and SPRAM cannot be initialised by the bitstream. So the weights go into the
configuration flash beside the bitstream (:func:`flash_image`, programmed with
``iceprog -o 1M cells.flash.bin``) and :class:`FlashLoader` reads them out of reset: a wake-up
command (``0xAB``, release from deep power-down), a wait, then one read command (``0x03``) at
:data:`FLASH_OFFSET` for the whole image, SCK at half the clock, SPI mode 0.

The image: per cell word, :func:`word_bytes` bytes, least significant byte first. Every word
arrives as nibbles, each written into its SPRAM nibble the cycle after its fourth bit, so no word
is assembled in flip-flops. The loader computes the CRC-16/CCITT-FALSE of every byte it reads
(``binascii.crc_hqx(image, 0xFFFF)``) and compares it with the image the design was built from:
``done`` with ``error`` low only when they agree, so an unprogrammed, stale or corrupt flash
never reaches the array.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated

__all__ = ["FLASH_IMAGE", "FLASH_OFFSET", "READ", "WAKE", "WAKE_CYCLES", "FlashLoader", "FlashSignature", "flash_crc",
           "flash_image", "load_cycles", "word_bytes"]

#: where the image sits in the flash: 1 MiB, past any iCE40 bitstream (a UP5K's is 104 KB)
FLASH_OFFSET = 1 << 20
#: the image's file name beside a design (``generate``: ``<top>.cells.flash.bin``, ``synthesize``: this)
FLASH_IMAGE = "cells.flash.bin"
#: SPI NOR commands: release from deep power-down, read data
WAKE = 0xAB
READ = 0x03
#: cycles between the wake-up command and the read (tRES1, 3 us on the common flashes, is 256
#: cycles up to 85 MHz)
WAKE_CYCLES = 256

#: the loader's SPI pins, as amaranth-boards' ``spi_flash_1x`` resource names them (``cs`` high
#: selects the flash; the board inverts it)
FlashSignature = wiring.Signature({"sck": Out(1), "cs": Out(1), "copi": Out(1), "cipo": In(1)})


def word_bytes(width: int) -> int:
    """Bytes of one ``width``-bit word in the image."""
    return -(-width // 8)


def flash_image(words: Sequence[int], width: int) -> bytes:
    """The flash image of ``words`` (each ``0 <= word < 2**width``): :func:`word_bytes` bytes a
    word, least significant first."""
    n = word_bytes(width)
    out = bytearray()
    for w in words:
        w = int(w)
        if not 0 <= w < 1 << width:
            raise ValueError(f"word {w!r} does not fit {width} bits")
        out += w.to_bytes(n, "little")
    return bytes(out)


def flash_crc(image: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``image``: what the loader computes as the bytes arrive."""
    return binascii.crc_hqx(image, 0xFFFF)


def load_cycles(words: int, width: int, wake_cycles: int = WAKE_CYCLES) -> int:
    """Cycles from reset to the first cycle :class:`FlashLoader`'s ``done`` is high: one to
    select the flash, 8 wake-up bits, the wait, 32 command and address bits and the image's bits,
    each bit two cycles, then one to check the CRC."""
    return 1 + 2 * 8 + wake_cycles + 2 * 32 + 2 * 8 * words * word_bytes(width) + 1


class FlashLoader(wiring.Component):
    """Reads ``len(words)`` words of ``width`` bits from the SPI flash at ``offset`` into a RAM.

    Parameters
    ----------
    words : sequence of int
        The words the design was built for: their image's CRC is the one the loaded bytes must
        have (the loader stores nothing of them).
    width : int
        Bits per word.
    offset : int
        The image's byte address in the flash (24 bits).
    wake_cycles : int
        Cycles to wait after the wake-up command.

    Members
    -------
    flash : ``Out(FlashSignature)``
        The SPI pins.
    addr : ``Out(range(len(words)))``
        The word being written.
    write_en : ``Out(nibbles)``
        Write ``write_data`` into these nibbles of word ``addr`` (:class:`~colcomb.hdl.spram.Spram`).
    write_data : ``Out(4)``
    done : ``Out(1)``
        The image is in (from :func:`load_cycles` on).
    error : ``Out(1)``
        With ``done``: the bytes read do not have the image's CRC (nothing else was wrong: the
        flash holds another image, or none).
    """

    @validated
    def __init__(self, *, words: Sequence[int], width: int, offset: int = FLASH_OFFSET,
                 wake_cycles: int = WAKE_CYCLES):
        self.width = check_int("width", width)
        self.wake_cycles = check_int("wake_cycles", wake_cycles)
        self.offset = check_int("offset", offset, 0)
        if offset >= 1 << 24:
            raise ValueError(f"the flash offset must fit 24 bits, not {offset!r}")
        self.count = len(words)
        if not self.count:
            raise ValueError("the loader needs at least one word")
        self.image = flash_image(words, width)
        self.crc = flash_crc(self.image)
        self.nibbles = -(-width // 4)
        super().__init__({
            "flash": Out(FlashSignature),
            "addr": Out(range(max(2, self.count))),
            "write_en": Out(self.nibbles),
            "write_data": Out(4),
            "done": Out(1),
            "error": Out(1),
        })

    @property
    def cycles(self) -> int:
        return load_cycles(self.count, self.width, self.wake_cycles)

    def elaborate(self, platform):
        m = Module()
        per_word = 2 * word_bytes(self.width)  # nibbles of a word in the image
        sck, cs, copi = self.flash.sck, self.flash.cs, self.flash.copi
        tx = Signal(32)  # the command bits still to send, next one on top
        bit = Signal(range(32))  # bits left of the command, less one
        phase = Signal()  # 0: SCK low (the flash's output settles), 1: SCK high (both sides sample)
        wait = Signal(range(self.wake_cycles + 1))
        crc = Signal(16, init=0xFFFF)
        nibble = Signal(4)
        nib_bit = Signal(2)
        slot = Signal(range(per_word))  # the nibble's place in the image word
        word = Signal(range(max(2, self.count)))
        last_word = word == self.count - 1
        write = Signal()  # a nibble is complete: write it this cycle
        write_slot = Signal.like(slot)
        m.d.sync += write.eq(0)
        m.d.comb += [self.write_data.eq(nibble)]
        with m.If(write):
            # the image is little-endian bytes sent most significant bit first: the high nibble
            # of a byte arrives first
            for k in range(self.nibbles):
                m.d.comb += self.write_en[k].eq(write_slot == (k ^ 1))

        def shift_out(then: str):
            """Send the bits of ``tx``, ``bit + 1`` of them, a bit in two cycles."""
            with m.If(~phase):
                m.d.sync += [sck.eq(1), phase.eq(1)]
            with m.Else():
                m.d.sync += [sck.eq(0), phase.eq(0), copi.eq(tx[30]), tx.eq(tx << 1), bit.eq(bit - 1)]
                with m.If(bit == 0):
                    m.next = then
                    if then == "WAIT":
                        m.d.sync += [cs.eq(0), wait.eq(0)]

        command = Const(READ << 24 | self.offset, 32)
        with m.FSM(name="loader"):
            with m.State("START"):
                m.d.sync += [cs.eq(1), copi.eq(WAKE >> 7), tx.eq(WAKE << 24), bit.eq(7)]
                m.next = "WAKE"
            with m.State("WAKE"):
                shift_out("WAIT")
            with m.State("WAIT"):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == self.wake_cycles - 1):
                    m.d.sync += [cs.eq(1), copi.eq(command[31]), tx.eq(command), bit.eq(31)]
                    m.next = "COMMAND"
            with m.State("COMMAND"):
                shift_out("DATA")
            with m.State("DATA"):
                with m.If(~phase):
                    m.d.sync += [sck.eq(1), phase.eq(1)]
                with m.Else():
                    cipo = self.flash.cipo
                    m.d.sync += [sck.eq(0), phase.eq(0), nib_bit.eq(nib_bit + 1), nibble.eq(nibble << 1 | cipo),
                                 crc.eq((crc << 1) ^ Mux(crc[15] ^ cipo, 0x1021, 0))]
                    with m.If(nib_bit == 3):
                        m.d.sync += [write.eq(1), write_slot.eq(slot), self.addr.eq(word),
                                     slot.eq(slot + 1)]
                        with m.If(slot == per_word - 1):
                            m.d.sync += [slot.eq(0), word.eq(word + 1)]
                            with m.If(last_word):
                                m.d.sync += cs.eq(0)
                                m.next = "CHECK"
            with m.State("CHECK"):  # the last nibble is written this cycle
                m.d.sync += [self.done.eq(1), self.error.eq(crc != self.crc)]
                m.next = "DONE"
            with m.State("DONE"):
                pass
        return m
