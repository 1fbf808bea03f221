"""On-chip convolution: an image network compiled for the engine (stages, feature-map layout,
window origins, pooled writes) gives the integer CNN path's outputs (packer/graph.py run_graph,
host im2col, pooling and flatten), first through a walk of the compiled ROMs and memories, then
through the generated top in Amaranth's simulator."""


import numpy as np
import pytest
from engine_model import run_program
from hw_layers import image_net, random_cnn, random_layer

from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import network_cycles, prep_cycles
from colcomb.hdl.network import stages_of
from colcomb.hdl.program import WINDOW_READS, Program, cell_layout
from colcomb.packer.graph import run_graph
from colcomb.sim.amaranth_sim import run_top


def _compiled(seed: int, *, rows: int, cols: int, alpha: int, size: int, batch: int,
              channels: tuple[int, int] = (3, 5), section: int | None = -1, pass_vectors: int = 256,
              cell: str = "serial"):
    rng = np.random.default_rng(seed)
    layers, graph, shape = random_cnn(rng, alpha=alpha, size=size, channels=channels, section=section)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    prog = Program.compile(layers,
        HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch, pass_vectors=pass_vectors), stages=stages)
    return rng, layers, graph, shape, prog


def test_stages_follow_the_graph():
    rng = np.random.default_rng(0)
    layers, graph, shape = random_cnn(rng, size=6, channels=(3, 5))
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    assert [s.kind for s in stages] == ["conv", "conv", "linear", "linear"]
    conv1, conv2 = stages[:2]
    assert (conv1.out_size, conv1.pool, conv1.pooled_size, conv1.positions) == ((6, 6), 2, (3, 3), 36)
    assert conv2.in_shape == (3, 3, 3) and conv2.padded_size == (5, 5) and conv2.emitted == 9
    # pooling-window order: the 4 positions of pooled output 0 first
    assert conv1.patch_origins()[:5] == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]


@pytest.mark.parametrize("step, message", [
    ({"op": "avgpool"}, "no unit for 'avgpool'"),
    ({"op": "maxpool", "kernel": [3, 3], "stride": [2, 2], "padding": [0, 0]}, "power-of-two size"),
    ({"op": "maxpool", "kernel": [2, 2], "stride": [1, 1], "padding": [0, 0]}, "stride = kernel"),
])
def test_stages_refuse_what_the_engine_cannot_run(step, message):
    rng = np.random.default_rng(0)
    layers, graph, shape = random_cnn(rng, size=6, channels=(3, 5))
    graph = [*graph[:1], step, *graph[2:]]
    with pytest.raises(ColcombError, match=message):
        stages_of(graph, shape, {la.name: la.shape for la in layers})


def test_stages_need_a_flatten_before_a_linear_layer():
    rng = np.random.default_rng(0)
    layers, graph, shape = random_cnn(rng, size=6, channels=(3, 5))
    with pytest.raises(ColcombError, match="flatten the feature map first"):
        stages_of([s for s in graph if s["op"] != "flatten"], shape, {la.name: la.shape for la in layers})


@pytest.mark.parametrize("seed", range(16))
def test_compiled_layout_computes_the_integer_cnn(seed):
    """Odd seeds combine conv2's channels in any groups (a word per group), even ones inside
    aligned groups of alpha."""
    rng = np.random.default_rng(100 + seed)
    rows, cols = [(4, 4), (8, 8), (2, 2), (3, 4), (8, 2), (1, 1)][seed % 6]
    alpha = [2, 4, 8][seed % 3]
    channels = (int(rng.integers(1, 10)), int(rng.integers(1, 12)))
    rng, layers, graph, shape, prog = _compiled(seed, rows=rows, cols=cols, alpha=alpha, size=[4, 6, 8][seed % 3],
                                                batch=int(rng.integers(1, 11)), channels=channels,
                                                section=None if seed % 2 else -1,
                                                pass_vectors=int(rng.integers(4, 40)))
    x = rng.integers(-128, 128, (int(rng.integers(1, prog.batch + 1)), *shape))
    assert np.array_equal(run_program(prog, x), run_graph(layers, graph, x))


