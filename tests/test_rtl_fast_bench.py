"""The fast bench (Verilog harness drives and captures the streams, no Python per cycle) against
the per-cycle cocotb bench: same words, same cycle counts; and its checks can fail (a corrupted
expected word, a stray word after the final ``last``, a hung design)."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hw_layers import random_layer
from test_rtl_stream_monitor import BATCH, WORDS, Echo

from colcomb.cli import main
from colcomb.core.progress import Stages
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import stream_cycles
from colcomb.hdl.lint import write_waivers
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import write_manifest
from colcomb.packer.packed import signed_range
from colcomb.sim.harness import decode_image, harness_name, input_image, read_image, threshold, write_harness
from colcomb.sim.runner import (
    BUILD_ARGS,
    Build,
    _harness_runner,
    _verilator_environ,
    build,
    estimate_seconds,
    random_inputs,
    run,
)
from colcomb.sim.scoreboard import Scoreboard
from colcomb.sim.timing import steady_cycles_per_vector

ROOT = Path(os.environ.get("COLCOMB_SIM_BUILD", Path(__file__).parents[1] / "build" / "sim"))


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """Two chained layers (alpha 4 with row blocks, then alpha 2) on a 3 x 3 array, batch 4."""
    rng = np.random.default_rng(2025)
    layers = [random_layer(rng, 8, 12, 4, gamma=0.25, name="a", block_rows=5, activation="relu"),
              random_layer(rng, 4, 8, 2, name="b")]
    folder = tmp_path_factory.mktemp("fast") / "manifest"
    write_manifest(layers, folder)
    return folder, build(layers, HardwareConfig(rows=3, cols=3, batch=4), root=ROOT), layers


@pytest.mark.rtl
def test_fast_and_cycle_benches_agree_on_words_and_cycles(network):
    manifest, built, layers = network
    x = random_inputs(layers[0], 14, seed=8)  # batches of 4, 4, 4, 2
    fast = run(built, manifest, x, bench="fast")
    cycle = run(built, manifest, x, bench="cycle")
    assert fast.bench == "fast" and cycle.bench == "cycle"
    assert fast.passed and cycle.passed and fast.checked == cycle.checked == 14 * 4
    np.testing.assert_array_equal(fast.outputs(), cycle.outputs())
    np.testing.assert_array_equal(fast.outputs(), run_network(layers, x))  # an independent path
    assert (fast.cycles, fast.compute_cycles) == (cycle.cycles, cycle.compute_cycles)
    assert fast.cycles_per_inference == cycle.cycles_per_inference
    d = built.design
    # the cycle model's total, and its steady state: the cycles between the final words of the
    # last two full batches (the third and the second), over the batch
    model = stream_cycles(d["engine_cycles"], d["in_cycles_per_vector"], d["out_words"], 14)
    assert fast.cycles == model["total"]
    assert fast.cycles_per_inference == (model["finished"][2] - model["finished"][1]) / 4


@pytest.mark.rtl
def test_fast_bench_idles_and_stalls_and_stays_exact(network):
    manifest, built, layers = network
    x = random_inputs(layers[0], 9, seed=2)
    plain = run(built, manifest, x)
    slow = run(built, manifest, x, idle=0.8, stall=0.6, seed=3)
    assert plain.passed and slow.passed
    # 9 x 12 input words at about one in five cycles alone take about 540 cycles (the receiver
    # overlaps the engine, so the plain run's total is less than that); the outputs stall too
    assert slow.cycles > 9 * 12 * 4 and slow.cycles > 1.3 * plain.cycles
    other = run(built, manifest, x, idle=0.8, stall=0.6, seed=4)
    assert other.passed  # and the seed reaches the harness's generators: the words go in at other cycles
    first_inputs = [read_image(r.run_dir / "in_cycles.hex")[:20] - r_first for r, r_first in
                    ((slow, read_image(slow.run_dir / "in_cycles.hex")[0]),
                     (other, read_image(other.run_dir / "in_cycles.hex")[0]))]
    assert not np.array_equal(*first_inputs)


@pytest.mark.rtl
def test_checker_reports_a_corrupted_expected_word(network):
    """The words the harness captured, checked against the golden model with one expected word
    flipped: the scoreboard names that vector and word."""
    manifest, built, layers = network
    x = random_inputs(layers[0], 6, seed=9)
    res = run(built, manifest, x)
    words, lasts = decode_image(read_image(res.run_dir / "out.hex"), built.design["data_bits"])
    expected = run_network(layers, x)
    clean = Scoreboard(expected.copy())
    clean.check(words.tolist(), lasts.tolist(), 4)
    assert clean.passed
    expected[5, 2] ^= 1
    board = Scoreboard(expected)
    board.check(words.tolist(), lasts.tolist(), 4)
    assert not board.passed and board.mismatch_count == 1
    assert board.mismatches[0] == {"vector": 5, "index": 2, "got": int(words[5 * 4 + 2]),
                                   "expected": int(expected[5, 2])}
    assert (f"1 of 24 output words differ; first at vector 5, word 2: hardware {int(words[5 * 4 + 2])}, "
            f"golden model {int(expected[5, 2])}") in board.summary()


@pytest.mark.rtl
def test_harness_watchdog_ends_a_run_that_cannot_finish(network):
    manifest, built, layers = network
    res = run(built, manifest, random_inputs(layers[0], 5, seed=1), max_cycles=40, check=False)
    assert not res.passed
    assert any("timed out after 40 cycles" in e for e in res.protocol_errors), res.protocol_errors


def _echo_build(root: Path, name: str, trailing: bool) -> Build:
    from amaranth.back import verilog

    folder = root / name
    folder.mkdir(parents=True)
    source = folder / f"{name}.v"
    source.write_text(verilog.convert(Echo(trailing=trailing), name=name, emit_src=False))
    design = {"in_words": WORDS, "in_cycles_per_vector": WORDS, "out_words": WORDS, "batch": BATCH, "data_bits": 8,
              "rows": 1, "cols": 1,
              "prep_cycles": 2, "drain_cycles": 1, "dense_macs_per_vector": 1, "engine_cycles": [16] * BATCH}
    (folder / f"{name}.json").write_text(json.dumps(design))
    harness, config = write_harness(folder, name, 8, busy=False)  # the echo has no busy output
    with _verilator_environ():
        _harness_runner().build(sources=[write_waivers(folder, name), config, source, harness],
                                hdl_toplevel=harness_name(name), build_dir=folder / "obj",
                                build_args=BUILD_ARGS, log_file=folder / "build.log")
    return Build(name, folder, name, source, design, False, False, 0.0, harness=harness_name(name))


@pytest.mark.rtl
def test_fast_bench_reports_a_word_after_the_final_last(tmp_path):
    """The echo stand-ins of test_rtl_stream_monitor in the harness: the clean one passes, the one
    with a stray word after each batch fails with every expected word right."""
    layer = random_layer(np.random.default_rng(0), WORDS, WORDS, 1, weights=np.eye(WORDS, dtype=int), shift=0,
                         multiplier=np.ones(WORDS, np.int64), bias=np.zeros(WORDS, np.int64))
    write_manifest([layer], tmp_path / "identity")
    x = random_inputs(layer, 2 * BATCH + 1, seed=3)
    clean = run(_echo_build(tmp_path, "echo", False), tmp_path / "identity", x, check=False, stall=0.3,
                idle=0.3)
    assert clean.bench == "fast" and clean.passed, clean.summary
    stray = run(_echo_build(tmp_path, "echo_stray", True), tmp_path / "identity", x[-1:], check=False)
    assert not stray.passed and stray.mismatch_count == 0
    assert any("1 output word(s) after the final word" in e for e in stray.protocol_errors)


@pytest.mark.rtl
def test_simulate_prints_accuracy_of_labelled_float_images(tmp_path, capsys):
    """Float images are quantized with the manifest's input scale (as `colcomb evaluate` does);
    the hardware's accuracy on labels chosen so that 6 of 10 are right is printed beside the golden
    model's."""
    rng = np.random.default_rng(31)  # test_rtl_backpressure's design: its build is reused
    layers = [random_layer(rng, 7, 10, 4, gamma=0.25, name="h", activation="relu"),
              random_layer(rng, 5, 7, 2, name="o")]
    scale = 1 / 127
    write_manifest(layers, tmp_path / "net", meta={"input_scale": scale, "data_bits": 8})
    images = np.random.default_rng(1).uniform(-1, 1, (10, 2, 5)).astype(np.float32)
    q = np.clip(np.rint(images.reshape(10, -1) / scale), -127, 127).astype(np.int64)
    best = run_network(layers, q).argmax(axis=1)
    labels = np.where(np.arange(10) < 6, best, (best + 1) % 5)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    outs = {}
    for bench in ("fast", "cycle"):
        assert main(["simulate", str(tmp_path / "net"), "--rows", "3", "--cols", "2", "--batch", "4",
                     "--input", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                     "--bench", bench, "--build-dir", str(ROOT)]) == 0
        out = outs[bench] = capsys.readouterr().out
        assert "vectors checked: 10 (50 output words, all equal to the golden model)" in out
        assert "accuracy on 10 labelled inputs: hardware 60.00%, golden model 60.00%" in out
        assert f"({bench} bench)" in out
    steady = [re.search(r"cycles per inference: ([\d.]+) \(steady state", o).group(1) for o in outs.values()]
    assert steady[0] == steady[1]


