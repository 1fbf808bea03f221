"""What a hardware config costs on a board and how fast it runs, in milliseconds, without yosys or nextpnr.

- **Cycles per inference**: exact, from the cycle model (:mod:`colcomb.hdl.cycles`), the steady
  state of a long stream of full batches (what ``colcomb synthesize`` measures in Verilator).
- **Block RAMs and SPRAMs**: every memory of the design (:func:`colcomb.hdl.memories.memories`)
  mapped as yosys maps it (:func:`colcomb.fpga.memory_map.memory_cost`), plus the board
  self-test's stored vectors.
- **DSPs**: the requantizer's multipliers (a lane's ``acc_bits`` x 16-bit product split into the
  device's 16 x 16 or 18 x 18 blocks) and the cells :func:`colcomb.fpga.synth.dsp_plan` maps.
- **LUTs, flip-flops, carries**: a linear model calibrated from yosys runs of whole designs
  (``benchmarks/calibrate.py`` writes ``calibration.json`` beside this module): per array cell a
  slope for its kind (parallel with a DSP or a logic multiplier, serial) and the engine's part
  from the array's height, width, requantizer lanes and memory words. **Logic cells** (what the
  device counts: iCE40 LCs, ECP5 LUT4 slots) from those through a packing model fitted on
  nextpnr runs, and the **clock** a family reaches from the same runs.

:func:`estimate` is the entry point; ``colcomb estimate`` prints it, ``colcomb explore`` ranks
hundreds of them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from colcomb.core.errors import ColcombError
from colcomb.fpga.boards import Board, board_config
from colcomb.fpga.memory_map import memory_cost
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import engine_cycles, steady_cycles_per_inference, stream_cycles
from colcomb.hdl.memories import memories
from colcomb.hdl.program import Program
from colcomb.hdl.spram import spram_blocks
from colcomb.packer.packed import MULTIPLIER_BITS

__all__ = ["CALIBRATION", "Estimate", "Resource", "calibration", "estimate", "estimate_program", "features"]

#: the calibration this module ships (``python benchmarks/calibrate.py`` rewrites it)
CALIBRATION = Path(__file__).with_name("calibration.json")
#: the resources a board is checked against, in the order reports list them
RESOURCES = ("logic_cells", "block_rams", "sprams", "dsps")
#: what yosys' memory_libmap charges for one block RAM (its brams.txt ``cost``)
BLOCK_COST = {"ice40": 64, "ecp5": 128}
#: DSP block operand widths: iCE40 SB_MAC16 16 x 16, ECP5 MULT18X18D 18 x 18
DSP_WIDTH = {"ice40": 16, "ecp5": 18}


@cache
def calibration(path: str | os.PathLike | None = None) -> dict:
    """The calibration (``calibration.json``): per family, the coefficients of each model."""
    path = Path(path) if path is not None else CALIBRATION
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ColcombError(f"{path}: the estimate's calibration cannot be read ({exc}); "
                           f"rerun `python benchmarks/calibrate.py`") from None


@dataclass(frozen=True)
class Resource:
    used: int
    available: int

    @property
    def ratio(self) -> float:
        return self.used / self.available if self.available else (math.inf if self.used else 0.0)


@dataclass(frozen=True)
class Estimate:
    """One config's predicted resources and speed on its board."""

    config: HardwareConfig  # with the board's defaults filled in (:func:`board_config`)
    family: str
    device: str
    luts: int
    flip_flops: int
    carries: int
    resources: dict[str, Resource]
    cycles_per_inference: float
    clock_mhz: float  # the clock the design is built for: the config's, else the oscillator
    fmax_mhz: float  # the clock the family's calibration runs reached
    cycles_one: int  # cycles of one image alone, first input word to last output word (after power-up)
    tiles: int
    alpha: int
    memories: list[dict] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return all(r.used <= r.available for r in self.resources.values())

    @property
    def inferences_per_s(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles_per_inference

    @property
    def latency_us(self) -> float:
        """Microseconds from one image's first input word to its last output word, alone."""
        return self.cycles_one / self.clock_mhz

    def binding(self) -> tuple[str, Resource]:
        """The resource closest to (or furthest over) its limit."""
        name = max(self.resources, key=lambda k: self.resources[k].ratio)
        return name, self.resources[name]

    def overflows(self) -> list[str]:
        """Each resource over its limit, as ``"logic cells 6605 / 5280 (125 %)"``."""
        return [f"{k.replace('_', ' ')} {r.used} / {r.available} ({100 * r.ratio:.0f} %)"
                for k, r in self.resources.items() if r.used > r.available]

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(), "family": self.family, "device": self.device,
            "luts": self.luts, "flip_flops": self.flip_flops, "carries": self.carries,
            "resources": {k: {"used": r.used, "available": r.available} for k, r in self.resources.items()},
            "fits": self.fits, "cycles_per_inference": self.cycles_per_inference, "clock_mhz": self.clock_mhz,
            "fmax_mhz": self.fmax_mhz, "inferences_per_s": self.inferences_per_s, "latency_us": self.latency_us,
            "tiles": self.tiles,
            "alpha": self.alpha, "memories": self.memories,
        }


