"""The labelled board self-test: the core finds each vector's largest output word on chip and prints
``img i: P (expected E)`` per vector, ``K/N correct`` and the verdict on its UART. The printed
classes are checked against numpy's argmax of the golden model's outputs (``packer.golden``), the
expected ones against the labels given, the count against both; a wrong prediction is not a FAIL,
a wrong output word is. The command line refuses bad labels before building anything."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import memory
from amaranth.sim import Simulator

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.fpga.selftest import SelfTest
from colcomb.fpga.selftest_sim import decode_uart, simulate_selftest, verilate_selftest
from colcomb.fpga.synth import labelled_report, prepare_design, self_test_inputs
from colcomb.fpga.uart_report import ReportPrinter, bcd_increment, report_program, report_text
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.program import Program
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import write_manifest
from colcomb.packer.pack import PackOptions, pack_layer


def _network(seed, shapes):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (r, c) in enumerate(shapes):
        w = rng.standard_normal((r, c)) * (rng.random((r, c)) < 0.3)
        act = "relu" if i < len(shapes) - 1 else "none"
        layers.append(pack_layer(f"l{i}", w, PackOptions(alpha=3, activation=act), rng.standard_normal(r) * 0.2))
    return layers


def _expected_text(outputs, labels, verdict):
    """The UART text, written out here from numpy's argmax (not from the code under test)."""
    pred = np.argmax(outputs, axis=1)
    lines = "".join(f"img {i}: {p} (expected {e})\r\n" for i, (p, e) in enumerate(zip(pred, labels, strict=True)))
    return lines + f"{int(np.sum(pred == labels))}/{len(labels)} correct\r\n{verdict}\r\n"


def _has_tie(y):
    return any(int(np.sum(r == r.max())) > 1 for r in y)


def _core(layers, vectors, labels_from, *, seed=0, batch=3, corrupt=None, **kw):
    prog = Program.compile(layers, HardwareConfig(rows=3, cols=2, batch=batch))
    x = self_test_inputs(layers, vectors, seed)
    y = run_network(layers, x)
    labels = labels_from(y)
    gold = y.copy()
    if corrupt is not None:
        gold[corrupt] = gold[corrupt] + 1 if gold[corrupt] < 127 else gold[corrupt] - 1
    core = SelfTest(program=prog, inputs=x, expected=gold, clk_freq=1e6, baud=500_000, labels=labels, **kw)
    return core, y, labels


def _flip(y, rows=(1,)):
    """numpy's argmax, with the given vectors' labels made wrong."""
    labels = np.argmax(y, axis=1)
    for r in rows:
        labels[r] = (labels[r] + 1) % y.shape[1]
    return labels


def test_predictions_and_labels_on_the_uart(tmp_path):
    layers = _network(0, ((10, 12), (5, 10)))
    core, y, labels = _core(layers, 10, lambda y: _flip(y, rows=(1, 6)))
    assert _has_tie(y)  # a vector with two equal largest words: the first must win, as in numpy
    assert np.argmax(y, axis=1)[3] == 4  # and one whose largest word is the vector's last
    res = simulate_selftest(core)
    assert res.passed and res.errors == 0  # two wrong predictions are not a FAIL
    assert res.uart == _expected_text(y, labels, "PASS")
    assert "8/10 correct\r\n" in res.uart


def test_two_digit_classes_and_image_numbers():
    layers = _network(0, ((10, 12), (12, 10)))  # 12 classes
    core, y, labels = _core(layers, 12, lambda y: np.array([0, 10, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9]), batch=4)
    pred = np.argmax(y, axis=1)
    assert 10 in pred and 0 in pred and _has_tie(y)  # a class with a zero digit, the first class, a tie
    res = simulate_selftest(core)
    assert res.passed
    assert res.uart == _expected_text(y, labels, "PASS")
    assert "img 10: " in res.uart and "img 0: " in res.uart and "(expected 10)" in res.uart