@pytest.mark.parametrize("rows, cols, alpha, size, batch, images, section, passes, cell", [
    (4, 4, 4, 4, 8, 3, -1, 256, "serial"),
    (8, 2, 4, 4, 6, 5, -1, 8, "serial"),   # a flattened position's 8 single-slot words in its 8 cycles
    (2, 2, 8, 6, 5, 7, -1, 6, "serial"),   # passes split images (of 4-vector windows); two runs in the buffers
    (4, 4, 2, 4, 8, 4, None, 12, "serial"),  # conv2's channel groups cross aligned pairs: a word per group
    (8, 4, 2, 4, 8, 3, -1, 16, "serial"),  # 2-slot words, 8 rows: one slot per write, from any row
    (4, 4, 4, 4, 8, 3, -1, 256, "parallel"),  # banks: a vector's window words in one cycle
    (8, 2, 4, 6, 6, 5, -1, 8, "parallel"),
    (2, 2, 8, 6, 5, 7, -1, 6, "parallel"),
    (5, 2, 4, 4, 4, 3, -1, 8, "parallel"),   # 2 rows a load cycle, the last cell word half empty
    (12, 2, 2, 4, 4, 3, -1, 16, "parallel"),  # 3 rows a load cycle (conv2's 13 channels fill them)
])
def test_top_runs_an_image_network_bit_exact(rows, cols, alpha, size, batch, images, section, passes, cell):
    rng, layers, graph, shape, prog = _compiled(rows * 10 + images, rows=rows, cols=cols, alpha=alpha,
                                                size=size, batch=batch, channels=(5, 13 if rows > 8 else 5),
                                                section=section,
                                                pass_vectors=passes, cell=cell)
    if section is None:
        assert prog.channel_words(1)[1] > -(-5 // alpha)
    wl = prog.write_layout
    singles = {int(w) >> wl["single"].offset & 1 for w in prog.writes}
    assert 1 in singles or rows <= prog.lanes_per_part
    if rows > prog.lanes_per_part and cell == "serial":  # 8 cycles a vector: no extra row tiles
        assert sum(t.last for t in prog.tiles) == sum(-(-la.rows // rows) for la in layers)
    x = rng.integers(-128, 128, (images, *shape))
    got = run_top(prog, x.reshape(images, -1), max_cycles=200_000)
    assert np.array_equal(got.outputs, run_graph(layers, graph, x))
    # the cycle model counts the passes, pooled writes and flushes exactly
    assert got.cycles == network_cycles(prog, images)["total"]


def test_conv_columns_must_read_one_feature_map_word():
    """A conv layer combined per column (members at different kernel positions) cannot be read
    as one word per column: the compile says to pack it per feature map."""
    rng = np.random.default_rng(3)
    layers, graph, shape = random_cnn(rng, alpha=4, size=4, channels=(2, 3))
    per_column = random_layer(rng, 3, 18, 4, density=0.3, name="conv2", activation="relu")
    assert any(len({m % 9 for m in g}) > 1 for b in per_column.blocks for g in b.groups)
    layers[1] = per_column
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    with pytest.raises(ColcombError, match="--per-feature-map"):
        Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=8), stages=stages)


@pytest.mark.parametrize("kwargs, message", [
    ({"cols": 3}, "power-of-two column count"),
    ({"cols": 16}, "no larger than the data width"),
    ({"pass_vectors": 3}, "allow passes of 4 or more"),
    ({"pass_vectors": 0}, "pass_vectors must be a positive integer, not 0"),
])
def test_image_networks_need_a_word_per_column(kwargs, message):
    rng = np.random.default_rng(5)
    layers, graph, shape = random_cnn(rng, alpha=4, size=4, channels=(2, 3))
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    opts = {"rows": 4, "cols": 4, "batch": 8, "cell": "serial", **kwargs}
    with pytest.raises(ColcombError, match=message):
        Program.compile(layers, HardwareConfig(**opts), stages=stages)


def _spec_program(seed, in_shape, spec, **kwargs):
    rng = np.random.default_rng(seed)
    layers, graph, shape = image_net(rng, in_shape, spec, alpha=kwargs.pop("alpha", 4))
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    return rng, layers, graph, shape, Program.compile(layers, HardwareConfig(**{"cell": "serial", **kwargs}),
                                                      stages=stages)


@pytest.mark.parametrize("spec, shape", [
    ([("conv", 3, (3, 2), (2, 1), (1, 0)), ("pool", 2), ("flatten",), ("linear", 4)], (2, 9, 7)),  # stride, odd sizes
    ([("conv", 3, (1, 1), (1, 1), (0, 0)), ("pool", 16), ("flatten",), ("linear", 4)], (1, 16, 16)),  # 256 a window
])
def test_top_runs_strided_odd_and_wide_pooling(spec, shape):
    rng, layers, graph, shape, prog = _spec_program(9, shape, spec, rows=4, cols=2, batch=2, alpha=2)
    x = rng.integers(-128, 128, (2, *shape))
    got = run_top(prog, x.reshape(2, -1), max_cycles=200_000)
    assert np.array_equal(got.outputs, run_graph(layers, graph, x))
    assert got.cycles == network_cycles(prog, 2)["total"]


@pytest.mark.parametrize("rows", [8, 16])
def test_a_flattened_map_splits_its_channels_to_keep_the_write_budget(rows):
    """16 channels flattened unpooled into a linear layer: a position has 8 cycles, so a row tile
    takes as many channels as its writes fit (not all 16 rows' worth)."""
    rng, layers, graph, shape, prog = _spec_program(
        1, (1, 4, 4), [("conv", 16, (3, 3), (1, 1), (1, 1)), ("flatten",), ("linear", 3)], rows=rows, cols=8, batch=4)
    first = [t for t in prog.tiles if t.layer == 0 and t.first]
    assert all(sum(ch is not None for ch in t.channels) <= 8 for t in first)
    x = rng.integers(-128, 128, (3, *shape))
    assert np.array_equal(run_program(prog, x), run_graph(layers, graph, x))


def test_a_layer_nobody_reads_costs_no_tiles_and_no_crash():
    rng = np.random.default_rng(0)
    layers, graph, shape = image_net(rng, (1, 4, 4), [("conv", 2, (3, 3), (1, 1), (1, 1)), ("pool", 2), ("flatten",),
                                                      ("linear", 3), ("linear", 2)])
    layers[2] = random_layer(rng, 2, 3, 4, name=layers[2].name, weights=np.zeros((2, 3), np.int64))
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    prog = Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=2), stages=stages)
    assert not any(t.layer == 1 for t in prog.tiles)
    x = rng.integers(-128, 128, (2, *shape))
    assert np.array_equal(run_program(prog, x), run_graph(layers, graph, x))
    assert network_cycles(prog, 2)["total"] > 0