def test_labels_must_match_the_inputs(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 10), np.int64))
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    rng = np.random.default_rng(0)
    write_manifest([random_layer(rng, 5, 10, 2)], tmp_path / "net")
    assert main(["simulate", str(tmp_path / "net"), "--rows", "2", "--cols", "2", "--input",
                 str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]) == 2
    assert "holds 3 labels for 4 input vectors" in capsys.readouterr().err



@pytest.mark.parametrize("bad", [5, -1])
def test_labels_outside_the_outputs_are_refused(tmp_path, capsys, bad):
    """A 5-output network: a label 5 or -1 names no output; refused before any simulation."""
    np.save(tmp_path / "x.npy", np.zeros((4, 10), np.int64))
    np.save(tmp_path / "y.npy", np.array([0, 4, bad, 1], np.int64))
    rng = np.random.default_rng(0)
    write_manifest([random_layer(rng, 5, 10, 2)], tmp_path / "net")
    assert main(["simulate", str(tmp_path / "net"), "--rows", "2", "--cols", "2", "--input",
                 str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]) == 2
    err = capsys.readouterr().err
    assert "is outside the network's 5 output words (classes 0 .. 4)" in err and str(bad) in err


def test_memory_images_round_trip():
    lo, hi = signed_range(6)
    words = np.array([lo, -1, 0, 1, hi, 7])
    lasts = np.array([0, 0, 1, 0, 0, 1], bool)
    text = input_image(words, lasts, 6)
    assert text.splitlines()[0] == "20" and text.splitlines()[2] == "40"  # -32 in 6 bits; 0 with last
    back_words, back_lasts = decode_image(np.array([int(t, 16) for t in text.split()]), 6)
    np.testing.assert_array_equal(back_words, words)
    np.testing.assert_array_equal(back_lasts, lasts)
    assert threshold(0.0) == 0 and threshold(0.5) == 32768 and threshold(0.99999999) == 65535