def test_a_wrong_output_word_still_prints_the_lines_then_fail():
    layers = _network(0, ((10, 12), (5, 10)))
    core, y, labels = _core(layers, 4, lambda y: np.argmax(y, axis=1), corrupt=(2, 1))
    res = simulate_selftest(core)
    assert res.failed and res.errors == 1
    # the classes are the network's (the golden y), not the corrupted stored words'
    assert res.uart == _expected_text(y, labels, "FAIL")


def test_the_report_repeats_with_the_count_started_again():
    layers = _network(0, ((10, 12), (5, 10)))
    core, y, labels = _core(layers, 3, lambda y: _flip(y), repeat_cycles=20)
    res = simulate_selftest(core, chars=3 * core.report.max_chars)
    once = _expected_text(y, labels, "PASS")
    assert res.uart.startswith(once + once)  # "2/3 correct" both times, not 4/3


def test_the_report_text_model_matches_the_written_out_text():
    y = np.array([[1, 5, 5], [9, 0, 2], [0, 0, 0]])
    assert report_text(np.argmax(y, axis=1), [1, 2, 0], passed=False) == _expected_text(y, np.array([1, 2, 0]),
                                                                                       "FAIL")


def test_bcd_increment_counts_in_decimal():
    m = Module()
    a, b = Signal(8), Signal(8)
    m.d.comb += b.eq(bcd_increment(a, 2))
    seen = []

    async def bench(ctx):
        for n in range(100):
            ctx.set(a, int(str(n), 16))
            seen.append(f"{ctx.get(b):02x}")

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [f"{(n + 1) % 100:02d}" for n in range(100)]


def test_printer_alone_with_three_digit_numbers():
    """The printer without a network: 101 images, so the image number and the count reach three
    digits with a zero in the middle (``img 100``, ``100/101``)."""
    n, classes = 101, 3
    pred = np.arange(n) % classes
    labels = pred.copy()
    labels[7] = (labels[7] + 1) % classes
    prog = report_program(n, classes)
    printer = ReportPrinter(prog, divisor=2)
    m = Module()
    m.submodules.printer = printer
    m.submodules.mem = mem = memory.Memory(shape=unsigned(8), depth=n,
                                           init=[int(p) | int(e) << 4 for p, e in zip(pred, labels, strict=True)])
    rd = mem.read_port()
    m.d.comb += [rd.addr.eq(printer.img), printer.pred.eq(rd.data[:4]), printer.label.eq(rd.data[4:]),
                 printer.start.eq(1), printer.ok.eq(1)]
    edges = []

    async def bench(ctx):
        prev, cycle, end = 1, 0, None
        while end is None or cycle < end:
            await ctx.tick()
            cycle += 1
            if ctx.get(printer.tx) != prev:
                prev = ctx.get(printer.tx)
                edges.append((cycle, prev))
            if end is None and ctx.get(printer.finished):
                end = cycle + 40  # the last character is still on the line
        edges.append((cycle, 1))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    lines = "".join(f"img {i}: {p} (expected {e})\r\n" for i, (p, e) in enumerate(zip(pred, labels, strict=True)))
    assert decode_uart(edges, 2, edges[-1][0]) == lines + "100/101 correct\r\nPASS\r\n"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_classes_beyond_two_digits_and_bad_labels_are_refused():
    with pytest.raises(ValueError, match="at most two decimal digits"):
        report_program(4, 101)
    layers = _network(0, ((10, 12), (5, 10)))
    prog = Program.compile(layers, HardwareConfig(rows=3, cols=2, batch=3))
    x = self_test_inputs(layers, 2, 0)
    y = run_network(layers, x)
    for bad, message in (([0, 5], "outside"), ([0], "2 integers"), ([0.0, 1.0], "integers")):
        with pytest.raises(ValueError, match=message):
            SelfTest(program=prog, inputs=x, expected=y, clk_freq=1e6, labels=np.array(bad))
    gc.collect()  # the refused cores' "never elaborated" warnings belong to this test's filter