def test_spaced_vectors_give_a_flattened_map_fewer_row_tiles():
    """On the bit-parallel array a pooled position leaves every 4 cycles, too few for 8 channels'
    single-slot writes: the last column tile streams a vector every 2 cycles instead, so the 8
    channels share one row tile (3 column tiles + 1 spacing cycle against 2 row tiles x 3)."""
    spec = [("conv", 8, (3, 3), (1, 1), (1, 1)), ("pool", 2), ("flatten",), ("linear", 3)]
    rng, layers, graph, shape, prog = _spec_program(4, (2, 4, 4), spec, rows=8, cols=4, batch=3, alpha=2,
                                                    cell="parallel")
    conv = [t for t in prog.tiles if t.layer == 0]
    assert [t.spacing for t in conv] == [1, 1, 2] and conv[-1].last and conv[0].count == 8
    x = rng.integers(-128, 128, (3, *shape))
    got = run_top(prog, x.reshape(3, -1), max_cycles=200_000)
    assert np.array_equal(got.outputs, run_graph(layers, graph, x))
    assert got.cycles == network_cycles(prog, 3)["total"]
    # the serial array has 8 cycles a vector already: no spacing, no split
    serial = _spec_program(4, (2, 4, 4), spec, rows=8, cols=4, batch=3, alpha=2)[-1]
    assert {t.spacing for t in serial.tiles} == {1} and sum(t.layer == 0 for t in serial.tiles) == 3


