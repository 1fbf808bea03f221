"""The whole accelerator in Amaranth's simulator against the golden model (fast, no Verilator)."""

from __future__ import annotations

import numpy as np
import pytest
from hw_layers import inputs, random_layer

from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import tile_cycles
from colcomb.hdl.program import Program, dense_equivalent
from colcomb.packer.golden import run_network
from colcomb.sim.amaranth_sim import run_top


@pytest.mark.parametrize("alpha", [1, 2, 4, 8])
@pytest.mark.parametrize("gamma", [0.0, 0.4])
@pytest.mark.parametrize(
    ("shape", "array"),
    [((3, 5), (4, 4)), ((4, 12), (4, 3)), ((11, 26), (3, 4))],
    ids=["smaller", "fits-rows", "tiled"],
)
def test_layer_bit_exact(alpha, gamma, shape, array):
    rng = np.random.default_rng(hash((alpha, gamma, shape)) % 2**32)
    layer = random_layer(rng, *shape, alpha, gamma=gamma, density=0.35, block_rows=6)
    x = inputs(rng, 5, shape[1])
    res = run_top([layer], x, HardwareConfig(rows=array[0], cols=array[1], batch=3))
    assert np.array_equal(res.outputs, run_network([layer], x))
    assert res.lasts.count(True) == 2  # batches of 3 + 2 vectors


@pytest.mark.parametrize(("alpha", "array"), [(1, (5, 2)), (1, (8, 1)), (2, (6, 2)), (1, (4, 2))])
def test_tall_arrays_load_every_row_before_streaming(alpha, array):
    """rows >= cols x alpha + 2: loading the cells, not fetching the lanes, sets the PREP length
    (the first vector of each batch once met row 0's previous weights)."""
    rng = np.random.default_rng(alpha * 100 + array[0])
    layer = random_layer(rng, 12, 8, alpha, density=0.6)
    x = inputs(rng, 6, 8)
    res = run_top([layer], x, HardwareConfig(rows=array[0], cols=array[1], batch=2))
    assert np.array_equal(res.outputs, run_network([layer], x))


def test_shape_equal_to_array_dense_with_narrow_widths():
    rng = np.random.default_rng(5)
    w = rng.integers(-8, 8, (4, 6))
    w[:, [1, 4]] = 0  # 4 nonzero columns -> 4 packed columns on a 4 x 4 array
    w[w[:, 0] == 0, 0] = -8
    layer = random_layer(rng, 4, 6, 1, bits=4, data_bits=6, acc_bits=12, weights=w)
    assert layer.packed_columns == 4
    x = inputs(rng, 4, 6, data_bits=6)
    res = run_top([layer], x, HardwareConfig(rows=4, cols=4, batch=4))
    assert np.array_equal(res.outputs, run_network([layer], x))


def test_network_keeps_activations_on_chip():
    rng = np.random.default_rng(11)
    layers = [
        random_layer(rng, 9, 14, 4, gamma=0.25, name="l0", activation="relu"),
        random_layer(rng, 6, 9, 2, name="l1", activation="relu6"),
        random_layer(rng, 3, 6, 8, gamma=0.5, name="l2"),
    ]
    x = inputs(rng, 7, 14)
    res = run_top(layers, x, HardwareConfig(rows=2, cols=3, batch=4))
    assert np.array_equal(res.outputs, run_network(layers, x))


