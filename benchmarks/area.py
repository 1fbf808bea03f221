"""Area of the systolic array per cell: yosys synthesis of a ladder of array sizes.

For each family (iCE40 with ``synth_ice40``, ECP5 with ``synth_ecp5``), each alpha (1: the dense
array, 8: column-combined) and each cell (bit-parallel with DSP blocks, bit-parallel with the
the logic multiplier the array uses beyond a device's DSPs, and the bit-serial cell, which has no
multiplier), the script synthesizes ``rows x cols`` arrays for a ladder of row
counts (yosys only, no place and route) and fits a line through LUTs and flip-flops against the
number of cells: the slope is the cost of one more cell, with the fixed skew registers excluded.

    python benchmarks/area.py                      # cols 8, rows 1 2 4, both families
    python benchmarks/area.py --family ecp5 --rows 2 4 8 --cols 4
    python benchmarks/area.py --multiplier logic --select onehot --alpha 8 --no-design   # one row per family

Figures are per cell of the array alone (weights, selects, multiplexers, multipliers, partial-sum
adders and registers); the engine around it (sequencer, buffers, requantizer) is not included.

A second table synthesizes the whole design (the top: array, engine, activation memories) of the
README's 16 x 64 example layer (12 % dense, alpha 8, gamma 0.5) on a 4 x 4 array at ``--batch``
16 and 256, for both cells, and prints how the flip-flops, LUTs and block RAMs change with the
batch (the activations live in block RAM, so the flip-flops should not grow). ``--no-design``
skips it.

``--fit`` adds place and route (``colcomb synthesize``, minutes to an hour each on two cores) of
the issue's fit targets, with the whole self-testing design on the board: the 16 x 64 example
as a 4 x 4 and an 8 x 8 serial array on the iCEBreaker at 12 MHz (its 8 DSPs hold the
requantizer), and a 128 x 256 layer (10 % dense, alpha 8, gamma 0.5) as a 16 x 16 serial array
on the ULX3S-85F at 50 MHz; it prints each build's fit and Fmax.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from colcomb.core.table import table
from colcomb.fpga.cost import synth_components
from colcomb.fpga.synth import onehot_select
from colcomb.hdl.array import SystolicArray
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.program import Program
from colcomb.hdl.top import Top
from colcomb.packer.pack import PackOptions, pack_layer

#: (cell, multiplier, select) -> issue 10's per-cell target at alpha 8; ``synthesize`` uses the
#: one-hot select for parallel cells from alpha 8 (:func:`colcomb.fpga.synth.onehot_select`)
KINDS = {
    ("parallel", "dsp", "binary"): "<= 60 LUTs",
    ("parallel", "dsp", "onehot"): "<= 60 LUTs",
    ("parallel", "logic", "binary"): "<= 150 LUTs",
    ("parallel", "logic", "onehot"): "<= 150 LUTs",
    ("serial", "none", "binary"): "<= 40 LUTs, <= 40 FFs",
}


def slope(cells: list[int], values: list[int]) -> float:
    """Least-squares slope of ``values`` against ``cells``."""
    return float(np.polyfit(np.asarray(cells, float), np.asarray(values, float), 1)[0])


def random_layer(shape: tuple[int, int], density: float, seed: int):
    """A random sparse layer packed as the README's commands pack it (alpha 8, gamma 0.5, relu)."""
    r = np.random.default_rng(seed)
    w = r.standard_normal(shape) * (r.random(shape) < density)
    return pack_layer("w", w, PackOptions(alpha=8, gamma=0.5, activation="relu"))


def example_layer():
    """The README's 16 x 64 example layer (the same seed and packing as its commands)."""
    return random_layer((16, 64), 0.12, 3)


def design_rows(families: list[str], batches: list[int], jobs: int) -> list[list]:
    """Whole-design resources of the example layer on a 4 x 4 array, per family, cell and batch,
    with each figure's ratio to the smallest batch's."""
    layer = example_layer()
    out = []
    for family in families:
        for cell in ("parallel", "serial"):
            comps = {f"b{b}": Top(program=Program.compile([layer],
                HardwareConfig(rows=4, cols=4, cell=cell, batch=b), onehot=onehot_select(family, cell, layer.alpha)))
                     for b in batches}
            res = synth_components(family, comps, dsp=cell == "parallel", jobs=jobs)
            base = res[f"b{batches[0]}"]
            for b in batches:
                r = res[f"b{b}"]
                out.append([family, cell, b, r["luts"], r["flip_flops"], r["block_rams"], r["dsps"],
                            f"{r['flip_flops'] / base['flip_flops']:.3f}", f"{r['luts'] / base['luts']:.3f}"])
    return out


#: the issue's place-and-route targets: (name, layer shape, density, seed, board, rows, cols,
#: cell, clock MHz, dsp)
FITS = [
    ("iCEBreaker 4x4 serial", (16, 64), 0.12, 3, "icebreaker", 4, 4, "serial", 12.0, True),
    ("iCEBreaker 8x8 serial", (16, 64), 0.12, 3, "icebreaker", 8, 8, "serial", 12.0, True),
    ("ULX3S-85F 16x16 serial", (128, 256), 0.10, 7, "ulx3s-85f", 16, 16, "serial", 50.0, None),
]


