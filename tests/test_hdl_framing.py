"""The stream framing helper: word encoding and batch ``last`` flags, against plain arithmetic."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.hdl.framing import batch_last_flags, decode_word, encode_word, word_layout


@given(vectors=st.integers(0, 40), words=st.integers(1, 6), batch=st.integers(1, 12))
@settings(max_examples=200, deadline=None)
def test_last_marks_the_final_word_of_each_batch(vectors, words, batch):
    flags = np.array(batch_last_flags(vectors, words, batch))
    assert flags.shape == (vectors * words,)
    # word i is last iff it ends its vector and that vector ends a batch or the stream
    i = np.arange(vectors * words)
    vector = i // words
    ends_vector = i % words == words - 1
    expected = ends_vector & (((vector + 1) % batch == 0) | (vector == vectors - 1))
    assert np.array_equal(flags, expected)
    assert flags.sum() == -(-vectors // batch)


def test_one_batch_marks_only_the_final_word():
    assert batch_last_flags(3, 2) == [False] * 5 + [True]
    assert batch_last_flags(0, 2) == []


@pytest.mark.parametrize("bad", [dict(vectors=-1, words_per_vector=1),
                                 dict(vectors=1, words_per_vector=0),
                                 dict(vectors=1, words_per_vector=1, batch=0)])
def test_bad_framing_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        batch_last_flags(**bad)


@given(bits=st.integers(2, 16), data=st.data(), last=st.booleans())
def test_word_round_trip_matches_the_stream_layout(bits, data, last):
    value = data.draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
    word = encode_word(value, last, bits)
    assert decode_word(word, bits) == (value, last)
    layout = word_layout(bits)
    assert word >> layout["last"].offset == int(last)
    assert word & ((1 << layout["data"].width) - 1) == value % (1 << bits)
    assert layout.size == bits + 1