@pytest.mark.parametrize("rows, load_rows", [(2, 1), (4, 1), (5, 2), (8, 2), (12, 3)])
def test_banked_cells_load_within_the_window_reads(rows, load_rows):
    """The banked array loads as many rows a cycle as keep a tile's PREP at the first window's
    reads; its cell ROM holds the same rows in fewer, wider words, which decode back to the
    packed weights; the serial array loads a row a cycle."""
    *_, prog = _compiled(rows, rows=rows, cols=2, alpha=4, size=4, batch=2, cell="parallel", channels=(5, 13))
    assert prog.load_rows == load_rows and len(prog.cells) == len(prog.tiles) * -(-rows // load_rows)
    assert prep_cycles(prog) == WINDOW_READS + 1  # + the lane fetch's read
    width = cell_layout(prog.weight_bits, prog.alpha).size  # weight and select
    for i, t in enumerate(prog.tiles):
        block = prog.layers[t.layer].blocks[t.block]
        for r, word in enumerate(prog.tile_cells(i)):
            ch = t.channels[r]
            for c in range(2):
                col = t.col_start + c
                w = 0 if ch is None or col >= block.packed_columns else block.weights[ch - block.row_start, col]
                got = (word >> (c * width)) & ((1 << prog.weight_bits) - 1)
                assert got == w % (1 << prog.weight_bits)
    serial = _compiled(rows, rows=rows, cols=2, alpha=4, size=4, batch=2)[-1]
    assert serial.load_rows == 1 and len(serial.cells) == len(serial.tiles) * rows


def test_passes_are_for_image_networks():
    layer = random_layer(np.random.default_rng(0), 6, 8, alpha=2)
    with pytest.raises(ColcombError, match="passes of 512 vectors are for a CNN run whole on chip"):
        Program.compile([layer], HardwareConfig(rows=4, cols=4, batch=4, pass_vectors=512))
    assert Program.compile([layer], HardwareConfig(rows=4, cols=4, batch=4, pass_vectors=256)).pass_vectors == 256


def test_a_pass_is_no_longer_than_a_batch_gives_the_layer():
    """--pass-vectors far beyond a layer's vectors (images x positions) costs no accumulator words:
    the pass is cut to the batch's vectors, and the run is the same."""
    rng = np.random.default_rng(4)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    huge = Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=2, pass_vectors=1 << 16),
        stages=stages)
    most = max(2 * st.positions for st in stages)
    assert huge.pass_depth == most
    exact = Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=2, pass_vectors=most),
        stages=stages)
    assert [i["chunk"] for i in huge.layer_info] == [i["chunk"] for i in exact.layer_info]
    assert network_cycles(huge, 3)["total"] == network_cycles(exact, 3)["total"]
    x = rng.integers(-128, 128, (3, *shape))
    got = run_top(huge, x.reshape(3, -1), max_cycles=200_000)
    assert np.array_equal(got.outputs, run_graph(layers, graph, x))
    assert got.cycles == network_cycles(huge, 3)["total"]


@pytest.mark.parametrize("cell, rows, cols, alpha, batch, passes", [
    ("serial", 4, 4, 4, 3, 256), ("parallel", 4, 2, 4, 3, 8), ("parallel", 8, 4, 8, 2, 12), ("serial", 2, 2, 8, 4, 6),
    ("parallel", 4, 8, 4, 2, 8),  # conv1's few packed columns: input banks for those only
])
def test_a_one_channel_layer_combined_per_kernel_row_reads_row_runs(cell, rows, cols, alpha, batch, passes):
    """Conv1 of a grey image combined per kernel row: its packed columns read one word each, the
    run of a row of the image that the input port's shift register writes (a row's last pixel
    also writes the right border's runs), bit-exact against the integer CNN path, with the
    cycle model exact."""
    rng = np.random.default_rng(rows * 7 + cols)
    layers, graph, shape = random_cnn(rng, alpha=alpha, size=6, channels=(4, 5), kernel_rows=True, density=0.7)
    assert any(len({m % 3 for m in g}) > 1 for g in layers[0].blocks[0].groups)  # positions combined
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    prog = Program.compile(layers, HardwareConfig(rows=rows, cols=cols, cell=cell, batch=batch, pass_vectors=passes),
        stages=stages)
    assert prog.input_run == 3 and prog.input_slots_per_word == 3
    conv1_columns = layers[0].blocks[0].packed_columns
    assert prog.input_banks == (min(cols, conv1_columns) if cell == "parallel" else 1)
    if cols == 8:
        assert conv1_columns < cols  # columns 3.. of the banked array read no input bank
    assert prog.input_cycles == 6 * (6 + 1)  # 6 rows of 6 pixels, each row's end 1 border run more
    x = rng.integers(-128, 128, (batch + 1, *shape))
    assert np.array_equal(run_program(prog, x[:batch]), run_graph(layers, graph, x[:batch]))
    got = run_top(prog, x.reshape(batch + 1, -1), max_cycles=400_000)
    assert np.array_equal(got.outputs, run_graph(layers, graph, x))
    assert got.cycles == network_cycles(prog, batch + 1)["total"]


