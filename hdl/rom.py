"""Read-only memories initialised from the tile program (weights, selects, lanes, descriptors)."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from colcomb.hdl.params import check_int, validated

__all__ = ["Rom"]


class Rom(wiring.Component):
    """A ROM with ``ports`` synchronous read ports (one cycle of latency, enable holds the data).

    The contents are fixed at elaboration (``$readmemh``-free: Amaranth writes them into the
    Verilog as the memory's initial value). The depth is at least 2, so every address is one bit
    or more; words past ``len(init)`` are zero.

    Parameters
    ----------
    width : int
        Bits per word (>= 1).
    init : sequence of int
        The words, each ``0 <= word < 2**width``.
    ports : int
        Number of independent read ports (>= 1).

    Members
    -------
    addr{i} : ``In(range(depth))``
        Address of port ``i``.
    en{i} : ``In(1)``
        Read enable of port ``i``; while low, ``data{i}`` keeps its value.
    data{i} : ``Out(width)``
        The word at the address of the previous enabled cycle.
    """

    #: cycles from an enabled address to its word on ``data{i}`` (the memory's synchronous read
    #: port); the sequencer's cycle model (:mod:`colcomb.hdl.cycles`) counts with it
    latency = 1

    @validated
    def __init__(self, *, width: int, init: Sequence[int], ports: int = 1, name: str = "rom"):
        self.width = check_int("width", width)
        self.ports = check_int("ports", ports)
        self.init = [int(w) for w in init]
        if not self.init:
            raise ValueError(f"ROM {name!r} needs at least one word, got {list(init)!r}")
        for w in self.init:
            if not 0 <= w < 1 << width:
                raise ValueError(f"ROM {name!r}: word {w!r} does not fit {width} bits")
        self.depth = max(2, len(self.init))
        self.name = name
        members = {}
        for i in range(ports):
            members[f"addr{i}"] = In(range(self.depth))
            members[f"en{i}"] = In(1)
            members[f"data{i}"] = Out(unsigned(width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self.width), depth=self.depth,
                                               init=self.init)
        for i in range(self.ports):
            port = mem.read_port()  # synchronous: one cycle, :attr:`latency`
            m.d.comb += [
                port.addr.eq(getattr(self, f"addr{i}")),
                port.en.eq(getattr(self, f"en{i}")),
                getattr(self, f"data{i}").eq(port.data),
            ]
        return m
