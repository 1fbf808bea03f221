"""cocotb driver and monitor for the accelerator's valid/ready word streams.

Both speak the format of :mod:`colcomb.hdl.top`: payload ``{data, last: 1}`` on
``<prefix>__payload`` (``data``: ``data_bits`` bits, one word or a beat of words packed by
:func:`colcomb.hdl.framing.pack_beats`), with ``<prefix>__valid`` and ``<prefix>__ready``. A transfer happens at a
rising clock edge where valid and ready are both high; both classes sample in the ReadOnly phase
before that edge and number cycles by simulation time (``cycle = time / period``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, ReadOnly, RisingEdge

from colcomb.hdl.framing import encode_word, split_payload

__all__ = ["Beat", "StreamDriver", "StreamMonitor"]


@dataclass(frozen=True)
class Beat:
    cycle: int
    data: int  # the payload's data bits, unsigned
    last: bool


def _cycle(period_ns: float) -> int:
    return round(get_sim_time("ns") / period_ns)


class _StreamPort:
    """The ``<prefix>__valid/ready/payload`` signals of one stream of the design."""

    def __init__(self, dut, clk, prefix: str, data_bits: int, period_ns: float, seed: int):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clk = clk
        self.data_bits = data_bits
        self.period = period_ns
        self.rng = random.Random(seed)


class StreamDriver(_StreamPort):
    """Drives beats into ``<prefix>__*``; with ``idle`` > 0 it inserts random idle cycles
    (valid low) before a beat with that probability."""

    def __init__(self, dut, clk, *, prefix: str = "i", data_bits: int = 8, period_ns: float = 10,
                 idle: float = 0.0, seed: int = 0):
        super().__init__(dut, clk, prefix, data_bits, period_ns, seed)
        self.idle = idle
        self.sent: list[Beat] = []
        self.valid.value = 0

    async def send(self, words, lasts) -> None:
        """Send every beat's data (``lasts``: its last flag); returns after the final transfer."""
        for data, last in zip(words, lasts, strict=True):
            while self.idle and self.rng.random() < self.idle:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = encode_word(data, last, self.data_bits)
            while True:
                await ReadOnly()
                if self.ready.value == 1:
                    self.sent.append(Beat(_cycle(self.period), int(data) & ((1 << self.data_bits) - 1), bool(last)))
                    await RisingEdge(self.clk)
                    break
                await RisingEdge(self.clk)
        self.valid.value = 0


class StreamMonitor(_StreamPort):
    """Accepts beats from ``<prefix>__*`` and records them; with ``stall`` > 0 it holds ready
    low on random cycles (back-pressure) with that probability."""

    def __init__(self, dut, clk, *, prefix: str = "o", data_bits: int = 8, period_ns: float = 10,
                 stall: float = 0.0, seed: int = 1):
        super().__init__(dut, clk, prefix, data_bits, period_ns, seed)
        self.stall = stall
        self.received: list[Beat] = []
        self._want = 0
        self._enough = Event()
        self.ready.value = 0

    def start(self):
        return cocotb.start_soon(self._run())

    async def wait_for(self, count: int) -> None:
        """Return once ``count`` beats have been received in total."""
        self._want = count
        if len(self.received) >= count:
            return
        self._enough.clear()
        await self._enough.wait()

    async def _run(self) -> None:
        while True:
            self.ready.value = 0 if self.stall and self.rng.random() < self.stall else 1
            await ReadOnly()
            if self.valid.value == 1 and self.ready.value == 1:
                data, last = split_payload(self.payload.value.to_unsigned(), self.data_bits)
                self.received.append(Beat(_cycle(self.period), data, last))
                if self._want and len(self.received) >= self._want:
                    self._enough.set()
            await RisingEdge(self.clk)