def test_row_runs_need_one_kernel_row_of_the_first_layer():
    rng = np.random.default_rng(3)
    layers, graph, shape = random_cnn(rng, alpha=4, size=4, channels=(2, 3), kernel_rows=True, density=0.7)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})

    def combined(rows: int, cols: int, nonzero: list[tuple[int, int]], name: str):
        """A layer whose only weights (one a row) combine into one packed column."""
        w = np.zeros((rows, cols), np.int64)
        for r, c in nonzero:
            w[r, c] = 5
        layer = random_layer(rng, rows, cols, 4, weights=w, name=name, activation="relu")
        assert len(layer.blocks[0].groups) == 1
        return layer

    # conv1's packed column across kernel rows 0 and 1 (positions 0 and 3)
    across = [combined(2, 9, [(0, 0), (1, 3)], "conv1"), *layers[1:]]
    with pytest.raises(ColcombError, match="different kernel rows or channels"):
        Program.compile(across, HardwareConfig(rows=4, cols=4, cell="serial", batch=2), stages=stages)
    # conv2 combined along a kernel row: only the first layer's pixels pass the shift register
    late = [layers[0], combined(3, 18, [(0, 0), (1, 1)], "conv2"), *layers[2:]]
    with pytest.raises(ColcombError, match="only the first layer"):
        Program.compile(late, HardwareConfig(rows=4, cols=4, cell="serial", batch=2), stages=stages)
    # a run column beside one of two channels at one position (a word per channel: refused)
    spec = [("conv", 3, (3, 3), (1, 1), (1, 1)), ("flatten",), ("linear", 2)]
    two = image_net(rng, (2, 4, 4), spec)
    w = np.zeros((3, 18), np.int64)
    w[0, 0], w[1, 1], w[0, 4], w[1, 13] = 3, 4, 5, 6
    mixed = random_layer(rng, 3, 18, 4, weights=w, name="conv1", activation="relu", groups=[[0, 1], [4, 13]])
    two_stages = stages_of(two[1], two[2], {la.name: la.shape for la in two[0]})
    with pytest.raises(ColcombError, match=r"packed column \[4, 13\] .* different kernel rows or channels"):
        Program.compile([mixed, *two[0][1:]], HardwareConfig(rows=4, cols=4, cell="serial", batch=2),
            stages=two_stages)
    # a kernel row wider than a word's lanes (alpha 2 < kw 3)
    narrow = random_layer(rng, 2, 9, 2, weights=np.eye(2, 9, dtype=np.int64) * 7, name="conv1", activation="relu",
                          groups=[[0, 1]])
    pairs, graph2, shape2 = random_cnn(rng, alpha=2, size=4, channels=(2, 3))
    with pytest.raises(ColcombError, match="a run of 3 pixels is wider than a word's 2 lanes: combine with alpha 3"):
        Program.compile([narrow, *pairs[1:]], HardwareConfig(rows=4, cols=4, cell="parallel", batch=2),
            stages=stages_of(graph2, shape2, {la.name: la.shape for la in pairs}))


@pytest.mark.parametrize("cell", ["serial", "parallel"])
def test_an_image_network_with_a_three_stage_requantizer(cell):
    rng = np.random.default_rng(9)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    prog = Program.compile(layers,
        HardwareConfig(rows=4, cols=4, cell=cell, batch=2, pass_vectors=8, requant_stages=3), stages=stages)
    x = rng.integers(-128, 128, (3, *shape))
    got = run_top(prog, x.reshape(3, -1), max_cycles=200_000)
    assert np.array_equal(got.outputs, run_graph(layers, graph, x))
    assert got.cycles == network_cycles(prog, 3)["total"]
