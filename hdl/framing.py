"""The stream framing of :class:`~colcomb.hdl.top.Top`, in one place: how a beat carries its
words and ``last`` flag, and which beats of a stream of vectors carry ``last``.

A beat carries ``beat`` activation words (one by default): ``{data: signed(data_bits), last: 1}``
with one word, ``{data: beat x signed(data_bits), last: 1}`` with more (:func:`word_layout`:
word 0 in the low bits, ``last`` above them all). A vector's words go ``beat`` to a beat, word 0
first; its last beat is padded (input padding is ignored, output padding is zero), so every
vector starts a beat. A stream of vectors is cut into batches of ``batch`` vectors; ``last``
marks the final beat of each batch. The hardware, the cocotb and Amaranth benches, the
scoreboard and the board self-test all frame their streams with these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth.hdl import Shape, signed
from amaranth.lib import data

__all__ = ["batch_last_flags", "beat_data", "beat_words", "decode_word", "encode_word", "pack_beats",
           "split_payload", "stream_payloads", "unpack_beats", "word_layout"]


def beat_data(data_bits: int, beat: int = 1) -> Shape | data.ArrayLayout:
    """The ``data`` of a beat: one signed word, or an array of ``beat`` of them."""
    return signed(data_bits) if beat == 1 else data.ArrayLayout(signed(data_bits), beat)


def word_layout(data_bits: int, beat: int = 1) -> data.StructLayout:
    """Payload of the input and output streams."""
    return data.StructLayout({"data": beat_data(data_bits, beat), "last": 1})


def encode_word(value: int, last: bool, data_bits: int) -> int:
    """The integer of a stream payload: ``value`` (two's complement, or a beat's words packed by
    :func:`pack_beats`) in the low ``data_bits`` bits, ``last`` above it."""
    return (int(bool(last)) << data_bits) | (int(value) & ((1 << data_bits) - 1))


def split_payload(word: int, data_bits: int) -> tuple[int, bool]:
    """A payload's data bits (unsigned: a word's two's complement or a beat's packed words) and
    its ``last`` flag: the inverse of :func:`encode_word`."""
    return int(word) & ((1 << data_bits) - 1), bool(int(word) >> data_bits & 1)


def decode_word(word: int, data_bits: int) -> tuple[int, bool]:
    """Inverse of :func:`encode_word` for one word: ``(value, last)``, the value signed."""
    raw, last = split_payload(word, data_bits)
    return raw - (1 << data_bits) if raw >> (data_bits - 1) else raw, last


def beat_words(words_per_vector: int, beat: int) -> int:
    """Beats per vector: its words ``beat`` at a time."""
    return -(-int(words_per_vector) // int(beat))


def pack_beats(values: np.ndarray, data_bits: int, beat: int) -> list[int]:
    """The beats' data of a stream of vectors ``values`` (vectors, words) as non-negative
    integers (word ``i`` of a beat in bits ``i * data_bits`` and up, a vector's last beat padded
    with zeros); with one word a beat, each word's two's complement."""
    x = np.asarray(values, np.int64)
    vectors, words = x.shape
    per = beat_words(words, beat)
    padded = np.zeros((vectors, per * beat), np.int64)
    padded[:, :words] = x & ((1 << data_bits) - 1)
    out = []
    for group in padded.reshape(-1, beat).tolist():
        value = 0
        for i, w in enumerate(group):
            value |= int(w) << (i * data_bits)
        out.append(value)
    return out


def unpack_beats(beats: Sequence[int], data_bits: int, beat: int, words_per_vector: int) -> tuple[list[int], list[int]]:
    """Inverse of :func:`pack_beats` for a stream that may end anywhere: the signed words in
    order without each vector's padding, and the padding words (zero when well formed)."""
    per = beat_words(words_per_vector, beat)
    words, padding = [], []
    mask, sign = (1 << data_bits) - 1, 1 << (data_bits - 1)
    for n, value in enumerate(beats):
        first = (n % per) * beat
        for i in range(beat):
            raw = int(value) >> (i * data_bits) & mask
            (words if first + i < words_per_vector else padding).append(raw - (raw & sign) * 2)
    return words, padding


def stream_payloads(values: np.ndarray, data_bits: int, batch: int | None = None, beat: int = 1) -> list[int]:
    """The stream payloads of ``values`` (vectors x words): the beats' data
    (:func:`pack_beats`), ``last`` (bit ``beat * data_bits``) on the final beat of each batch of
    up to ``batch`` vectors (``None``: one batch)."""
    x = np.asarray(values, np.int64)
    beats = pack_beats(x, data_bits, beat)
    lasts = batch_last_flags(x.shape[0], beat_words(x.shape[1], beat), batch)
    return [encode_word(b, last, beat * data_bits) for b, last in zip(beats, lasts, strict=True)]


def batch_last_flags(vectors: int, words_per_vector: int, batch: int | None = None) -> list[bool]:
    """The ``last`` flag of each of the ``vectors x words_per_vector`` words (or beats) of a
    stream cut into batches of ``batch`` vectors (``None``: one batch): set on the final word of
    every batch."""
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