def test_column_combining_takes_fewer_cycles_than_dense():
    rng = np.random.default_rng(2)
    layer = random_layer(rng, 8, 32, 8, gamma=0.5, density=0.15)
    dense = dense_equivalent(layer)
    assert layer.packed_columns < dense.packed_columns
    x = inputs(rng, 8, 32)
    packed = run_top([layer], x, HardwareConfig(rows=4, cols=4, batch=8))
    plain = run_top([dense], x, HardwareConfig(rows=4, cols=4, batch=8))
    assert np.array_equal(packed.outputs, plain.outputs)
    assert np.array_equal(packed.outputs, run_network([layer], x))
    assert packed.compute_cycles < plain.compute_cycles
    # one vector per cycle within a tile: cycles follow the tile count
    for prog, res in ((Program.compile([layer], HardwareConfig(rows=4, cols=4, batch=8)), packed),
                      (Program.compile([dense], HardwareConfig(rows=4, cols=4, batch=8)), plain)):
        engine = len(prog.tiles) * tile_cycles(prog, 8)
        assert engine <= res.compute_cycles < engine + 20  # + the post-array pipeline


def test_block_without_packed_columns_writes_its_rows():
    rng = np.random.default_rng(4)
    w = rng.integers(-128, 128, (6, 5))
    w[3:] = 0  # the second row block is empty: only the bias reaches its outputs
    layer = random_layer(rng, 6, 5, 2, weights=w, block_rows=3, shift=0,
                         multiplier=np.ones(6, np.int64), bias=np.arange(-3, 3) * 7)
    assert layer.blocks[1].packed_columns == 0
    x = inputs(rng, 3, 5)
    res = run_top([layer], x, HardwareConfig(rows=2, cols=2, batch=4))
    assert np.array_equal(res.outputs, run_network([layer], x))


@pytest.mark.parametrize("array", [(2, 3), (4, 4)])
def test_one_hot_select_is_bit_exact(array):
    """The cells' one-hot select (what synthesize builds) computes what the lane index does."""
    rng = np.random.default_rng(array[0] * 10 + array[1])
    layers = [random_layer(rng, 9, 14, 4, gamma=0.25, name="l0", activation="relu", block_rows=4),
              random_layer(rng, 3, 9, 8, gamma=0.5, name="l1")]
    x = inputs(rng, 7, 14)
    prog = Program.compile(layers, HardwareConfig(rows=array[0], cols=array[1], batch=4), onehot=True)
    assert prog.onehot and prog.summary()["select"] == "one-hot"
    res = run_top(prog, x)
    assert np.array_equal(res.outputs, run_network(layers, x))


@pytest.mark.parametrize(("array", "parts", "column_words"),
                         [((4, 4), None, True), ((3, 2), None, True), ((2, 1), None, True),
                          ((4, 3), None, False), ((4, 4), 2, False)],
                         ids=["4x4-columns", "3x2-columns", "2x1-columns", "4x3-parts", "4x4-2-parts"])
def test_serial_array_bit_exact_with_each_lane_layout(array, parts, column_words):
    """The serial array, through the whole top, with column words (a lane memory word per
    column, read staggered like the skew) and with gathered parts; a network whose later layers
    read the lane memory; the cycles equal the model's."""
    from colcomb.hdl.cycles import network_cycles

    rng = np.random.default_rng(sum(array) * 7 + (parts or 0))
    layers = [
        random_layer(rng, 9, 14, 4, gamma=0.25, name="l0", activation="relu"),
        random_layer(rng, 5, 9, 8, gamma=0.5, name="l1"),
    ]
    kw = {} if parts is None else {"parts": parts}
    prog = Program.compile(layers, HardwareConfig(rows=array[0], cols=array[1], cell="serial", batch=3), **kw)
    assert prog.column_words == column_words
    x = inputs(rng, 5, 14)
    res = run_top(prog, x)
    assert np.array_equal(res.outputs, run_network(layers, x))
    assert res.cycles == network_cycles(prog, 5)["total"]


@pytest.mark.parametrize("cell", ["parallel", "serial"])
def test_outputs_spread_over_parts_and_tiles_come_back_in_order(cell):
    """Dense (alpha 1) on 2 x 2: the output memory holds one or two words per tile (two parts
    on the serial array), so 12 outputs span six tiles: the sender walks slots, parts, tiles and
    vectors in order."""
    rng = np.random.default_rng(12)
    layer = random_layer(rng, 12, 10, 1, density=0.7)
    prog = Program.compile([layer], HardwareConfig(rows=2, cols=2, cell=cell, batch=3))
    assert prog.lanes_per_part * prog.parts == 2 and prog.out_words == 12
    x = inputs(rng, 5, 10)
    res = run_top(prog, x, HardwareConfig(rows=2, cols=2))
    assert np.array_equal(res.outputs, run_network([layer], x))


