"""Delay lines: the one pipelining helper the array and the sequencer share."""

from __future__ import annotations

from amaranth.hdl import Signal, Value
from amaranth.lib import data

__all__ = ["delay"]


def delay(m, value, cycles: int, name: str = "dly"):
    """``value`` delayed by ``cycles`` registers in ``m``'s sync domain (``value`` itself for 0).

    Works for plain values and for :class:`~amaranth.lib.data.View` s (the delayed copy keeps the
    layout). Registers reset to zero, so a delayed valid bit starts low.
    """
    if cycles < 0:
        raise ValueError(f"cycles must be >= 0, not {cycles!r}")
    shape = value.shape() if isinstance(value, (Value, data.View)) else Value.cast(value).shape()
    prev = value
    for i in range(cycles):
        reg = Signal(shape, name=f"{name}_{i}")
        m.d.sync += reg.eq(prev)
        prev = reg
    return prev
