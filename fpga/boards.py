"""The boards colcomb builds for: amaranth-boards platforms and the LEDs and UART of the verdict."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

from colcomb.core.errors import ColcombError
from colcomb.hdl.config import ConfigError, HardwareConfig


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform and which resources show the verdict."""

    name: str
    module: str
    platform: str
    pass_led: tuple[str, int]
    fail_led: tuple[str, int]
    uart: tuple[str, int] | None
    dsps: int = 0  # the device's multiplier blocks (SB_MAC16 / MULT18X18D)
    logic_cells: int = 0  # iCE40 logic cells (LUT4 + flip-flop + carry) / ECP5 LUT4s (TRELLIS_COMB)
    block_rams: int = 0  # SB_RAM40_4K (4 kbit) / DP16KD (18 kbit)
    sprams: int = 0  # iCE40 UltraPlus SB_SPRAM256KA (256 kbit)
    pll_pad: bool = False  # iCE40: the oscillator pin is the PLL's dedicated pad
    note: str = ""

    def platform_class(self):
        mod = importlib.import_module(self.module)
        return getattr(mod, self.platform)

    def make_platform(self):
        return self.platform_class()()

    @property
    def family(self) -> str:
        return _platform_facts(self.module, self.platform)[0]

    @property
    def device(self) -> str:
        return _platform_facts(self.module, self.platform)[1]

    @property
    def oscillator_mhz(self) -> float:
        return _platform_facts(self.module, self.platform)[2]

    def describe(self) -> dict:
        plat = self.make_platform()
        return {
            "board": self.name,
            "platform": f"{self.module}.{self.platform}",
            "family": plat.family.lower(),
            "device": f"{plat.device}-{plat.package}",
            "default_clock_mhz": plat.default_clk_frequency / 1e6,
            "pass_led": list(self.pass_led),
            "fail_led": list(self.fail_led),
            "uart": list(self.uart) if self.uart else None,
            "dsps": self.dsps,
            "note": self.note,
        }


@functools.cache
def _platform_facts(module: str, platform: str) -> tuple[str, str, float]:
    """(family, device, oscillator MHz) of an amaranth-boards platform, made once."""
    plat = getattr(importlib.import_module(module), platform)()
    return plat.family.lower(), str(plat.device), plat.default_clk_frequency / 1e6


#: MULT18X18D blocks, LUT4s and DP16KD block RAMs of each LFE5U size (Lattice's ECP5 family data sheet)
ECP5_DSPS = {"12F": 28, "25F": 28, "45F": 72, "85F": 156}
ECP5_LUTS = {"12F": 12096, "25F": 24288, "45F": 43848, "85F": 83640}
ECP5_BRAMS = {"12F": 32, "25F": 56, "45F": 108, "85F": 208}

BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("icebreaker", "amaranth_boards.icebreaker", "ICEBreakerPlatform",
              pass_led=("led_g", 0), fail_led=("led_r", 0), uart=("uart", 0), dsps=8, pll_pad=True,
              logic_cells=5280, block_rams=30, sprams=4,
              note="1BitSquared iCEBreaker; green LED = pass, red LED = fail, UART on the FTDI port"),
        Board("icestick", "amaranth_boards.icestick", "ICEStickPlatform",
              pass_led=("led", 4), fail_led=("led", 0), uart=("uart", 0), logic_cells=1280, block_rams=16,
              note="Lattice iCEstick (1280 LCs: only tiny networks fit); green LED 4 = pass"),
        *(
            Board(f"ulx3s-{size.lower()}", "amaranth_boards.ulx3s", f"ULX3S_{size}_Platform",
                  pass_led=("led", 0), fail_led=("led", 1), uart=("uart", 0), dsps=ECP5_DSPS[size],
                  logic_cells=ECP5_LUTS[size], block_rams=ECP5_BRAMS[size],
                  note=f"Radiona ULX3S with an LFE5U-{size}; LED 0 = pass, LED 1 = fail"
                  + (", UART on the US1 FTDI port" if size == "85F" else ""))
            for size in ("12F", "25F", "45F", "85F")
        ),
    )
}
ALIASES = {"ulx3s": "ulx3s-85f"}


def get_board(name: str) -> Board:
    """The board called ``name`` (or an alias); ColcombError listing the choices otherwise."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BOARDS:
        choices = ", ".join(list(BOARDS) + [f"{a} (= {t})" for a, t in ALIASES.items()])
        raise ColcombError(f"unknown board {name!r}; supported boards: {choices} "
                           f"(`colcomb boards` lists them with device and clock)")
    return BOARDS[key]


def boards_table() -> str:
    rows = [("board", "device", "family", "clock", "notes")]
    for b in BOARDS.values():
        d = b.describe()
        alias = [a for a, t in ALIASES.items() if t == b.name]
        note = d["note"] + (f" (alias: {', '.join(alias)})" if alias else "")
        rows.append((b.name, d["device"], d["family"], f"{d['default_clock_mhz']:g} MHz", note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows
    )


def has_spram(board: Board) -> bool:
    """Whether the board's FPGA is an iCE40 UltraPlus, whose SPRAM can hold the cell words."""
    return board.family == "ice40" and board.device.startswith("iCE40UP")


def board_config(config: HardwareConfig) -> tuple[Board, HardwareConfig]:
    """The board ``config`` names and the config with the board's defaults filled in: its DSPs
    used where it has some (``dsp`` None), the board's own name. Refuses a config without a
    board, an unknown board, and cell words in SPRAM on a board without it."""
    if config.board is None:
        raise ConfigError("board", "the hardware config names no board; give one (e.g. icebreaker, ulx3s-85f: "
                                   "`colcomb boards` lists them)")
    spec = get_board(config.board)
    if config.cell_memory == "spram" and not has_spram(spec):
        raise ConfigError("cell_memory", f"cell_memory spram needs an iCE40 UltraPlus (its SPRAM); the {spec.name} "
                                         f"has a {spec.device}: keep the cells in block RAM (rom)")
    return spec, config.replace(board=spec.name, dsp=spec.dsps > 0 if config.dsp is None else config.dsp)
