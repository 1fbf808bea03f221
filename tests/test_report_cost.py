"""The cost report: the cycle model against a simulation of the hardware, the dense/combined
figures against each other and against their definitions, the heatmap file, the CLI."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from amaranth.sim import Simulator

from colcomb.cli import main
from colcomb.fpga.cost import cost_report, dense_equivalent, synth_cell
from colcomb.fpga.synth import self_test_inputs
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import network_cycles
from colcomb.hdl.program import Program
from colcomb.hdl.top import Top
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import write_manifest
from colcomb.packer.pack import PackOptions, pack_layer


def _layers(rng, shapes, alpha, density=0.2):
    out = []
    for i, (r, c) in enumerate(shapes):
        w = rng.standard_normal((r, c)) * (rng.random((r, c)) < density)
        out.append(pack_layer(f"fc{i}", w, PackOptions(alpha=alpha, activation="relu" if i < len(shapes) - 1
                                                       else "none")))
    return out


def _simulate_top(prog: Program, x: np.ndarray) -> tuple[int, np.ndarray]:
    """Stream ``x`` into Top with an always-ready consumer; return the cycles until the last
    output word and the outputs."""
    dut = Top(program=prog)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got: list[int] = []
    state = {}
    words = [int(v) for v in x.ravel()]

    async def bench(ctx):
        k = cycles = 0
        ctx.set(dut.o.ready, 1)
        while len(got) < x.shape[0] * prog.out_words and cycles < 100_000:
            if k < len(words):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"data": words[k], "last": k == len(words) - 1})
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_valid, i_ready, o_valid, o_data = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload.data)
            cycles += 1
            if i_valid and i_ready:
                k += 1
            if o_valid:
                got.append(o_data)
        state["cycles"] = cycles

    sim.add_testbench(bench)
    sim.run()
    return state["cycles"], np.array(got).reshape(x.shape[0], prog.out_words)


@pytest.mark.parametrize(
    "shapes, alpha, rows, cols, batch, vectors, cell",
    [
        ([(9, 14), (5, 9)], 3, 4, 3, 4, 4, "parallel"),
        ([(9, 14), (5, 9)], 3, 4, 3, 4, 6, "parallel"),  # two batches, the second partial
        ([(7, 20), (6, 7), (3, 6)], 4, 2, 5, 3, 3, "parallel"),
        ([(12, 8)], 1, 5, 2, 2, 5, "parallel"),
        ([(9, 14), (5, 9)], 3, 4, 3, 4, 6, "serial"),
        ([(12, 8)], 1, 5, 2, 2, 5, "serial"),
    ],
)
def test_cycle_model_matches_simulation(rng, shapes, alpha, rows, cols, batch, vectors, cell):
    layers = _layers(rng, shapes, alpha, density=0.3)
    prog = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch))
    x = self_test_inputs(layers, vectors, 1)
    cycles, y = _simulate_top(prog, x)
    assert np.array_equal(y, run_network(layers, x))
    assert network_cycles(prog, vectors)["total"] == cycles


def test_dense_equivalent_computes_the_same(rng):
    (layer,) = _layers(rng, [(10, 30)], 4)
    dense = dense_equivalent(layer)
    assert dense.alpha == 1 and dense.packed_columns == layer.cols
    x = self_test_inputs([layer], 6, 3)
    assert np.array_equal(run_network([dense], x), run_network([layer], x))


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_cost_report_numbers_are_consistent(rng, tmp_path):
    layers = _layers(rng, [(16, 48), (10, 16)], 4, density=0.15)
    write_manifest(layers, tmp_path / "m")
    rep = cost_report(tmp_path / "m", HardwareConfig(rows=4, cols=4, batch=4, clock_mhz=10.0), out=tmp_path / "r",
        synth=False)
    d, c = rep["dense"], rep["combined"]
    assert d["cells"] == sum(la.rows * la.cols for la in layers)
    assert c["cells"] == sum(b.rows * b.packed_columns for la in layers for b in la.blocks)
    assert c["cells"] < d["cells"]  # a sparse layer packs into fewer cells
    assert c["tiles"] < d["tiles"] and c["engine_cycles"] < d["engine_cycles"]
    assert rep["comparison"]["speedup"] == pytest.approx(d["engine_cycles"] / c["engine_cycles"])
    macs = sum(la.rows * la.cols for la in layers)
    assert rep["dense_macs_per_vector"] == macs
    for side in (d, c):
        assert side["effective_macs_per_s"] == pytest.approx(macs * 4 / (side["engine_cycles"] / 10e6))
    for row, la in zip(rep["layers"], layers, strict=True):
        assert row["combined"]["columns"] == la.packed_columns
        assert row["nonzero_weights"] == np.count_nonzero(la.dense_int())
    on_disk = json.loads((tmp_path / "r" / "cost.json").read_text())
    assert on_disk["combined"]["cells"] == c["cells"]
    assert "| matrix cells" in (tmp_path / "r" / "cost.md").read_text()
    w, h = _png_size(tmp_path / "r" / "heatmap.png")
    assert w > 200 and h > 200
    import matplotlib.image

    img = matplotlib.image.imread(tmp_path / "r" / "heatmap.png")
    assert img.shape[:2] == (h, w)


def test_cell_synthesis_prices_the_multiplexer():
    costs = synth_cell("ice40", [1, 4])
    assert costs[4]["luts"] > costs[1]["luts"]  # the 4:1 multiplexer and the select
    # the lanes are broadcast down the column, not registered per cell: alpha adds only the
    # 2-bit select register (weight 8 + select 2 + a 19-bit partial sum of an 8-wide row + the
    # logic multiplier's 7 bits of recoded weight digits, hdl/multiplier.py)
    assert costs[4]["flip_flops"] - costs[1]["flip_flops"] == 2
    assert costs[4]["flip_flops"] == 8 + 2 + 19 + 7


def test_report_cli_writes_the_files(rng, tmp_path, capsys):
    layers = _layers(rng, [(8, 24)], 3)
    write_manifest(layers, tmp_path / "m")
    rc = main(["report", str(tmp_path / "m"), "--rows", "4", "--cols", "2", "--batch", "2", "--no-synth",
               "--out", str(tmp_path / "r")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "column-combined" in out and "cost.json" in out
    for name in ("cost.json", "cost.md", "heatmap.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    assert main(["report", str(tmp_path / "m"), "--board", "zx81", "--out", str(tmp_path / "r2")]) == 2
    assert "unknown board 'zx81'" in capsys.readouterr().err


def test_report_of_a_dsp_build_follows_the_synthesis_report(rng, tmp_path, capsys):
    """An ECP5 dense cell with a DSP multiplier takes no LUT: the report prices both arrays
    with DSPs, as the synthesis report built them, and gives no LUT ratio rather than failing."""
    layers = _layers(rng, [(8, 24)], 3)
    write_manifest(layers, tmp_path / "m")
    srep = {"board": "ulx3s-85f", "array": {"rows": 2, "cols": 2, "batch": 2, "cell": "parallel"},
            "options": {"dsp": True}, "clock": {"fmax_mhz": 70.0}}
    (tmp_path / "report.json").write_text(json.dumps(srep))
    assert main(["report", str(tmp_path / "m"), "--synth-report", str(tmp_path / "report.json"),
                 "--out", str(tmp_path / "r")]) == 0
    rep = json.loads((tmp_path / "r" / "cost.json").read_text())
    assert rep["cell_cost"]["dsp"] is True and "DSP blocks" in rep["cell_cost"]["source"]
    assert rep["dense"]["luts_per_cell"] == 0 and rep["combined"]["luts_per_cell"] > 0  # the multiplexer
    assert "lut_per_cell_ratio" not in rep["comparison"]
    assert rep["comparison"]["macs_per_s_per_array_lut"]["dense"] is None


def test_report_of_a_cnn_build_runs_its_passes(tmp_path, capsys):
    """A CNN synthesized with --pass-vectors is priced with its own passes: the report's cycles
    are the cycle model's for that pass length, not the default's."""
    from hw_layers import random_cnn

    from colcomb.hdl.network import image_network
    from colcomb.packer.manifest import load_manifest

    layers, graph, shape = random_cnn(np.random.default_rng(11), alpha=4, size=6, channels=(3, 5))
    write_manifest(layers, tmp_path / "m", {"graph": graph, "input_shape": list(shape)})
    srep = {"board": "ulx3s-85f", "array": {"rows": 4, "cols": 2, "batch": 2, "cell": "parallel", "pass_vectors": 8},
            "options": {"dsp": True}, "clock": {"fmax_mhz": 70.0}}
    (tmp_path / "report.json").write_text(json.dumps(srep))
    assert main(["report", str(tmp_path / "m"), "--synth-report", str(tmp_path / "report.json"), "--no-synth",
                 "--out", str(tmp_path / "r")]) == 0
    rep = json.loads((tmp_path / "r" / "cost.json").read_text())
    net = image_network(load_manifest(tmp_path / "m"))
    cycles = {p: network_cycles(Program.compile(net.layers, HardwareConfig(rows=4, cols=2, batch=2, pass_vectors=p),
        stages=net.stages), 2)["engine"] for p in (8, 256)}
    assert cycles[8] > cycles[256] and rep["combined"]["engine_cycles"] == cycles[8]


def test_report_of_a_three_stage_requantizer_build_counts_its_stage(tmp_path):
    """A build with --requant-stages 3 is priced with its own pipeline: one cycle more per layer
    end than the default's."""
    from hw_layers import random_layer

    rng = np.random.default_rng(1)
    layers = [random_layer(rng, 9, 30, 4, gamma=0.25, name="l0", activation="relu"),
              random_layer(rng, 6, 9, 2, name="l1")]
    write_manifest(layers, tmp_path / "m")
    srep = {"board": "icebreaker", "array": {"rows": 4, "cols": 4, "batch": 2, "cell": "parallel",
                                             "requant_stages": 3},
            "options": {"dsp": False}, "clock": {"fmax_mhz": 20.0}}
    (tmp_path / "report.json").write_text(json.dumps(srep))
    assert main(["report", str(tmp_path / "m"), "--synth-report", str(tmp_path / "report.json"), "--no-synth",
                 "--out", str(tmp_path / "r")]) == 0
    rep = json.loads((tmp_path / "r" / "cost.json").read_text())
    cycles = {k: network_cycles(Program.compile(layers, HardwareConfig(rows=4, cols=4, batch=2, requant_stages=k)),
                                2)["engine"] for k in (2, 3)}
    assert cycles[3] > cycles[2] and rep["combined"]["engine_cycles"] == cycles[3]
