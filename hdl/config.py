"""The hardware config: every choice of the array and its engine, built and checked once.

A :class:`HardwareConfig` is what the compiler (:meth:`colcomb.hdl.program.Program.compile`), the
generator, the simulator, synthesis and the cost report take instead of a keyword argument per
option. It is frozen and validated when made; its JSON form (:meth:`HardwareConfig.save`,
:meth:`HardwareConfig.load`) is the file ``--config FILE`` reads and ``colcomb explore`` writes.
Errors name the field (:class:`ConfigError` ``field``), which the CLI maps to its flag.

``dsp`` and ``clock_mhz`` may stay ``None``: the board decides them (its DSPs are used where it
has some, its oscillator clocks the design), see :func:`colcomb.fpga.boards.board_config`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcomb.core import strict_json
from colcomb.core.errors import ColcombError

__all__ = ["CELLS", "CELL_MEMORIES", "CONFIG_FIELDS", "PASS_VECTORS", "REQUANT_STAGES", "ConfigError",
           "HardwareConfig"]

#: the array's cell kinds: one vector per cycle, or the paper's bit-serial cell
CELLS = ("parallel", "serial")
#: where the cell words live: block RAM initialised by the bitstream, or the iCE40 UltraPlus's
#: SPRAM, loaded from the SPI flash at power-up (:mod:`colcomb.hdl.flash_loader`)
CELL_MEMORIES = ("rom", "spram")
#: the requantizer's pipeline depths: 2, or 3 with a register after its shifter
#: (:class:`~colcomb.hdl.requant.Requantizer` ``stages``)
REQUANT_STAGES = (2, 3)
#: an image network's layer runs its (image, position) vectors in passes of at most this many
#: over its tiles (whole pooling windows): long passes load each tile's weights rarely, and the
#: accumulator memory this deep costs no more block RAM (its width, rows x acc_bits, sets that)
PASS_VECTORS = 256
#: the JSON form's format tag
FORMAT = "colcomb-hardware-config/1"


class ConfigError(ColcombError):
    """A bad value of one field of a :class:`HardwareConfig` (``field`` names it)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


#: the largest value of each count (a design beyond them does not fit any FPGA colcomb targets,
#: and elaborating it would exhaust memory or never finish; README "What colcomb refuses")
LIMITS = {"rows": 256, "cols": 256, "batch": 4096, "beat": 64, "pass_vectors": 65536}
MAX_CLOCK_MHZ = 1000.0