def test_steady_state_ignores_the_first_batch():
    # batches of 2 vectors of 1 output word: ends at 100 (first batch, long latency), 130, 150, then a partial
    out = [90, 100, 120, 130, 145, 150, 170]
    assert steady_cycles_per_vector(out, 2, 1, 7) == (150 - 130) / 2  # the last two full batches
    assert steady_cycles_per_vector(out[:3], 2, 1, 3) is None  # one full batch: no steady state


def test_progress_is_quiet_off_a_terminal_and_draws_on_one():
    pipe = io.StringIO()
    with Stages(["build", "simulate"], label="simulate", stream=pipe) as p:
        p.stage("build")
        p.stage("simulate", eta_s=60)
        assert p.text().startswith("simulate: [2/2] simulate 0 s, about 60 s left")
    assert pipe.getvalue() == "" and p.history == ["build", "simulate"]
    tty = io.StringIO()
    with Stages(["synth", "place-and-route"], stream=tty, enabled=True) as p:
        p.stage("place-and-route")
    assert "[2/2] place-and-route" in tty.getvalue()


@pytest.mark.rtl
def test_progress_estimate_comes_from_an_earlier_run(network, tmp_path):
    manifest, built, layers = network
    x = random_inputs(layers[0], 8, seed=4)
    res = run(built, manifest, x)
    est = estimate_seconds(built, 800, "fast")
    d = built.design
    model = stream_cycles(d["engine_cycles"], d["in_cycles_per_vector"], d["out_words"], 800)["total"]
    assert est is not None and est > model / res.sim_cycles_per_s  # at least the cycles at that rate
    empty = Build("none", tmp_path, built.top, built.verilog, d, False, True, 0.0)
    assert estimate_seconds(empty, 800, "fast") is None  # no earlier run: no estimate
