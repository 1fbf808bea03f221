"""The lane memory layout's invariants (hypothesis): every lane a tile reads is written with the
right channel, in the row that feeds its slot, within the writes a vector's cycles allow."""

from __future__ import annotations

import numpy as np
from hw_layers import random_layer
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.layout import Slot, pack_rows, place_lanes
from colcomb.hdl.program import Program


@given(sizes=st.lists(st.integers(0, 8), min_size=1, max_size=6), alpha=st.integers(1, 8),
       lpp=st.integers(1, 48), rows=st.integers(1, 6))
@settings(max_examples=200, deadline=None)
def test_place_lanes_gives_each_member_its_own_lane(sizes, alpha, lpp, rows):
    sizes = [min(s, alpha) for s in sizes]
    placement = place_lanes(sizes, alpha, lpp, rows)
    assert [len(p) for p in placement] == sizes
    for chosen in placement:
        assert len(set(chosen)) == len(chosen) and all(0 <= lane < alpha for lane in chosen)


@given(data=st.data(), rows=st.integers(1, 5), lpp=st.integers(1, 12), max_writes=st.integers(1, 8))
@settings(max_examples=200, deadline=None)
def test_pack_rows_writes_every_needed_slot_with_its_channel(data, rows, lpp, max_writes):
    channels = list(range(data.draw(st.integers(1, 20))))
    words = data.draw(st.integers(1, 6))
    free = [(a, s) for a in range(words) for s in range(lpp)]
    picks = data.draw(st.lists(st.sampled_from(free), unique=True, max_size=len(free)))
    needs: dict[int, list[Slot]] = {}
    for a, s in picks:
        needs.setdefault(data.draw(st.sampled_from(channels)), []).append(Slot(a, s))
    tiles = pack_rows(needs, channels, rows, max_writes)
    written: dict[tuple[int, int], int] = {}
    for tile in tiles:
        assert len(tile.channels) == rows and 1 <= len(tile.writes) <= max_writes
        for addr, mask in tile.writes:
            for s in range(lpp):
                if mask >> s & 1:
                    ch = tile.channels[s % rows]  # the row whose output lands in slot s
                    assert ch is not None and (addr, s) not in written
                    written[addr, s] = ch
    assert written == {(slot.address, slot.slot): ch for ch, slots in needs.items() for slot in slots}


@given(seed=st.integers(0, 2**16), cell=st.sampled_from(["parallel", "serial"]),
       rows=st.integers(1, 4), cols=st.integers(1, 4))
@settings(max_examples=40, deadline=None)
def test_every_lane_a_cell_selects_holds_its_member(seed, cell, rows, cols):
    """Follow the program's ROMs in Python: each nonzero cell of layer 1 selects a lane slot
    that layer 0's row tiles (or the input map) wrote with the group member the packer chose."""
    rng = np.random.default_rng(seed)
    layers = [random_layer(rng, 7, 9, 4, gamma=0.3, density=0.5, block_rows=4, name="a"),
              random_layer(rng, 5, 7, 2, density=0.5, block_rows=3, name="b")]
    prog = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=2))
    lpp, A = prog.lanes_per_part, prog.alpha
    # who writes each slot: the input map (layer 0's lanes), the row tiles (the next layer's)
    # (reading layer, address, slot) -> channel; a region is reused two layers on
    holder: dict[tuple[int, int, int], int] = {}
    for w, slots in enumerate(prog.input_slots):
        for s in slots:
            holder[0, s.address, s.slot] = w
    for t in prog.tiles:
        if t.last:
            words = [(w & ((1 << prog.address_bits) - 1), w >> prog.address_bits)
                     for w in prog.writes[t.wr_first:t.wr_first + t.wr_count]]
            for addr, mask in words:
                for s in range(lpp):
                    if mask >> s & 1:
                        holder[t.layer + 1, addr, s] = t.channels[s % rows]
    for tile_index, t in enumerate(prog.tiles):
        block = prog.layers[t.layer].blocks[t.block]
        for r, ch in enumerate(t.channels):
            if ch is None:
                continue
            for c in range(min(cols, block.packed_columns - t.col_start)):
                col = t.col_start + c
                weight = block.weights[ch - block.row_start, col]
                if not weight:
                    continue
                member = block.groups[col][block.selects[ch - block.row_start, col]]
                # the cell word holds the lane slot it reads: decode it from the cell ROM
                cell_word = prog.tile_cells(tile_index)[r]
                width = prog.weight_bits + (A > 1) * (A - 1).bit_length()
                word = (cell_word >> (c * width)) & ((1 << width) - 1)
                lane = word >> prog.weight_bits if A > 1 else 0
                part, slot = divmod(c * A + lane, lpp)
                assert holder[t.layer, t.base + part, slot] == member