def _positive_int(field: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(field, f"{field} must be a positive integer, not {value!r:.40}")
    if field in LIMITS and value > LIMITS[field]:
        raise ConfigError(field, f"{field} must be at most {LIMITS[field]}, not {value}")
    return int(value)


@dataclass(frozen=True)
class HardwareConfig:
    """One hardware design point: the array, its cell, the engine's options, the board and clock.

    - ``rows`` x ``cols``: the array (output rows and packed columns per tile);
    - ``cell``: one of :data:`CELLS`; ``dsp``: multipliers in DSP blocks (None: the board's default);
    - ``batch``: most vectors (images) the design holds on chip per run;
    - ``beat``: activation words per stream beat (a power of two);
    - ``pass_vectors``: a CNN's vectors per pass over its tiles (None: :data:`PASS_VECTORS`);
    - ``cell_memory``: one of :data:`CELL_MEMORIES`; ``requant_stages``: one of :data:`REQUANT_STAGES`;
    - ``shadow``: shadow weights (a chain of matrices loads a tile while the one before streams);
    - ``clock_mhz``: the system clock (None: the board's oscillator); ``board``: a board name.
    """

    rows: int = 8
    cols: int = 8
    cell: str = "parallel"
    dsp: bool | None = None
    batch: int = 16
    beat: int = 1
    pass_vectors: int | None = None
    cell_memory: str = "rom"
    requant_stages: int = 2
    shadow: bool = False
    clock_mhz: float | None = None
    board: str | None = None

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "batch"):  # numpy integers become ints (the JSON form)
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        beat = self.beat
        if (isinstance(beat, (bool, np.bool_)) or not isinstance(beat, (int, np.integer)) or beat < 1
                or beat & (beat - 1)):
            raise ConfigError("beat", f"beat must be a power of two (words per stream beat: 1, 2, 4, ...), "
                                      f"not {beat!r:.40}")
        if beat > LIMITS["beat"]:
            raise ConfigError("beat", f"beat must be at most {LIMITS['beat']}, not {beat}")
        object.__setattr__(self, "beat", int(beat))
        if self.cell not in CELLS:
            raise ConfigError("cell", f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.dsp is not None and not isinstance(self.dsp, bool):
            raise ConfigError("dsp", f"dsp must be true, false or null (the board's default), not {self.dsp!r}")
        if self.pass_vectors is not None:
            object.__setattr__(self, "pass_vectors", _positive_int("pass_vectors", self.pass_vectors))
        if self.cell_memory not in CELL_MEMORIES:
            raise ConfigError("cell_memory", f"cell_memory must be one of {', '.join(CELL_MEMORIES)}, "
                                             f"not {self.cell_memory!r}")
        if isinstance(self.requant_stages, bool) or self.requant_stages not in REQUANT_STAGES:
            raise ConfigError("requant_stages", f"requant_stages must be one of "
                                                f"{', '.join(map(str, REQUANT_STAGES))}, not {self.requant_stages!r}")
        if not isinstance(self.shadow, bool):
            raise ConfigError("shadow", f"shadow must be true or false, not {self.shadow!r}")
        if self.clock_mhz is not None:
            if (isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float))
                    or not math.isfinite(self.clock_mhz) or not 0 < self.clock_mhz <= MAX_CLOCK_MHZ):
                raise ConfigError("clock_mhz", f"clock_mhz must be a frequency in MHz above 0 and at most "
                                               f"{MAX_CLOCK_MHZ:g}, not {self.clock_mhz!r}")
            object.__setattr__(self, "clock_mhz", float(self.clock_mhz))
        if self.board is not None and (not isinstance(self.board, str) or not self.board.strip()):
            raise ConfigError("board", f"board must be a board name, not {self.board!r}")

    # -- derived ---------------------------------------------------------------------------------
    @property
    def cells(self) -> int:
        return self.rows * self.cols

    @property
    def passes(self) -> int:
        """Vectors per pass of a CNN (:data:`PASS_VECTORS` unless set)."""
        return PASS_VECTORS if self.pass_vectors is None else self.pass_vectors

    def replace(self, **changes) -> HardwareConfig:
        """A copy with ``changes`` (validated like a new config); unknown fields are refused."""
        unknown = sorted(set(changes) - set(CONFIG_FIELDS))
        if unknown:
            raise ConfigError(unknown[0], f"unknown hardware config field {unknown[0]!r}; the fields are "
                                          f"{', '.join(CONFIG_FIELDS)}")
        return dataclasses.replace(self, **changes)

    def describe(self, target: bool = True) -> str:
        """A one-line summary: ``8x4 serial, DSP, batch 1, passes of 64, cells in SPRAM, ...``;
        without ``target``, no board and clock (a table that has columns of its own for them)."""
        parts = [f"{self.rows}x{self.cols} {self.cell}"]
        if self.dsp is not None:
            parts.append("DSP" if self.dsp else "no DSP")
        parts.append(f"batch {self.batch}")
        if self.beat > 1:
            parts.append(f"beat {self.beat}")
        if self.pass_vectors is not None:
            parts.append(f"passes of {self.pass_vectors}")
        if self.cell_memory != "rom":
            parts.append(f"cells in {self.cell_memory.upper()}")
        if self.requant_stages != 2:
            parts.append(f"requantizer in {self.requant_stages} stages")
        if self.shadow:
            parts.append("shadow weights")
        if self.board and target:
            parts.append(self.board)
        if self.clock_mhz is not None and target:
            parts.append(f"{self.clock_mhz:g} MHz")
        return ", ".join(parts)

    # -- the JSON form -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "the config") -> HardwareConfig:
        """The config of a JSON object; unknown keys and bad values are refused naming the key."""
        if not isinstance(data, dict):
            raise ColcombError(f"{source}: a hardware config is a JSON object, not {type(data).__name__}")
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ColcombError(f"{source}: format {fmt!r} is not a colcomb hardware config ({FORMAT!r})")
        fields = {k: v for k, v in data.items() if k != "format"}
        unknown = sorted(set(fields) - set(CONFIG_FIELDS))
        if unknown:
            raise ConfigError(unknown[0], f"{source}: unknown field {unknown[0]!r}; a hardware config has "
                                          f"{', '.join(CONFIG_FIELDS)}")
        try:
            return cls(**fields)
        except ConfigError as exc:
            raise ConfigError(exc.field, f"{source}: {exc}") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON form to ``path`` (atomically)."""
        from colcomb.core.atomic import write_text

        return write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> HardwareConfig:
        """Read a config file (:meth:`save`'s JSON); one clear error for a missing or malformed file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ColcombError(f"{path}: cannot read the hardware config ({exc.strerror or exc})") from None
        try:
            data = strict_json.loads(text)
        except ValueError as exc:
            raise ColcombError(f"{path}: not a JSON hardware config ({exc})") from None
        return cls.from_dict(data, str(path))


#: the config's fields, in order (the JSON form's keys besides ``format``)
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(HardwareConfig))