@pytest.mark.parametrize(
    ("rows", "cols", "data_bits", "batch", "vectors"),
    [(9, 2, 8, 3, 5), (12, 4, 8, 2, 3), (5, 2, 4, 2, 3), (3, 4, 6, 3, 4), (2, 8, 6, 2, 3),
     (3, 1, 5, 1, 3), (4, 2, 3, 1, 2)],
    ids=["rows9-lanes2", "rows12-lanes2", "db4-lanes2", "db6-columns", "db6-gathered",
         "cols1-batch1", "db3-batch1"])
def test_serial_shapes_bit_exact(rows, cols, data_bits, batch, vectors):
    """The serial array where the rows need more than one shared requantizer lane (rows >
    data_bits, the last coefficient word padded), data widths that are not powers of two, one
    column, batch 1; bit-exact and the cycles as the model says."""
    from colcomb.hdl.cycles import network_cycles

    rng = np.random.default_rng(rows * 100 + cols * 10 + data_bits)
    layers = [
        random_layer(rng, 11, 10, 2, gamma=0.25, name="l0", activation="relu", data_bits=data_bits, bits=6),
        random_layer(rng, 7, 11, 2, gamma=0.5, name="l1", data_bits=data_bits, bits=6),
    ]
    prog = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, cell="serial", batch=batch))
    assert prog.requant_lanes == -(-rows // data_bits)
    x = inputs(rng, vectors, 10, data_bits=data_bits)
    res = run_top(prog, x, HardwareConfig(rows=rows, cols=cols))
    assert np.array_equal(res.outputs, run_network(layers, x))
    assert res.cycles == network_cycles(prog, vectors)["total"]


@pytest.mark.parametrize("cell", ["parallel", "serial"])
@pytest.mark.parametrize(("rows", "cols", "batch", "shadow"), [(8, 3, 1, False), (8, 3, 3, True), (4, 2, 8, False)])
def test_a_three_stage_requantizer_is_bit_exact_and_counted(cell, rows, cols, batch, shadow):
    """``requant_stages=3``: one cycle more per layer flush, in the cycle model too. Short tiles
    on 8 rows leave a vector in the requantizer's middle stage as the layer ends: the end-of-layer
    wait must see it (it did not when ``busy`` covered two stages)."""
    from colcomb.hdl.cycles import network_cycles

    rng = np.random.default_rng(83)
    layers = [random_layer(rng, 9, 30, 4, gamma=0.25, name="l0", activation="relu", block_rows=6),
              random_layer(rng, 6, 9, 2, name="l1")]
    x = inputs(np.random.default_rng(batch), 2 * batch + 1, 30)
    prog = Program.compile(layers,
        HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch, requant_stages=3, shadow=shadow))
    res = run_top(prog, x, HardwareConfig(rows=rows, cols=cols))
    assert np.array_equal(res.outputs, run_network(layers, x))
    assert res.cycles == network_cycles(prog, len(x))["total"]
    two = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch, shadow=shadow))
    assert network_cycles(prog, len(x))["engine"] > network_cycles(two, len(x))["engine"]


def test_a_requantizer_depth_other_than_two_or_three_is_refused():
    from colcomb.core.errors import ColcombError

    layer = random_layer(np.random.default_rng(0), 6, 8, alpha=2)
    for bad in (1, 4, True, "3"):
        with pytest.raises(ColcombError, match="requant_stages must be one of 2, 3"):
            Program.compile([layer], HardwareConfig(rows=2, cols=2, requant_stages=bad))
