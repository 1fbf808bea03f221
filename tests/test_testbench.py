"""The self-checking plain-Verilog testbench that `generate` writes beside the IP, run the way a
user runs it: in Icarus (where it is installed) and in Verilator --binary, for every layer type
the generator has (single layer, chained layers, alpha 1 and > 1, row blocks; the bit-parallel
cell is the one cell kind). Also: the netlist has no `always @*` block (the reason Icarus used
to leave i__ready/o__valid at x), and the testbench fails when an expected word is wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hw_layers import random_layer

from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.generate import generate_layers
from colcomb.hdl.testbench import stimulus, stream_words
from colcomb.packer.golden import run_network
from colcomb.sim.testbench_run import X_RANDOM_ARGS, build_verilator, icarus, run_icarus, run_verilator

NO_ICARUS = "Icarus Verilog is not installed (a Debian package: apt-get install iverilog)"


def _layers(kind: str):
    rng = np.random.default_rng({"alpha1": 11, "blocks": 12, "chain": 13}[kind])
    if kind == "alpha1":  # the plain cell without a multiplexer, 4-bit weights, 6-bit data
        return [random_layer(rng, 5, 7, 1, bits=4, data_bits=6, acc_bits=16, density=0.6)]
    if kind == "blocks":  # one layer, alpha 4 with conflicts, row blocks, tiled both ways
        return [random_layer(rng, 7, 12, 4, gamma=0.25, block_rows=3, activation="relu")]
    return [  # three chained layers: alpha 8 / 2 / 1, relu / relu6 / none, row blocks
        random_layer(rng, 6, 16, 8, gamma=0.3, density=0.3, name="l0", block_rows=4,
                     activation="relu"),
        random_layer(rng, 5, 6, 2, name="l1", activation="relu6"),
        random_layer(rng, 3, 5, 1, name="l2"),
    ]


# kind -> (array rows, cols, batch, testbench vectors, cell): partial last batches everywhere;
# "blocks" runs on the bit-serial array, so every check below covers both cell kinds
DESIGNS = {"alpha1": (2, 3, 3, 7, "parallel"), "blocks": (3, 2, 4, 6, "serial"),
           "chain": (3, 3, 4, 9, "parallel")}


@pytest.fixture(scope="module", params=sorted(DESIGNS))
def design(request, tmp_path_factory):
    kind = request.param
    rows, cols, batch, vectors, cell = DESIGNS[kind]
    layers = _layers(kind)
    out = tmp_path_factory.mktemp(f"tb-{kind}")
    d = generate_layers(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch), out,
        tb_vectors=vectors, tb_seed=3)
    return kind, d, layers, vectors


def _copy(d, dest: Path) -> Path:
    """A copy of the design's folder (a test that edits a file must not touch the shared one)."""
    shutil.copytree(d.verilog.parent, dest, ignore=shutil.ignore_patterns("obj_dir*", "*.vvp"))
    return dest


def _signed(words, bits):
    data = np.array([w & ((1 << bits) - 1) for w in words])
    return np.where(data >= 1 << (bits - 1), data - (1 << bits), data)


# -- the files --------------------------------------------------------------------------------------

def test_netlist_has_no_always_star_blocks(design):
    _, d, _, _ = design
    text = d.verilog.read_text()
    assert not re.search(r"always\s*@\s*(\*|\(\s*\*\s*\))", text)
    assert "always_comb" not in text  # plain Verilog-2001
    assert "always @(posedge clk)" in text and "assign " in text


def test_images_hold_the_stimulus_and_the_golden_outputs(design):
    _, d, layers, vectors = design
    p = d.program
    tb, in_hex, out_hex = d.testbench
    assert (tb.name, in_hex.name, out_hex.name) == (
        "tb_colcomb_top.v", "tb_colcomb_top.in.hex", "tb_colcomb_top.out.hex")
    ins = [int(line, 16) for line in in_hex.read_text().split()]
    outs = [int(line, 16) for line in out_hex.read_text().split()]
    x = _signed(ins, p.data_bits).reshape(vectors, p.in_words)
    y = _signed(outs, p.data_bits).reshape(vectors, p.out_words)
    np.testing.assert_array_equal(x, stimulus(layers[0], vectors, seed=3))
    np.testing.assert_array_equal(y, run_network(layers, x))
    assert x[0].min() == x[0].max() == -(1 << (layers[0].data_bits - 1))  # extremes first
    # last: on the final word of each batch only
    for words, per in ((ins, p.in_words), (outs, p.out_words)):
        lasts = [i for i, w in enumerate(words) if w >> p.data_bits]
        ends = [min(v + p.batch, vectors) * per - 1 for v in range(0, vectors, p.batch)]
        assert lasts == ends
    text = tb.read_text()
    assert f"localparam N_OUT = {vectors * p.out_words};" in text
    assert "module tb_colcomb_top;" in text and "colcomb_top dut (" in text


def test_stream_words_put_last_at_batch_ends():
    words = stream_words(np.array([[1, -1], [-128, 127], [0, 5]]), batch=2, data_bits=8)
    assert words == [0x001, 0x0FF, 0x080, 0x17F, 0x000, 0x105]
    with pytest.raises(ColcombError, match="do not fit 8 bits"):
        stream_words(np.array([[128]]), batch=1, data_bits=8)


