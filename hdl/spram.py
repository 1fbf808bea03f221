"""A single-port RAM written a nibble at a time: the iCE40 UltraPlus SPRAM, or its model.

The iCE40UP5K has four 16K x 16-bit single-port RAMs (``SB_SPRAM256KA``, 256 Kbit each) beside its
30 block RAMs. They cannot be initialised by the bitstream, so what they hold is written after
configuration (:class:`~colcomb.hdl.flash_loader.FlashLoader` copies the cell words in from the
board's SPI flash). On an iCE40 platform :class:`Spram` instantiates the primitives, one per 16
bits of the word side by side; anywhere else (the Amaranth simulator, Verilator, yosys without a
platform) it is an :mod:`amaranth.lib.memory` with the same ports and timing.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated

__all__ = ["SPRAM_BLOCKS", "SPRAM_DEPTH", "SPRAM_WIDTH", "Spram", "spram_blocks"]

#: words and bits per word of one ``SB_SPRAM256KA``, and how many an iCE40UP5K has
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16
SPRAM_BLOCKS = 4


def spram_blocks(width: int) -> int:
    """SPRAM blocks side by side for words of ``width`` bits."""
    return -(-width // SPRAM_WIDTH)


class Spram(wiring.Component):
    """``depth`` words of ``width`` bits in SPRAM blocks (at most :data:`SPRAM_DEPTH` words).

    One port: a cycle either reads (``en``) or writes nibbles (``write_en``), never both. A read
    has one cycle of latency and ``data`` holds its word until the next read, like
    :class:`~colcomb.hdl.rom.Rom`'s port.

    Parameters
    ----------
    width : int
        Bits per word (the primitives' upper bits beyond it are unused).
    depth : int
        Words, 2 .. :data:`SPRAM_DEPTH`.

    Members
    -------
    addr : ``In(range(depth))``
        The word read or written.
    en : ``In(1)``
        Read ``addr``: its word is on ``data`` the next cycle.
    data : ``Out(width)``
    write_en : ``In(nibbles)``
        Write ``write_data`` into these nibbles of the word (nibble ``k``: bits ``4k .. 4k + 3``).
    write_data : ``In(4)``
    """

    #: cycles from an enabled address to its word (as :attr:`Rom.latency`)
    latency = 1

    @validated
    def __init__(self, *, width: int, depth: int):
        self.width = check_int("width", width)
        self.depth = check_int("depth", depth, 2)
        if depth > SPRAM_DEPTH:
            raise ValueError(f"an SPRAM holds at most {SPRAM_DEPTH} words, not {depth!r}")
        self.nibbles = -(-width // 4)
        super().__init__({
            "addr": In(range(depth)),
            "en": In(1),
            "data": Out(unsigned(width)),
            "write_en": In(self.nibbles),
            "write_data": In(4),
        })

    def elaborate(self, platform):
        ice40 = getattr(platform, "family", None) == "iCE40"
        if ice40 and not str(getattr(platform, "device", "")).startswith("iCE40UP"):
            raise ValueError(f"the {platform.device} has no SPRAM (only the iCE40 UltraPlus has): "
                             "keep the cell words in block RAM")
        m = Module()
        if ice40:
            self._primitives(m)
        else:
            self._model(m)
        return m

    def _primitives(self, m: Module) -> None:
        blocks = spram_blocks(self.width)
        out = Signal(blocks * SPRAM_WIDTH)
        address = Signal(14)
        mask = Signal(blocks * 4)
        writing = self.write_en.any()
        m.d.comb += [address.eq(self.addr), mask.eq(self.write_en), self.data.eq(out[:self.width])]
        for b in range(blocks):
            m.submodules[f"spram_{b}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=address,
                i_DATAIN=self.write_data.replicate(4),
                i_MASKWREN=mask[4 * b:4 * b + 4],
                i_WREN=writing,
                i_CHIPSELECT=self.en | writing,
                i_CLOCK=ClockSignal("sync"),
                i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,  # POWEROFF is active low
                o_DATAOUT=out[SPRAM_WIDTH * b:SPRAM_WIDTH * (b + 1)],
            )

    def _model(self, m: Module) -> None:
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self.nibbles * 4), depth=self.depth, init=[])
        read = mem.read_port()
        write = mem.write_port(granularity=4)
        m.d.comb += [
            read.addr.eq(self.addr), read.en.eq(self.en), self.data.eq(read.data[:self.width]),
            write.addr.eq(self.addr), write.en.eq(self.write_en),
            write.data.eq(self.write_data.replicate(self.nibbles)),
        ]
