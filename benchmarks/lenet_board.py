"""LeNet-5 whole on chip, image to class: inferences per second on each board, and the gain over
the dense array.

For each board it builds the self-test top of a LeNet-5 trained by ``colcomb train --model lenet5
--per-feature-map`` (alpha 8, gamma 0.5, :data:`RUNS`; trained first when its folder is missing) exactly as
``colcomb synthesize --test-split N`` does: yosys and nextpnr give the fit and the Fmax, a
Verilator run of the design's own network the steady-state cycles per inference, and
inferences/s = Fmax / cycles. A design that does not fit is reported with what binds. Then the
same network and its dense equivalent (every combined column stored alone, alpha 1: the same
outputs) run side by side in Verilator on the same array, each checked bit-exact against the
integer CNN path, and their cycles per inference give the combining gain.

    python benchmarks/lenet_board.py                  # both boards and the gain (about an hour)
    python benchmarks/lenet_board.py --boards ulx3s-85f --no-dense
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from colcomb.hdl.config import HardwareConfig

#: run folder -> (dataset, further `colcomb train` options) of each LeNet-5 (alpha 8, gamma 0.5, per
#: feature map): 14 x 14 images for the iCEBreaker; 28 x 28 ones with conv1 left dense, or with
#: --include-first combined per kernel row (row runs on chip)
RUNS = {
    "build/lenet14": ("mnist5k-14", []),
    "build/lenet28": ("mnist5k", []),
    "build/lenet28-first": ("mnist5k", ["--include-first"]),
}
#: board -> (run folder, rows, cols, cell, images per batch, stored test images, requested clock MHz
#: (None: the oscillator), target/s, further synthesize options): the iCEBreaker's serial array (no
#: memory banks) at batch 1 in passes of 64 vectors, its least block RAM (the activation memories
#: one image deep, the accumulator 512 x 19 bits), 8 x 4 so that its logic fits, the cell words in
#: SPRAM loaded from the flash (their 14 block RAMs free), the requantizer in 3 stages (its
#: shifter and clamp were the critical path), its clock asked for above the target's need
#: (18,290 cycles per image x 1,000/s = 18.3 MHz); the ULX3S's bit-parallel one (a lane memory
#: bank per column, input banks for conv1's 6 packed columns) on the --include-first LeNet-5,
#: batch 2 (the input memory's row runs are 40 bits wide), in passes of 512 vectors (its
#: accumulator's block RAMs are 512 deep anyway), its clock asked for above the target's need
#: (1,752.5 cycles per image x 20,000/s = 35.1 MHz)
BOARDS = {
    "icebreaker": ("build/lenet14", 8, 4, "serial", 1, 4, 22, 1_000,
                   ["--pass-vectors", "64", "--cell-memory", "spram", "--requant-stages", "3"]),
    "ulx3s-85f": ("build/lenet28-first", 8, 16, "parallel", 2, 4, 45, 20_000, ["--pass-vectors", "512"]),
}
#: the combined / dense comparison (run folder, rows, cols, batch) runs on the serial array: its
#: words of alpha slots and 8 cycles a vector let the dense (alpha 1) array write its outputs as
#: fast as the combined one (on the bit-parallel array the dense one's one-slot words would make
#: it write-bound)
DENSE = [("build/lenet14", 8, 8, 4), ("build/lenet28", 8, 8, 8), ("build/lenet28-first", 8, 8, 8)]


def ensure_trained(run: str) -> Path:
    """The packed LeNet-5 of ``run`` (:data:`RUNS`), trained if missing."""
    dataset, options = RUNS[run]
    packed = Path(run) / "packed"
    if not (packed / "manifest.json").exists():
        print(f"training {run} ({dataset}, lenet5, alpha 8, gamma 0.5, --per-feature-map {' '.join(options)})...",
              flush=True)
        subprocess.run(["colcomb", "train", "--dataset", dataset, "--model", "lenet5", "--alpha", "8",
                        "--gamma", "0.5", "--per-feature-map", *options, "--out", run], check=True)
    return packed


def board_row(board: str, out: Path) -> list[str]:
    run, rows, cols, cell, batch, images, clock, target, extra = BOARDS[board]
    passes = int(extra[extra.index("--pass-vectors") + 1]) if "--pass-vectors" in extra else None
    cell_memory = extra[extra.index("--cell-memory") + 1] if "--cell-memory" in extra else "rom"
    stages = int(extra[extra.index("--requant-stages") + 1]) if "--requant-stages" in extra else 2
    dataset, options = RUNS[run]
    packed = ensure_trained(run)
    build = out / board
    t0 = time.perf_counter()
    cmd = ["colcomb", "synthesize", str(packed), "--board", board, "--rows", str(rows), "--cols", str(cols),
           "--batch", str(batch), "--cell", cell, "--test-split", str(images), "--out", str(build)]
    if board == "icebreaker":
        cmd.append("--dsp")
    if clock:
        cmd += ["--clock", str(clock)]
    cmd += extra
    proc = subprocess.run(cmd, capture_output=True, text=True)
    report = build / "report.json"
    if not report.exists():
        sys.exit(f"{board}: colcomb synthesize left no report:\n{proc.stderr[-2000:]}")
    rep = json.loads(report.read_text())
    res, clk, tp = rep["resources"], rep["clock"], rep.get("throughput") or {}
    fits = not any("does not fit" in f for f in rep.get("failures", []))
    rate = tp.get("inferences_per_s")
    cpi = tp.get("cycles_per_inference")
    if cpi is None and not fits:  # no Fmax without a placement: the cycles still come from Verilator
        from colcomb.fpga.synth import measure_cycles_per_inference
        config = HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch, pass_vectors=passes,
                                cell_memory=cell_memory, requant_stages=stages)
        cpi = measure_cycles_per_inference(packed, config).get("cycles_per_inference")
    print(f"  {board}: {rep['status']} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return [board, f"LeNet-5 {dataset}{' ' + ' '.join(options) if options else ''}",
            f"{rows}x{cols} {cell} (batch {batch}{f', passes of {passes}' if passes else ''}"
            f"{', cells in SPRAM' if cell_memory == 'spram' else ''}"
            f"{f', requantizer in {stages} stages' if stages != 2 else ''})",
            f"{res['logic_cells']} / {res['logic_cells_available']}",
            f"{res['block_rams']} / {res['block_rams_available']}",
            f"{clk['fmax_mhz']:.2f}" if clk.get("fmax_mhz") else "- (not placed)",
            f"{cpi:.0f}" if cpi else "-", f"{rate:,.0f}" if rate else "-", f"{target:,}",
            "met" if rate and rate >= target else "missed"]


def dense_rows() -> list[list[str]]:
    """Combined and dense LeNet-5 side by side in Verilator, on the serial array (:data:`DENSE`)."""
    from colcomb.hdl.network import image_network
    from colcomb.hdl.program import dense_equivalent
    from colcomb.labelled import simulation_inputs
    from colcomb.packer.manifest import load_manifest
    from colcomb.sim.runner import simulate

    out = []
    for run, rows, cols, batch in DENSE:
        dataset, options = RUNS[run]
        packed = ensure_trained(run)
        net = image_network(load_manifest(packed))
        given = simulation_inputs(packed, test_split=4 * batch)
        cpi = {}
        for name, hw in (("combined", None), ("dense", [dense_equivalent(la) for la in net.layers])):
            res = simulate(packed, HardwareConfig(rows=rows, cols=cols, cell="serial", batch=batch), inputs=given.x,
                hardware_layers=hw)
            cpi[name] = res.cycles_per_inference
        label = f"LeNet-5 {dataset}{' ' + ' '.join(options) if options else ''}"
        out.append([label, f"{rows}x{cols} serial", f"{cpi['combined']:.0f}", f"{cpi['dense']:.0f}",
                    f"{cpi['dense'] / cpi['combined']:.2f}x"])
        print(f"  {run}: {out[-1][-1]}", flush=True)
    return out


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", nargs="+", choices=list(BOARDS), default=list(BOARDS))
    ap.add_argument("--out", type=Path, default=Path("build/lenet-board"))
    ap.add_argument("--no-dense", action="store_true", help="skip the combined / dense comparison")
    ap.add_argument("--no-boards", action="store_true", help="skip synthesis (only the comparison)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if not args.no_boards:
        print("boards (colcomb synthesize --test-split, place and route, Verilator throughput):", flush=True)
        rows = [board_row(b, args.out) for b in args.boards]
        print(table(["board", "network", "array", "logic cells", "block RAMs", "Fmax MHz",
                     "cycles per inference", "inferences/s", "target", ""], rows))
    if not args.no_dense:
        print("combined vs dense, both bit-exact in Verilator (4 batches of test images):", flush=True)
        print(table(["network", "array", "combined cycles/inference", "dense cycles/inference", "gain"],
                    dense_rows()))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