def fit_rows(out_root: Path) -> list[list]:
    """Place and route each of :data:`FITS` (the self-test top, one batch of 16 stored vectors)."""
    from colcomb.core.errors import ColcombError
    from colcomb.fpga.synth import synthesize
    from colcomb.packer.manifest import write_manifest

    rows = []
    for name, (r, c), density, seed, board, ar, ac, cell, mhz, dsp in FITS:
        folder = out_root / name.replace(" ", "-")
        write_manifest([random_layer((r, c), density, seed)], folder / "packed")
        t0 = time.perf_counter()
        try:
            rep = synthesize(folder / "packed",
                HardwareConfig(rows=ar, cols=ac, cell=cell, dsp=dsp, batch=16, clock_mhz=mhz, board=board),
                out=folder / "build", log=lambda msg: None)
        except ColcombError:
            rep = json.loads((folder / "build" / "report.json").read_text())
        res, clk = rep["resources"], rep["clock"]
        rows.append([name, f"{r}x{c}", res["luts"], res["flip_flops"],
                     f"{res['logic_cells']} / {res['logic_cells_available']}",
                     f"{res['block_rams']} / {res['block_rams_available']}",
                     f"{res['dsps']} / {res['dsps_available']}",
                     f"{clk['fmax_mhz']:.2f}" if clk.get("fmax_mhz") else "-", f"{mhz:g}",
                     rep["status"], f"{time.perf_counter() - t0:.0f}"])
        print(f"  {name}: {rep['status']}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=["ice40", "ecp5"], nargs="+", default=["ice40", "ecp5"])
    ap.add_argument("--alpha", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4], help="the ladder of array heights")
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2, help="yosys runs at a time")
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 256], help="batches of the design table")
    ap.add_argument("--cells", action=argparse.BooleanOptionalAction, default=True,
                    help="the per-cell ladder (default on)")
    ap.add_argument("--cell", choices=["parallel", "serial"], nargs="+", default=["parallel", "serial"],
                    help="only these cells in the ladder")
    ap.add_argument("--multiplier", choices=["dsp", "logic", "none"], nargs="+", default=["dsp", "logic", "none"],
                    help="only these multipliers in the ladder (none: the serial cell)")
    ap.add_argument("--select", choices=["binary", "onehot"], nargs="+", default=["binary", "onehot"],
                    help="only these select encodings in the ladder")
    ap.add_argument("--fit", action="store_true",
                    help="also place and route the issue's fit targets (slow; build/area-fit)")
    ap.add_argument("--design", action=argparse.BooleanOptionalAction, default=True,
                    help="also synthesize the whole example design at each --batch (default on)")
    args = ap.parse_args(argv)
    if len(set(args.rows)) < 2:
        ap.error("--rows needs at least two different heights to fit a slope")

    rows_out = []
    t0 = time.perf_counter()
    for family in args.family if args.cells else []:
        for (cell, mult, select), target in KINDS.items():
            if cell not in args.cell or mult not in args.multiplier or select not in args.select:
                continue
            for alpha in args.alpha:
                if select == "onehot" and alpha < 3:
                    continue  # one select bit either way
                comps = {f"r{r}": SystolicArray(rows=r, cols=args.cols, alpha=alpha, cell=cell,
                                                dsp_cells=None if mult == "dsp" else 0,
                                                onehot=select == "onehot")
                         for r in args.rows}
                res = synth_components(family, comps, dsp=mult == "dsp", jobs=args.jobs)
                cells = [r * args.cols for r in args.rows]
                luts = [res[f"r{r}"]["luts"] for r in args.rows]
                ffs = [res[f"r{r}"]["flip_flops"] for r in args.rows]
                dsps = [res[f"r{r}"]["dsps"] for r in args.rows]
                rows_out.append([family, cell, mult, select, alpha, " ".join(map(str, cells)), " ".join(map(str, luts)),
                                 " ".join(map(str, ffs)), " ".join(map(str, dsps)),
                                 round(slope(cells, luts), 1), round(slope(cells, ffs), 1),
                                 target if alpha == 8 else ""])
                print(f"  {family} {cell} {mult} {select} alpha {alpha}: done ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
    if args.cells:
        print()
        print(f"8-bit weights and data, {args.cols}-wide rows (yosys synth only)")
        print(table(["family", "cell", "multiplier", "select", "alpha", "cells", "LUTs", "flip-flops", "DSPs",
                     "LUTs/cell", "FFs/cell", "target"], rows_out))
        print(f"({time.perf_counter() - t0:.0f} s)")
    if args.design:
        rows = design_rows(args.family, sorted(args.batch), args.jobs)
        print()
        print("whole design, 16 x 64 example layer (alpha 8, gamma 0.5) on a 4 x 4 array (yosys synth only)")
        print(table(["family", "cell", "batch", "LUTs", "flip-flops", "block RAMs", "DSPs",
                     "FFs / smallest batch", "LUTs / smallest batch"], rows))
        print(f"({time.perf_counter() - t0:.0f} s)")
    if args.fit:
        rows = fit_rows(Path("build") / "area-fit")
        print()
        print("place and route: the whole self-testing design, 16 stored vectors")
        print(table(["target", "layer", "LUTs", "flip-flops", "logic cells", "block RAMs", "DSPs",
                     "Fmax MHz", "clock MHz", "status", "s"], rows))
        print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
