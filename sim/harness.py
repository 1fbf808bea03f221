"""The bench harness: a Verilog wrapper around the accelerator's top that can drive and capture
its streams on its own, so that a simulation runs without Python on every clock cycle.

The wrapper ``<top>_bench`` instantiates ``<top>`` (:mod:`colcomb.hdl.top`'s stream ports) and
has two modes, chosen by its ``fast`` input:

``fast = 0`` (the per-cycle bench, :mod:`colcomb.sim.bench`)
    the design's ports ``i__*``, ``o__*`` and ``busy`` are the wrapper's own, passed through
    unchanged: the cocotb driver and monitor drive them as if the wrapper were not there.
``fast = 1`` (the fast bench, :mod:`colcomb.sim.fast_bench`)
    the *driver* is an input memory (stream payloads, loaded with ``$readmemh`` from the file named
    by the plusarg ``+colcomb_in=PATH``) that a small FSM streams into the design's ``i`` port,
    valid low on a cycle with probability ``idle_thr / 65536`` (an xorshift32 generator seeded by
    ``seed``; once offered, a word stays valid until it is taken). The *monitor* keeps ``o.ready``
    high except on a cycle with probability ``stall_thr / 65536`` (a second generator) and stores
    every word it takes in an output memory with the cycle it was taken at; the cycle of each
    input transfer is stored too. After ``n_out`` words it keeps listening ``drain`` cycles
    (a word after the final ``last`` is a protocol error the checker reports), or it gives up
    ``max_cycles`` cycles after ``go`` (``timed_out``). Then it writes the memories with
    ``$writememh`` to the files of the plusargs ``+colcomb_out``, ``+colcomb_out_cycles`` and
    ``+colcomb_in_cycles`` and raises ``done``: the bench waits for that one edge.

The model and the checker stay in Python (:mod:`colcomb.sim.scoreboard`); this module only writes
the wrapper's Verilog and converts the memory images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.hdl.framing import split_payload

__all__ = ["HARNESS_VERSION", "IN_DEPTH", "OUT_DEPTH", "PUBLIC_VLT", "decode_image", "harness_name",
           "harness_text", "input_image", "read_image", "split_payloads", "threshold", "write_harness"]

#: bump when the wrapper's Verilog changes: it is part of the build cache key
HARNESS_VERSION = 2
#: words the input memory holds (a run streams at most this many: 1,000 MNIST images of 784 words fit)
IN_DEPTH = 1 << 20
#: words the output memory holds (words beyond it are counted, not stored)
OUT_DEPTH = 1 << 20
#: the idle/stall thresholds compare 16 random bits: probability p -> threshold round(p * 2^16)
THRESHOLD_ONE = 1 << 16


def harness_name(top: str) -> str:
    """The wrapper's module name for the design module ``top``."""
    return f"{top}_bench"


def threshold(probability: float) -> int:
    """The 16-bit threshold of a per-cycle probability in [0, 1)."""
    if not 0.0 <= probability < 1.0:
        raise ColcombError(f"a stream probability must lie in [0, 1), not {probability!r}")
    return min(THRESHOLD_ONE - 1, round(probability * THRESHOLD_ONE))


def harness_text(top: str, data_bits: int, *, in_depth: int = IN_DEPTH, out_depth: int = OUT_DEPTH,
                 busy: bool = True) -> str:
    """The Verilog-2001 of ``<top>_bench`` around module ``top`` whose payloads carry ``data_bits``
    bits of data (a beat's words) below ``last``;
    ``busy``: the design has the top's ``busy`` output (else the harness's ``busy`` is 0)."""
    if not top.isidentifier():
        raise ColcombError(f"the top-level name must be a Verilog identifier, got {top!r}")
    for depth in (in_depth, out_depth):
        if depth < 2 or depth & (depth - 1):
            raise ColcombError(f"memory depths must be powers of two >= 2, not {depth}")
    busy_pin = ",\n    .busy(busy)" if busy else ""
    busy_tie = "" if busy else "  assign busy = 1'b0;\n"
    return _TEMPLATE.format(name=harness_name(top), top=top, w=data_bits + 1, busy_pin=busy_pin, busy_tie=busy_tie,
                            in_depth=in_depth, out_depth=out_depth,
                            in_aw=(in_depth - 1).bit_length(), out_aw=(out_depth - 1).bit_length())


