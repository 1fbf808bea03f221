"""X-safety: after reset the outputs depend on nothing uninitialized. The cocotb bench runs a
Verilator build with --x-assign unique --x-initial unique (every memory without initial contents
and every explicit x of the netlist random) under two seeds; both must give the golden model's
words. A probe checks that the randomization is really in effect (the test could fail)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hw_layers import random_layer

from colcomb.hdl.config import HardwareConfig
from colcomb.packer.manifest import write_manifest
from colcomb.sim.runner import X_RANDOM_BUILD_ARGS, build, random_inputs, run
from colcomb.sim.testbench_run import X_RANDOM_ARGS, build_verilator, run_verilator

pytestmark = pytest.mark.rtl

# the builds are cached by design like test_rtl_network's: a rerun of the suite reuses them
ROOT = Path(os.environ.get("COLCOMB_SIM_BUILD", Path(__file__).parents[1] / "build" / "sim"))


@pytest.fixture(scope="module")
def x_random_network(tmp_path_factory):
    """Two chained layers on a 3 x 3 array (alpha 8 with row blocks, then alpha 2), built with
    randomized x."""
    rng = np.random.default_rng(77)
    layers = [
        random_layer(rng, 7, 14, 8, gamma=0.25, density=0.3, name="l0", block_rows=4,
                     activation="relu"),
        random_layer(rng, 4, 7, 2, name="l1"),
    ]
    root = tmp_path_factory.mktemp("xsafe")
    write_manifest(layers, root / "manifest")
    built = build(layers, HardwareConfig(rows=3, cols=3, batch=4), root=ROOT, x_random=True)
    return root / "manifest", built, layers


def test_two_x_seeds_give_the_golden_outputs(x_random_network):
    manifest, built, layers = x_random_network
    assert built.x_random
    assert (built.dir / ".built").read_text().count("unique") == len(X_RANDOM_BUILD_ARGS) // 2
    x = random_inputs(layers[0], 9, seed=5)  # batches of 4, 4, 1
    results = [run(built, manifest, x, x_seed=seed, check=False) for seed in (1, 2)]
    for res in results:
        assert res.passed and res.mismatch_count == 0 and res.checked == 9 * 4, res.summary
    assert results[0].cycles == results[1].cycles  # not even the timing depends on x


def test_x_randomization_is_in_effect(tmp_path):
    """An uninitialized register, read through the same build options and plusargs, differs
    between two seeds: the check above would see a design that read one."""
    (tmp_path / "probe.v").write_text(
        "module probe(output [31:0] value);\n  reg [31:0] r;\n  assign value = r;\nendmodule\n")
    (tmp_path / "probe.vlt").write_text("`verilator_config\n")
    (tmp_path / "tb_probe.v").write_text(
        "module tb_probe;\n  wire [31:0] value;\n  probe dut(.value(value));\n"
        "  initial begin\n    #1 $display(\"PASS: %h\", value);\n    $finish;\n  end\nendmodule\n")
    binary = build_verilator(tmp_path, "probe", args=X_RANDOM_ARGS)
    values = {run_verilator(tmp_path, binary, plusargs=[f"+verilator+seed+{s}", "+verilator+rand+reset+2"]).verdict
              for s in (1, 2)}
    assert len(values) == 2, values
