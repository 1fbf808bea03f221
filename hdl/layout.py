"""The activation layout: where every activation word lives on chip.

The engine keeps all activations in block RAM laid out the way the array reads them, so a
vector's lanes for a tile are one read (``parts`` reads on the serial array) and no register
holds a whole batch. A memory word is ``lanes_per_part`` activation words (*slots*); lane ``i`` of
a tile (column ``i // alpha``, lane ``i % alpha``) is slot ``i % lanes_per_part`` of part
``i // lanes_per_part``. Three memories: the *input memory* (layer 0's lanes, written by the
host), the *lane memory* (the later layers' lanes) and the *output memory* (the network's
outputs, read by the host); the input and output memories hold two batches, so the host fills
and drains one while the engine runs the other.

Layer ``k``'s input tile ``j`` (one column tile of one row block, in program order), vector
``n``, part ``p`` is at address ``region + (j * batch + n) * parts + p`` of its memory; the later
layers alternate between the lane memory's two regions
(:meth:`~colcomb.hdl.program.Program.region_of`). The output uses the same formula with an
*identity* layout (word ``w`` is lane ``w`` of tiles of ``lanes_per_part * parts`` lanes), so the
host reads it in order.

Layer ``k`` writes its outputs straight into layer ``k + 1``'s lanes. Its rows are reordered into
row tiles so that each vector's row-tile outputs are a few masked writes: the written word
repeats the ``rows`` outputs across the slots (slot ``s`` gets output ``s % rows``), so a row tile
computes a channel in the row that matches the slot it goes to (:func:`pack_rows`). On the bit-
parallel array that is one write per vector (a vector per cycle); the serial array has
``data_bits`` cycles per vector, so a row tile may write up to that many words.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LaneGeometry", "RowTile", "Slot", "pack_rows", "place_lanes"]


@dataclass(frozen=True)
class LaneGeometry:
    """The lane memory's shape for an array with ``lanes`` lanes (``cols * alpha``)."""

    lanes: int
    parts: int
    batch: int

    @property
    def lanes_per_part(self) -> int:
        return -(-self.lanes // self.parts)

    @property
    def tile_words(self) -> int:
        """Addresses one input tile takes: ``batch`` vectors of ``parts`` words."""
        return self.batch * self.parts

    def address(self, region: int, tile: int, lane: int) -> tuple[int, int]:
        """(address of vector 0's word, slot) of ``lane`` of input tile ``tile`` in ``region``;
        vector ``n``'s word is ``n * parts`` further."""
        part, slot = divmod(lane, self.lanes_per_part)
        return region + tile * self.tile_words + part, slot


@dataclass(frozen=True)
class Slot:
    """One place a channel's value must be written: word ``address`` (of vector 0), ``slot``."""

    address: int
    slot: int


@dataclass(frozen=True)
class RowTile:
    """Rows of one row tile: ``channels[r]`` is the output channel computed in array row ``r``
    (None: an idle row), and ``writes`` the (address of vector 0, slot mask) words it writes per
    vector."""

    channels: tuple[int | None, ...]
    writes: tuple[tuple[int, int], ...]


def place_lanes(sizes: Sequence[int], alpha: int, lanes_per_part: int, rows: int) -> list[list[int]]:
    """Lane slots (0..alpha-1) for the members of each column of one tile (``sizes[c]`` members
    in column ``c``), spread so every residue ``slot % rows`` of each part gets about as many
    members: that many row tiles of the previous layer fill the part (:func:`pack_rows`)."""
    counts: dict[tuple[int, int], int] = defaultdict(int)
    placement = []
    for c, size in enumerate(sizes):
        if size > alpha:
            raise ValueError(f"column {c} has {size} members, more than alpha {alpha}")
        free = list(range(alpha))
        chosen = []
        for _ in range(size):
            def load(lane: int, c: int = c) -> tuple[int, int]:
                i = c * alpha + lane
                part, slot = divmod(i, lanes_per_part)
                return counts[part, slot % rows], lane
            best = min(free, key=load)
            free.remove(best)
            i = c * alpha + best
            part, slot = divmod(i, lanes_per_part)
            counts[part, slot % rows] += 1
            chosen.append(best)
        placement.append(chosen)
    return placement


def pack_rows(needs: dict[int, list[Slot]], channels: Sequence[int], rows: int,
              max_writes: int) -> list[RowTile]:
    """Row tiles that compute ``channels`` (one row block of a layer) and write each into every
    slot it is needed at (``needs[channel]``; a channel nobody reads is not computed).

    A channel is computed in row ``slot % rows`` of a row tile that writes the slot's word; a row
    tile writes at most ``max_writes`` words per vector. Greedy: the slots are queued per row
    (residue), sorted by word; each row tile takes the head of every row's queue whose word it
    already writes, or a new word while it may."""
    queues: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(rows)}
    for ch in channels:
        for s in needs.get(ch, ()):
            queues[s.slot % rows].append((s.address, s.slot, ch))
    for q in queues.values():
        q.sort()
    tiles: list[RowTile] = []
    while any(queues.values()):
        words: dict[int, int] = {}
        picked: list[int | None] = [None] * rows
        # rows with the longest queues choose first: they bound the tile count
        for r in sorted(range(rows), key=lambda r: -len(queues[r])):
            q = queues[r]
            pick = next((k for k, (addr, _, _) in enumerate(q) if addr in words), None)
            if pick is None and q and len(words) < max_writes:
                pick = 0
            if pick is None:
                continue
            addr, slot, ch = q.pop(pick)
            picked[r] = ch
            words[addr] = words.get(addr, 0) | (1 << slot)
        # the same channel may be needed at another slot of the same residue: queued again later
        tiles.append(RowTile(tuple(picked), tuple(sorted(words.items()))))
    return tiles
