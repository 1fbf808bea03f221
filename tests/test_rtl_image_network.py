"""Verilator + cocotb: a CNN manifest runs whole on chip (image words in, outputs out), bit-exact
against the integer CNN path (run_graph: host im2col, pooling, flatten), through the same flow
as ``colcomb simulate`` and ``colcomb generate``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hw_layers import random_cnn

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.packer.graph import run_graph
from colcomb.packer.manifest import write_manifest
from colcomb.sim.runner import simulate

pytestmark = pytest.mark.rtl

ROOT = Path(os.environ.get("COLCOMB_SIM_BUILD", Path(__file__).parents[1] / "build" / "sim"))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """conv 3x3 (1 -> 3) - ReLU - pool 2 - conv 3x3 (3 -> 5, per feature map) - ReLU - flatten -
    linear 45 -> 7 - ReLU - linear 7 -> 4 on 6 x 6 images, alpha 4."""
    rng = np.random.default_rng(11)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6, channels=(3, 5))
    folder = tmp_path_factory.mktemp("cnn") / "packed"
    write_manifest(layers, folder, {"graph": graph, "input_shape": list(shape)})
    return folder, layers, graph, shape


def test_simulate_runs_the_whole_cnn_bit_exact(cnn):
    folder, layers, graph, shape = cnn
    rng = np.random.default_rng(3)
    images = rng.integers(-128, 128, (20, *shape))
    res = simulate(folder, HardwareConfig(rows=4, cols=4, cell="serial", batch=8), inputs=images.reshape(20, -1),
        root=ROOT)
    assert res.passed and res.vectors == 20
    assert np.array_equal(res.outputs(), run_graph(layers, graph, images))
    # 20 images: two full batches of 8 give the steady state
    assert res.cycles_per_inference is not None and res.cycles_per_inference > 0


def test_a_wrong_conv_weight_on_chip_is_caught(cnn):
    folder, layers, _, _ = cnn
    conv2 = layers[1]
    block = conv2.blocks[0]
    weights = block.weights.copy()
    r, c = np.argwhere(weights != 0)[0]
    weights[r, c] = -weights[r, c] if weights[r, c] != -128 else 127
    from dataclasses import replace
    broken = [layers[0], replace(conv2, blocks=(replace(block, weights=weights),)), *layers[2:]]
    res = simulate(folder, HardwareConfig(rows=4, cols=4, cell="serial", batch=8), vectors=8, hardware_layers=broken,
        check=False, root=ROOT)
    assert not res.passed and res.mismatch_count > 0


def test_cli_simulate_and_generate_a_cnn(cnn, tmp_path, capsys):
    folder, *_ = cnn
    assert main(["simulate", str(folder), "--rows", "4", "--cols", "4", "--cell", "serial", "--batch", "8",
                 "--vectors", "16", "--build-dir", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "vectors checked: 16 (64 output words, all equal to the golden model)" in out
    assert main(["generate", str(folder), "--rows", "4", "--cols", "4", "--cell", "serial", "--batch", "8",
                 "--out", str(tmp_path / "gen")]) == 0
    import json
    info = json.loads((tmp_path / "gen" / "colcomb_top.json").read_text())
    assert [s["kind"] for s in info["image_network"]] == ["conv", "conv", "linear", "linear"]
    assert info["in_words"] == 36


def test_the_banked_parallel_array_runs_the_cnn(cnn):
    folder, layers, graph, shape = cnn
    images = np.random.default_rng(5).integers(-128, 128, (12, *shape))
    res = simulate(folder, HardwareConfig(rows=4, cols=4, cell="parallel", batch=4), inputs=images.reshape(12, -1),
        root=ROOT)
    assert res.passed and np.array_equal(res.outputs(), run_graph(layers, graph, images))


def test_a_cnn_on_three_columns_is_refused(cnn):
    folder, *_ = cnn
    with pytest.raises(ColcombError, match="power-of-two column"):
        simulate(folder, HardwareConfig(rows=4, cols=3, cell="serial", batch=8), vectors=4, root=ROOT)


def test_row_runs_of_a_first_layer_combined_per_kernel_row(tmp_path):
    """Conv1 combined per kernel row reads row runs (the input port's shift register) on the
    banked array in Verilator, bit-exact, with input banks only for conv1's packed columns; the
    cycles are the model's."""
    from colcomb.hdl.cycles import network_cycles
    from colcomb.hdl.network import image_network
    from colcomb.hdl.program import Program
    from colcomb.packer.manifest import load_manifest

    rng = np.random.default_rng(21)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6, channels=(4, 5), kernel_rows=True, density=0.7)
    folder = tmp_path / "packed"
    write_manifest(layers, folder, {"graph": graph, "input_shape": list(shape)})
    images = rng.integers(-128, 128, (10, *shape))
    res = simulate(folder, HardwareConfig(rows=4, cols=8, cell="parallel", batch=4, pass_vectors=16),
        inputs=images.reshape(10, -1), root=ROOT)
    assert res.passed and np.array_equal(res.outputs(), run_graph(layers, graph, images))
    net = image_network(load_manifest(folder))
    prog = Program.compile(net.layers, HardwareConfig(rows=4, cols=8, cell="parallel", batch=4, pass_vectors=16),
        stages=net.stages)
    assert prog.input_run == 3 and prog.input_banks < 8
    assert res.cycles == network_cycles(prog, 10)["total"]
