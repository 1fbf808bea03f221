"""What ``colcomb estimate``, ``colcomb explore`` and a flagless ``colcomb synthesize`` print and write.

- :func:`estimate_text`: one config's predicted resources against the board's, and its speed;
- :func:`run_explore`: the search with a progress bar, its table of the best designs, the files
  (``best.json``, the winner's config for ``--config``; ``designs.csv``, every estimate;
  ``explore.json``; ``pareto.png``) and, with ``confirm``, place and route of the best designs with
  predicted against measured;
- :func:`search_for_synthesis`: the search ``synthesize`` runs when no array flag is given, and the
  error, before any synthesis, that says what binds when nothing fits.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

from colcomb.core.atomic import write_text
from colcomb.core.errors import ColcombError
from colcomb.core.table import table
from colcomb.fpga.estimate import RESOURCES, Estimate
from colcomb.fpga.explore import UTILIZATION, Search, explore_manifest, pareto_png
from colcomb.hdl.config import HardwareConfig

__all__ = ["estimate_text", "run_explore", "search_for_synthesis", "search_table"]

_LABELS = {"logic_cells": "logic cells", "block_rams": "block RAMs", "sprams": "SPRAMs", "dsps": "DSPs"}


def estimate_text(est: Estimate) -> str:
    """The estimate as a short report: the config, each resource against the board, the speed."""
    rows = []
    for name in RESOURCES:
        r = est.resources[name]
        if name == "sprams" and not r.available and not r.used:
            continue
        pct = f"{100 * r.ratio:.0f} %" if r.available else ("-" if not r.used else "none on the device")
        rows.append([_LABELS[name], r.used, r.available, pct, "over" if r.used > r.available else ""])
    lines = [f"{est.config.board} ({est.device}): {est.config.describe(target=False)}",
             f"  alpha {est.alpha}, {est.tiles} tiles",
             table(["resource", "estimated", "available", "used", ""], rows),
             f"  LUTs {est.luts}, flip-flops {est.flip_flops}, carries {est.carries} (inside the logic cells)",
             f"  cycles per inference {est.cycles_per_inference:g} (exact: the cycle model), one image alone "
             f"{est.cycles_one} cycles",
             f"  clock {est.clock_mhz:g} MHz -> {est.inferences_per_s:,.0f} inferences/s "
             f"(the family's calibrated designs reach about {est.fmax_mhz:.0f} MHz)"]
    if est.fits:
        lines.append("  fits")
    else:
        lines.append("  does NOT fit: " + "; ".join(est.overflows()))
    return "\n".join(lines)


def _row(rank: int, e: Estimate) -> list:
    r = e.resources
    return [rank, e.config.describe(target=False),
            f"{r['logic_cells'].used}/{r['logic_cells'].available}",
            f"{r['block_rams'].used}/{r['block_rams'].available}",
            f"{r['dsps'].used}/{r['dsps'].available}", round(e.cycles_per_inference, 1), e.clock_mhz,
            round(e.inferences_per_s), round(e.latency_us, 1)]


def search_table(search: Search, top: int = 10) -> str:
    header = ["#", "config", "logic cells", "block RAMs", "DSPs", "cycles/inference", "MHz", "inferences/s",
              "latency us"]
    return table(header, [_row(i + 1, e) for i, e in enumerate(search.ranked[:top])])


def _nothing_fits(search: Search) -> str:
    near = search.closest()
    if near is None:
        reasons = sorted({why for _, why in search.refused})[:3]
        return ("the compiler refused every config of the search: " + " | ".join(reasons))
    name, res = near.binding()
    over = res.used - res.available
    msg = (f"no design fits the {search.board}: the closest, {near.config.describe()}, needs {res.used} "
           f"{_LABELS[name]} of {res.available}")
    if over > 0:
        msg += f" ({over} too many, {100 * res.ratio:.0f} %)"
    else:
        msg += f" ({100 * res.ratio:.0f} %, above the {100 * UTILIZATION:.0f} % that leaves place and route room)"
    fixes = {"logic_cells": "a smaller array, the serial cell, or a larger board",
             "block_rams": "a smaller batch, shorter passes, the cells in SPRAM (iCE40 UltraPlus), or a larger board",
             "dsps": "--no-dsp", "sprams": "the cells in block RAM (--cell-memory rom)"}
    return msg + f"; try {fixes[name]}, or a network with fewer weights"


def _progress(label: str):
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=label, unit="config", file=sys.stderr, leave=False,
                              disable=not sys.stderr.isatty())


def search_for_synthesis(manifest_dir, fixed: dict, *, objective: str = "throughput",
                         layers: list[str] | None = None) -> HardwareConfig:
    """The winner of the search ``colcomb synthesize`` runs without array flags (``fixed``: the
    flags given); raises :class:`ColcombError` naming the binding resource when nothing fits."""
    board = fixed.get("board")
    if board is None:
        raise ColcombError("synthesize needs --board")
    search = explore_manifest(manifest_dir, board, objective=objective, fixed=fixed, layers=layers,
                              progress=_progress("searching designs"))
    if search.best is None:
        raise ColcombError(_nothing_fits(search) + " (no synthesis was run)")
    best = search.best
    print(f"no array flags: `colcomb explore` searched {len(search.designs)} designs in {search.seconds:.1f} s; "
          f"building the best that fits ({objective}): {best.config.describe()}, estimated "
          f"{best.resources['logic_cells'].used}/{best.resources['logic_cells'].available} logic cells, "
          f"{best.resources['block_rams'].used}/{best.resources['block_rams'].available} block RAMs, "
          f"{best.cycles_per_inference:g} cycles per inference, {best.inferences_per_s:,.0f}/s", file=sys.stderr)
    return best.config


def _csv(search: Search) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    fields = ["rows", "cols", "cell", "dsp", "batch", "beat", "pass_vectors", "cell_memory", "requant_stages",
              "shadow", "clock_mhz"]
    fits = set(map(id, search.ranked))
    w.writerow([*fields, "logic_cells", "block_rams", "sprams", "dsps", "luts", "flip_flops", "carries",
                "cycles_per_inference", "inferences_per_s", "latency_us", "fits", "rank"])
    rank = {id(e): i + 1 for i, e in enumerate(search.ranked)}
    for e in search.designs:
        r = e.resources
        w.writerow([getattr(e.config, f) for f in fields]
                   + [r["logic_cells"].used, r["block_rams"].used, r["sprams"].used, r["dsps"].used, e.luts,
                      e.flip_flops, e.carries, e.cycles_per_inference, round(e.inferences_per_s, 1),
                      round(e.latency_us, 2), id(e) in fits, rank.get(id(e), "")])
    return buf.getvalue()


def run_explore(manifest_dir: str | os.PathLike, fixed: dict, *, objective: str = "throughput", top: int = 10,
                out: str | os.PathLike | None = None, confirm: int = 0, layers: list[str] | None = None,
                utilization: float | None = None) -> int:
    """``colcomb explore``: search, print, write the files; 0 when a design fits, 1 otherwise."""
    board = fixed["board"]
    out = Path(out) if out is not None else Path("build") / f"explore-{board}"
    search = explore_manifest(manifest_dir, board, objective=objective, fixed=fixed, layers=layers,
                              utilization=UTILIZATION if utilization is None else utilization,
                              progress=_progress("estimating designs"))
    fitting = len(search.ranked)
    print(f"{manifest_dir} on {search.board}: {len(search.designs)} designs estimated "
          f"({len(search.refused)} refused by the compiler) in {search.seconds:.1f} s; {fitting} fit")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "designs.csv", _csv(search))
    pareto_png(search, out / "pareto.png", title=f"{Path(manifest_dir)} on {search.board} ({objective})")
    summary = {"manifest": str(manifest_dir), "board": search.board, "objective": objective,
               "designs": len(search.designs), "refused": len(search.refused), "fitting": fitting,
               "seconds": search.seconds, "best": [e.to_dict() for e in search.ranked[:top]]}
    if search.best is None:
        print(_nothing_fits(search))
        write_text(out / "explore.json", json.dumps(summary, indent=2) + "\n")
        print(f"wrote {out / 'designs.csv'}, {out / 'explore.json'}, {out / 'pareto.png'}")
        return 1
    print(f"best {min(top, fitting)} by {objective} (estimates; the clock is {100 * 0.9:.0f} % of what the family's "
          f"calibrated builds reach):")
    print(search_table(search, top))
    best_path = search.best.config.save(out / "best.json")
    if confirm:
        summary["confirmed"] = _confirm(manifest_dir, search, confirm, out, layers)
    write_text(out / "explore.json", json.dumps(summary, indent=2) + "\n")
    print(f"wrote {best_path} (use it: colcomb synthesize {manifest_dir} --config {best_path} --out ...), "
          f"{out / 'designs.csv'}, {out / 'explore.json'}, {out / 'pareto.png'}")
    return 0


def _confirm(manifest_dir, search: Search, k: int, out: Path, layers) -> list[dict]:
    """Place and route the best ``k`` designs; print and return predicted against measured."""
    from colcomb.core.progress import Stages
    from colcomb.fpga.synth import synthesize

    rows, results = [], []
    for i, est in enumerate(search.ranked[:k], 1):
        folder = out / f"confirm-{i}"
        print(f"[{i}/{k}] place and route {est.config.describe()} -> {folder}", file=sys.stderr)
        try:
            with Stages(["simulate", "synth", "place-and-route", "pack"], label=f"confirm {i}/{k}") as progress:
                rep = synthesize(manifest_dir, est.config, out=folder, layers=layers, progress=progress,
                                 log=lambda msg: None)
        except ColcombError:
            path = folder / "report.json"
            rep = json.loads(path.read_text()) if path.exists() else None
        if rep is None:
            rows.append([i, est.config.describe(), "failed", "", "", "", "", ""])
            continue
        res, thr = rep.get("resources", {}), rep.get("throughput", {})
        measured = {"logic_cells": res.get("logic_cells"), "block_rams": res.get("block_rams"),
                    "dsps": res.get("dsps"), "sprams": res.get("spram", 0), "fmax_mhz": rep["clock"].get("fmax_mhz"),
                    "cycles_per_inference": thr.get("cycles_per_inference"), "status": rep["status"]}
        lc = est.resources["logic_cells"].used
        err = (f"{100 * (lc - measured['logic_cells']) / measured['logic_cells']:+.1f} %"
               if measured["logic_cells"] else "")
        rows.append([i, est.config.describe(), f"{lc} / {measured['logic_cells']}", err,
                     f"{est.resources['block_rams'].used} / {measured['block_rams']}",
                     f"{est.resources['dsps'].used} / {measured['dsps']}",
                     f"{est.cycles_per_inference:g} / {measured['cycles_per_inference']}",
                     f"{est.clock_mhz:g} / {measured['fmax_mhz']}", rep["status"]])
        results.append({"config": est.config.to_dict(), "predicted": est.to_dict(), "measured": measured})
    print(table(["#", "config", "logic cells est/meas", "error", "block RAMs", "DSPs", "cycles/inference",
                 "clock / Fmax MHz", "status"], rows))
    return results
