"""Hardware cost of column combining: the dense array against the column-combined one.

For the layers of a manifest, on the same R x C array:

- cells: the dense array holds every column (rows x cols, zeros stored, alpha = 1); the combined
  array holds the packed columns (rows x packed columns), at alpha lanes per column;
- cost of one cell: the cell synthesized with yosys (``synth_ice40`` or ``synth_ecp5``, no place
  and route) for alpha = 1 and for the network's alpha: the multiplexer, the select register and
  the alpha lanes each cell passes on are what combining pays per cell;
- cycles: the tiles each array needs, through :func:`colcomb.hdl.cycles.network_cycles`, the cycle model of the
  sequencer in :mod:`colcomb.hdl.sequencer` (per tile :func:`colcomb.hdl.cycles.tile_cycles`; the
  end-of-layer and per-batch cycles are the latencies of the stages the generator builds, and
  the tests check the model against simulation);
- effective MACs per second: the dense network's multiply-accumulates (rows x cols per vector,
  zeros included, as a dense accelerator would count them) over the time either array takes,
  at one clock (the achieved Fmax of a synthesis report, a given clock, or the board's clock);
- a heatmap PNG of each layer: the used cells of the dense array and of the packed array.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from colcomb.core.atomic import write_bytes, write_text
from colcomb.core.errors import ColcombError
from colcomb.core.outdir import OutputFolder
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import (
    BATCH_OVERHEAD,
    engine_cycles,
    flush_cycles,
    network_cycles,
)
from colcomb.packer.packed import dense_equivalent

__all__ = ["cost_report", "dense_equivalent", "heatmap_png", "synth_cell", "synth_components"]

# -- cell synthesis ----------------------------------------------------------------------------------

_CELL_CACHE: dict[tuple, dict] = {}


def _run_yosys(il: str, family: str, top: str, workdir: Path, tag: str, opts: str = "") -> subprocess.Popen:
    from colcomb.core.tools import tool_env
    from colcomb.fpga.synth import YOSYS_AFTER_READ

    env = tool_env()
    (workdir / f"{tag}.il").write_text(il)
    script = (f"read_rtlil {tag}.il; {YOSYS_AFTER_READ}; synth_{family} {opts} -top {top}; "
              f"tee -q -o {tag}.stat.json stat -json")
    return subprocess.Popen([env["YOSYS"], "-q", "-l", f"{tag}.log", "-p", script], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def synth_components(family: str, components: dict[str, object], *, dsp: bool,
                     jobs: int = 2) -> dict[str, dict]:
    """Resources of each Amaranth component after yosys ``synth_<family>`` (no place and route),
    ``jobs`` runs at a time: ``{tag: {"luts", "flip_flops", "carries", "dsps", "block_rams",
    "cells_by_type"}}``. ``dsp``: map multipliers to DSP blocks (iCE40 ``-dsp``; ECP5 ``-nodsp``
    without it)."""
    from amaranth.back import rtlil

    from colcomb.fpga.resources import parse_yosys_stat, yosys_resources

    if family not in ("ice40", "ecp5"):
        raise ColcombError(f"yosys estimates know the ice40 and ecp5 families, not {family!r}")
    opts = {("ecp5", False): "-nodsp", ("ice40", True): "-dsp"}.get((family, dsp), "")
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="colcomb-yosys-") as tmp:
        work = Path(tmp)
        pending = list(components.items())
        running: dict[str, subprocess.Popen] = {}
        while pending or running:
            while pending and len(running) < max(1, jobs):
                tag, comp = pending.pop(0)
                running[tag] = _run_yosys(rtlil.convert(comp, name="top"), family, "top", work, tag, opts)
            tag = next(iter(running))
            proc = running.pop(tag)
            _, err = proc.communicate()
            if proc.returncode:
                log_path = work / f"{tag}.log"
                log = log_path.read_text(errors="replace") if log_path.exists() else ""
                raise ColcombError(f"yosys synth_{family} of {tag} failed:\n"
                                   + "\n".join((log or err).splitlines()[-15:]))
            cells = parse_yosys_stat(json.loads((work / f"{tag}.stat.json").read_text()))
            out[tag] = {**yosys_resources(cells, family), "cells_by_type": cells}
    return out


def synth_cell(family: str, alphas: Sequence[int], *, weight_bits: int = 8, data_bits: int = 8,
               cols: int = 8, dsp: bool = False, cell: str = "parallel") -> dict[int, dict]:
    """Resources of one array cell per alpha in ``alphas`` (:func:`synth_components`):
    ``{alpha: {"luts", "flip_flops", "carries", "dsps", "block_rams"}}``. The cell priced is the
    last of a ``cols``-wide array row (the widest partial sums). With ``dsp`` the multiplier goes
    to a DSP block; without, it is the logic multiplier (:mod:`colcomb.hdl.multiplier`) the
    array uses for cells beyond the device's DSPs. ``cell="serial"`` prices the bit-serial cell
    (no multiplier). The select is encoded as :func:`colcomb.fpga.synth.onehot_select` says for
    the family."""
    from colcomb.fpga.synth import onehot_select
    from colcomb.hdl.array import psum_bits
    from colcomb.hdl.cell import Cell
    from colcomb.hdl.serial_cell import SerialCell

    key = (family, weight_bits, data_bits, cols, dsp, cell)
    want = [a for a in dict.fromkeys(alphas) if (*key, a) not in _CELL_CACHE]
    if want:
        plane = 1 if cell == "serial" else data_bits
        widths = {"psum_in_bits": psum_bits(weight_bits, plane, cols - 1) if cols > 1 else 0,
                  "psum_out_bits": psum_bits(weight_bits, plane, cols)}
        comps = {f"cell{a}": SerialCell(weight_bits=weight_bits, alpha=a, **widths) if cell == "serial"
                 else Cell(weight_bits=weight_bits, data_bits=data_bits, alpha=a,
                           multiplier="dsp" if dsp else "logic", onehot=onehot_select(family, cell, a), **widths)
                 for a in want}
        res = synth_components(family, comps, dsp=dsp)
        for a in want:
            _CELL_CACHE[(*key, a)] = res[f"cell{a}"]
    return {a: dict(_CELL_CACHE[(*key, a)]) for a in alphas}


# -- heatmap -----------------------------------------------------------------------------------------

def _packed_grid(layer) -> np.ndarray:
    """(rows, most packed columns of any block): 1 used cell, 0 stored zero, NaN no cell."""
    width = max(b.packed_columns for b in layer.blocks)
    grid = np.full((layer.rows, max(1, width)), np.nan)
    for b in layer.blocks:
        if b.packed_columns:
            grid[b.row_start:b.row_stop, :b.packed_columns] = (b.weights != 0).astype(float)
    return grid


def heatmap_png(layers: Sequence, path: str | os.PathLike) -> Path:
    """Write a PNG: per layer, the dense array's cells (the pruned matrix) beside the packed
    array's cells; dark = nonzero weight, light = stored zero, white = no cell."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import MaxNLocator

    cmap = ListedColormap(["#e8eef7", "#1f4e96"]).with_extremes(bad="white")
    n = len(layers)
    fig, axes = plt.subplots(n, 2, figsize=(11, 2.8 * n + 0.6), squeeze=False)
    for i, layer in enumerate(layers):
        dense = (layer.dense_int() != 0).astype(float)
        packed = _packed_grid(layer)
        cells_p = sum(b.rows * b.packed_columns for b in layer.blocks)
        ax = axes[i][0]
        ax.imshow(dense, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_title(f"{layer.name}: dense {layer.rows}x{layer.cols} = {dense.size} cells, "
                     f"{100 * dense.mean():.1f}% used", fontsize=9)
        ax.set_xlabel("input column")
        ax.set_ylabel("output row")
        ax = axes[i][1]
        ax.imshow(np.ma.masked_invalid(packed), cmap=cmap, vmin=0, vmax=1, aspect="auto",
                  interpolation="nearest")
        ax.set_title(f"packed alpha={layer.alpha}: {layer.packed_columns} packed columns, {cells_p} cells, "
                     f"{100 * layer.utilization():.1f}% used", fontsize=9)
        ax.set_xlabel("packed column")
        for b in layer.blocks[1:]:
            ax.axhline(b.row_start - 0.5, color="#c03030", linewidth=0.8)
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


# -- the report --------------------------------------------------------------------------------------

def _array_side(program, cell: dict, vectors: int, clock_hz: float, dense_macs: int) -> dict:
    cyc = network_cycles(program, vectors)
    n_cells = program.rows * program.cols
    engine_s = cyc["engine"] / clock_hz
    total_s = cyc["total"] / clock_hz
    return {
        "alpha": program.alpha,
        "tiles": len(program.tiles),
        "engine_cycles": cyc["engine"],
        "io_cycles": cyc["io"],
        "total_cycles": cyc["total"],
        "array_cells": n_cells,
        "luts_per_cell": cell["luts"],
        "flip_flops_per_cell": cell["flip_flops"],
        "carries_per_cell": cell["carries"],
        "dsps_per_cell": cell["dsps"],
        "array_luts": n_cells * cell["luts"],
        "array_flip_flops": n_cells * cell["flip_flops"],
        "effective_macs_per_s": dense_macs * vectors / engine_s,
        "end_to_end_macs_per_s": dense_macs * vectors / total_s,
    }


def cost_report(manifest_dir: str | os.PathLike, config: HardwareConfig, *, out: str | os.PathLike,
                vectors: int | None = None, synth_report: str | os.PathLike | None = None,
                layers: list[str] | None = None, synth: bool = True) -> dict:
    """Compare the dense and the column-combined array for the manifest's layers on the hardware
    ``config`` (its board prices the cells: icebreaker when it names none; its clock, or the
    board's oscillator, times them unless a ``synth_report``'s achieved Fmax does); write
    ``out/cost.json``, ``out/cost.md`` and ``out/heatmap.png``; return the report."""
    from colcomb.core.tools import tool_env, tool_version
    from colcomb.fpga.boards import get_board
    from colcomb.hdl.network import image_network
    from colcomb.hdl.program import Program
    from colcomb.packer.manifest import load_manifest

    spec = get_board(config.board or "icebreaker")
    rows, cols, cell, dsp = config.rows, config.cols, config.cell, bool(config.dsp)
    platform = spec.make_platform()
    family = platform.family.lower()
    manifest = load_manifest(manifest_dir)
    network = image_network(manifest, layers)  # a CNN runs whole, as synthesize builds it
    chosen = network.layers if network else manifest.chain(layers)
    stages = network.stages if network else None
    combined = Program.compile(chosen, config, stages=stages)
    dense = Program.compile([dense_equivalent(la) for la in chosen], config, stages=stages)
    n_vec = vectors or combined.batch

    if synth_report is not None:
        try:
            srep = json.loads(Path(synth_report).read_text())
            fmax = srep["clock"]["fmax_mhz"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ColcombError(f"{synth_report}: not a colcomb synthesis report ({exc})") from None
        if not fmax:
            raise ColcombError(f"{synth_report} has no achieved Fmax (the build failed?)")
        clock = {"mhz": float(fmax), "source": f"achieved Fmax of {synth_report}"}
    elif config.clock_mhz is not None:
        clock = {"mhz": config.clock_mhz, "source": "the config's clock"}
    else:
        clock = {"mhz": platform.default_clk_frequency / 1e6, "source": f"{spec.name} oscillator"}
    hz = clock["mhz"] * 1e6

    wb, db, ab = combined.weight_bits, combined.data_bits, combined.acc_bits
    if synth:
        cells = synth_cell(family, [1, combined.alpha], weight_bits=wb, data_bits=db, cols=cols, dsp=dsp,
                           cell=cell)
        cell_source = (f"yosys synth_{family} of one {cell} cell"
                       + ("" if cell == "serial" else ", multiplier in " + ("DSP blocks" if dsp else "LUTs")))
    else:
        zero = {"luts": None, "flip_flops": None, "carries": None, "dsps": None, "block_rams": None}
        cells = {1: zero, combined.alpha: zero}
        cell_source = "not synthesized (--no-synth)"

    dense_macs = combined.dense_macs()
    layer_rows = []
    for i, layer in enumerate(chosen):
        b = min(n_vec, combined.batch)
        layer_rows.append({
            "name": layer.name,
            "shape": list(layer.shape),
            "alpha": layer.alpha,
            "gamma": layer.gamma,
            "nonzero_weights": layer.nonzero_weights(),
            "density": layer.nonzero_weights() / (layer.rows * layer.cols),
            "dense": {
                "columns": layer.cols,
                "cells": layer.rows * layer.cols,
                "tiles": sum(1 for t in dense.tiles if t.layer == i),
                "engine_cycles_per_batch": engine_cycles(dense, b, layer=i),
            },
            "combined": {
                "columns": layer.packed_columns,
                "cells": sum(bl.rows * bl.packed_columns for bl in layer.blocks),
                "utilization": layer.utilization(),
                "tiles": sum(1 for t in combined.tiles if t.layer == i),
                "engine_cycles_per_batch": engine_cycles(combined, b, layer=i),
            },
        })

    def side(prog, cell):
        if cell["luts"] is None:
            cyc = network_cycles(prog, n_vec)
            return {"alpha": prog.alpha, "tiles": len(prog.tiles), "engine_cycles": cyc["engine"],
                    "io_cycles": cyc["io"], "total_cycles": cyc["total"], "array_cells": prog.rows * prog.cols,
                    "effective_macs_per_s": dense_macs * n_vec / (cyc["engine"] / hz),
                    "end_to_end_macs_per_s": dense_macs * n_vec / (cyc["total"] / hz)}
        return _array_side(prog, cell, n_vec, hz, dense_macs)

    d_side = side(dense, cells[1])
    c_side = side(combined, cells[combined.alpha])
    d_side["cells"] = sum(r["dense"]["cells"] for r in layer_rows)
    c_side["cells"] = sum(r["combined"]["cells"] for r in layer_rows)
    comparison = {
        "cell_ratio": c_side["cells"] / d_side["cells"],
        "tile_ratio": c_side["tiles"] / d_side["tiles"],
        "speedup": d_side["engine_cycles"] / c_side["engine_cycles"],
        "end_to_end_speedup": d_side["total_cycles"] / c_side["total_cycles"],
    }
    if synth:
        # a dense cell whose multiply-add is all DSP and carry chain (ECP5) takes no LUT: no ratio
        if d_side["luts_per_cell"]:
            comparison["lut_per_cell_ratio"] = c_side["luts_per_cell"] / d_side["luts_per_cell"]
        comparison["macs_per_s_per_array_lut"] = {
            side: rep["effective_macs_per_s"] / rep["array_luts"] if rep["array_luts"] else None
            for side, rep in (("dense", d_side), ("combined", c_side))
        }
    env = tool_env()
    report = {
        "manifest": str(manifest.path.parent if manifest.path else manifest_dir),
        "board": spec.name,
        "family": family,
        "device": platform.device,
        "array": {"rows": rows, "cols": cols, "batch": combined.batch, "vectors": n_vec,
                  "weight_bits": wb, "data_bits": db, "acc_bits": ab},
        "clock": clock,
        "cell_cost": {"source": cell_source, "dsp": dsp,
                      "dense": {"alpha": 1, **{k: v for k, v in cells[1].items() if k != "cells_by_type"}},
                      "combined": {"alpha": combined.alpha,
                                   **{k: v for k, v in cells[combined.alpha].items() if k != "cells_by_type"}}},
        "cycle_model": "colcomb.hdl.cycles.network_cycles: tile_cycles per tile, "
                       f"{flush_cycles(combined, 0)} + written-back rows per layer, one cycle per streamed word, "
                       f"{BATCH_OVERHEAD} per batch",
        "dense_macs_per_vector": dense_macs,
        "layers": layer_rows,
        "dense": d_side,
        "combined": c_side,
        "comparison": comparison,
        "tools": {"yosys": tool_version(env["YOSYS"], env) if synth else None},
        "files": {"json": "cost.json", "markdown": "cost.md", "heatmap": "heatmap.png"},
    }
    inputs = [manifest_dir] + ([synth_report] if synth_report is not None else [])
    with OutputFolder(out, command="report", inputs=inputs) as stage:
        heatmap_png(chosen, stage.path / "heatmap.png")
        write_text(stage.path / "cost.md", markdown(report))
        write_text(stage.path / "cost.json", json.dumps(report, indent=2) + "\n")
        stage.commit()
    return report


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1e6:
            return f"{v / 1e6:.2f} M"
        return f"{v:.{digits}g}"
    return str(v)


def markdown(report: dict) -> str:
    """The cost report as a Markdown page (also what the terminal shows)."""
    a, d, c, cmp_ = report["array"], report["dense"], report["combined"], report["comparison"]
    lines = [
        f"# Column-combining cost: {report['manifest']}",
        "",
        f"Array {a['rows']}x{a['cols']}, batch {a['batch']}, {a['vectors']} vectors, "
        f"{a['weight_bits']}-bit weights, {a['data_bits']}-bit data, {a['acc_bits']}-bit accumulators; "
        f"{report['family']} ({report['device']}), clock {report['clock']['mhz']:.2f} MHz "
        f"({report['clock']['source']}; both arrays are timed at this clock, the dense array's own Fmax "
        f"may differ). Cell cost: {report['cell_cost']['source']}.",
        "",
        "| | dense (alpha=1) | column-combined |",
        "|---|---|---|",
        f"| alpha | 1 | {c['alpha']} |",
        f"| matrix cells (rows x columns) | {d['cells']} | {c['cells']} |",
        f"| tiles on the array | {d['tiles']} | {c['tiles']} |",
        f"| LUTs per cell | {_fmt(d.get('luts_per_cell'))} | {_fmt(c.get('luts_per_cell'))} |",
        f"| flip-flops per cell | {_fmt(d.get('flip_flops_per_cell'))} | {_fmt(c.get('flip_flops_per_cell'))} |",
        f"| array LUTs ({a['rows'] * a['cols']} cells) | {_fmt(d.get('array_luts'))} | {_fmt(c.get('array_luts'))} |",
        f"| engine cycles | {d['engine_cycles']} | {c['engine_cycles']} |",
        f"| total cycles (with streaming in/out) | {d['total_cycles']} | {c['total_cycles']} |",
        f"| effective MAC/s (dense MACs / engine time) | {_fmt(d['effective_macs_per_s'])} | "
        f"{_fmt(c['effective_macs_per_s'])} |",
        f"| end-to-end MAC/s | {_fmt(d['end_to_end_macs_per_s'])} | {_fmt(c['end_to_end_macs_per_s'])} |",
        "",
        f"Combined / dense: cells x{cmp_['cell_ratio']:.3f}, tiles x{cmp_['tile_ratio']:.3f}, "
        f"speed-up x{cmp_['speedup']:.2f} (engine), x{cmp_['end_to_end_speedup']:.2f} (end to end)"
        + (f", LUTs per cell x{cmp_['lut_per_cell_ratio']:.2f}" if "lut_per_cell_ratio" in cmp_ else "") + ".",
        "",
        "| layer | shape | alpha | density | dense cells | packed cells | utilization | dense tiles | "
        "packed tiles |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["layers"]:
        lines.append(
            f"| {r['name']} | {r['shape'][0]}x{r['shape'][1]} | {r['alpha']} | {r['density']:.3f} | "
            f"{r['dense']['cells']} | {r['combined']['cells']} | {r['combined']['utilization']:.3f} | "
            f"{r['dense']['tiles']} | {r['combined']['tiles']} |"
        )
    lines += ["", f"![used cells]({report['files']['heatmap']})", ""]
    return "\n".join(lines)
