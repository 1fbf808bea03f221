"""The estimate and the design search: cycles as the model gives them, block RAMs and DSPs as yosys
maps them (slow tests run yosys), the search's ranking, pinned fields and refusals, and the
commands around them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hw_layers import random_cnn, random_layer

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.fpga.boards import board_config, get_board
from colcomb.fpga.estimate import compile_for, estimate, estimate_program, predicted_requant_dsps
from colcomb.fpga.explore import UTILIZATION, candidates, explore, pareto_front
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import engine_cycles, network_cycles
from colcomb.hdl.network import stages_of
from colcomb.packer.manifest import write_manifest
from colcomb.packer.pack import PackOptions, pack_layer


def example_layer():
    """The issue's 16 x 64 layer (12 % dense, alpha 8, gamma 0.5), as benchmarks/area.py packs it."""
    r = np.random.default_rng(3)
    w = r.standard_normal((16, 64)) * (r.random((16, 64)) < 0.12)
    return pack_layer("w", w, PackOptions(alpha=8, gamma=0.5, activation="relu"))


@pytest.fixture(scope="module")
def layer_manifest(tmp_path_factory):
    return write_manifest([example_layer()], tmp_path_factory.mktemp("m") / "packed").parent


def _cnn():
    rng = np.random.default_rng(4)
    layers, graph, shape = random_cnn(rng, alpha=4, size=8)
    return layers, stages_of(graph, shape, {la.name: la.shape for la in layers})


@pytest.mark.parametrize("config", [HardwareConfig(rows=4, cols=4, batch=4, board="icebreaker"),
                                    HardwareConfig(rows=4, cols=4, cell="serial", batch=3, pass_vectors=16,
                                                   board="ulx3s-85f")])
def test_cycles_per_inference_is_the_steady_state_of_a_long_stream(config):
    layers, stages = _cnn()
    spec, config = board_config(config)
    prog = compile_for(layers, config, spec, stages)
    est = estimate_program(prog, spec, config)
    done = network_cycles(prog, 8 * prog.batch)["finished"]  # the full model, batch after batch
    assert est.cycles_per_inference == pytest.approx((done[-1] - done[-2]) / prog.batch)
    # one image alone: its words in, the engine on a batch of one, its words out, and the hand-overs
    assert est.cycles_one >= engine_cycles(prog, 1) + prog.input_cycles + prog.out_beats
    assert est.cycles_one < est.cycles_per_inference * prog.batch + prog.input_cycles + 100


def test_the_issues_default_layer_on_the_icebreaker_does_not_fit_and_says_what_binds(layer_manifest):
    """With the old defaults (4 x 4 parallel, no DSPs, batch 128) the layer needs more block RAMs
    than the UP5K has: the estimate says so, naming the resource."""
    est = estimate(layer_manifest, HardwareConfig(rows=4, cols=4, dsp=False, batch=128, board="icebreaker"))
    assert not est.fits
    name, res = est.binding()
    assert res.used > res.available and name in ("block_rams", "logic_cells")
    assert any(name.replace("_", " ") in o for o in est.overflows())
    small = estimate(layer_manifest, HardwareConfig(rows=4, cols=4, cell="serial", batch=1, board="icebreaker"))
    assert small.resources["block_rams"].used < est.resources["block_rams"].used


def test_more_cells_cost_more_logic_and_dsps_replace_logic(layer_manifest):
    base = dict(board="ulx3s-85f", batch=4)
    small = estimate(layer_manifest, HardwareConfig(rows=4, cols=4, dsp=False, **base))
    big = estimate(layer_manifest, HardwareConfig(rows=8, cols=8, dsp=False, **base))
    dsp = estimate(layer_manifest, HardwareConfig(rows=8, cols=8, dsp=True, **base))
    assert big.resources["logic_cells"].used > small.resources["logic_cells"].used
    assert dsp.resources["dsps"].used > 0 == big.resources["dsps"].used
    assert dsp.resources["logic_cells"].used < big.resources["logic_cells"].used


def test_the_search_ranks_only_designs_that_fit_best_first():
    layers, stages = _cnn()
    spec = get_board("icebreaker")
    search = explore(layers, spec, stages=stages, fixed={"rows": 4, "pass_vectors": 64})
    assert search.ranked, "a small CNN fits the iCEBreaker"
    for e in search.ranked:
        assert e.fits and e.resources["logic_cells"].used <= UTILIZATION * e.resources["logic_cells"].available
    speeds = [e.inferences_per_s for e in search.ranked]
    assert speeds == sorted(speeds, reverse=True)
    assert search.best.config.clock_mhz is not None and search.best.config.board == "icebreaker"
    assert all(not c.shadow and c.pass_vectors and c.cols in (2, 4, 8)
               for c in candidates(spec, network=True, data_bits=8, fixed={"cell": "serial"}))
    front = pareto_front(search.ranked)
    cells = [e.resources["logic_cells"].used for e in front]
    assert cells == sorted(cells) and [e.inferences_per_s for e in front] == sorted(e.inferences_per_s for e in front)
    fewest = explore(layers, spec, stages=stages, objective="cells", fixed={"rows": 4, "pass_vectors": 64}).best
    assert fewest.resources["logic_cells"].used == min(e.resources["logic_cells"].used for e in search.ranked)


