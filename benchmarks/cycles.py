"""Cycles of one sparse layer on a column-combined array vs the same-size dense array.

The same random sparse layer (integer weights) is packed twice: column-combined (``--alpha``,
``--gamma``) and dense (alpha = 1, one array column per input column, zeros stored). Both run
in Verilator through the cocotb bench, bit-exact against the golden model, on an array of
``--rows`` x ``--cols`` cells with the same batch. Printed: packed columns, tiles, engine
cycles (last input word -> first output word) and total cycles (first input word -> last output
word), their ratios, and simulation speed (simulated cycles per second of wall time, excluding
the build).

    python benchmarks/cycles.py                       # 48 x 192 layer, 10% dense, 8 x 8 array
    python benchmarks/cycles.py --alpha 4 --gamma 0 --opt -O2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from colcomb.hdl.program import Program, dense_equivalent
from colcomb.packer.combine import combine, group_columns
from colcomb.packer.manifest import write_manifest
from colcomb.packer.packed import PackedBlock, PackedLayer, Requant
from colcomb.sim.runner import build, random_inputs, run


def sparse_layer(rows: int, cols: int, density: float, alpha: int, gamma: float,
                 seed: int) -> PackedLayer:
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (rows, cols)) * (rng.random((rows, cols)) < density)
    groups = group_columns(w.astype(np.float64), alpha, gamma)
    packed, selects = combine(w, groups)
    block = PackedBlock(0, rows, tuple(tuple(g) for g in groups), packed.astype(np.int64),
                        selects, np.ones(rows))
    typical = max(1.0, np.sqrt(max(1, np.count_nonzero(w) / rows)) * 64 * 64)
    shift = 16
    mult = np.full(rows, int(40 * (1 << shift) / typical), np.int64)
    requant = Requant(bias=rng.integers(-1000, 1000, rows), multiplier=mult, shift=shift,
                      activation="none", clamp=(-128, 127))
    layer = PackedLayer(name="fc", shape=(rows, cols), alpha=alpha, gamma=gamma, bits=8,
                        blocks=(block,), requant=requant)
    layer.validate()
    return layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="48x192", help="layer rows x cols (default 48x192)")
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--alpha", type=int, default=8)
    ap.add_argument("--gamma", type=float, default=0.5)
    ap.add_argument("--rows", type=int, default=8, help="array rows (default 8)")
    ap.add_argument("--cols", type=int, default=8, help="array columns (default 8)")
    ap.add_argument("--vectors", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opt", default="-O0", help="C++ optimisation of the Verilator builds")
    ap.add_argument("--root", default=None, help="build cache (default build/sim)")
    args = ap.parse_args()
    rows, cols = (int(v) for v in args.shape.lower().split("x"))

    combined = sparse_layer(rows, cols, args.density, args.alpha, args.gamma, args.seed)
    dense = dense_equivalent(combined)
    x = random_inputs(combined, args.vectors, seed=args.seed)
    print(f"layer {rows} x {cols}, {np.count_nonzero(combined.dense_int())} nonzero weights "
          f"after combining (density {args.density} before), array {args.rows} x {args.cols}, "
          f"{args.vectors} vectors in batches of {args.batch}, C++ {args.opt}")
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, layer in (("combined", combined), ("dense", dense)):
            folder = Path(tmp) / label
            write_manifest([layer], folder)
            t0 = time.perf_counter()
            built = build([layer], args.rows, args.cols, batch=args.batch, root=args.root,
                          opt=args.opt)
            build_s = time.perf_counter() - t0
            res = run(built, folder, x)
            tiles = len(Program.compile([layer], rows=args.rows, cols=args.cols,
                                        batch=args.batch).tiles)
            rows_out.append((label, layer, tiles, res, build_s, built.cached))
    print(f"{'array':<10}{'alpha':>6}{'packed':>8}{'tiles':>7}{'engine cyc':>12}"
          f"{'total cyc':>11}{'MAC/cyc':>9}{'sim cyc/s':>11}{'build s':>9}  check")
    for label, layer, tiles, res, build_s, cached in rows_out:
        print(f"{label:<10}{layer.alpha:>6}{layer.packed_columns:>8}{tiles:>7}"
              f"{res.compute_cycles:>12}{res.cycles:>11}{res.compute_macs_per_cycle:>9.2f}"
              f"{res.sim_cycles_per_s:>11.0f}{build_s:>9.1f}{' (cached)' if cached else ''}"
              f"  {'bit-exact' if res.passed else 'MISMATCH'}")
    c, d = rows_out[0][3], rows_out[1][3]
    print(f"cycle ratio combined/dense: engine {c.compute_cycles / d.compute_cycles:.3f}, "
          f"total {c.cycles / d.cycles:.3f}; speed-up {d.compute_cycles / c.compute_cycles:.2f}x "
          f"(packed columns {combined.packed_columns} vs {dense.packed_columns})")


if __name__ == "__main__":
    main()
