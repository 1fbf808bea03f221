"""Synthesis for real boards with the open toolchain (yosys + nextpnr through amaranth-boards).

``colcomb synthesize`` compiles a packed network (a manifest folder) for an R x C array, wraps it
in the self-testing board top (:class:`colcomb.fpga.selftest.BoardTop`: stored test inputs, the
golden model's outputs, pass/fail LEDs and a UART verdict), builds the bitstream and writes
``OUT/report.json``: device, resources, achieved Fmax against the requested clock, tool versions
and the array parameters. A design that does not fit or misses timing still gets its report,
marked ``"status": "failed"``, and the command exits non-zero.

The tools come from the environment variables Amaranth reads (YOSYS, NEXTPNR_ICE40, ICEPACK,
NEXTPNR_ECP5, ECPPACK); :func:`tool_env` points the unset ones at the ``yowasp-*`` commands, the
one place where that is decided.

Clock: without ``--clock`` (or with the oscillator's own frequency) the design runs from the
board oscillator. Any other ``--clock`` instantiates a PLL (iCE40 ``SB_PLL40_PAD``/``_CORE``, ECP5
``EHXPLLL``) set to the closest frequency it can make (:func:`colcomb.fpga.selftest.ice40_pll` /
``ecp5_pll``; the report gives the exact one); nextpnr derives the PLL output's timing constraint
from the oscillator pin's, and the design passes only when every clock's achieved Fmax is at least
its constraint and the system clock. The UART divisor follows the real clock.

Multipliers: with DSPs (the default on every board that has them) the first cells of the array
multiply in DSP blocks and the cells beyond the device's count (less the requantizer's share, see
:func:`dsp_plan`) use the logic multiplier (:mod:`colcomb.hdl.multiplier`), so the design never
asks for more DSPs than there are; without (``--no-dsp``), every multiplier is logic (``-nodsp`` on ECP5).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcomb import __version__
from colcomb.core.atomic import save_npy, write_text
from colcomb.core.errors import ColcombError
from colcomb.core.outdir import OutputFolder
from colcomb.core.tools import check_tools, tool_env, tool_version
from colcomb.fpga.boards import board_config
from colcomb.fpga.resources import (
    NEXTPNR_KEYS,
    parse_nextpnr_fmax,
    parse_nextpnr_log,
    parse_yosys_stat,
    yosys_resources,
)
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import cycle_summary, network_cycles

#: Yosys commands run right after reading the design. yosys 0.70's abc9 asserts
#: (``count_id(wire->name) == 0`` in ABC_OPS_REINTEGRATE) when a design has a wire ``\x`` and
#: another wire called ``\x[0]``, which Amaranth emits for every array-layout signal; making the
#: bracketed names private avoids the clash and changes nothing else.
YOSYS_AFTER_READ = "rename -hide w:*[*"
#: nextpnr's routers (``--router``)
ROUTERS = ("router1", "router2")


# -- the design under test -------------------------------------------------------------------------

def self_test_inputs(layers, vectors: int, seed: int, cols: int | None = None) -> np.ndarray:
    """(vectors, first layer's cols) integer inputs over the full data range; the first ones are
    the extremes (all lowest, all highest, alternating), then uniform random: the testbench's
    stimulus (:func:`colcomb.hdl.testbench.stimulus`). ``cols``: words per vector other than the
    first layer's columns (an image network's pixels)."""
    from colcomb.hdl.testbench import stimulus

    return stimulus(layers[0], vectors, seed, cols)


@dataclass
class Design:
    """A network compiled for an array plus its self-test vectors (and, when given, their class
    labels: the board then prints each image's predicted and expected class)."""

    program: object  # colcomb.hdl.program.Program
    inputs: np.ndarray
    expected: np.ndarray
    layer_names: list[str]
    manifest: Path
    provenance: dict  # the manifest's path and sha256, the layers, the design's parameters
    labels: np.ndarray | None = None


def check_labels(labels, vectors: int, classes: int, source: str = "labels") -> np.ndarray:
    """``labels`` as (vectors,) int64 class indices of a network with ``classes`` output words;
    one :class:`ColcombError` for a wrong shape or length, non-integers, a class out of range, or
    more classes than the board's UART report prints (:data:`~colcomb.fpga.uart_report.MAX_CLASSES`)."""
    from colcomb.fpga.uart_report import MAX_CLASSES

    lab = np.asarray(labels)
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise ColcombError(f"{source}: labels must be a 1-d integer array of class indices, "
                           f"not {lab.dtype} {list(lab.shape)}")
    if len(lab) != vectors:
        raise ColcombError(f"{source}: {len(lab)} labels for {vectors} test vectors; give one per vector")
    if classes > MAX_CLASSES:
        raise ColcombError(f"the board prints classes as at most two digits, and the network has {classes} "
                           f"output words (at most {MAX_CLASSES}); leave out the labels")
    if lab.size and (lab.min() < 0 or lab.max() >= classes):
        raise ColcombError(f"{source}: labels range [{lab.min()}, {lab.max()}] is outside the network's "
                           f"{classes} output words (classes 0 .. {classes - 1})")
    return lab.astype(np.int64)


def prepare_design(manifest_dir: str | os.PathLike, config: HardwareConfig, *, layers: list[str] | None = None,
                   vectors: int | None = None, seed: int = 0, inputs: str | os.PathLike | np.ndarray | None = None,
                   family: str | None = None, labels=None, input_source: str | None = None) -> Design:
    """Load the manifest, compile the chosen layers (default all, in order) for the hardware
    ``config``, and compute the golden outputs of the test inputs (``inputs``: a .npy of
    integers or an integer array, ``input_source`` saying where it came from; default ``vectors``
    generated ones, ``vectors`` defaulting to the batch; given inputs are cut to the first
    ``vectors``). ``labels`` (one class index per given input) are checked against the last
    layer's output words (:func:`check_labels`). With a ``family``, the cells' select is encoded
    as :func:`onehot_select` says for it. A CNN manifest with no ``layers`` picked runs whole, image
    words in (:func:`colcomb.hdl.network.image_network`)."""
    from colcomb.hdl.network import image_network
    from colcomb.hdl.program import Program
    from colcomb.packer.golden import check_inputs, run_network
    from colcomb.packer.manifest import load_manifest

    manifest = load_manifest(manifest_dir)
    network = image_network(manifest, layers)
    chosen = network.layers if network else manifest.chain(layers)
    onehot = family is not None and onehot_select(family, config.cell, max(la.alpha for la in chosen))
    program = Program.compile(chosen, config, onehot=onehot, stages=network.stages if network else None)
    if labels is not None and inputs is None:
        raise ColcombError("labels need the test inputs they label (--inputs or --test-split)")
    if isinstance(inputs, np.ndarray):
        x = inputs
        source = input_source or "the given inputs"
    elif inputs is not None:
        try:
            x = np.load(inputs, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ColcombError(f"{inputs}: cannot read it as a .npy array ({exc})") from None
        source = input_source or str(Path(inputs).resolve())
    else:
        x = self_test_inputs(chosen, vectors or program.batch, seed, program.in_words)
        source = None
    if inputs is not None:
        if x.ndim == 1:
            x = x[None, :]
        if labels is not None:
            labels = check_labels(labels, x.shape[0], chosen[-1].rows)
        if vectors is not None:
            x = x[:vectors]
            labels = None if labels is None else labels[:vectors]
    x = network.check(x) if network else check_inputs(chosen[0], x)  # shape, integers, data width
    if x.shape[0] < 1:
        raise ColcombError(f"{source}: holds no test vectors")
    y = network.predict(x) if network else run_network(chosen, x)
    names = [la.name for la in chosen]
    parameters = {"rows": config.rows, "cols": config.cols, "batch": program.batch, "vectors": int(x.shape[0]),
                  "seed": seed if inputs is None else None, "inputs": source, "labelled": labels is not None}
    return Design(program, np.asarray(x, np.int64), np.asarray(y, np.int64), names,
                  manifest.path.parent if manifest.path else Path(manifest_dir),
                  manifest.provenance(names, parameters), labels)


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
    for field, key in NEXTPNR_KEYS[family].items():
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


def requant_dsps(family: str, program) -> int:
    """DSP blocks the requantizer of ``program``'s engine takes, counted by a yosys synthesis of
    it (``synth_<family>`` with DSPs): how yosys splits its multipliers into DSP ports depends on
    the widths, so it is measured rather than estimated."""
    from amaranth.back import rtlil

    from colcomb.fpga.cost import synth_components
    from colcomb.hdl.sequencer import Sequencer

    rq = Sequencer.requantizer_for(program)
    key = (family, rtlil.convert(rq, name="requant"))  # the same requantizer is synthesized once
    if key not in _REQUANT_DSPS:
        _REQUANT_DSPS[key] = synth_components(family, {"requant": rq}, dsp=True)["requant"]["dsps"]
    return _REQUANT_DSPS[key]


_REQUANT_DSPS: dict[tuple[str, str], int] = {}


def onehot_select(family: str, cell: str, alpha: int) -> bool:
    """Whether the cells' select is one-hot on ``family``: for the bit-parallel cell at alpha 8
    and more an AND-OR of the lanes takes fewer LUTs than a mux tree on both families, for five
    more flip-flops per cell (``benchmarks/area.py``: 56.1 against 64.1 LUTs per cell on iCE40,
    40.0 against 48.0 on ECP5, DSP multipliers); at alpha 4 a single cell gains nothing on
    iCE40 and loses on ECP5, so smaller alphas keep the lane index. The serial cell picks a
    single bit."""
    return family in ("ice40", "ecp5") and cell == "parallel" and alpha >= 8


def dsp_plan(spec, family: str, program, dsp: bool | None, *, requant: int | None = None) -> tuple[bool, int]:
    """Whether to map multipliers to DSPs (``dsp``; ``None``: where the board has DSPs) and how
    many array cells get one: the device's DSPs less the requantizer's (``requant``; None:
    :func:`requant_dsps` synthesizes it), at most every cell. When the requantizer alone needs more
    DSPs than the device has, nothing is mapped to DSPs, so a design never asks for more than there
    are."""
    use = spec.dsps > 0 if dsp is None else bool(dsp)
    if not use:
        return False, 0
    free = spec.dsps - (requant_dsps(family, program) if requant is None else requant)
    if free < 0:  # the requantizer alone needs more than the device has: all in logic
        return False, 0
    return True, max(0, min(free, program.rows * program.cols))


def synthesize(manifest_dir: str | os.PathLike, config: HardwareConfig, *, out: str | os.PathLike,
               layers: list[str] | None = None, vectors: int | None = None, seed: int = 0,
               inputs: str | os.PathLike | None = None, nextpnr_seed: int = 1, log=None, throughput: bool = True,
               progress=None, labels=None, input_source: str | None = None, router: str | None = None) -> dict:
    """Build the self-testing board top of ``config`` (its ``board`` is required; its ``dsp`` and
    clock default to the board's, :func:`colcomb.fpga.boards.board_config`) and write
    ``out/report.json``.

    ``inputs``: a .npy path or an integer array of test inputs (``input_source`` names where an
    array came from); ``labels``: their class indices, for the UART's per-image report
    (:func:`prepare_design`).
    ``throughput``: measure the steady-state cycles per inference in Verilator
    (:func:`measure_cycles_per_inference`) for the report's ``throughput``; ``router``: nextpnr's
    router (one of :data:`ROUTERS`; None: nextpnr's default, router1); ``progress`` (a
    :class:`colcomb.core.progress.Stages`) shows the stages. With the cell words in SPRAM (iCE40
    UltraPlus boards, loaded from the SPI flash at power-up) their image goes to
    ``out/cells.flash.bin``, to be programmed at :data:`FLASH_OFFSET` (``report["flash"]`` says how).

    Returns the report. Raises :class:`ColcombError` (after writing the report, marked failed)
    when the design does not fit, misses the clock, or a tool fails.
    """
    from colcomb.fpga.selftest import BoardTop, ecp5_pll, ice40_pll

    t0 = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if router is not None and router not in ROUTERS:
        raise ColcombError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    spec, config = board_config(config)
    platform = spec.make_platform()
    family = platform.family.lower()
    env = tool_env()
    check_tools(family, env)
    out = Path(out)
    report_path = out / "report.json"

    # every check of the inputs comes before OUT is made: a refused run leaves nothing behind
    design = prepare_design(manifest_dir, config, layers=layers, vectors=vectors, seed=seed, inputs=inputs,
                            family=family, labels=labels, input_source=input_source)
    use_dsp, dsp_cells = dsp_plan(spec, family, design.program, config.dsp)
    prog = design.program = dataclasses.replace(design.program, dsp_cells=dsp_cells)

    f_osc = platform.default_clk_frequency
    requested = f_osc if config.clock_mhz is None else config.clock_mhz * 1e6
    pll = None
    if abs(requested - f_osc) > 1e-6 * f_osc:
        pll = ice40_pll(f_osc, requested) if family == "ice40" else ecp5_pll(f_osc, requested)
    f_clk = f_osc if pll is None else pll.f_out

    # OUT is staged (and locked: a second writer fails at once) and replaced whole at the end;
    # a crash leaves the earlier OUT as it was, a failed build replaces it with the failed report
    input_paths = [] if inputs is None or isinstance(inputs, np.ndarray) else [inputs]
    with OutputFolder(out, command="synthesize", inputs=[manifest_dir, *input_paths]) as stage:
        work = stage.path
        save_npy(work / "test_inputs.npy", design.inputs)
        save_npy(work / "test_expected.npy", design.expected)
        if design.labels is not None:
            save_npy(work / "test_labels.npy", design.labels)
        flash = None
        if prog.cell_memory == "spram":
            flash = write_flash_image(work, prog)

        top = BoardTop(program=prog, inputs=design.inputs, expected=design.expected, pll=pll,
                       pll_pad=spec.pll_pad, pass_led=spec.pass_led, fail_led=spec.fail_led, uart=spec.uart,
                       labels=design.labels)
        build_dir = work / "build"
        overrides = build_overrides(family, use_dsp, nextpnr_seed, router)

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
            "array": {**prog.summary(), **cycle_summary(prog),
                      "logic_multiplier_cells": 0 if prog.cell == "serial" else prog.rows * prog.cols - dsp_cells,
                      "layers_run": design.layer_names},
            "test": {
                "vectors": int(design.inputs.shape[0]),
                "input_words": int(design.inputs.size),
                "output_words": int(design.expected.size),
                "inputs": "test_inputs.npy",
                "expected": "test_expected.npy",
                "seed": seed if inputs is None else None,
                "source": design.provenance["parameters"]["inputs"],
                **labelled_report(design),
            },
            "options": {"dsp": use_dsp, "nextpnr_seed": nextpnr_seed, "overrides": overrides},
            "config": config.replace(dsp=use_dsp).to_dict(),
            **({"flash": flash} if flash else {}),
            "manifest": str(design.manifest),
            "provenance": {**design.provenance,
                           "parameters": {**design.provenance["parameters"], "board": spec.name,
                                          "clock_mhz": config.clock_mhz, "dsp": use_dsp, "cell": config.cell,
                                          "cell_memory": config.cell_memory,
                                          "requant_stages": config.requant_stages,
                                          "pass_vectors": prog.pass_vectors if prog.stages else None,
                                          "nextpnr_seed": nextpnr_seed, "router": router}},
            "tools": {
                "yosys": tool_version(env["YOSYS"], env),
                "nextpnr": tool_version(env["NEXTPNR_ICE40" if family == "ice40" else "NEXTPNR_ECP5"], env),
                "amaranth": importlib.metadata.version("amaranth"),
                "amaranth_boards": importlib.metadata.version("amaranth-boards"),
                "colcomb": __version__,
            },
        }

        log(f"synthesize: {spec.name} ({platform.device}-{platform.package}), array {config.rows}x{config.cols} "
            f"alpha {prog.alpha}, {len(prog.tiles)} tiles, clock {f_clk / 1e6:.3f} MHz "
            f"({'PLL' if pll else 'oscillator'}) -> {build_dir}")
        # the "running" report in the staging folder shows a crash's progress; it never reaches OUT
        write_text(work / "report.json", json.dumps(report, indent=2) + "\n")
        measured = None
        if throughput:
            _stage(progress, "simulate")
            measured = measure_cycles_per_inference(manifest_dir, config, layers=layers, seed=seed)
        try:
            plan = platform.build(top, name="top", build_dir=str(build_dir), do_build=False, **overrides)
            plan.extract(str(build_dir))
            t_build = time.perf_counter()
            returncode, output = _run_build_script(build_dir, env, family, progress)
            report["build_seconds"] = round(time.perf_counter() - t_build, 1)
            (build_dir / "build_output.log").write_text(output)
            tool_failed = returncode != 0
        except ColcombError:
            raise
        except Exception as exc:  # elaboration errors of the design or the platform
            report["status"] = "failed"
            report["failures"] = [f"elaboration failed: {type(exc).__name__}: {exc}"]
            write_text(work / "report.json", json.dumps(report, indent=2) + "\n")
            stage.commit()  # the failed report is the output: it says what went wrong
            raise ColcombError(f"{spec.name}: the design did not elaborate ({type(exc).__name__}: {exc}); "
                               f"report in {report_path}") from exc

        analysis = analyse_build(build_dir, family=family, device=platform.device, clock_hz=f_clk,
                                 tool_failed=tool_failed)
        failures = [f.replace(str(work), str(out)) for f in analysis.pop("failures")]
        report["clock"].update(analysis.pop("clock"))
        report.update(analysis)
        if report["bitstream"]:
            report["bitstream"]["path"] = str((build_dir / report["bitstream"]["path"]).relative_to(work))

        cyc = network_cycles(prog, design.inputs.shape[0])
        report["performance"] = {
            "cycles": cyc["total"],
            "engine_cycles": cyc["engine"],
            "vectors": int(design.inputs.shape[0]),
            "dense_macs_per_vector": prog.dense_macs(),
            "seconds_at_clock": cyc["total"] / f_clk,
        }
        report["throughput"] = throughput_report(measured, report["clock"].get("fmax_mhz"), throughput)
        if measured is not None and not measured.get("passed", True):
            failures.append(f"the simulated design does not match the golden model: {measured['summary']}")
        report["failures"] = failures
        report["status"] = "failed" if failures else "passed"
        report["elapsed_seconds"] = round(time.perf_counter() - t0, 1)
        write_text(work / "report.json", json.dumps(report, indent=2) + "\n")
        stage.commit()
    if failures:
        raise ColcombError(f"{spec.name}: " + "; ".join(failures) + f" (report: {report_path})")
    return report


def build_overrides(family: str, use_dsp: bool, nextpnr_seed: int = 1, router: str | None = None) -> dict:
    """The Amaranth platform build's options: nextpnr's report and seed, yosys' stat, DSP mapping."""
    overrides = {
        "nextpnr_opts": (f"--report nextpnr_report.json --timing-allow-fail --seed {nextpnr_seed}"
                         + (f" --router {router}" if router else "")),
        "script_after_read": YOSYS_AFTER_READ,
        "script_after_synth": "tee -q -o yosys_stat.json stat -json",
    }
    if family == "ice40" and use_dsp:
        overrides["synth_opts"] = "-dsp"
    if family == "ecp5" and not use_dsp:
        overrides["synth_opts"] = "-nodsp"
    return overrides


def yosys_only(manifest_dir: str | os.PathLike, config: HardwareConfig, folder: str | os.PathLike) -> dict:
    """What :func:`synthesize` builds for ``config`` (from the oscillator, no PLL), up to the end of
    yosys, in ``folder``: ``{"family", "yosys": {luts, flip_flops, carries, block_rams, dsps, spram},
    "yosys_cells"}``. For calibrating the estimate (``benchmarks/calibrate.py``)."""
    from colcomb.fpga.selftest import BoardTop

    spec, config = board_config(config)
    platform = spec.make_platform()
    family = platform.family.lower()
    env = tool_env()
    check_tools(family, env)
    design = prepare_design(manifest_dir, config, family=family)
    use_dsp, dsp_cells = dsp_plan(spec, family, design.program, config.dsp)
    prog = dataclasses.replace(design.program, dsp_cells=dsp_cells)
    top = BoardTop(program=prog, inputs=design.inputs, expected=design.expected, pll=None, pll_pad=spec.pll_pad,
                   pass_led=spec.pass_led, fail_led=spec.fail_led, uart=spec.uart, labels=design.labels)
    folder = Path(folder)
    plan = platform.build(top, name="top", build_dir=str(folder), do_build=False,
                          **build_overrides(family, use_dsp))
    plan.extract(str(folder))
    script = (folder / "build_top.sh").read_text()
    steps = "\n".join(ln for ln in script.splitlines() if "YOSYS" in ln and not ln.lstrip().startswith("#"))
    proc = subprocess.run(["sh", "-c", "set -e\n" + steps], cwd=folder, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise ColcombError(f"yosys failed in {folder}: {(proc.stdout + proc.stderr)[-1500:]}")
    cells = parse_yosys_stat(json.loads((folder / "yosys_stat.json").read_text()))
    return {"family": family, "yosys_cells": cells,
            "yosys": {**yosys_resources(cells, family), "spram": cells.get("SB_SPRAM256KA", 0)}}


def report_config(path: str | os.PathLike) -> HardwareConfig:
    """The hardware config a `colcomb synthesize` report was built with (its ``config``; a report
    from before configs existed: its array and options)."""
    try:
        rep = json.loads(Path(path).read_text())
        if "config" in rep:
            return HardwareConfig.from_dict(rep["config"], f"{path}: config")
        arr = rep["array"]
        return HardwareConfig(rows=arr["rows"], cols=arr["cols"], cell=arr.get("cell", "parallel"),
                              batch=arr["batch"], dsp=bool(rep["options"]["dsp"]),
                              pass_vectors=arr.get("pass_vectors"), beat=arr.get("beat", 1),
                              cell_memory=arr.get("cell_memory", "rom"),
                              requant_stages=arr.get("requant_stages", 2), board=rep["board"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ColcombError(f"{path}: not a colcomb synthesis report ({exc})") from None


def write_flash_image(folder: Path, program) -> dict:
    """Write the cell words' flash image (:func:`colcomb.hdl.flash_loader.flash_image`) into
    ``folder`` and return the report's ``flash``: the file, its size, offset and CRC, and the
    command that programs it beside the bitstream."""
    from colcomb.core.atomic import write_bytes
    from colcomb.hdl.flash_loader import FLASH_IMAGE, FLASH_OFFSET, flash_crc

    image = program.flash_image
    write_bytes(folder / FLASH_IMAGE, image)
    return {"image": FLASH_IMAGE, "bytes": len(image), "offset": FLASH_OFFSET, "crc16": f"{flash_crc(image):04x}",
            "sha256": hashlib.sha256(image).hexdigest(), "load_cycles": program.load_cycles,
            "program": f"iceprog -o {FLASH_OFFSET // (1 << 20)}M {FLASH_IMAGE}, then iceprog build/top.bin"}


def labelled_report(design: Design) -> dict:
    """The report's ``test`` fields of a labelled self-test: the labels' file, how many images the
    golden model classifies correctly (the count the board must print) and the text the board
    prints when every word matches; nothing without labels."""
    from colcomb.fpga.uart_report import report_text

    if design.labels is None:
        return {}
    predicted = design.expected.argmax(axis=1)
    return {"labels": "test_labels.npy", "classes": int(design.expected.shape[1]),
            "golden_correct": int(np.sum(predicted == design.labels)),
            "uart_text": report_text(predicted, design.labels, passed=True)}


def measure_cycles_per_inference(manifest_dir, config: HardwareConfig, *, layers=None, seed: int = 0,
                                 batches: int = 8) -> dict:
    """Run the design of the chosen layers in Verilator (the fast bench of ``colcomb simulate``)
    on ``batches`` full batches of random inputs and return ``{"cycles_per_inference", "vectors",
    "passed", "summary", "run_dir"}``: the steady state (cycles between the ends of full batches,
    :func:`colcomb.sim.timing.steady_cycles_per_vector`), or ``{"absent": reason}`` when no
    simulation can run (no Verilator)."""
    from colcomb.sim.runner import simulate

    try:
        res = simulate(manifest_dir, config, vectors=batches * config.batch, seed=seed, layers=layers, check=False,
                       bench="fast")
    except ColcombError as exc:
        if "Verilator is not installed" in str(exc) or "no verilator" in str(exc):
            return {"absent": f"no simulation: {exc}"}
        raise
    return {"cycles_per_inference": res.cycles_per_inference, "vectors": res.vectors, "passed": res.passed,
            "summary": res.summary, "run_dir": str(res.run_dir), "bench": res.bench}


def throughput_report(measured: dict | None, fmax_mhz: float | None, wanted: bool = True) -> dict:
    """The report's ``throughput``: ``cycles_per_inference`` (measured in Verilator),
    ``clock_mhz`` (the achieved Fmax) and ``inferences_per_s``; with ``"absent": reason`` (and no
    invented number) for whatever could not be measured."""
    if not wanted:
        return {"absent": "--no-throughput"}
    if measured is None or "absent" in measured:
        return {"absent": (measured or {}).get("absent", "no simulation ran")}
    out = {"cycles_per_inference": measured["cycles_per_inference"], "clock_mhz": fmax_mhz,
           "vectors_simulated": measured["vectors"], "source": "verilator, colcomb.sim fast bench, steady state",
           "simulation": measured["run_dir"]}
    if not measured["passed"]:
        out["absent"] = "the simulated outputs differ from the golden model"
    elif fmax_mhz is None:
        out["absent"] = "nextpnr reported no Fmax"
    elif not measured["cycles_per_inference"]:
        out["absent"] = "the simulation measured no steady state"
    else:
        out["inferences_per_s"] = fmax_mhz * 1e6 / measured["cycles_per_inference"]
    return out


def _stage(progress, name: str) -> None:
    if progress is not None:
        progress.stage(name)


#: files the build script writes at the end of each tool, per family: when one exists the next
#: tool runs (the progress display's stage)
_STAGE_FILES = {"ice40": (("top.asc", "pack"), ("top.json", "place-and-route")),
                "ecp5": (("top.config", "pack"), ("top.json", "place-and-route"))}


def _run_build_script(build_dir: Path, env: dict, family: str, progress) -> tuple[int, str]:
    """Run Amaranth's ``build_top.sh`` (yosys, nextpnr, the packer); returns (exit status, output).
    The progress stage follows the files each tool leaves."""
    import tempfile

    _stage(progress, "synth")
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(["sh", "build_top.sh"], cwd=build_dir, env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
        stage = "synth"
        while proc.poll() is None:
            time.sleep(0.5)
            for name, next_stage in _STAGE_FILES.get(family, ()):
                if (build_dir / name).exists():
                    if next_stage != stage:
                        stage = next_stage
                        _stage(progress, stage)
                    break
        log.seek(0)
        return proc.returncode, log.read()


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
        f"  array         {a['rows']}x{a['cols']} {a.get('cell', 'parallel')} cells, alpha {a['alpha']}, "
        f"{a['tiles']} tiles, batch {a['batch']}, "
        f"layers {', '.join(a['layers_run'])}",
    ]
    if "dsp_cells" in a and a.get("cell", "parallel") == "parallel":
        lines.append(f"  multipliers   {a['dsp_cells']} cells in DSP blocks, "
                     f"{a.get('logic_multiplier_cells', 0)} in logic")
    for label, key in (("LUTs", "luts"), ("logic cells", "logic_cells"), ("flip-flops", "flip_flops"),
                       ("block RAMs", "block_rams"), ("SPRAMs", "spram"), ("DSPs", "dsps"), ("PLLs", "plls")):
        if key == "spram" and not r.get(key):  # only the designs that keep their cells there
            continue
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
    t = report.get("test", {})
    if "golden_correct" in t:
        lines.append(f"  labels        the UART prints each image's class; the golden model gets "
                     f"{t['golden_correct']}/{t['vectors']} right")
    lines.append(f"  tools         {report['tools']['yosys'].split(' (')[0]}; {report['tools']['nextpnr']}")
    if report.get("bitstream"):
        lines.append(f"  bitstream     {report['bitstream']['path']} ({report['bitstream']['bytes']} bytes)")
    if report.get("flash"):
        f = report["flash"]
        lines.append(f"  flash image   {f['image']} ({f['bytes']} bytes of cell words at {f['offset']:#x}, loaded in "
                     f"{f['load_cycles']} cycles)")
        lines.append(f"  program       {f['program']}")
    if report.get("throughput") is not None:
        lines.append(throughput_line(report["throughput"]))
    for f in report.get("failures", []):
        lines.append(f"  FAILED: {f}")
    return "\n".join(lines)


def throughput_line(t: dict) -> str:
    """The one line of the report's ``throughput``."""
    if "inferences_per_s" in t:
        return (f"throughput: {t['inferences_per_s']:.0f} inferences/s ({t['cycles_per_inference']:g} cycles per "
                f"inference at {t['clock_mhz']:.2f} MHz)")
    return f"throughput: not measured ({t.get('absent', 'unknown')})"
