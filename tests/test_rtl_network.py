"""Verilator + cocotb: generated Verilog bit-exact against the golden model.

Each distinct design is built once (module-scoped fixtures; the runner also caches builds by the
hash of their Verilog under build/sim) and several stimuli run through the same build.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hw_layers import random_layer

from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import stream_cycles
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import write_manifest
from colcomb.sim.runner import build, random_inputs, run, watchdog

pytestmark = pytest.mark.rtl

ROOT = Path(os.environ.get("COLCOMB_SIM_BUILD", Path(__file__).parents[1] / "build" / "sim"))


def _design(tmp_path_factory, name, layers, rows, cols, batch, cell="parallel"):
    folder = tmp_path_factory.mktemp(name) / "manifest"
    write_manifest(layers, folder)
    return folder, build(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch), root=ROOT), layers


def _network_layers():
    rng = np.random.default_rng(2024)
    layers = [
        random_layer(rng, 10, 20, 8, gamma=0.25, density=0.3, name="l0", block_rows=6,
                     activation="relu"),
        random_layer(rng, 9, 10, 2, gamma=0.0, name="l1", activation="relu6"),
        random_layer(rng, 3, 9, 4, gamma=0.2, name="l2"),
    ]
    return layers


@pytest.fixture(scope="module", params=["parallel", "serial"])
def network(tmp_path_factory, request):
    """Three chained layers on a 3 x 3 array: alpha 8 / 2 / 4, gamma > 0 and 0, row blocks,
    tiling in both directions, a last layer smaller than the array, relu/relu6/none; built with
    each cell kind."""
    return _design(tmp_path_factory, "network", _network_layers(), 3, 3, 8, cell=request.param)


@pytest.fixture(scope="module")
def dense_narrow(tmp_path_factory):
    """alpha = 1 (the plain dense cell, no multiplexer) with 4-bit weights, 6-bit data and a
    12-bit accumulator filled close to its limit; 4 packed columns on a 4 x 4 array."""
    rng = np.random.default_rng(7)
    w = rng.integers(-8, 8, (4, 6))
    w[:, [1, 4]] = 0
    w[0] = [-8, 0, -8, -8, 0, -8]  # 4 x 8 x 32 = 1024 of the accumulator's 2047
    layer = random_layer(rng, 4, 6, 1, bits=4, data_bits=6, acc_bits=12, weights=w,
                         bias=np.array([1000, -900, 3, -7]), shift=3)
    assert layer.packed_columns == 4
    return _design(tmp_path_factory, "dense", [layer], 4, 4, 4)


@pytest.fixture(scope="module", params=["parallel", "serial"])
def extremes(tmp_path_factory, request):
    """Saturation: weights only -128/127, multiplier 1, shift 0, biases near the limits; then a
    layer with shift 1 where exact halves must round up."""
    rng = np.random.default_rng(99)
    w0 = rng.choice([-128, 127], (8, 16)) * (rng.random((8, 16)) < 0.6)
    l0 = random_layer(rng, 8, 16, 4, gamma=0.5, weights=w0, shift=0,
                      multiplier=np.ones(8, np.int64),
                      bias=np.array([2**20, -2**20, 0, 5, -5, 2**24, -2**24, 1]), name="sat")
    w1 = rng.choice([-1, 1], (5, 8)) * (rng.random((5, 8)) < 0.5)
    l1 = random_layer(rng, 5, 8, 2, weights=w1, shift=1, multiplier=np.ones(5, np.int64),
                      bias=np.array([1, 0, -1, 3, -3]), name="round", activation="relu6")
    return _design(tmp_path_factory, "extremes", [l0, l1], 3, 3, 4, cell=request.param)


def test_network_random_batches(network):
    manifest, built, layers = network
    x = random_inputs(layers[0], 21, seed=1)  # 3 batches of 8, 8, 5
    res = run(built, manifest, x)
    assert res.passed and res.checked == 21 * 3 and res.mismatch_count == 0
    d = built.design  # three batches in flight at once: the model's recurrence predicts them
    assert res.cycles == stream_cycles(d["engine_cycles"], d["in_cycles_per_vector"], d["out_words"], 21)["total"]
    # the result JSON names the manifest (path, sha256 of its bytes) and the run's parameters
    saved = json.loads((res.run_dir / "result.json").read_text())["provenance"]
    assert saved == res.provenance and saved["layers"] == ["l0", "l1", "l2"]
    assert saved["manifest_sha256"] == hashlib.sha256(
        (manifest / "manifest.json").read_bytes()).hexdigest()
    assert saved["parameters"]["vectors"] == 21 and saved["parameters"]["build"] == built.key
    # the golden outputs are not trivial (not all clamped to one value)
    assert len(np.unique(run_network(layers, x))) > 5


def test_verilator_cycles_match_the_cycle_model(network):
    """The cycle model (hdl/cycles.py, from the stages' latencies), read back from the design
    JSON as the simulation watchdog reads it, predicts the cycles Verilator measures."""
    manifest, built, layers = network
    d = built.design
    for vectors in (1, 8, 13):  # one vector, one full batch, a full and a partial batch
        res = run(built, manifest, random_inputs(layers[0], vectors, seed=vectors))
        model = stream_cycles(d["engine_cycles"], d["in_cycles_per_vector"], d["out_words"], vectors)
        # the bench counts the cycles from the first input word to the last output word, both in
        assert res.cycles == model["total"]
        assert model["total"] < watchdog(d, vectors) < 10 * model["total"] + 1000


def test_network_with_idle_inputs_and_backpressure(network):
    manifest, built, layers = network
    x = random_inputs(layers[0], 9, seed=2)
    res = run(built, manifest, x, idle=0.3, stall=0.4, seed=5)
    assert res.passed and res.vectors == 9


def test_network_single_vector(network):
    manifest, built, layers = network
    res = run(built, manifest, random_inputs(layers[0], 1, seed=3))
    assert res.passed and res.checked == 3


def test_dense_narrow_widths(dense_narrow):
    manifest, built, layers = dense_narrow
    x = random_inputs(layers[0], 10, seed=4)
    assert x.min() == -32 and x.max() == 31
    res = run(built, manifest, x)
    assert res.passed and res.checked == 40


def test_extremes_saturate_and_round(extremes):
    manifest, built, layers = extremes
    x = random_inputs(layers[0], 12, seed=6)
    y0 = run_network(layers[:1], x)
    assert (y0 == 127).any() and (y0 == -128).any()  # the stimulus reaches both clamps
    res = run(built, manifest, x)
    assert res.passed and res.checked == 12 * 5