def test_prepare_design_carries_and_checks_labels(tmp_path):
    layers = _network(0, ((10, 12), (5, 10)))
    manifest = write_manifest(layers, tmp_path / "m").parent
    x = self_test_inputs(layers, 6, 3)
    labels = np.array([4, 0, 1, 2, 3, 0])
    d = prepare_design(manifest, HardwareConfig(rows=2, cols=2), inputs=x, labels=labels, vectors=4,
        input_source="test")
    assert np.array_equal(d.labels, labels[:4]) and d.inputs.shape == (4, 12)
    rep = labelled_report(d)
    golden = run_network(layers, x[:4])
    assert rep["golden_correct"] == int(np.sum(np.argmax(golden, axis=1) == labels[:4]))
    assert rep["uart_text"].endswith(f"{rep['golden_correct']}/4 correct\r\nPASS\r\n")
    assert labelled_report(prepare_design(manifest, HardwareConfig(rows=2, cols=2), inputs=x)) == {}
    with pytest.raises(ColcombError, match="outside the network's 5 output words"):
        prepare_design(manifest, HardwareConfig(rows=2, cols=2), inputs=x, labels=np.array([0, 1, 2, 3, 4, 5]))


@pytest.fixture
def labelled_files(tmp_path):
    layers = _network(0, ((10, 12), (5, 10)))
    manifest = write_manifest(layers, tmp_path / "m").parent
    np.save(tmp_path / "x.npy", self_test_inputs(layers, 3, 0))
    return manifest, tmp_path


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1]), "2 labels for 3 input vectors"),
        (np.array([[0, 1, 2]]), "1-d integer array"),
        (np.array([0.0, 1.0, 2.0]), "1-d integer array"),
        (np.array([0, 1, 5]), "outside the network's 5 output words"),
        (np.array([0, -1, 2]), "outside the network's 5 output words"),
        (None, "--labels needs --inputs"),
    ],
)
def test_synthesize_refuses_bad_labels_before_building(labelled_files, capsys, labels, message):
    manifest, tmp = labelled_files
    np.save(tmp / "y.npy", np.zeros(1) if labels is None else labels)
    args = ["synthesize", str(manifest), "--board", "icebreaker", "--rows", "2", "--cols", "2",
            "--out", str(tmp / "s"), "--labels", str(tmp / "y.npy")]
    if labels is not None:
        args += ["--inputs", str(tmp / "x.npy")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err, err
    assert not (tmp / "s").exists()


def test_synthesize_test_split_needs_a_trained_run(labelled_files, capsys):
    manifest, tmp = labelled_files
    assert main(["synthesize", str(manifest), "--board", "icebreaker", "--rows", "2", "--cols", "2",
                 "--out", str(tmp / "s"), "--test-split", "4"]) == 2
    assert "names no dataset" in capsys.readouterr().err
    assert not (tmp / "s").exists()


def test_synthesize_test_split_labels_must_fit_the_output_words(tmp_path, capsys):
    """The run's own test split (scikit-learn's digits, no download) through the command line:
    a network of 5 output words cannot classify digits 0-9, refused before anything is written."""
    layers = _network(0, ((12, 64), (5, 12)))
    manifest = write_manifest(layers, tmp_path / "m", meta={"dataset": "digits", "input_scale": 1 / 16,
                                                            "data_bits": 8}).parent
    assert main(["synthesize", str(manifest), "--board", "icebreaker", "--rows", "2", "--cols", "2",
                 "--out", str(tmp_path / "s"), "--test-split", "12"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "outside the network's 5 output words" in err, err
    assert not (tmp_path / "s").exists()
    # the same images with labels that fit are accepted by the design step
    from colcomb.labelled import simulation_inputs

    given = simulation_inputs(manifest, test_split=12)
    d = prepare_design(manifest, HardwareConfig(rows=2, cols=2), inputs=given.x, labels=given.labels % 5)
    assert d.inputs.shape == (12, 64) and np.array_equal(d.labels, given.labels % 5)


@pytest.mark.rtl
def test_labelled_selftest_in_verilator_prints_what_amaranth_does(tmp_path):
    layers = _network(0, ((10, 12), (5, 10)))
    core, y, labels = _core(layers, 4, lambda y: _flip(y, rows=(2,)))
    res = verilate_selftest(core, tmp_path / "vl")
    assert res.passed
    assert res.uart == _expected_text(y, labels, "PASS")
    assert res.cycles == simulate_selftest(core).cycles
