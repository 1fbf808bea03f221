"""The hardware config's command-line flags: one definition for every command that builds a design.

Each flag overrides the same field of ``--config FILE`` (a :class:`~colcomb.hdl.config.HardwareConfig`
JSON, as ``colcomb explore`` writes it); a flag left out keeps the file's value, or the default.
:data:`FLAGS` maps each field to its flag, so an error about a field can name the flag.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from colcomb.hdl.config import CELL_MEMORIES, CELLS, CONFIG_FIELDS, REQUANT_STAGES, HardwareConfig

__all__ = ["FLAGS", "add_config_args", "config_from_args", "flag_of", "given_fields"]

#: config field -> its command-line flag
FLAGS = {
    "rows": "--rows", "cols": "--cols", "cell": "--cell", "dsp": "--dsp/--no-dsp", "batch": "--batch",
    "beat": "--beat", "pass_vectors": "--pass-vectors", "cell_memory": "--cell-memory",
    "requant_stages": "--requant-stages", "shadow": "--shadow", "clock_mhz": "--clock", "board": "--board",
}
assert set(FLAGS) == set(CONFIG_FIELDS)


def flag_of(field: str) -> str:
    return FLAGS.get(field, field)


def add_config_args(p: argparse.ArgumentParser, *, board_help: str | None = None) -> None:
    """Add ``--config`` and one flag per config field, each defaulting to "not given"."""
    g = p.add_argument_group("hardware config (each flag overrides --config FILE; see `colcomb explore`)")
    g.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="a hardware config JSON (written by `colcomb explore` or by hand); flags given beside it win")
    g.add_argument("--board", default=None,
                   help=board_help or "board (see `colcomb boards`): decides DSP use and the clock's source")
    g.add_argument("--rows", type=int, default=None, help="array height R, output rows per tile (default 8)")
    g.add_argument("--cols", type=int, default=None, help="array width C, packed columns per tile (default 8)")
    g.add_argument("--cell", choices=CELLS, default=None,
                   help="array cell: parallel (a multiplier per cell, a vector per cycle; default) or serial (the "
                   "paper's bit-serial cell: no multiplier, one activation bit per lane per cycle)")
    g.add_argument("--dsp", action=argparse.BooleanOptionalAction, default=None,
                   help="multiply in DSP blocks (SB_MAC16 / MULT18X18D) as far as the device has them, the remaining "
                   "cells in logic (default: on wherever the board has DSPs)")
    g.add_argument("--batch", type=int, default=None,
                   help="most input vectors (images) the design holds on chip per run (default 16)")
    g.add_argument("--beat", type=int, default=None, metavar="K",
                   help="activation words per stream beat, in and out (a power of two dividing the lanes of a memory "
                   "word; default 1): I/O-bound designs take fewer cycles per inference")
    g.add_argument("--pass-vectors", type=int, default=None, metavar="N",
                   help="a CNN run whole on chip: each layer's (image, position) vectors run in passes of at most N "
                   "over its tiles (default 256); the accumulator memory is N deep")
    g.add_argument("--cell-memory", choices=CELL_MEMORIES, default=None,
                   help="where the cell words live: rom (default), block RAM initialised by the bitstream; spram, the "
                   "iCE40 UltraPlus's SPRAM, copied in from the SPI flash at power-up (frees the block RAMs the "
                   "weights take; program the flash image cells.flash.bin at 1 MiB)")
    g.add_argument("--requant-stages", type=int, choices=REQUANT_STAGES, default=None,
                   help="the requantizer's pipeline depth: 2 (default) or 3, a register after its rounding shifter "
                   "(a cycle more per layer flush, a shorter critical path)")
    g.add_argument("--shadow", action=argparse.BooleanOptionalAction, default=None,
                   help="shadow weights (a chain of matrices): each tile's cells load into a second register per cell "
                   "while the tile before streams (a cell word more of flip-flops per cell)")
    g.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="system clock in MHz: a PLL makes it from the board oscillator (default: the oscillator)")


#: argparse destination -> config field
_DEST = {"rows": "rows", "cols": "cols", "cell": "cell", "dsp": "dsp", "batch": "batch", "beat": "beat",
         "pass_vectors": "pass_vectors", "cell_memory": "cell_memory", "requant_stages": "requant_stages",
         "shadow": "shadow", "clock": "clock_mhz", "board": "board"}


def given_fields(args: argparse.Namespace) -> dict:
    """The config fields the command line sets explicitly."""
    return {field: getattr(args, dest) for dest, field in _DEST.items() if getattr(args, dest, None) is not None}


def config_from_args(args: argparse.Namespace, **defaults) -> HardwareConfig:
    """The config of ``--config FILE`` (or the defaults, with ``defaults`` over them) with every flag
    given on the command line over it; a bad value raises :class:`ConfigError` (the CLI names its flag)."""
    base = HardwareConfig.load(args.config) if args.config is not None else HardwareConfig().replace(**defaults)
    return base.replace(**given_fields(args))
