"""Simulation speed: the fast bench (Verilog harness, no Python per cycle) against the per-cycle
cocotb bench, side by side on the same Verilator build of an 8 x 8 and a 16 x 16 array.

    python benchmarks/bench_speed.py [--vectors N] [--opt 1] [--sizes 8,16]

For each array it builds two small random layers (2N x 4N then N x 2N, alpha 4, gamma 0.25) once
(cached under build/sim like every bench build), runs the same inputs through both benches, checks
that both pass with the same cycle count, and prints the simulated clock cycles per second of wall
time of each (the simulated run only: no build, no simulator start-up, no golden model).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from hw_layers import random_layer

from colcomb.core.table import table
from colcomb.hdl.config import HardwareConfig
from colcomb.packer.manifest import write_manifest
from colcomb.sim.runner import OPT_LEVELS, build, random_inputs, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=256, help="input vectors per run (default 256: 16 batches)")
    ap.add_argument("--opt", choices=[level[2:] for level in OPT_LEVELS], default="1",
                    help="C++ optimisation of the build, -ON (default 1)")
    ap.add_argument("--sizes", default="8,16", help="array sizes N (N x N), comma-separated (default 8,16)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rng = np.random.default_rng(5)
            layers = [random_layer(rng, 2 * n, 4 * n, 4, gamma=0.25, name="l0", activation="relu"),
                      random_layer(rng, n, 2 * n, 4, gamma=0.25, name="l1")]
            manifest = Path(tmp) / f"net{n}"
            write_manifest(layers, manifest)
            t0 = time.perf_counter()
            built = build(layers, HardwareConfig(rows=n, cols=n, batch=16), opt=f"-O{args.opt}")
            build_s = time.perf_counter() - t0
            x = random_inputs(layers[0], args.vectors, seed=1)
            fast = run(built, manifest, x, bench="fast")
            cycle = run(built, manifest, x, bench="cycle")
            if fast.cycles != cycle.cycles:
                raise SystemExit(f"{n}x{n}: the benches disagree: {fast.cycles} vs {cycle.cycles} cycles")
            rows.append([f"{n}x{n}", args.vectors, fast.cycles, f"{cycle.sim_cycles_per_s:,.0f}",
                         f"{fast.sim_cycles_per_s:,.0f}", f"{fast.sim_cycles_per_s / cycle.sim_cycles_per_s:.1f}x",
                         f"{build_s:.0f}" + (" (cached)" if built.cached else "")])
    print(table(["array", "vectors", "cycles", "cycle bench cycles/s", "fast bench cycles/s", "speed-up",
                 "build s"], rows))
    print(f"(Verilator -O{args.opt}; both benches passed with equal cycle counts)")


if __name__ == "__main__":
    main()
