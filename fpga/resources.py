"""Reading the tools' reports: device utilisation and Fmax from nextpnr, cell counts from yosys."""

from __future__ import annotations

import re

# nextpnr utilization keys -> report fields, per family
NEXTPNR_KEYS = {
    "ice40": {"logic_cells": "ICESTORM_LC", "block_rams": "ICESTORM_RAM", "dsps": "ICESTORM_DSP",
              "io": "SB_IO", "plls": "ICESTORM_PLL", "spram": "ICESTORM_SPRAM"},
    "ecp5": {"logic_cells": "TRELLIS_COMB", "flip_flops_placed": "TRELLIS_FF", "block_rams": "DP16KD",
             "dsps": "MULT18X18D", "io": "TRELLIS_IO", "plls": "EHXPLLL"},
}


def parse_nextpnr_log(text: str) -> dict[str, dict[str, int]]:
    """Device utilisation from a nextpnr log: ``{bel type: {"used", "available"}}`` (the last
    table in the log wins)."""
    util: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text, re.M):
        util[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    return util


def parse_nextpnr_fmax(text: str) -> dict[str, dict[str, float]]:
    """``{clock: {"achieved", "constraint"}}`` MHz from the log's "Max frequency" lines (the last
    per clock wins: nextpnr prints them after placement and again after routing)."""
    out: dict[str, dict[str, float]] = {}
    pat = r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)"
    for m in re.finditer(pat, text):
        out[m.group(1)] = {"achieved": float(m.group(2)), "constraint": float(m.group(4))}
    return out


def parse_yosys_stat(stat: dict) -> dict[str, int]:
    """Cell counts by type of the top design from ``stat -json`` output."""
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type")
    if cells is None and stat.get("modules"):
        # fall back to the largest module
        mod = max(stat["modules"].values(), key=lambda v: v.get("num_cells", 0))
        cells = mod.get("num_cells_by_type", {})
    return {str(k): int(v) for k, v in (cells or {}).items() if not str(k).startswith("$")}


def yosys_resources(cells: dict[str, int], family: str) -> dict[str, int]:
    """LUTs, flip-flops, carry cells, block RAMs and DSPs from yosys' cell counts."""
    if family == "ice40":
        return {
            "luts": cells.get("SB_LUT4", 0),
            "flip_flops": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
            "carries": cells.get("SB_CARRY", 0),
            "block_rams": sum(v for k, v in cells.items() if k.startswith("SB_RAM40")),
            "dsps": cells.get("SB_MAC16", 0),
        }
    return {
        "luts": cells.get("LUT4", 0) + 4 * cells.get("TRELLIS_DPR16X4", 0),
        "flip_flops": cells.get("TRELLIS_FF", 0),
        "carries": cells.get("CCU2C", 0),
        "block_rams": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
        "dsps": cells.get("MULT18X18D", 0),
    }