def test_no_testbench_when_asked_and_bad_counts_refused(tmp_path):
    layers = _layers("alpha1")
    d = generate_layers(layers, HardwareConfig(rows=2, cols=2), tmp_path / "none", tb_vectors=0)
    assert d.testbench == () and not list((tmp_path / "none").glob("tb_*"))
    with pytest.raises(ColcombError, match="0 \\(none\\) or more, not -1"):
        generate_layers(layers, HardwareConfig(rows=2, cols=2), tmp_path / "bad", tb_vectors=-1)
    assert not (tmp_path / "bad").exists()


# -- Icarus ---------------------------------------------------------------------------------------

needs_icarus = pytest.mark.skipif(icarus() is None, reason=NO_ICARUS)


@needs_icarus
@pytest.mark.rtl
def test_icarus_passes(design):
    _, d, _, vectors = design
    run = run_icarus(d.verilog.parent, d.top)
    assert run.passed, run.output
    words = vectors * d.program.out_words
    assert run.verdict == f"PASS: tb_colcomb_top: {words} output words equal to the golden model"
    assert "mismatches: 0 data, 0 last; 0 extra words; 0 cycles with x on an output" in run.output


@needs_icarus
@pytest.mark.rtl
def test_icarus_passes_with_gaps_and_back_pressure(design, tmp_path):
    _, d, _, _ = design
    folder = _copy(d, tmp_path / "stall")
    slow = run_icarus(folder, d.top, params={"STALL": 1})
    assert slow.passed, slow.output
    fast = run_icarus(folder, d.top)
    cycles = [int(re.search(r"received in (\d+) cycles", r.output)[1]) for r in (slow, fast)]
    assert cycles[0] > cycles[1]  # the stalls happened


@needs_icarus
@pytest.mark.rtl
def test_icarus_fails_on_a_corrupted_expected_word(design, tmp_path):
    _, d, _, _ = design
    folder = _copy(d, tmp_path / "bad")
    exp = folder / "tb_colcomb_top.out.hex"
    lines = exp.read_text().split()
    lines[1] = f"{int(lines[1], 16) ^ 1:0{len(lines[1])}x}"  # one data bit of word 1
    lines[-1] = f"{int(lines[-1], 16) ^ (1 << d.program.data_bits):0{len(lines[-1])}x}"  # last bit
    exp.write_text("\n".join(lines) + "\n")
    run = run_icarus(folder, d.top)
    assert not run.passed and run.returncode != 0
    assert run.verdict == "FAIL: tb_colcomb_top"
    assert "mismatches: 1 data, 1 last;" in run.output
    assert "word 1 (vector 0, output 1)" in run.output


@needs_icarus
@pytest.mark.rtl
def test_icarus_times_out_instead_of_hanging(design, tmp_path):
    _, d, _, _ = design
    run = run_icarus(_copy(d, tmp_path / "short"), d.top, params={"TIMEOUT": 40})
    assert not run.passed and "timeout after 40 cycles" in run.output


# -- Verilator --binary, X-randomized -------------------------------------------------------------

@pytest.fixture(scope="module")
def verilated(design):
    """The testbench built with Verilator --binary, every uninitialized variable and explicit x
    randomized at run time (X_RANDOM_ARGS)."""
    _, d, _, _ = design
    return d, build_verilator(d.verilog.parent, d.top, args=X_RANDOM_ARGS)


@pytest.mark.rtl
@pytest.mark.parametrize("seed", [1, 2])
def test_verilator_passes_whatever_the_x_values(verilated, seed):
    d, binary = verilated
    run = run_verilator(d.verilog.parent, binary,
                        plusargs=[f"+verilator+seed+{seed}", "+verilator+rand+reset+2"])
    assert run.passed, run.output
    assert "0 cycles with x on an output" in run.output


@pytest.mark.rtl
def test_verilator_fails_on_a_corrupted_expected_word(verilated, tmp_path):
    d, binary = verilated
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("tb_colcomb_top.in.hex", "tb_colcomb_top.out.hex"):
        shutil.copy(d.verilog.parent / name, folder / name)
    exp = folder / "tb_colcomb_top.out.hex"
    lines = exp.read_text().split()
    lines[0] = f"{int(lines[0], 16) ^ 2:0{len(lines[0])}x}"
    exp.write_text("\n".join(lines) + "\n")
    run = run_verilator(folder, binary)  # the images are read at run time
    assert not run.passed and run.returncode != 0
    assert run.verdict == "FAIL: tb_colcomb_top" and "mismatches: 1 data, 0 last;" in run.output


def test_testbench_lints_clean_on_its_own(design, tmp_path):
    """verilator --lint-only -Wall on tb_<top>.v with the design's waivers scoped to the
    design's file only: the testbench itself needs none."""
    import subprocess

    from colcomb.core.tools import verilator_env

    _, d, _, _ = design
    vlt = tmp_path / "design_only.vlt"
    vlt.write_text(d.waivers.read_text().replace('-file "*colcomb_top.v"', f'-file "{d.verilog}"'))
    assert str(d.verilog) in vlt.read_text()
    env = verilator_env()
    tb = d.testbench[0]
    proc = subprocess.run([shutil.which("verilator", path=env["PATH"]), "--lint-only", "-Wall", "--timing",
                           "--top-module", tb.stem, str(vlt), str(tb), str(d.verilog)],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
