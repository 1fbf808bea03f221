"""Calibrate the resource estimate (``colcomb estimate``, ``colcomb explore``) from synthesis runs.

Writes ``fpga/calibration.json``, the data :mod:`colcomb.fpga.estimate` ships with:

1. **Cell slopes** (always rerun, about five minutes): yosys ``synth_<family>`` of a ladder of
   array heights (``rows`` 1, 2, 4 x ``cols`` 8, the array alone, as ``benchmarks/area.py``), per
   family, cell kind (parallel with a DSP or a logic multiplier, one-hot or binary select; serial)
   and alpha (1, 4, 8); the slope of LUTs, flip-flops and carries against the cells.
2. **The engine** (from run records): yosys of the whole board self-test design (what
   ``colcomb synthesize`` builds, up to the end of yosys) for a grid of configs; the engine's part
   (the total less the cells and the memories' logic) is fitted by least squares on the engine's
   features (:func:`colcomb.fpga.estimate.features`).
3. **Logic cells and clock** (from run records that were placed and routed): nextpnr's logic
   cells against yosys' LUTs, flip-flops and carries (the packing's form fixed by the device, one
   scale fitted: there are few placed records), and the Fmax each family, cell and requantizer
   depth reached.

    python benchmarks/calibrate.py --runs build/calibration/runs.jsonl           # refit from records
    python benchmarks/calibrate.py --collect --runs build/calibration/runs.jsonl # rerun the grid (hours)
    python benchmarks/calibrate.py --collect --pnr ...                           # also place and route

A run record is one JSON line: ``{"config": HardwareConfig fields, "manifest": folder,
"yosys": {"luts", "flip_flops", "carries", ...}, "status": "ok"}``, with ``"resources"``
(``logic_cells``) and ``"fmax_mhz"`` where it was placed and routed. ``--collect`` writes them
(``lenet14`` and ``lenet28-first`` are trained as ``benchmarks/lenet_board.py`` trains them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from area import example_layer  # noqa: E402

from colcomb.fpga.boards import board_config  # noqa: E402
from colcomb.fpga.cost import synth_components  # noqa: E402
from colcomb.fpga.estimate import (  # noqa: E402
    CALIBRATION,
    cell_counts,
    cell_slope,
    compile_for,
    dsp_split,
    features,
)
from colcomb.fpga.memory_map import memory_cost  # noqa: E402
from colcomb.hdl.array import SystolicArray  # noqa: E402
from colcomb.hdl.config import HardwareConfig  # noqa: E402
from colcomb.hdl.memories import memories  # noqa: E402

FAMILIES = ("ice40", "ecp5")
#: (name, cell, multiplier, onehot) of the ladder
KINDS = [("parallel_dsp", "parallel", "dsp", False), ("parallel_dsp-onehot", "parallel", "dsp", True),
         ("parallel_logic", "parallel", "logic", False), ("parallel_logic-onehot", "parallel", "logic", True),
         ("serial", "serial", "none", False)]
ALPHAS = (1, 4, 8)
LADDER = (1, 2, 4)
METRICS = ("luts", "flip_flops", "carries")
#: engine features fitted (the rest of :func:`features` are left out where the data cannot tell them apart)
ENGINE = ("const", "serial", "rows", "acc_width", "requant_logic_lanes", "lane_bits", "bank_bits", "network")
#: prior packing models where no place-and-route record exists: iCE40 LCs hold a LUT, a flip-flop
#: and a carry (a flip-flop packs with the LUT driving it, about half do); ECP5 counts LUT4 slots
#: (a carry cell takes two)
PRIOR_LC = {"ice40": {"luts": 1.0, "flip_flops": 0.5, "carries": 0.3}, "ecp5": {"luts": 1.0, "carries": 2.0}}
#: clocks (MHz) of the README's LeNet-5 builds, the most a record may raise a family's figure to
PRIOR_FMAX = {"ice40": {"parallel-2": 22.0, "parallel-3": 24.0, "serial-2": 20.0, "serial-3": 24.0},
              "ecp5": {"parallel-2": 55.0, "parallel-3": 58.0, "serial-2": 60.0, "serial-3": 62.0}}


def ladder(jobs: int) -> dict:
    """Per family and kind, {alpha: slope} of LUTs, flip-flops and carries per cell."""
    out: dict = {}
    for family in FAMILIES:
        out[family] = {}
        for name, cell, mult, onehot in KINDS:
            table = {m: {} for m in METRICS}
            for alpha in ALPHAS:
                if onehot and alpha < 3:
                    continue
                comps = {f"r{r}": SystolicArray(rows=r, cols=8, alpha=alpha, cell=cell,
                                                dsp_cells=None if mult == "dsp" else 0, onehot=onehot) for r in LADDER}
                res = synth_components(family, comps, dsp=mult == "dsp", jobs=jobs)
                cells = np.array([8 * r for r in LADDER], float)
                for m in METRICS:
                    table[m][str(alpha)] = round(float(np.polyfit(cells, [res[f"r{r}"][m] for r in LADDER], 1)[0]), 2)
            if onehot:  # alpha 1 has no select to encode
                for m in METRICS:
                    table[m]["1"] = out[family][name.replace("-onehot", "")][m]["1"]
            out[family][name] = table
            print(f"  {family} {name}: LUTs/cell {table['luts']}", flush=True)
    return out


def _program(record: dict):
    from colcomb.hdl.network import image_network
    from colcomb.packer.manifest import load_manifest

    cfg = {k: v for k, v in record["config"].items() if k in HardwareConfig.__dataclass_fields__}
    spec, config = board_config(HardwareConfig(**cfg))
    manifest = load_manifest(record["manifest"])
    net = image_network(manifest, None)
    layers = net.layers if net else manifest.chain(None)
    return spec, config, compile_for(layers, config, spec, net.stages if net else None)


def memory_logic(family: str, program) -> tuple[float, float]:
    """LUTs and flip-flops the design's memories take outside block RAM."""
    luts = ffs = 0
    for m in memories(program):
        if m.spram:
            continue
        c = memory_cost(family, depth=m.depth, width=max(1, m.used_width), rom=m.rom, block_style=m.block,
                        granularity=m.granularity, transparent=m.transparent)
        luts += c.luts + 4 * c.lut_rams
        ffs += c.flip_flops
    return luts, ffs