def write_harness(folder: str | os.PathLike, top: str, data_bits: int, *, busy: bool = True) -> tuple[Path, Path]:
    """Write ``<folder>/<top>_bench.v`` and its Verilator configuration ``<top>_bench.vlt``
    (which makes only the harness's own signals visible to the bench, see :data:`PUBLIC_VLT`);
    returns both paths."""
    name = harness_name(top)
    verilog, config = Path(folder) / f"{name}.v", Path(folder) / f"{name}.vlt"
    verilog.write_text(harness_text(top, data_bits, busy=busy))
    config.write_text(PUBLIC_VLT.format(name=name))
    return verilog, config


#: The harness's signals are the only ones the benches touch. Marking just them public (instead of
#: cocotb's ``--public-flat-rw`` for every signal of the design, which the runner drops) leaves
#: Verilator free to optimize the design's internals: several times the simulated cycles per second.
PUBLIC_VLT = """`verilator_config
public_flat_rw -module "{name}" -var "*"
"""


def input_image(words, lasts, data_bits: int) -> str:
    """The ``$readmemh`` text of a stream: one payload (``data`` two's complement in the low
    ``data_bits`` bits, ``last`` above) per line; ``words``: one word a beat, or the beats' data
    packed by :func:`colcomb.hdl.framing.pack_beats` (``data_bits``: the beat's bits)."""
    w = [int(v) for v in np.asarray(words, object).reshape(-1)]
    flags = np.asarray(lasts, bool).reshape(-1)
    if len(w) != flags.size:
        raise ColcombError(f"{len(w)} words but {flags.size} last flags")
    mask = (1 << data_bits) - 1
    return "".join(f"{(v & mask) | (int(f) << data_bits):x}\n" for v, f in zip(w, flags.tolist(), strict=True))


