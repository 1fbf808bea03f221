"""The self-testing board top without a board: it must report PASS for the real network and FAIL
when its stored golden outputs are wrong or the network stops answering; the PLL solvers; the
board list and the unknown-board error; the judgement of a build's reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.fpga.boards import BOARDS, get_board
from colcomb.fpga.selftest import MESSAGES, SelfTest, ecp5_pll, ice40_pll, stream_words
from colcomb.fpga.selftest_sim import decode_uart, simulate_selftest, verilate_selftest
from colcomb.fpga.synth import analyse_build, dsp_plan, requant_dsps, self_test_inputs
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.program import Program
from colcomb.packer.golden import run_network
from colcomb.packer.pack import PackOptions, pack_layer


def _network(rng, shapes=((10, 12), (5, 10)), alpha=3, density=0.3, **opts):
    layers = []
    for i, (r, c) in enumerate(shapes):
        w = rng.standard_normal((r, c)) * (rng.random((r, c)) < density)
        act = "relu" if i < len(shapes) - 1 else "none"
        layers.append(pack_layer(f"l{i}", w, PackOptions(alpha=alpha, activation=act, **opts),
                                 rng.standard_normal(r) * 0.2))
    return layers


def _core(layers, *, rows=3, cols=2, batch=3, vectors=5, corrupt=None, timeout=None, seed=0):
    prog = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, batch=batch))
    x = self_test_inputs(layers, vectors, seed)
    y = run_network(layers, x)
    if corrupt is not None:
        y = y.copy()
        v, j = corrupt
        y[v, j] = y[v, j] + 1 if y[v, j] < 127 else y[v, j] - 1
    core = SelfTest(program=prog, inputs=x, expected=y, clk_freq=1e6, baud=250_000, timeout_cycles=timeout)
    return core, x, y


def test_selftest_passes_for_the_golden_outputs(rng):
    layers = _network(rng)
    core, _, _ = _core(layers, vectors=5)  # two batches of 3: the output `last` flags must line up
    res = simulate_selftest(core)
    assert res.done and res.passed and not res.failed
    assert res.errors == 0
    assert res.uart == MESSAGES[True].decode()


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_selftest_fails_when_the_golden_rom_is_corrupted(rng, where):
    layers = _network(rng)
    vectors = 4
    out_words = layers[-1].rows
    pos = {"first": (0, 0), "middle": (1, out_words // 2), "last": (vectors - 1, out_words - 1)}[where]
    core, _, _ = _core(layers, vectors=vectors, corrupt=pos)
    res = simulate_selftest(core)
    assert res.done and res.failed and not res.passed
    assert res.errors == 1
    assert res.uart == MESSAGES[False].decode()


def test_selftest_watchdog_fails_a_network_that_does_not_finish(rng):
    layers = _network(rng)
    core, _, _ = _core(layers, vectors=3, timeout=40)  # far too few cycles for the network
    res = simulate_selftest(core)
    assert res.done and res.failed and not res.passed
    assert res.cycles == 40
    assert res.uart == "FAIL\r\n"


@pytest.mark.rtl
def test_selftest_in_verilator_matches_amaranth(rng, tmp_path):
    layers = _network(rng, shapes=((8, 10), (4, 8)), alpha=2)
    core, _, _ = _core(layers, rows=2, cols=3, batch=2, vectors=3)
    ref = simulate_selftest(core)
    res = verilate_selftest(core, tmp_path / "vl")
    assert res.passed and not res.failed and res.errors == 0
    assert res.uart == "PASS\r\n"
    assert res.cycles == ref.cycles


def test_stream_words_marks_batch_ends():
    words = stream_words(np.array([[1, -1], [2, -2], [3, -3]]), 4, batch=2)
    last = [w >> 4 for w in words]
    assert last == [0, 0, 0, 1, 0, 1]  # end of vector 1 (batch of 2) and of the stream
    assert [w & 0xF for w in words] == [1, 15, 2, 14, 3, 13]


def test_uart_decoder_reads_a_hand_made_frame():
    # 'A' = 0x41 = 0b01000001, LSB first: start 0, 1,0,0,0,0,0,1,0, stop 1; 4 cycles a bit from cycle 10
    bits = [0, 1, 0, 0, 0, 0, 0, 1, 0, 1]
    edges, level = [], 1
    for k, b in enumerate(bits):
        if b != level:
            edges.append((10 + 4 * k, b))
            level = b
    assert decode_uart(edges, 4, 10 + 40) == "A"


# -- PLLs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [16e6, 24e6, 30e6, 48e6, 100e6])
def test_ice40_pll_follows_the_icepll_rules(target):
    cfg = ice40_pll(12e6, target)
    p = cfg.params
    pfd = 12e6 / (p["DIVR"] + 1)
    vco = pfd * (p["DIVF"] + 1)
    out = vco / 2 ** p["DIVQ"]
    assert 10e6 <= pfd <= 133e6 and 533e6 <= vco <= 1066e6 and 1 <= p["DIVQ"] <= 6
    assert out == pytest.approx(cfg.f_out)
    assert abs(out - target) / target < 0.02


@pytest.mark.parametrize("target", [10e6, 25e6, 50e6, 62.5e6, 100e6])
def test_ecp5_pll_follows_the_ecppll_rules(target):
    cfg = ecp5_pll(25e6, target)
    p = cfg.params
    out = 25e6 / p["CLKI_DIV"] * p["CLKFB_DIV"]
    assert out == pytest.approx(cfg.f_out)
    assert 400e6 <= out * p["CLKOP_DIV"] <= 800e6
    assert abs(out - target) / target < 0.01


def test_pll_out_of_range_is_refused():
    with pytest.raises(ColcombError, match=r"16\.\.275 MHz"):
        ice40_pll(12e6, 5e6)
    with pytest.raises(ColcombError, match=r"3\.125\.\.400 MHz"):
        ecp5_pll(25e6, 500e6)


# -- boards ----------------------------------------------------------------------------------------------

def test_unknown_board_lists_the_choices(capsys, tmp_path):
    with pytest.raises(ColcombError) as exc:
        get_board("de0-nano-xyz")
    for name in BOARDS:
        assert name in str(exc.value)
    rc = main(["synthesize", str(tmp_path), "--board", "nosuchboard", "--rows", "2", "--cols", "2",
               "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown board 'nosuchboard'" in err and "icebreaker" in err and "ulx3s-85f" in err
    assert err.count("\n") == 1  # one clear line
    assert not (tmp_path / "o" / "report.json").exists()


def test_list_boards_shows_device_and_clock(capsys):
    assert main(["synthesize", "--list-boards"]) == 0
    text = capsys.readouterr().out
    assert main(["boards"]) == 0
    assert capsys.readouterr().out == text
    lines = {line.split()[0]: line for line in text.splitlines()[1:]}
    assert "iCE40UP5K-SG48" in lines["icebreaker"] and "12 MHz" in lines["icebreaker"]
    assert "LFE5U-85F-BG381" in lines["ulx3s-85f"] and "25 MHz" in lines["ulx3s-85f"]
    assert get_board("ULX3S").name == "ulx3s-85f"


def test_synthesize_needs_its_arguments(capsys, tmp_path):
    assert main(["synthesize", str(tmp_path)]) == 2
    assert "--board, --out" in capsys.readouterr().err


# -- judging a build -----------------------------------------------------------------------------------

def _fake_build(tmp_path, util, fmax, *, bitstream=True):
    d = tmp_path / "build"
    d.mkdir()
    (d / "nextpnr_report.json").write_text(json.dumps({
        "utilization": {k: {"used": u, "available": a} for k, (u, a) in util.items()},
        "fmax": {k: {"achieved": ach, "constraint": con} for k, (ach, con) in fmax.items()},
    }))
    (d / "yosys_stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {
        "SB_LUT4": 100, "SB_DFF": 30, "SB_DFFE": 12, "SB_CARRY": 7, "SB_RAM40_4K": 2}}}))
    (d / "top.tim").write_text("Info: nothing\n")
    if bitstream:
        (d / "top.bin").write_bytes(b"\xff\x00bits")
    return d


def test_analyse_build_passes_a_design_that_fits_and_meets_timing(tmp_path):
    d = _fake_build(tmp_path, {"ICESTORM_LC": (150, 5280), "ICESTORM_RAM": (2, 30)}, {"clk": (31.5, 12.0)})
    a = analyse_build(d, family="ice40", device="iCE40UP5K", clock_hz=12e6, tool_failed=False)
    assert a["failures"] == []
    assert a["resources"]["luts"] == 100 and a["resources"]["flip_flops"] == 42
    assert a["resources"]["logic_cells"] == 150 and a["resources"]["logic_cells_available"] == 5280
    assert a["resources"]["block_rams"] == 2
    assert a["clock"]["fmax_mhz"] == 31.5 and a["clock"]["timing_met"]
    assert a["bitstream"]["bytes"] == 6


def test_analyse_build_fails_on_timing_and_on_overuse(tmp_path):
    d = _fake_build(tmp_path, {"ICESTORM_LC": (150, 5280)}, {"clk": (9.0, 12.0)})
    a = analyse_build(d, family="ice40", device="iCE40UP5K", clock_hz=12e6, tool_failed=False)
    assert not a["clock"]["timing_met"]
    assert any("timing" in f and "9.00 MHz" in f for f in a["failures"])
    (tmp_path / "b2").mkdir()
    d2 = _fake_build(tmp_path / "b2", {"ICESTORM_LC": (6000, 5280)}, {}, bitstream=False)
    a2 = analyse_build(d2, family="ice40", device="iCE40UP5K", clock_hz=12e6, tool_failed=True)
    assert any("does not fit" in f and "6000/5280" in f for f in a2["failures"])
    assert a2["bitstream"] is None


def test_dsp_plan_never_asks_for_more_dsps_than_the_device_has(rng):
    import dataclasses

    prog = Program.compile(_network(rng), HardwareConfig(rows=4, cols=4, batch=2))
    ice, ecp = get_board("icebreaker"), get_board("ulx3s-85f")
    taken = requant_dsps("ice40", prog)
    use, cells = dsp_plan(ice, "ice40", prog, True)
    assert 0 < taken <= 8 and use and cells == max(0, 8 - taken)
    assert dsp_plan(ice, "ice40", prog, None) == (use, cells)  # a board with DSPs uses them by default
    assert dsp_plan(ice, "ice40", prog, False) == (False, 0)
    assert dsp_plan(ecp, "ecp5", prog, None) == (True, 16)  # ECP5: on by default, every cell fits
    assert dsp_plan(ecp, "ecp5", prog, False) == (False, 0)
    small = dataclasses.replace(ecp, dsps=20)  # fewer DSPs than cells: the rest go to logic
    assert dsp_plan(small, "ecp5", prog, None) == (True, 20 - requant_dsps("ecp5", prog))
    # a requantizer that alone needs more than the device has: nothing goes to a DSP
    tiny = dataclasses.replace(ice, dsps=requant_dsps("ice40", prog) - 1)
    assert dsp_plan(tiny, "ice40", prog, True) == (False, 0)


def test_array_maps_exactly_its_dsp_cells_to_dsp_blocks():
    """yosys sees a multiplier only in the DSP cells: the rest stay logic even under -dsp."""
    from colcomb.fpga.cost import synth_components
    from colcomb.hdl.array import SystolicArray

    res = synth_components("ice40", {"a": SystolicArray(rows=2, cols=2, alpha=2, dsp_cells=3)}, dsp=True)
    assert res["a"]["dsps"] == 3
