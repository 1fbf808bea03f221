"""Cycles of one sparse layer on a column-combined array vs the same-size dense array.

The same random sparse layer (integer weights) is packed twice: column-combined (``--alpha``,
``--gamma``) and dense (alpha = 1, one array column per input column, zeros stored). Both run
in Verilator through the cocotb bench, bit-exact against the golden model, on an array of
``--rows`` x ``--cols`` cells with the same batch, for ``--batches`` and twice as many full
batches back to back. Printed per array: packed columns, tiles, the engine's cycles per batch
and how busy it is (cycles a vector streams / engine cycles), the measured total cycles of both
runs, and the steady-state cycles per inference: measured (the difference of the two runs over
the extra vectors) and the cycle model's; what a vector costs the top's input port, engine and
sender (the slowest binds); then the combined/dense ratios.

    python benchmarks/cycles.py                       # 128 x 256 layer, 10% dense, 8 x 8 array
    python benchmarks/cycles.py --shape 48x192 --batch 64 --opt -O2
    python benchmarks/cycles.py --batch 64 --batches 2 --beat 8   # 8 words a stream beat, both arrays
    python benchmarks/cycles.py --beat 8 --shadow     # and shadow weights
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import cycles_per_inference, engine_cycles
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
    ap.add_argument("--shape", default="128x256", help="layer rows x cols (default 128x256)")
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--alpha", type=int, default=8)
    ap.add_argument("--gamma", type=float, default=0.5)
    ap.add_argument("--rows", type=int, default=8, help="array rows (default 8)")
    ap.add_argument("--cols", type=int, default=8, help="array columns (default 8)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=3, help="full batches of the short run (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--beat", type=int, default=1, help="words per stream beat, both arrays (default 1)")
    ap.add_argument("--shadow", action="store_true", help="shadow weights, both arrays")
    ap.add_argument("--opt", default="-O0", help="C++ optimisation of the Verilator builds")
    ap.add_argument("--root", default=None, help="build cache (default build/sim)")
    args = ap.parse_args()
    rows, cols = (int(v) for v in args.shape.lower().split("x"))

    combined = sparse_layer(rows, cols, args.density, args.alpha, args.gamma, args.seed)
    dense = dense_equivalent(combined)
    short, long = args.batches * args.batch, 2 * args.batches * args.batch
    x = random_inputs(combined, long, seed=args.seed)
    print(f"layer {rows} x {cols}, {np.count_nonzero(combined.dense_int())} nonzero weights "
          f"after combining (density {args.density} before), array {args.rows} x {args.cols}, "
          f"batch {args.batch}, {short} and {long} vectors, {args.beat} word(s) a beat"
          f"{', shadow weights' if args.shadow else ''}, C++ {args.opt}", flush=True)
    rows_out = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for label, layer in (("combined", combined), ("dense", dense)):
            folder = Path(tmp) / label
            write_manifest([layer], folder)
            config = HardwareConfig(rows=args.rows, cols=args.cols, batch=args.batch, beat=args.beat,
                                    shadow=args.shadow)
            built = build([layer], config, root=args.root, opt=args.opt)
            runs = [run(built, folder, x[:n]) for n in (short, long)]
            prog = Program.compile([layer], config)
            engine = engine_cycles(prog, args.batch)
            streaming = len(prog.tiles) * args.batch * prog.cycles_per_vector
            per_inf = (runs[1].cycles - runs[0].cycles) / (long - short)
            model = cycles_per_inference([engine_cycles(prog, b) for b in range(1, args.batch + 1)],
                                         prog.input_cycles, prog.out_beats)
            # what a vector costs each of the top's three processes: the slowest binds
            costs = {"input": prog.input_cycles, "engine": engine / args.batch, "output": prog.out_beats}
            bound = max(costs, key=costs.get)
            rows_out.append((label, layer, len(prog.tiles), engine, streaming / engine, runs, per_inf, model,
                             costs, bound))
            print(f"  {label}: done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    print()
    print(f"{'array':<10}{'alpha':>6}{'packed':>8}{'tiles':>7}{'engine/batch':>14}{'busy':>7}"
          f"{'total cyc':>18}{'cyc/inference':>15}{'model':>8}  {'in/eng/out per vector':<24}check")
    for label, layer, tiles, engine, busy, runs, per_inf, model, costs, bound in rows_out:
        ok = all(r.passed for r in runs)
        per = f"{costs['input']}/{costs['engine']:.1f}/{costs['output']} {bound}"
        print(f"{label:<10}{layer.alpha:>6}{layer.packed_columns:>8}{tiles:>7}{engine:>14}{busy:>7.2f}"
              f"{runs[0].cycles:>9}{runs[1].cycles:>9}{per_inf:>15.1f}{model:>8.1f}  {per:<24}"
              f"{'bit-exact' if ok else 'MISMATCH'}")
    c, d = rows_out
    print(f"combined/dense: engine cycles {c[3] / d[3]:.3f} ({d[3] / c[3]:.2f}x fewer), "
          f"steady-state cycles per inference {c[6] / d[6]:.3f} ({d[6] / c[6]:.2f}x fewer); "
          f"packed columns {combined.packed_columns} vs {dense.packed_columns}")


if __name__ == "__main__":
    main()