def test_fixed_fields_are_kept_and_refusals_are_counted():
    rng = np.random.default_rng(2)
    layers = [random_layer(rng, 12, 40, 4, gamma=0.25, name="l0")]
    spec = get_board("ulx3s-85f")
    search = explore(layers, spec, fixed={"cell": "serial", "batch": 4, "clock_mhz": 30.0, "rows": 4})
    assert search.designs and all(e.config.cell == "serial" and e.config.batch == 4 for e in search.designs)
    assert all(e.clock_mhz == 30.0 for e in search.designs)
    with pytest.raises(ColcombError, match="objective must be one of"):
        explore(layers, spec, objective="speed")


def test_synthesize_without_array_flags_refuses_before_any_synthesis_when_nothing_fits(layer_manifest, tmp_path,
                                                                                       capsys):
    big = write_manifest([pack_layer("big", np.random.default_rng(0).standard_normal((64, 256)),
                                     PackOptions(alpha=1))], tmp_path / "big").parent
    # the batch and cell pinned: a quick search of the rest
    assert main(["synthesize", str(big), "--board", "icestick", "--batch", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no design fits the icestick" in err and "no synthesis was run" in err
    assert not (tmp_path / "o").exists()


def test_estimate_and_explore_commands(layer_manifest, tmp_path, capsys):
    assert main(["estimate", str(layer_manifest), "--board", "icebreaker", "--cell", "serial", "--batch", "1",
                 "--cols", "4",
                 "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "logic cells" in out and "cycles per inference" in out
    assert json.loads((tmp_path / "e.json").read_text())["fits"] is True
    assert main(["explore", str(layer_manifest), "--board", "icebreaker", "--batch", "1", "--out", str(tmp_path / "x"),
                 "--top", "3"]) == 0
    best = HardwareConfig.load(tmp_path / "x" / "best.json")
    assert best.board == "icebreaker" and (tmp_path / "x" / "pareto.png").stat().st_size > 1000
    rows = (tmp_path / "x" / "designs.csv").read_text().splitlines()
    assert len(rows) > 100 and all(",1," in row for row in rows[1:])  # every design at the pinned batch
    # the winner's file drives generate
    assert main(["generate", str(layer_manifest), "--config", str(tmp_path / "x" / "best.json"), "--no-lint",
                 "--tb-vectors", "0", "--out", str(tmp_path / "g")]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_requantizer_dsps_as_yosys_maps_them(family):
    from colcomb.fpga.synth import requant_dsps as measured

    layers, stages = _cnn()
    for config in (HardwareConfig(rows=4, cols=4, batch=2), HardwareConfig(rows=16, cols=4, cell="serial", batch=2)):
        prog = compile_for(layers, config, get_board("icebreaker" if family == "ice40" else "ulx3s-85f"), stages)
        assert predicted_requant_dsps(family, prog) == measured(family, prog)


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
@pytest.mark.parametrize("config", [HardwareConfig(rows=4, cols=4, batch=2),
                                    HardwareConfig(rows=8, cols=4, cell="serial", batch=1, pass_vectors=32)])
def test_block_rams_of_the_engine_as_yosys_maps_them(board, config):
    """The estimate's block RAMs of the network's engine (the self-test's ROMs aside) against a yosys
    synthesis of the same top."""
    from colcomb.fpga.cost import synth_components
    from colcomb.fpga.estimate import selftest_memories
    from colcomb.fpga.memory_map import memory_cost
    from colcomb.hdl.top import Top

    layers, stages = _cnn()
    spec, config = board_config(config.replace(board=board))
    prog = compile_for(layers, config, spec, stages)
    est = estimate_program(prog, spec, config)
    selftest = sum(memory_cost(spec.family, depth=d, width=w, rom=True, block_style=False).block_rams
                   for _, d, w in selftest_memories(prog, prog.batch))
    res = synth_components(spec.family, {"top": Top(program=prog)}, dsp=False)["top"]
    assert est.resources["block_rams"].used - selftest == res["block_rams"]


def test_the_cli_offers_the_searchs_objectives():
    from colcomb import cli
    from colcomb.fpga import explore as search

    assert cli.OBJECTIVES == search.OBJECTIVES
