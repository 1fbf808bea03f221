"""A Python walk through a compiled image network's ROMs and memories, as the engine moves data.

It reads only what the hardware reads (the input slots, descriptors, cell words, column offsets,
window origins, position table, writes and requant words of :class:`~colcomb.hdl.program.Program`)
and computes like the golden model, so comparing it with
:func:`colcomb.packer.graph.run_graph` checks the compiled layout apart from the RTL."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Shape

from colcomb.hdl.program import Program, cell_layout
from colcomb.packer.golden import requantize


def _field(word: int, layout, name: str) -> int:
    f = layout[name]
    raw = (int(word) >> f.offset) & ((1 << f.width) - 1)
    if Shape.cast(f.shape).signed and raw >> (f.width - 1):
        raw -= 1 << f.width
    return raw


def run_program(prog: Program, images: np.ndarray) -> np.ndarray:
    """(N, outputs) integer outputs of ``prog`` (an image network) for (N, C, H, W) images, N at
    most the batch."""
    R, C, A = prog.rows, prog.cols, prog.alpha
    lpp = prog.lanes_per_part
    depth = prog.memory_depths
    mem = {name: np.zeros((depth[name], lpp), np.int64) for name in depth}
    n = len(images)
    flat = images.reshape(n, -1)
    stride0 = prog.layer_info[0]["read_stride"]
    k = prog.input_run
    run = [0] * k  # the hardware's shift register: never cleared, it carries over rows and images
    for b in range(n):
        for w, slots in enumerate(prog.input_slots):
            for j, s in enumerate(slots):
                if not k:
                    mem["input"][s.address + b * stride0, s.slot] = flat[b, w]
                    continue
                # row runs: the pixels pass a shift register of k words, each written whole (the
                # newest in slot k - 1); a row's last pixel shifts zeros in for the border
                run = [*run[1:], flat[b, w] if j == 0 else 0]
                mem["input"][s.address + b * stride0, :k] = run
    cl = cell_layout(prog.weight_bits, A, prog.onehot)
    tl = prog.tile_layout
    wl = prog.write_layout
    for li, info in enumerate(prog.layer_info):
        layer = prog.layers[li]
        tiles = [(i, t) for i, t in enumerate(prog.tiles) if t.layer == li]
        src = mem["input"] if li == 0 else mem["lanes"]
        dst = mem["output"] if li == len(prog.layers) - 1 else mem["lanes"]
        total = n * info["positions"]
        pool_n = info["pool"] ** 2
        for start in range(0, total, info["chunk"]):
            vectors = range(start, min(total, start + info["chunk"]))
            acc = {}
            for i, t in tiles:
                desc = prog.descriptors[i]
                cells = prog.tile_cells(i)  # row 0 first
                w = np.array([[_field(word >> (c * cl.size), cl, "weight") for c in range(C)] for word in cells])
                s = np.array([[_field(word >> (c * cl.size), cl, "select") for c in range(C)] for word in cells])
                offsets = prog.column_offsets[i * C: (i + 1) * C]
                sums = []
                for v in vectors:
                    b, q = divmod(v, info["positions"])
                    at = _field(desc, tl, "base") + b * info["read_stride"] + prog.patches[info["patch_first"] + q]
                    lanes = np.array([src[at + offsets[c]] for c in range(C)])  # (C, A)
                    sums.append((w * lanes[np.arange(C), s]).sum(axis=1))
                if t.first:
                    acc = dict(zip(vectors, sums, strict=True))
                else:
                    acc = {v: acc[v] + x for v, x in zip(vectors, sums, strict=True)}
                if not t.last:
                    continue
                rows = list(t.channels)
                out = np.zeros(R, np.int64)
                held = None
                for v in vectors:
                    live = [r for r, ch in enumerate(rows) if ch is not None]
                    out[:] = 0
                    out[live] = requantize_rows(layer, [rows[r] for r in live], acc[v][live])
                    b, q = divmod(v, info["positions"])
                    held = out.copy() if q % pool_n == 0 else np.maximum(held, out)
                    if q % pool_n != pool_n - 1:
                        continue
                    u = q // pool_n
                    k = prog.positions[_field(desc, tl, "wr_first") + u]
                    while True:
                        e = prog.writes[k]
                        at = _field(e, wl, "address") + b * info["write_stride"]
                        mask = _field(e, wl, "mask")
                        for slot in range(lpp):
                            if mask >> slot & 1:
                                dst[at, slot] = held[_field(e, wl, "row") if _field(e, wl, "single") else slot % R]
                        if _field(e, wl, "last"):
                            break
                        k += 1
    geo = prog.geometry
    outs = np.zeros((n, prog.out_words), np.int64)
    for b in range(n):
        for w in range(prog.out_words):
            tile, lane = divmod(w, geo.lanes_per_part * geo.parts)
            addr, slot = geo.address(0, tile, lane)
            outs[b, w] = mem["output"][addr + b * geo.parts, slot]
    return outs


def requantize_rows(layer, channels: list[int], sums: np.ndarray) -> np.ndarray:
    """The golden requantization of ``sums`` of the given output channels of ``layer``."""
    full = np.zeros((1, layer.rows), np.int64)
    full[0, channels] = sums
    return requantize(layer, full)[0, channels]
