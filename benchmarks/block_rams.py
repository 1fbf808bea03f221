"""Where a design's block RAMs and logic go: the network top synthesized by yosys with its
hierarchy kept (``synth_<family> -noflatten``), one line per module with its LUTs, flip-flops and
block RAMs, largest first (the array's cells summed into one line).

    python benchmarks/block_rams.py build/lenet14/packed --rows 8 --cols 8 --batch 1 --cell serial --pass-vectors 64
    python benchmarks/block_rams.py build/lenet14/packed --rows 8 --cols 4 --batch 1 --cell serial --pass-vectors 64 \
        --cell-memory spram

The board's self-test around the network (stored images, UART) is not in it: ``colcomb
synthesize`` reports the whole board design.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from amaranth.back import rtlil
from amaranth_boards.icebreaker import ICEBreakerPlatform

from colcomb.core.tools import tool_env
from colcomb.fpga.synth import YOSYS_AFTER_READ, prepare_design
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.top import Top

#: yosys cell types counted per family: (LUT, flip-flop prefix, block RAM)
CELLS = {"ice40": ("SB_LUT4", "SB_DFF", "SB_RAM40_4K"), "ecp5": ("LUT4", "TRELLIS_FF", "DP16KD")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--cell", choices=["parallel", "serial"], default="serial")
    ap.add_argument("--pass-vectors", type=int, default=None)
    ap.add_argument("--family", choices=sorted(CELLS), default="ice40")
    ap.add_argument("--dsp", action="store_true", help="multipliers in DSP blocks (synth -dsp on iCE40)")
    ap.add_argument("--cell-memory", choices=["rom", "spram"], default="rom",
                    help="spram: the cell words in the iCEBreaker's SPRAM (counted in their own column)")
    args = ap.parse_args()
    if args.cell_memory == "spram" and args.family != "ice40":
        ap.error("--cell-memory spram is the iCE40 UltraPlus's SPRAM: use --family ice40")
    config = HardwareConfig(rows=args.rows, cols=args.cols, cell=args.cell, batch=args.batch,
                            pass_vectors=args.pass_vectors, cell_memory=args.cell_memory)
    design = prepare_design(args.manifest, config, family=args.family, vectors=1)
    # SPRAM primitives are instantiated for an iCE40 UltraPlus platform only
    platform = ICEBreakerPlatform() if args.cell_memory == "spram" else None
    lut, ff, ram = CELLS[args.family]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "top.il").write_text(rtlil.convert(Top(program=design.program), name="top", platform=platform))
        env = tool_env()
        dsp = {"ice40": " -dsp" if args.dsp else "", "ecp5": "" if args.dsp else " -nodsp"}[args.family]
        script = (f"read_rtlil top.il; {YOSYS_AFTER_READ}; synth_{args.family}{dsp} -noflatten -top top; "
                  "tee -q -o stat.json stat -json")
        subprocess.run([env["YOSYS"], "-q", "-p", script], cwd=work, env=env, check=True)
        stat = json.loads((work / "stat.json").read_text())
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for module, s in stat["modules"].items():
        cells = s.get("num_cells_by_type", {})
        name = module.lstrip("\\").split("$")[0]
        if ".array.cell_" in name:  # the cells, one line
            name = name.split(".cell_")[0] + ".cells"
        counts = rows[name]
        counts[0] += cells.get(lut, 0)
        counts[1] += sum(v for k, v in cells.items() if k.startswith(ff))
        counts[2] += cells.get(ram, 0)
        counts[3] += cells.get("SB_SPRAM256KA", 0)
    print(f"{args.rows}x{args.cols} {args.cell}, batch {args.batch}, {args.family} (yosys synth -noflatten); "
          f"memories {design.program.memory_depths} words, cell ROM {len(design.program.cells)} words")
    print(f"{'module':<42}{'LUTs':>8}{'FFs':>8}{'block RAMs':>12}{'SPRAMs':>8}")
    for name, (luts, ffs, rams, sprams) in sorted(rows.items(), key=lambda kv: (-kv[1][2], -kv[1][0])):
        if luts or ffs or rams or sprams:
            print(f"{name:<42}{luts:>8}{ffs:>8}{rams:>12}{sprams:>8}")
    total = [sum(v[i] for v in rows.values()) for i in range(4)]
    print(f"{'total':<42}{total[0]:>8}{total[1]:>8}{total[2]:>12}{total[3]:>8}")


if __name__ == "__main__":
    main()