def decode_image(payload: np.ndarray, data_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Stream payloads -> (signed data words, last flags), the inverse of :func:`input_image`'s
    packing (:func:`colcomb.hdl.framing.decode_word` for whole arrays)."""
    p = np.asarray(payload, np.int64)
    raw = p & ((1 << data_bits) - 1)
    words = np.where(raw >> (data_bits - 1) != 0, raw - (1 << data_bits), raw)
    return words, (p >> data_bits) & 1 != 0


def split_payloads(payload, data_bits: int) -> tuple[list[int], list[bool]]:
    """Stream payloads of any width -> (their data bits, unsigned; their last flags)."""
    pairs = [split_payload(p, data_bits) for p in payload]
    return [d for d, _ in pairs], [last for _, last in pairs]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The words of a ``$writememh`` file (empty when the file does not exist: nothing was
    captured), as int64, or as Python integers (an object array) when a word is wider."""
    path = Path(path)
    if not path.exists():
        return np.zeros(0, np.int64)
    tokens = [t.replace("_", "") for t in path.read_text().split() if not t.startswith(("//", "@"))]
    if any(len(t) > 15 for t in tokens):  # wider than int64 holds
        return np.array([int(t, 16) for t in tokens], dtype=object)
    return np.fromiter((int(t, 16) for t in tokens), np.int64, len(tokens))


_TEMPLATE = """\
// {name}: the bench harness of {top} (colcomb.sim.harness). fast = 0: the design's ports are
// this module's; fast = 1: an input memory drives i, an output memory takes o (see the Python doc).
module {name} (
  input wire clk,
  input wire rst,
  input wire [{w}-1:0] i__payload,
  input wire i__valid,
  output wire i__ready,
  output wire [{w}-1:0] o__payload,
  output wire o__valid,
  input wire o__ready,
  output wire busy,
  input wire fast,
  input wire go,
  input wire [31:0] n_in,
  input wire [31:0] n_out,
  input wire [31:0] drain,
  input wire [31:0] max_cycles,
  input wire [15:0] idle_thr,
  input wire [15:0] stall_thr,
  input wire [31:0] seed,
  output reg done,
  output reg timed_out,
  output reg [31:0] in_count,
  output reg [31:0] out_count,
  output reg [31:0] cycle
);
  localparam W = {w};
  localparam IN_DEPTH = {in_depth};
  localparam OUT_DEPTH = {out_depth};

  reg [W-1:0] in_mem [0:IN_DEPTH-1];
  reg [31:0] in_cycles [0:IN_DEPTH-1];
  reg [W-1:0] out_mem [0:OUT_DEPTH-1];
  reg [31:0] out_cycles [0:OUT_DEPTH-1];
  reg [8*1024-1:0] in_file;
  reg [8*1024-1:0] out_file;
  reg [8*1024-1:0] out_cycles_file;
  reg [8*1024-1:0] in_cycles_file;
  reg have_in;
  reg have_out;
  reg have_out_cycles;
  reg have_in_cycles;

  reg running;
  reg dumping;
  reg hold;  // a word was offered and not taken: it stays valid
  reg [31:0] start;
  reg [31:0] after;
  reg [31:0] rnd_in;
  reg [31:0] rnd_out;

  function [31:0] xorshift;
    input [31:0] x;
    reg [31:0] a;
    begin
      a = x ^ (x << 13);
      a = a ^ (a >> 17);
      xorshift = a ^ (a << 5);
    end
  endfunction

  wire [{in_aw}-1:0] in_addr = in_count[{in_aw}-1:0];
  wire [{out_aw}-1:0] out_addr = out_count[{out_aw}-1:0];
  wire pending = running && in_count < n_in;
  wire gap = !hold && rnd_in[15:0] < idle_thr;
  wire f_valid = pending && !gap;
  wire f_ready = running && !(rnd_out[15:0] < stall_thr);
  wire finished = out_count >= n_out && after >= drain;

  wire [W-1:0] dut_i_payload = fast ? in_mem[in_addr] : i__payload;
  wire dut_i_valid = fast ? f_valid : i__valid;
  wire dut_o_ready = fast ? f_ready : o__ready;
  wire dut_i_ready;
  wire dut_o_valid;
  wire [W-1:0] dut_o_payload;
{busy_tie}  assign i__ready = dut_i_ready;
  assign o__valid = dut_o_valid;
  assign o__payload = dut_o_payload;

  {top} dut (
    .clk(clk),
    .rst(rst),
    .i__payload(dut_i_payload),
    .i__valid(dut_i_valid),
    .i__ready(dut_i_ready),
    .o__payload(dut_o_payload),
    .o__valid(dut_o_valid),
    .o__ready(dut_o_ready){busy_pin}
  );

  initial begin
    done = 1'b0;
    timed_out = 1'b0;
    in_count = 32'd0;
    out_count = 32'd0;
    cycle = 32'd0;
    running = 1'b0;
    dumping = 1'b0;
    hold = 1'b0;
    start = 32'd0;
    after = 32'd0;
    rnd_in = 32'd1;
    rnd_out = 32'd2;
    have_in = $value$plusargs("colcomb_in=%s", in_file) != 0;
    have_out = $value$plusargs("colcomb_out=%s", out_file) != 0;
    have_out_cycles = $value$plusargs("colcomb_out_cycles=%s", out_cycles_file) != 0;
    have_in_cycles = $value$plusargs("colcomb_in_cycles=%s", in_cycles_file) != 0;
    if (have_in) $readmemh(in_file, in_mem);
  end

  always @(posedge clk) begin
    cycle <= cycle + 32'd1;
    if (rst) begin
      running <= 1'b0;
      dumping <= 1'b0;
      done <= 1'b0;
      timed_out <= 1'b0;
      in_count <= 32'd0;
      out_count <= 32'd0;
      hold <= 1'b0;
      after <= 32'd0;
      rnd_in <= {{seed[30:0], 1'b1}};
      rnd_out <= {{seed[31:1] ^ 31'h3504f333, 1'b1}};
    end else begin
      rnd_in <= xorshift(rnd_in);
      rnd_out <= xorshift(rnd_out);
      if (fast && go && !running && !dumping && !done) begin
        running <= 1'b1;
        start <= cycle;
      end
      if (running) begin
        hold <= f_valid && !dut_i_ready;
        if (f_valid && dut_i_ready) begin
          in_cycles[in_addr] <= cycle;
          in_count <= in_count + 32'd1;
        end
        if (dut_o_valid && f_ready) begin
          if (out_count < OUT_DEPTH) begin
            out_mem[out_addr] <= dut_o_payload;
            out_cycles[out_addr] <= cycle;
          end
          out_count <= out_count + 32'd1;
        end
        if (out_count >= n_out) after <= after + 32'd1;
        if (finished || cycle - start >= max_cycles) begin
          running <= 1'b0;
          dumping <= 1'b1;
          timed_out <= !finished;
        end
      end
      if (dumping) begin
        if (out_count != 0) begin
          if (have_out) $writememh(out_file, out_mem, 0, (out_count < OUT_DEPTH ? out_count : OUT_DEPTH) - 1);
          if (have_out_cycles)
            $writememh(out_cycles_file, out_cycles, 0, (out_count < OUT_DEPTH ? out_count : OUT_DEPTH) - 1);
        end
        if (in_count != 0 && have_in_cycles) $writememh(in_cycles_file, in_cycles, 0, in_count - 1);
        dumping <= 1'b0;
        done <= 1'b1;
      end
    end
  end
endmodule
"""