def fit_engine(records: list[dict], cells_cal: dict, ridge: float = 1e-3, quiet: bool = False) -> dict:
    """Least-squares engine coefficients per family and metric (the residual after the cells and
    the memories)."""
    out = {}
    for family in FAMILIES:
        rows_x, ys = [], {m: [] for m in METRICS}
        for rec in records:
            spec, config, prog = _program(rec)
            if spec.family != family:
                continue
            rq, dsp_cells = dsp_split(spec, prog, bool(config.dsp))
            feats = features(prog, rq)
            counts = cell_counts(prog, dsp_cells)
            mem_luts, mem_ffs = memory_logic(family, prog)
            rows_x.append([feats[k] for k in ENGINE])
            for m in METRICS:
                cells = sum(n * cell_slope({"cells": cells_cal[family]}, kind, prog.alpha,
                                           prog.onehot and kind != "serial", m) for kind, n in counts.items() if n)
                extra = mem_luts if m == "luts" else mem_ffs if m == "flip_flops" else 0
                ys[m].append(rec["yosys"][m] - cells - extra)
        x = np.array(rows_x, float)
        out[family] = {}
        for m in METRICS:
            if len(x) == 0:
                out[family][m] = {}
                continue
            scale = np.maximum(np.abs(x).max(axis=0), 1e-9)
            xs = x / scale
            a = xs.T @ xs + ridge * np.eye(xs.shape[1])
            coef = np.linalg.solve(a, xs.T @ np.array(ys[m], float)) / scale
            out[family][m] = {k: round(float(c), 4) for k, c in zip(ENGINE, coef, strict=True)}
        if not quiet:
            print(f"  {family}: engine fitted on {len(x)} designs", flush=True)
    return out


def fit_packing(records: list[dict]) -> tuple[dict, dict]:
    """Logic cells from LUTs, flip-flops and carries (least squares, no constant) and the Fmax
    table, per family, from the records that were placed and routed."""
    lc, fmax = {}, {}
    for family in FAMILIES:
        placed = [r for r in records if r.get("family") == family and (r.get("resources") or {}).get("logic_cells")]
        prior = PRIOR_LC[family]
        if placed:  # the packing's shape from the device, its one scale from the placed designs (few of them)
            x = np.array([sum(c * r["yosys"][k] for k, c in prior.items()) for r in placed], float)
            y = np.array([r["resources"]["logic_cells"] for r in placed], float)
            scale = float(x @ y / (x @ x))
            lc[family] = {k: round(c * scale, 4) for k, c in prior.items()}
        else:
            lc[family] = dict(prior)
        table = dict(PRIOR_FMAX[family])
        for key in table:
            cell, stages = key.split("-")
            got = [r["fmax_mhz"] for r in placed if r.get("fmax_mhz") and r["config"]["cell"] == cell
                   and int(r["config"].get("requant_stages", 2)) == int(stages)]
            if got:  # the lower of the records' median and the README's LeNet-5 builds: small designs run faster
                table[key] = round(min(table[key], float(np.median(got))), 2)
        fmax[family] = table
    return lc, fmax


def collect(grid: list[tuple[str, dict]], runs: Path, pnr: bool) -> None:
    """Synthesize each (manifest, config) of ``grid`` (yosys only, or with ``pnr`` place and route)
    and append its record to ``runs``."""
    from colcomb.fpga.synth import synthesize, yosys_only

    runs.parent.mkdir(parents=True, exist_ok=True)
    for i, (manifest, cfg) in enumerate(grid, 1):
        config = HardwareConfig(**cfg)
        folder = runs.parent / "runs" / f"{i:03d}"
        t0 = time.perf_counter()
        rec = {"config": config.to_dict(), "manifest": str(manifest)}
        try:
            if pnr:
                rep = synthesize(manifest, config, out=folder, throughput=False, log=lambda m: None)
                rec.update(family=rep["family"], yosys=rep["resources"], resources=rep["resources"],
                           fmax_mhz=rep["clock"]["fmax_mhz"])
            else:
                rec.update(yosys_only(manifest, config, folder))
            rec["status"] = "ok"
        except Exception as exc:  # a refused or failed config is recorded, and the grid goes on
            rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        with runs.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"[{i}/{len(grid)}] {config.describe()}: {rec['status']} ({rec['seconds']} s)", flush=True)


