"""The labelled board self-test of a trained run: what its UART prints, and what the digits cost.

Takes the first ``--test-split`` images of the test split of the ``colcomb train`` run a manifest
comes from, builds the board's self-test core exactly as ``colcomb synthesize --test-split``
does (the board's clock, 115200 baud; DSPs as :func:`colcomb.fpga.synth.dsp_plan` gives them),
runs it in Verilator and prints the decoded UART text. Then yosys (``synth_<family>``, no place
and route) prices the core twice, with the labels (the on-chip argmax and the per-image lines)
and without (PASS/FAIL only), and prints the two side by side with the difference.

    python benchmarks/selftest_digits.py build/digits/packed --board icebreaker --rows 4 --cols 4 --dsp
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from colcomb.fpga.boards import get_board
from colcomb.fpga.cost import synth_components
from colcomb.fpga.selftest import SelfTest
from colcomb.fpga.selftest_sim import verilate_selftest
from colcomb.fpga.synth import dsp_plan, prepare_design
from colcomb.hdl.config import HardwareConfig
from colcomb.labelled import simulation_inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path, help="packed folder of a `colcomb train` run")
    ap.add_argument("--board", default="icebreaker")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--cell", choices=["parallel", "serial"], default="parallel")
    ap.add_argument("--dsp", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--test-split", type=int, default=8, metavar="N", help="images (default 8)")
    ap.add_argument("--no-synth", action="store_true", help="only the UART text, no yosys")
    args = ap.parse_args()

    spec = get_board(args.board)
    platform = spec.make_platform()
    family = platform.family.lower()
    f_clk = platform.default_clk_frequency
    given = simulation_inputs(args.manifest, test_split=args.test_split)
    design = prepare_design(args.manifest,
        HardwareConfig(rows=args.rows, cols=args.cols, cell=args.cell, batch=args.batch), family=family,
        inputs=given.x, labels=given.labels, input_source=given.source)
    use_dsp, dsp_cells = dsp_plan(spec, family, design.program, args.dsp)
    prog = dataclasses.replace(design.program, dsp_cells=dsp_cells)

    def core(labelled: bool) -> SelfTest:
        return SelfTest(program=prog, inputs=design.inputs, expected=design.expected, clk_freq=f_clk,
                        repeat_cycles=int(f_clk), labels=design.labels if labelled else None)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="colcomb-digits-") as tmp:
        res = verilate_selftest(core(True), tmp)
    print(f"{given.source}, {args.rows}x{args.cols} {args.cell} array, {spec.name} clock {f_clk / 1e6:g} MHz: "
          f"Verilator, {res.cycles} cycles to the verdict ({time.perf_counter() - t0:.0f} s with the build)")
    print("UART:")
    print(res.uart.replace("\r\n", "\n"), end="")
    if args.no_synth:
        return
    t0 = time.perf_counter()
    cost = synth_components(family, {"pass-fail": core(False), "labelled": core(True)}, dsp=use_dsp)
    keys = ("luts", "flip_flops", "carries", "block_rams", "dsps")
    print(f"\nyosys synth_{family}{' -dsp' if use_dsp and family == 'ice40' else ''}, whole self-test core "
          f"({time.perf_counter() - t0:.0f} s):")
    print(f"{'core':<12}" + "".join(f"{k:>12}" for k in keys))
    for tag in ("pass-fail", "labelled"):
        print(f"{tag:<12}" + "".join(f"{cost[tag].get(k, 0):>12}" for k in keys))
    print(f"{'difference':<12}" + "".join(f"{cost['labelled'].get(k, 0) - cost['pass-fail'].get(k, 0):>+12}"
                                          for k in keys))


if __name__ == "__main__":
    main()
