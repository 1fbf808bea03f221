"""Area of the systolic array per cell: yosys synthesis of a ladder of array sizes.

For each family (iCE40 with ``synth_ice40``, ECP5 with ``synth_ecp5``), each alpha (1: the dense
array, 8: column-combined) and each cell (bit-parallel with DSP blocks, bit-parallel with the
shift-and-add logic the array uses beyond a device's DSPs, and the bit-serial cell, which has no
multiplier), the script synthesizes ``rows x cols`` arrays for a ladder of row
counts (yosys only, no place and route) and fits a line through LUTs and flip-flops against the
number of cells: the slope is the cost of one more cell, with the fixed skew registers excluded.

    python benchmarks/area.py                      # cols 8, rows 1 2 4, both families
    python benchmarks/area.py --family ecp5 --rows 2 4 8 --cols 4

Figures are per cell of the array alone (weights, selects, multiplexers, multipliers, partial-sum
adders and registers); the engine around it (sequencer, buffers, requantizer) is not included.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from colcomb.core.table import table
from colcomb.fpga.cost import synth_components
from colcomb.hdl.array import SystolicArray

#: (cell, multiplier) -> issue 10's per-cell target at alpha 8
KINDS = {
    ("parallel", "dsp"): "<= 60 LUTs",
    ("parallel", "logic"): "<= 150 LUTs",
    ("serial", "none"): "<= 40 LUTs, <= 40 FFs",
}


def slope(cells: list[int], values: list[int]) -> float:
    """Least-squares slope of ``values`` against ``cells``."""
    return float(np.polyfit(np.asarray(cells, float), np.asarray(values, float), 1)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=["ice40", "ecp5"], nargs="+", default=["ice40", "ecp5"])
    ap.add_argument("--alpha", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4], help="the ladder of array heights")
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2, help="yosys runs at a time")
    args = ap.parse_args(argv)
    if len(set(args.rows)) < 2:
        ap.error("--rows needs at least two different heights to fit a slope")

    rows_out = []
    t0 = time.perf_counter()
    for family in args.family:
        for (cell, mult), target in KINDS.items():
            for alpha in args.alpha:
                comps = {f"r{r}": SystolicArray(rows=r, cols=args.cols, alpha=alpha, cell=cell,
                                                dsp_cells=None if mult == "dsp" else 0)
                         for r in args.rows}
                res = synth_components(family, comps, dsp=mult == "dsp", jobs=args.jobs)
                cells = [r * args.cols for r in args.rows]
                luts = [res[f"r{r}"]["luts"] for r in args.rows]
                ffs = [res[f"r{r}"]["flip_flops"] for r in args.rows]
                dsps = [res[f"r{r}"]["dsps"] for r in args.rows]
                rows_out.append([family, cell, mult, alpha, " ".join(map(str, cells)), " ".join(map(str, luts)),
                                 " ".join(map(str, ffs)), " ".join(map(str, dsps)),
                                 round(slope(cells, luts), 1), round(slope(cells, ffs), 1),
                                 target if alpha == 8 else ""])
                print(f"  {family} {cell} {mult} alpha {alpha}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(f"8-bit weights and data, {args.cols}-wide rows (yosys synth only)")
    print(table(["family", "cell", "multiplier", "alpha", "cells", "LUTs", "flip-flops", "DSPs",
                 "LUTs/cell", "FFs/cell", "target"], rows_out))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
