"""The stream framing of :class:`~colcomb.hdl.top.Top`, in one place: how a word carries its
value and ``last`` flag, and which words of a stream of vectors carry ``last``.

Every word is ``{data: signed(data_bits), last: 1}`` (:func:`word_layout`: ``data`` in the low
bits, ``last`` above). A stream of vectors is cut into batches of ``batch`` vectors; ``last``
marks the final word of each batch. The hardware, the cocotb and Amaranth benches, the
scoreboard and the board self-test all frame their streams with these functions.
"""

from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data

__all__ = ["batch_last_flags", "decode_word", "encode_word", "word_layout"]


def word_layout(data_bits: int) -> data.StructLayout:
    """Payload of the input and output streams."""
    return data.StructLayout({"data": signed(data_bits), "last": 1})


def encode_word(value: int, last: bool, data_bits: int) -> int:
    """The integer of a stream word: ``value`` (two's complement) in the low ``data_bits`` bits,
    ``last`` above it."""
    return (int(bool(last)) << data_bits) | (int(value) & ((1 << data_bits) - 1))


def decode_word(word: int, data_bits: int) -> tuple[int, bool]:
    """Inverse of :func:`encode_word`: ``(value, last)``."""
    raw = int(word) & ((1 << data_bits) - 1)
    value = raw - (1 << data_bits) if raw >> (data_bits - 1) else raw
    return value, bool(int(word) >> data_bits & 1)


def batch_last_flags(vectors: int, words_per_vector: int, batch: int | None = None) -> list[bool]:
    """The ``last`` flag of each of the ``vectors x words_per_vector`` words of a stream cut into
    batches of ``batch`` vectors (``None``: one batch): set on the final word of every batch."""
    if vectors < 0 or words_per_vector < 1:
        raise ValueError(f"need vectors >= 0 and words_per_vector >= 1, not {vectors!r}, "
                         f"{words_per_vector!r}")
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be at least 1 (or None for one batch), not {batch!r}")
    step = vectors if batch is None else batch
    flags = [False] * (vectors * words_per_vector)
    for start in range(0, vectors, max(1, step)):
        flags[min(vectors, start + step) * words_per_vector - 1] = True
    return flags
