"""Shadow weights (``--shadow``): a chain's next tile loads into a second register per cell while
the tile before streams. The top in Amaranth's simulator and in Verilator against the golden
model, the cycle model exact (including a batch too short to cover the preload), and the
refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hw_layers import inputs, random_cnn, random_layer

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.hdl.array import SystolicArray
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import cycle_summary, engine_cycles, network_cycles
from colcomb.hdl.network import stages_of
from colcomb.hdl.program import Program
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import write_manifest
from colcomb.sim.amaranth_sim import run_top
from colcomb.sim.runner import simulate


def _chain(seed: int):
    rng = np.random.default_rng(seed)
    return [random_layer(rng, 9, 30, 4, gamma=0.25, name="l0", activation="relu", block_rows=6),
            random_layer(rng, 6, 9, 2, name="l1")]


@pytest.mark.parametrize("cell", ["parallel", "serial"])
@pytest.mark.parametrize(("rows", "cols", "batch"), [(8, 3, 1), (8, 3, 3), (4, 2, 8), (2, 4, 2)])
def test_shadow_weights_are_bit_exact_and_counted(cell, rows, cols, batch):
    """Batch 1 on 8 rows: the preload (9 cycles) outlasts a tile's stream and drain, so the
    PREP waits for it; the model counts that wait too."""
    layers = _chain(rows * 10 + batch)
    x = inputs(np.random.default_rng(batch), 2 * batch + 1, 30)
    prog = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch, shadow=True))
    res = run_top(prog, x)
    assert np.array_equal(res.outputs, run_network(layers, x))
    assert res.cycles == network_cycles(prog, len(x))["total"]
    plain = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch))
    if rows > 2:  # loading 4 or 8 rows costs more than the short PREP saves on the run's first tile
        assert engine_cycles(prog, batch) < engine_cycles(plain, batch)


def test_the_short_prep_only_fetches():
    layers = _chain(0)
    prog = Program.compile(layers, HardwareConfig(rows=8, cols=3, batch=16, shadow=True))
    summary = cycle_summary(prog)
    assert summary["short_prep_cycles"] == 2 < summary["prep_cycles"] == 8 + 1 + 1
    # batch 16 covers the preload: every tile after the first costs short PREP + stream + drain
    plain = Program.compile(layers, HardwareConfig(rows=8, cols=3, batch=16))
    saved = engine_cycles(plain, 16) - engine_cycles(prog, 16)
    assert saved == (len(prog.tiles) - 1) * (cycle_summary(plain)["prep_cycles"] - 2) - 1


def test_shadow_is_refused_where_it_does_not_apply():
    rng = np.random.default_rng(1)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    with pytest.raises(ColcombError, match="chain of matrices"):
        Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=2, shadow=True), stages=stages)
    with pytest.raises(ColcombError, match="true or false"):
        Program.compile(_chain(0), HardwareConfig(rows=2, cols=4, batch=2, shadow="yes"))
    with pytest.raises(ValueError, match="skewed_loads"):
        SystolicArray(rows=2, cols=2, shadow=True, skewed_loads=True)


@pytest.mark.rtl
def test_verilator_runs_shadow_weights_with_wider_beats(tmp_path, capsys):
    layers = _chain(5)
    folder = tmp_path / "manifest"
    write_manifest(layers, folder)
    x = inputs(np.random.default_rng(6), 10, 30)
    res = simulate(folder, HardwareConfig(rows=8, cols=3, batch=4, beat=2, shadow=True), inputs=x, idle=0.2,
        stall=0.2, seed=1)
    assert res.passed
    np.testing.assert_array_equal(res.outputs(), run_network(layers, x))
    steady = simulate(folder, HardwareConfig(rows=8, cols=3, batch=4, beat=2, shadow=True), inputs=x)
    prog = Program.compile(layers, HardwareConfig(rows=8, cols=3, batch=4, beat=2, shadow=True))
    assert steady.cycles == network_cycles(prog, 10)["total"]
    # the command line takes it too
    assert main(["simulate", str(folder), "--rows", "8", "--cols", "3", "--batch", "4", "--shadow",
                 "--vectors", "8"]) == 0
    assert "all equal to the golden model" in capsys.readouterr().out
