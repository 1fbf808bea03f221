"""The design search: every hardware config worth trying for one network on one board, estimated and ranked.

:func:`candidates` spans the config space (array shapes, cell kinds, DSP use, batch, pass length,
cell memory, requantizer depth, shadow weights), keeping any field the user fixed;
:func:`explore` compiles each (sharing a compile between configs that differ only in what the
compiler does not read), estimates it (:mod:`colcomb.fpga.estimate`: exact cycles, calibrated
resources), sets its clock to what the family reaches (less a margin), and ranks the designs
that fit by the objective:

- ``throughput``: inferences per second at the design's clock;
- ``latency``: microseconds for one image alone (batch 1's cycles at the clock);
- ``cells``: the fewest logic cells, ties broken by throughput.

A design fits when every resource is within the board's count and the logic cells within
``utilization`` of it (place and route needs some slack).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from colcomb.core.errors import ColcombError
from colcomb.fpga.boards import Board, board_config, has_spram
from colcomb.fpga.estimate import Estimate, compile_for, estimate_program
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.program import Program

__all__ = ["CLOCK_MARGIN", "OBJECTIVES", "Search", "candidates", "explore", "pareto_front", "pareto_png"]

OBJECTIVES = ("throughput", "latency", "cells")
#: a searched design is built at this fraction of the clock its family reaches (nextpnr's Fmax
#: moves a few percent from one design and placement to the next)
CLOCK_MARGIN = 0.9
#: the most of the board's logic cells a searched design may fill (place and route needs slack;
#: the README's iCEBreaker LeNet-5 placed at 97 %)
UTILIZATION = 0.98
ROWS = (2, 4, 8, 16, 32)
COLS = (2, 4, 8, 16, 32)
BATCHES = (1, 2, 4, 8, 16)
PASSES = (64, 256, 512)


@dataclass
class Search:
    """The result of :func:`explore`: every estimate (``designs``), the ones that fit ranked best
    first (``ranked``), the configs the compiler refused and why (``refused``), and the time."""

    board: str
    objective: str
    designs: list[Estimate]
    ranked: list[Estimate]
    refused: list[tuple[HardwareConfig, str]]
    seconds: float

    @property
    def best(self) -> Estimate | None:
        return self.ranked[0] if self.ranked else None

    def closest(self) -> Estimate | None:
        """The design nearest to fitting: the smallest worst over-use."""
        if not self.designs:
            return None
        return min(self.designs, key=lambda e: e.binding()[1].ratio)


def candidates(spec: Board, *, network: bool, data_bits: int, fixed: dict | None = None) -> list[HardwareConfig]:
    """The configs to try for a network (``network``: a CNN run whole) on board ``spec``; each field
    in ``fixed`` keeps its value."""
    fixed = dict(fixed or {})
    dsp_choices = (True, False) if spec.dsps else (False,)
    memories = ("rom", "spram") if has_spram(spec) else ("rom",)
    space = {
        "rows": ROWS, "cols": COLS, "cell": ("parallel", "serial"), "dsp": dsp_choices,
        "batch": BATCHES, "pass_vectors": PASSES if network else (None,), "cell_memory": memories,
        "requant_stages": (2, 3), "shadow": (False,) if network else (False, True), "beat": (1,),
    }
    for name, value in fixed.items():
        if name not in ("board", "clock_mhz"):  # the board is spec's; the clock is set per design
            space[name] = (value,)
    out = []
    keys = list(space)
    for values in itertools.product(*(space[k] for k in keys)):
        c = dict(zip(keys, values, strict=True))
        if network and (c["cols"] & (c["cols"] - 1) or (c["cell"] == "serial" and c["cols"] > data_bits)):
            continue  # a CNN reads a word per column: power-of-two columns, serial at most data_bits
        out.append(HardwareConfig(board=spec.name, clock_mhz=fixed.get("clock_mhz"), **c))
    return out


def _compile_key(config: HardwareConfig) -> tuple:
    """The fields the compiler reads (the rest: DSP use, requantizer depth, clock, board, do not
    change the compiled program's tiles and images)."""
    return (config.rows, config.cols, config.cell, config.batch, config.pass_vectors, config.beat,
            config.shadow, config.cell_memory)


def _score(objective: str) -> Callable[[Estimate], tuple]:
    if objective == "throughput":
        return lambda e: (-e.inferences_per_s, e.resources["logic_cells"].used)
    if objective == "latency":
        return lambda e: (e.latency_us, e.resources["logic_cells"].used)
    return lambda e: (e.resources["logic_cells"].used, -e.inferences_per_s)


def explore(layers, spec: Board, *, stages=None, objective: str = "throughput", fixed: dict | None = None,
            utilization: float = UTILIZATION, vectors: int | None = None,
            progress: Callable[[Iterable], Iterable] | None = None) -> Search:
    """Estimate every :func:`candidates` config of ``layers`` (an image network with ``stages``) on
    ``spec`` and rank those that fit by ``objective``. ``progress`` wraps the loop (a tqdm)."""
    if objective not in OBJECTIVES:
        raise ColcombError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if not 0 < utilization <= 1:
        raise ColcombError(f"utilization must lie in (0, 1], not {utilization!r}")
    t0 = time.perf_counter()
    data_bits = max(la.data_bits for la in layers)
    configs = candidates(spec, network=stages is not None, data_bits=data_bits, fixed=fixed)
    compiled: dict[tuple, Program | str] = {}
    designs, refused = [], []
    memo: dict = {}
    loop = progress(configs) if progress else configs
    for config in loop:
        key = _compile_key(config)
        if key not in compiled:
            try:
                compiled[key] = compile_for(layers, config, spec, stages)
            except ColcombError as exc:
                compiled[key] = str(exc)
        prog = compiled[key]
        if isinstance(prog, str):
            refused.append((config, prog))
            continue
        prog = dataclasses.replace(prog, config=config)  # the same tiles and images (_compile_key)
        est = estimate_program(prog, spec, config, vectors=vectors, memo=memo)
        if "clock_mhz" not in (fixed or {}):
            clock = _build_clock(est.fmax_mhz * CLOCK_MARGIN)
            est = dataclasses.replace(est, config=config.replace(clock_mhz=clock), clock_mhz=clock)
        designs.append(est)
    fitting = [e for e in designs
               if e.fits and e.resources["logic_cells"].used <= utilization * e.resources["logic_cells"].available]
    ranked = sorted(fitting, key=_score(objective))
    return Search(spec.name, objective, designs, ranked, refused, time.perf_counter() - t0)


def _build_clock(mhz: float) -> float:
    """A build clock no faster than ``mhz``, in half MHz (a PLL makes it from the oscillator)."""
    return max(1.0, math.floor(2 * mhz) / 2)


def pareto_front(designs: list[Estimate]) -> list[Estimate]:
    """The designs no other beats on both inferences/s and logic cells, fewest cells first."""
    front, best = [], -1.0
    for e in sorted(designs, key=lambda e: (e.resources["logic_cells"].used, -e.inferences_per_s)):
        if e.inferences_per_s > best:
            front.append(e)
            best = e.inferences_per_s
    return front


def pareto_png(search: Search, path: str | os.PathLike, *, title: str = "") -> None:
    """Inferences/s against logic cells of every estimated design: those that fit, those that do
    not, the Pareto front of the fitting ones and the winner; the board's logic cells as a line."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colcomb.core.atomic import write_bytes

    fits = set(map(id, search.ranked))
    fig, ax = plt.subplots(figsize=(8, 5))
    out = [e for e in search.designs if id(e) not in fits]
    if out:
        ax.scatter([e.resources["logic_cells"].used for e in out], [e.inferences_per_s for e in out], s=8,
                   color="#c8c8c8", label="does not fit")
    ok = search.ranked
    if ok:
        ax.scatter([e.resources["logic_cells"].used for e in ok], [e.inferences_per_s for e in ok], s=10,
                   color="#6a9fd4", label="fits")
        front = pareto_front(ok)
        ax.plot([e.resources["logic_cells"].used for e in front], [e.inferences_per_s for e in front], "-o",
                color="#1f4e96", markersize=4, label="Pareto front")
        b = search.best
        ax.scatter([b.resources["logic_cells"].used], [b.inferences_per_s], s=120, marker="*", color="#d04020",
                   zorder=5, label=f"best ({search.objective}): {b.config.describe()}")
    if search.designs:
        ax.axvline(search.designs[0].resources["logic_cells"].available, color="#c03030", linestyle="--",
                   linewidth=1, label="board's logic cells")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("logic cells (estimated)")
    ax.set_ylabel("inferences / s (estimated, at the design's clock)")
    ax.set_title(title or f"colcomb explore: {search.board}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def explore_manifest(manifest_dir: str | os.PathLike, board: str, **kwargs) -> Search:
    """:func:`explore` of a manifest's network (all its layers; a CNN whole)."""
    from colcomb.hdl.network import image_network
    from colcomb.packer.manifest import load_manifest

    layers_wanted = kwargs.pop("layers", None)
    spec, _ = board_config(HardwareConfig(board=board))
    manifest = load_manifest(manifest_dir)
    network = image_network(manifest, layers_wanted)
    chosen = network.layers if network else manifest.chain(layers_wanted)
    return explore(chosen, spec, stages=network.stages if network else None, **kwargs)
