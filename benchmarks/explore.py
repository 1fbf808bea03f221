"""The estimate against the tools, and the design search's speed and picks, side by side.

1. **Accuracy**: for every run record (``benchmarks/calibrate.py``'s JSON lines) the estimate beside
   what yosys counted (LUTs, flip-flops, carries, block RAMs, DSPs, SPRAMs) and, for the records
   placed and routed, what nextpnr counted (logic cells) and reached (Fmax); the issue's targets:
   logic cells within 10 %, block RAMs, SPRAMs and DSPs exact. With ``--loo`` the engine model is
   refitted without each record in turn (leave one out), so a record does not grade its own fit.
2. **Search**: ``colcomb explore``'s search of each LeNet-5 on its board: configs ranked, seconds,
   and the best design that fits with its estimated inferences/s.

    python benchmarks/explore.py --runs docs/calibration/runs.jsonl
    python benchmarks/explore.py --runs docs/calibration/runs.jsonl --loo --no-search
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import calibrate  # noqa: E402

from colcomb.core.table import table  # noqa: E402
from colcomb.fpga import estimate as est_mod  # noqa: E402
from colcomb.fpga.explore import explore_manifest  # noqa: E402

SEARCHES = [("build/lenet14/packed", "icebreaker"), ("build/lenet28-first/packed", "icebreaker"),
            ("build/lenet28-first/packed", "ulx3s-85f")]


def _pct(est: float, meas: float | None) -> str:
    return "" if not meas else f"{100 * (est - meas) / meas:+.1f} %"


def accuracy(records: list[dict], loo: bool) -> list[list]:
    cal = est_mod.calibration()
    rows = []
    for i, rec in enumerate(records):
        spec, config, prog = calibrate._program(rec)
        use = cal
        if loo:
            others = records[:i] + records[i + 1:]
            cells = {f: cal[f]["cells"] for f in calibrate.FAMILIES}
            engine = calibrate.fit_engine(others, cells, quiet=True)
            use = {f: {**cal[f], "engine": engine[f]} for f in calibrate.FAMILIES}
        e = est_mod.estimate_program(prog, spec, config, cal=use)
        y, placed = rec["yosys"], rec.get("resources") or {}
        lc = placed.get("logic_cells")
        rows.append([spec.name, config.describe(target=False), Path(rec["manifest"]).parent.name,
                     f"{e.luts} / {y['luts']}", _pct(e.luts, y["luts"]),
                     f"{e.flip_flops} / {y['flip_flops']}",
                     f"{e.resources['block_rams'].used} / {y['block_rams']}",
                     f"{e.resources['dsps'].used} / {y['dsps']}",
                     f"{e.resources['sprams'].used} / {y.get('spram', placed.get('spram', 0))}",
                     f"{e.resources['logic_cells'].used} / {lc}" if lc else "-",
                     _pct(e.resources["logic_cells"].used, lc),
                     f"{e.fmax_mhz:.1f} / {rec['fmax_mhz']:.1f}" if rec.get("fmax_mhz") else "-"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, nargs="+", default=[ROOT / "docs" / "calibration" / "runs.jsonl"])
    ap.add_argument("--loo", action="store_true", help="grade each record by a fit without it")
    ap.add_argument("--no-search", action="store_true", help="skip the searches")
    args = ap.parse_args(argv)
    records = calibrate.load_records(args.runs)
    rows = accuracy(records, args.loo)
    print(f"estimate / measured over {len(records)} run records{' (leave one out)' if args.loo else ''}: "
          f"yosys for LUTs, flip-flops, block RAMs, DSPs, SPRAMs; nextpnr for logic cells and Fmax")
    print(table(["board", "config", "network", "LUTs", "err", "flip-flops", "block RAMs", "DSPs", "SPRAMs",
                 "logic cells", "err", "Fmax MHz"], rows))
    lc_errs = [abs(float(r[10].split()[0])) for r in rows if r[10]]
    exact = {k: sum(1 for r in rows if r[c].split(" / ")[0] == r[c].split(" / ")[1]) for k, c in
             (("block RAMs", 6), ("DSPs", 7), ("SPRAMs", 8))}
    print(f"logic cells within 10 %: {sum(e <= 10 for e in lc_errs)} of {len(lc_errs)} placed "
          f"(largest error {max(lc_errs, default=0):.1f} %); exact: "
          + ", ".join(f"{k} {v} of {len(rows)}" for k, v in exact.items()))
    if args.no_search:
        return 0
    out = []
    for manifest, board in SEARCHES:
        if not (ROOT / manifest / "manifest.json").exists():
            print(f"skipping {manifest} on {board}: train it with benchmarks/lenet_board.py")
            continue
        t0 = time.perf_counter()
        search = explore_manifest(ROOT / manifest, board, fixed={"board": board})
        dt = time.perf_counter() - t0
        best = search.best
        out.append([Path(manifest).parent.name, board, len(search.designs), f"{dt:.1f}",
                    f"{len(search.designs) / dt:.0f}", len(search.ranked),
                    best.config.describe(target=False) if best else "none fits",
                    f"{best.resources['logic_cells'].used}/{best.resources['logic_cells'].available}" if best else "",
                    f"{best.cycles_per_inference:g}" if best else "", f"{best.inferences_per_s:,.0f}" if best else ""])
    print()
    print("the search (estimates; the clock is 90 % of the family's calibrated Fmax)")
    print(table(["network", "board", "configs", "s", "configs/s", "fit", "best (throughput)", "logic cells",
                 "cycles/inference", "inferences/s"], out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