def predicted_requant_dsps(family: str, program: Program) -> int:
    """DSP blocks of the requantizer without yosys: per lane, its ``acc_bits`` x
    :data:`MULTIPLIER_BITS` product in blocks of the family's width (the tests hold it to
    :func:`colcomb.fpga.synth.requant_dsps`, which synthesizes it)."""
    w = DSP_WIDTH[family]
    return program.requant_lanes * -(-program.acc_bits // w) * -(-MULTIPLIER_BITS // w)


def dsp_split(spec: Board, program: Program, use: bool) -> tuple[int, int]:
    """(requantizer DSPs, cells with a DSP multiplier): :func:`colcomb.fpga.synth.dsp_plan` with the
    requantizer's count predicted rather than synthesized."""
    from colcomb.fpga.synth import dsp_plan

    rq = predicted_requant_dsps(spec.family, program)
    used, cells = dsp_plan(spec, spec.family, program, use, requant=rq)
    if not used:
        return 0, 0
    return rq, 0 if program.cell == "serial" else cells


def features(program: Program, rq_dsps: int) -> dict[str, float]:
    """The engine's features the calibrated LUT / flip-flop / carry models weigh (besides the cells
    and the memories): ``rq_dsps`` 0 puts the requantizer's multipliers in logic."""
    banks = (program.cols - 1 + program.input_banks - 1) if program.banked else 0
    return {
        "const": 1.0,
        "serial": float(program.cell == "serial"),
        "rows": float(program.rows),
        "acc_width": float(-(-program.rows // program.requant_steps) * program.acc_bits),
        "requant_logic_lanes": float(program.requant_lanes if rq_dsps == 0 else 0),
        "lane_bits": float(program.lanes_per_part * program.data_bits),
        "bank_bits": float(banks * program.lanes_per_part * program.data_bits),
        "network": float(program.stages is not None),
    }


def cell_counts(program: Program, dsp_cells: int) -> dict[str, int]:
    """Array cells by kind: parallel with a DSP multiplier, parallel in logic, serial."""
    n = program.rows * program.cols
    if program.cell == "serial":
        return {"parallel_dsp": 0, "parallel_logic": 0, "serial": n}
    return {"parallel_dsp": dsp_cells, "parallel_logic": n - dsp_cells, "serial": 0}


def _linear(coeffs: dict[str, float], values: dict[str, float]) -> float:
    return sum(coeffs.get(k, 0.0) * v for k, v in values.items())


def cell_slope(cal: dict, kind: str, alpha: int, onehot: bool, metric: str) -> float:
    """Per-cell cost of ``kind`` at ``alpha`` (linear between the calibrated alphas, beyond them
    along the last segment)."""
    table = cal["cells"][kind + ("-onehot" if onehot else "")][metric]
    points = sorted((int(a), float(v)) for a, v in table.items())
    if len(points) == 1:
        return points[0][1]
    for (a0, v0), (a1, v1) in itertools.pairwise(points):
        if alpha <= a1 or (a1, v1) == points[-1]:
            return v0 + (v1 - v0) * (alpha - a0) / (a1 - a0)
    return points[-1][1]


def selftest_memories(program: Program, vectors: int) -> list[tuple[str, int, int]]:
    """The board self-test's ROMs (:class:`colcomb.fpga.selftest.BoardTop`): the stored inputs and
    golden outputs, a word and a last flag each."""
    return [("test_inputs", max(2, vectors * program.in_words), program.data_bits + 1),
            ("test_expected", max(2, vectors * program.out_words), program.data_bits + 1)]


def estimate_program(program: Program, spec: Board, config: HardwareConfig, *, vectors: int | None = None,
                     cal: dict | None = None, memo: dict | None = None) -> Estimate:
    """The estimate of ``program`` (compiled for ``config``) on board ``spec``; ``vectors``: the
    test vectors the self-test stores (default one batch). ``memo``: a dict the memories' cost is
    kept in between configs compiled to the same program (a search's)."""
    family = spec.family
    cal = (cal or calibration())[family]
    rq_dsps, dsp_cells = dsp_split(spec, program, bool(config.dsp))
    counts = cell_counts(program, dsp_cells)
    feats = features(program, rq_dsps)
    totals = {}
    for metric in ("luts", "flip_flops", "carries"):
        cells = sum(n * cell_slope(cal, kind, program.alpha, program.onehot and kind != "serial", metric)
                    for kind, n in counts.items() if n)
        totals[metric] = max(0, round(cells + _linear(cal["engine"][metric], feats)))
    key = (family, vectors, program.rows, program.cols, program.cell, program.batch, program.pass_vectors,
           program.beat, program.shadow, program.cell_memory, len(program.cells))
    if memo is not None and key in memo:
        brams, sprams, luts_in_memories, ffs_in_memories, listed = memo[key]
    else:
        brams, sprams, luts_in_memories, ffs_in_memories, listed = _memories_cost(program, family, vectors)
        if memo is not None:
            memo[key] = brams, sprams, luts_in_memories, ffs_in_memories, listed
    luts = totals["luts"] + luts_in_memories
    ffs = totals["flip_flops"] + ffs_in_memories
    lc = max(0, round(_linear(cal["logic_cells"], {"const": 1.0, "luts": luts, "flip_flops": ffs,
                                                   "carries": totals["carries"]})))
    dsps = rq_dsps + dsp_cells
    resources = {
        "logic_cells": Resource(lc, spec.logic_cells),
        "block_rams": Resource(brams, spec.block_rams),
        "sprams": Resource(sprams, spec.sprams),
        "dsps": Resource(dsps, spec.dsps),
    }
    cpi = steady_cycles_per_inference(program)
    # one image alone, after power-up (the flash load of cells in SPRAM is not the image's latency)
    one = stream_cycles([engine_cycles(program, 1)], program.input_cycles, program.out_beats, 1)["total"]
    fmax = fmax_model(cal, program)
    clock = config.clock_mhz if config.clock_mhz is not None else spec.oscillator_mhz
    return Estimate(config=config, family=family, device=spec.device, luts=luts,
                    flip_flops=ffs, carries=totals["carries"], resources=resources, cycles_per_inference=cpi,
                    clock_mhz=clock, fmax_mhz=fmax, cycles_one=one, tiles=len(program.tiles), alpha=program.alpha,
                    memories=listed)


def _memories_cost(program: Program, family: str, vectors: int | None) -> tuple:
    """(block RAMs, SPRAMs, LUTs, flip-flops, per-memory list) of the design's memories and the
    self-test's ROMs."""
    brams = sprams = luts_in_memories = ffs_in_memories = 0
    listed = []
    for mem in memories(program):
        if mem.name.startswith("lanes") and len(program.layers) == 1:
            continue  # no later layer reads it: yosys removes a memory nothing reads
        if mem.spram:
            blocks = spram_blocks(mem.width)
            sprams += blocks
            listed.append({"name": mem.name, "depth": mem.depth, "width": mem.width, "sprams": blocks})
            continue
        cost = memory_cost(family, depth=mem.depth, width=max(1, mem.used_width), rom=mem.rom,
                           block_style=mem.block, granularity=mem.granularity, transparent=mem.transparent)
        blocks = cost.block_rams
        if mem.rom and mem.read_ports > 1 and blocks:
            # a block RAM has one read port: each port its own copy, which yosys weighs against
            # the ROM in logic (memory_libmap: a block costs BLOCK_COST, a ROM bits / 16)
            if blocks * mem.read_ports * BLOCK_COST[family] < mem.depth * mem.used_width / 16:
                blocks *= mem.read_ports
            else:
                blocks = 0
                luts_in_memories += mem.depth * mem.used_width // 16
        brams += blocks
        luts_in_memories += cost.luts + 4 * cost.lut_rams
        ffs_in_memories += cost.flip_flops
        listed.append({"name": mem.name, "depth": mem.depth, "width": mem.width, "block_rams": blocks})
    for name, depth, width in selftest_memories(program, vectors or program.batch):
        cost = memory_cost(family, depth=depth, width=width, rom=True, block_style=False)
        brams += cost.block_rams
        luts_in_memories += cost.luts + 4 * cost.lut_rams
        ffs_in_memories += cost.flip_flops
        listed.append({"name": name, "depth": depth, "width": width, "block_rams": cost.block_rams})
    return brams, sprams, luts_in_memories, ffs_in_memories, listed


def fmax_model(cal: dict, program: Program) -> float:
    """The clock (MHz) the family's placed and routed calibration designs reach for this cell and
    requantizer depth (:data:`calibration` ``fmax_mhz``)."""
    table = cal["fmax_mhz"]
    key = f"{program.cell}-{program.requant_stages}"
    return float(table.get(key, table[program.cell + "-2"]))


def compile_for(layers, config: HardwareConfig, spec: Board, stages=None) -> Program:
    """``layers`` compiled as ``colcomb synthesize`` compiles them for ``spec`` (the select one-hot
    where :func:`colcomb.fpga.synth.onehot_select` says)."""
    from colcomb.fpga.synth import onehot_select

    onehot = onehot_select(spec.family, config.cell, max(la.alpha for la in layers))
    return Program.compile(layers, config, onehot=onehot, stages=stages)


def estimate(manifest_dir: str | os.PathLike, config: HardwareConfig, *, layers: list[str] | None = None,
             vectors: int | None = None) -> Estimate:
    """The estimate of the manifest's network (the chosen ``layers``, default all; a CNN whole) on
    ``config`` (its board required)."""
    from colcomb.hdl.network import image_network
    from colcomb.packer.manifest import load_manifest

    spec, config = board_config(config)
    manifest = load_manifest(manifest_dir)
    network = image_network(manifest, layers)
    chosen = network.layers if network else manifest.chain(layers)
    program = compile_for(chosen, config, spec, network.stages if network else None)
    return estimate_program(program, spec, config, vectors=vectors)
