"""Bad input to every step gives one clear error line (exit 2) and leaves no output behind."""

from __future__ import annotations

import numpy as np
import pytest

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig


def _sparse(rng, shape, density):
    return rng.standard_normal(shape) * (rng.random(shape) < density)


@pytest.fixture
def packed(tmp_path, rng):
    np.save(tmp_path / "w.npy", _sparse(rng, (4, 6), 0.5))
    assert main(["pack", str(tmp_path / "w.npy"), "--alpha", "2", "--out", str(tmp_path / "p")]) == 0
    return tmp_path / "p"


def _one_error(capsys, message):
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err, err
    assert message in err, err


def test_a_bias_beyond_the_accumulator_is_refused_not_wrapped(tmp_path, rng, capsys):
    for bias, message in ((1e30, "does not fit any accumulator"), (1e6, "does not fit the 32-bit")):
        np.savez(tmp_path / "m.npz", fc=rng.standard_normal((4, 4)), **{"fc.bias": np.full(4, bias)})
        assert main(["pack", str(tmp_path / "m.npz"), "--out", str(tmp_path / "o")]) == 2
        _one_error(capsys, message)
        assert not (tmp_path / "o").exists()


def test_alpha_beyond_the_limit_is_refused(tmp_path, rng, capsys):
    np.save(tmp_path / "w.npy", _sparse(rng, (4, 6), 0.5))
    assert main(["pack", str(tmp_path / "w.npy"), "--alpha", "5000", "--out", str(tmp_path / "o")]) == 2
    _one_error(capsys, "alpha must be at most 1024")


def test_pack_out_under_a_file(tmp_path, rng, capsys):
    np.save(tmp_path / "w.npy", _sparse(rng, (4, 6), 0.5))
    (tmp_path / "afile").write_text("x")
    assert main(["pack", str(tmp_path / "w.npy"), "--out", str(tmp_path / "afile" / "o")]) == 2
    _one_error(capsys, "cannot create")


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((0, 6), np.int64), "holds no input vectors"),
        (np.full((1, 6), "a"), "expected integers"),
        (np.full((1, 6), 2**64 - 1, np.uint64), "8-bit data"),
    ],
)
def test_golden_bad_inputs(packed, tmp_path, capsys, x, message):
    np.save(tmp_path / "x.npy", x)
    assert main(["golden", str(packed), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 2
    _one_error(capsys, message)
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("out", ["afile/y.npy", "folder"])
def test_golden_out_that_cannot_be_written(packed, tmp_path, capsys, out):
    np.save(tmp_path / "x.npy", np.ones((1, 6), np.int64))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    assert main(["golden", str(packed), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / out)]) == 2
    _one_error(capsys, "error:")


def test_generate_bad_top_and_out_under_a_file_leave_nothing(packed, tmp_path, capsys):
    assert main(["generate", str(packed), "--rows", "2", "--cols", "2", "--no-lint", "--top", "bad name",
                 "--out", str(tmp_path / "g")]) == 2
    _one_error(capsys, "Verilog identifier")
    assert not (tmp_path / "g").exists()
    (tmp_path / "afile").write_text("x")
    assert main(["generate", str(packed), "--rows", "2", "--cols", "2", "--no-lint",
                 "--out", str(tmp_path / "afile" / "g")]) == 2
    _one_error(capsys, "cannot create")


def test_simulate_checks_its_inputs_before_building(packed, tmp_path, monkeypatch):
    from colcomb.sim import runner

    monkeypatch.setattr(runner, "build", lambda *a, **k: pytest.fail("built despite bad inputs"))
    for x in (np.full((1, 6), 2**64 - 1, np.uint64), np.full((1, 6), 1.5), np.full((1, 6), "a")):
        with pytest.raises(ColcombError, match=r"8-bit data|integers"):
            runner.simulate(packed, HardwareConfig(rows=2, cols=2), inputs=x)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--clock", "inf"], "clock_mhz must be a frequency in MHz above 0"),
        (["--clock", "1000"], "PLL"),
        (["--inputs", "STR"], "expected integers"),
        (["--layer", "nope"], "no layer 'nope'"),
        (["--pass-vectors", "512"], "passes of 512 vectors are for a CNN run whole on chip"),
    ],
)
def test_synthesize_refusals_leave_no_output(packed, tmp_path, capsys, extra, message):
    np.save(tmp_path / "s.npy", np.full((1, 6), "a"))
    extra = [str(tmp_path / "s.npy") if e == "STR" else e for e in extra]
    assert main(["synthesize", str(packed), "--board", "icebreaker", "--rows", "2", "--cols", "2",
                 "--out", str(tmp_path / "s"), *extra]) == 2
    _one_error(capsys, message)
    assert not (tmp_path / "s").exists()


def test_synthesize_refuses_an_unknown_router_before_writing(packed, tmp_path):
    from colcomb.fpga.synth import synthesize

    with pytest.raises(ColcombError, match="router must be one of router1, router2, not 'fast'"):
        synthesize(packed, HardwareConfig(rows=2, cols=2, board="icebreaker"), out=tmp_path / "s", router="fast")
    assert not (tmp_path / "s").exists()


def test_report_infinite_clock(packed, tmp_path, capsys):
    assert main(["report", str(packed), "--no-synth", "--clock", "inf", "--out", str(tmp_path / "r")]) == 2
    _one_error(capsys, "clock_mhz must be a frequency in MHz above 0")


def test_demo_negative_epochs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--epochs", "-1", "--out", str(tmp_path / "d")])
    assert exc.value.code == 2
    _one_error(capsys, "--epochs: -1 must be from 0 to 10,000")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(("extra", "message"), [(["--bits", "1"], "bits must be"), (["--lr", "nan"], "--lr")])
def test_train_refuses_bad_numbers_before_training(tmp_path, capsys, monkeypatch, extra, message):
    from colcomb.train import run

    monkeypatch.setattr(run, "load_data", lambda cfg: pytest.fail("trained despite bad options"))
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--out", str(tmp_path / "t"), *extra]) == 2
    _one_error(capsys, message)
    assert not (tmp_path / "t").exists()
