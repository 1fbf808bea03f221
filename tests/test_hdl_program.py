"""The compiled program's cell words: one encoder (packer/rom.py) agrees with the hardware's cell
layout, field by field."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.program import cell_layout, pack_struct
from colcomb.packer.packed import select_bits
from colcomb.packer.rom import cell_words, decode_cells


@given(bits=st.integers(2, 8), alpha=st.integers(1, 8), seed=st.integers(0, 2**16))
@settings(max_examples=100, deadline=None)
def test_cell_words_fill_the_hardware_cell_layout(bits, alpha, seed):
    rng = np.random.default_rng(seed)
    weights = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (3, 4))
    selects = rng.integers(0, alpha, (3, 4)) if alpha > 1 else np.zeros((3, 4), np.int64)
    words = cell_words(weights, selects, bits)
    layout = cell_layout(bits, alpha)
    assert layout.size == bits + (select_bits(alpha) if alpha > 1 else 0)
    for w, s, word in zip(weights.ravel(), selects.ravel(), words.ravel(), strict=True):
        assert int(word) == pack_struct(layout, {"weight": w, "select": s})
        assert 0 <= int(word) < 1 << layout.size
    got_w, got_s = decode_cells(words.ravel(), bits, 3, 4)
    assert np.array_equal(got_w, weights) and np.array_equal(got_s, selects)


def test_serial_requant_rom_holds_each_row_tile_in_steps():
    """Serial, rows 12 at 8-bit data: two lanes, six steps; each row tile takes six requant
    words (the lanes' rows in order), the descriptors point at a row tile's first word."""
    import numpy as np
    from hw_layers import random_layer

    from colcomb.hdl.program import Program

    rng = np.random.default_rng(4)
    layer = random_layer(rng, 30, 20, 4, gamma=0.25)
    prog = Program.compile([layer], HardwareConfig(rows=12, cols=4, cell="serial"))
    assert (prog.requant_steps, prog.requant_lanes) == (6, 2)
    row_tiles = sum(t.last for t in prog.tiles)
    assert len(prog.requant) == 6 * row_tiles
    elem = prog.requant_layout.elem_shape

    def field(word: int, lane: int, name: str) -> int:
        f = elem[name]
        raw = word >> (lane * elem.size + f.offset) & ((1 << f.width) - 1)
        return raw - (1 << f.width) if f.shape.signed and raw >> (f.width - 1) else raw

    for t in prog.tiles:
        assert t.rq % 6 == 0
        # word k holds rows 2k and 2k + 1 of the row tile
        for r, ch in enumerate(t.channels):
            if ch is None:
                continue
            word = prog.requant[t.rq + r // 2]
            assert field(word, r % 2, "bias") == int(layer.requant.bias[ch])
            assert field(word, r % 2, "mult") == int(layer.requant.multiplier[ch])
            assert field(word, r % 2, "shift") == int(layer.requant.shift[ch])


def test_serial_column_words_unless_they_cost_tiles():
    """8 x 8 serial at 8-bit data: a word per column for one layer; a network whose later layer
    would need more row tiles in the narrower words keeps the gathered parts."""
    import numpy as np
    from hw_layers import random_layer

    from colcomb.hdl.program import Program, default_parts

    assert default_parts("serial", 64, 8, 8) == 8 and default_parts("serial", 64, 8) == 4
    assert default_parts("serial", 48, 8, 6) == 4 and default_parts("parallel", 64, 8, 8) == 1
    rng = np.random.default_rng(1)
    layers = [random_layer(rng, 120, 256, 8, gamma=0.5, density=0.1, name="a", activation="relu"),
              random_layer(rng, 84, 120, 8, gamma=0.5, density=0.2, name="b", activation="relu"),
              random_layer(rng, 10, 84, 8, gamma=0.5, density=0.3, name="c")]
    assert Program.compile(layers[:1], HardwareConfig(rows=8, cols=8, cell="serial")).column_words
    chosen = Program.compile(layers, HardwareConfig(rows=8, cols=8, cell="serial"))
    columns = Program.compile(layers, HardwareConfig(rows=8, cols=8, cell="serial"), parts=8)
    gathered = Program.compile(layers, HardwareConfig(rows=8, cols=8, cell="serial"), parts=4)
    assert len(gathered.tiles) < len(columns.tiles)
    assert chosen.parts == 4 and len(chosen.tiles) == len(gathered.tiles)