def ensure_example_layer() -> Path:
    """The 16 x 64 example layer's manifest (``benchmarks/area.py``'s), written if missing."""
    from colcomb.packer.manifest import write_manifest

    layer = ROOT / "build" / "calibration" / "layer16x64"
    if not (layer / "manifest.json").exists():
        write_manifest([example_layer()], layer)
    return layer


def default_grid() -> list[tuple[str, dict]]:
    """The configs ``--collect`` synthesizes: the README's LeNet-5 designs and their neighbours on
    both boards, and the 16 x 64 example layer."""
    from lenet_board import ensure_trained

    layer = ensure_example_layer()
    l14, l28 = str(ensure_trained("build/lenet14")), str(ensure_trained("build/lenet28-first"))
    ice = {"board": "icebreaker", "rows": 8, "cols": 4, "cell": "serial", "dsp": True, "batch": 1,
           "pass_vectors": 64, "cell_memory": "spram", "requant_stages": 3}
    grid = [(l14, ice), (l14, {**ice, "cols": 2}), (l14, {**ice, "rows": 4}), (l14, {**ice, "dsp": False}),
            (l14, {**ice, "batch": 4}), (l14, {**ice, "cell_memory": "rom"}), (l14, {**ice, "cols": 8}),
            (l14, {**ice, "cell": "parallel", "rows": 4}), (l14, {**ice, "cell": "parallel"})]
    grid += [(str(layer), {"board": "icebreaker", "rows": r, "cols": r, "cell": c, "batch": b})
             for r in (4, 8) for c in ("parallel", "serial") for b in (1, 64)]
    ulx = {"board": "ulx3s-85f", "rows": 8, "cols": 16, "cell": "parallel", "batch": 2, "pass_vectors": 512}
    grid += [(l28, ulx), (l28, {**ulx, "cols": 8}), (l28, {**ulx, "rows": 16, "cols": 16}),
             (l28, {**ulx, "cols": 32, "batch": 1}), (l28, {**ulx, "dsp": False}),
             (l28, {**ulx, "cell": "serial", "cols": 8}), (str(layer), {"board": "ulx3s-85f", "batch": 16})]
    return grid


def load_records(paths: list[Path]) -> list[dict]:
    """The usable run records of ``paths`` (relative manifest folders are the repository's)."""
    ensure_example_layer()
    records = []
    for path in paths:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("status") == "ok" and not rec.get("yosys") and rec.get("resources"):
                rec["yosys"] = rec["resources"]  # a placed and routed record: synthesize's yosys figures
            if rec.get("status") == "ok" and rec.get("yosys"):
                rec.setdefault("family", board_config(HardwareConfig(board=rec["config"]["board"]))[0].family)
                if not Path(rec["manifest"]).is_absolute():
                    rec["manifest"] = str(ROOT / rec["manifest"])
                records.append(rec)
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, nargs="+", default=[ROOT / "docs" / "calibration" / "runs.jsonl"],
                    help="run records (JSON lines) to fit the engine and packing on")
    ap.add_argument("--collect", action="store_true", help="synthesize the default grid first (appends to --runs)")
    ap.add_argument("--pnr", action="store_true", help="with --collect: place and route too (slow)")
    ap.add_argument("--jobs", type=int, default=2, help="yosys runs at a time for the cell ladder")
    ap.add_argument("--cells-from", type=Path, default=None, metavar="CALIBRATION_JSON",
                    help="reuse the cell slopes of an earlier calibration instead of rerunning the ladder")
    ap.add_argument("--out", type=Path, default=CALIBRATION, help=f"calibration file (default {CALIBRATION})")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.collect:
        collect(default_grid(), args.runs[0], args.pnr)
    records = load_records(args.runs)
    if args.cells_from is not None:
        old = json.loads(args.cells_from.read_text())
        cells = {f: old[f]["cells"] for f in FAMILIES}
    else:
        print(f"{len(records)} run records; the cell ladder...", flush=True)
        cells = ladder(args.jobs)
    engine = fit_engine(records, cells)
    lc, fmax = fit_packing(records)
    tools = subprocess.run([sys.executable, "-c", "from colcomb.core.tools import tool_env, tool_version; "
                            "e = tool_env(); print(tool_version(e['YOSYS'], e))"], capture_output=True, text=True)
    cal = {"source": "python benchmarks/calibrate.py", "yosys": tools.stdout.strip(), "records": len(records),
           **{f: {"cells": cells[f], "engine": engine[f], "logic_cells": lc[f], "fmax_mhz": fmax[f]}
              for f in FAMILIES}}
    args.out.write_text(json.dumps(cal, indent=1) + "\n")
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
