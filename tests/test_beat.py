"""Stream beats of several words (``--beat``): the compiler's write schedule, the framing, the
top in Amaranth's simulator and in Verilator (both benches), the plain-Verilog testbench, and the
refusals. Every hardware result is checked against the golden model and the cycle model."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest
from hw_layers import image_net, inputs, random_cnn, random_layer
from hypothesis import given, settings
from hypothesis import strategies as st
from test_testbench import needs_icarus

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import network_cycles
from colcomb.hdl.framing import pack_beats, stream_payloads, unpack_beats
from colcomb.hdl.generate import generate_layers
from colcomb.hdl.network import stages_of
from colcomb.hdl.program import Program
from colcomb.packer.golden import run_network
from colcomb.packer.graph import run_graph
from colcomb.packer.manifest import write_manifest
from colcomb.sim.amaranth_sim import run_top
from colcomb.sim.runner import simulate
from colcomb.sim.testbench_run import run_icarus


def _chain(seed: int):
    """Two chained layers, the first with row blocks (each input word written to several slots),
    the last with 6 outputs (a beat of 4 pads the last beat of each vector)."""
    rng = np.random.default_rng(seed)
    return [random_layer(rng, 9, 30, 4, gamma=0.25, name="l0", activation="relu", block_rows=6),
            random_layer(rng, 6, 9, 2, name="l1")]


# -- the schedule ----------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), beat=st.sampled_from([2, 4, 8]), cell=st.sampled_from(["parallel", "serial"]))
def test_schedule_writes_every_slot_once_one_address_per_bank(seed, beat, cell):
    layers = _chain(seed)
    prog = Program.compile(layers, HardwareConfig(rows=2, cols=4, cell=cell, batch=3, beat=beat))
    nb = prog.beat_banks
    assert len(prog.input_beats) == prog.in_beats == -(-30 // beat)
    for b, cycles in enumerate(prog.input_beats):
        written = []
        for cycle in cycles:
            assert set(cycle) <= set(range(nb))  # one address per bank a cycle, by construction
            for bank, (address, slots) in cycle.items():
                written += [(b * beat + i, address, pos * nb + bank) for pos, i in slots.items()]
        # exactly the slots the input map asks for, each once
        wanted = [(j, s.address, s.slot) for j in range(b * beat, min(30, (b + 1) * beat))
                  for s in prog.input_slots[j]]
        assert sorted(written) == sorted(wanted)
        # as few cycles as can be: one per address asked of the busiest bank
        addresses = {}
        for _, address, slot in wanted:
            addresses.setdefault(slot % nb, set()).add(address)
        assert len(cycles) == max([1] + [len(a) for a in addresses.values()])
    assert prog.input_cycles == sum(len(c) for c in prog.input_beats)


def test_wider_beats_take_fewer_input_cycles_on_a_wide_layer():
    rng = np.random.default_rng(1)
    layer = random_layer(rng, 32, 128, 8, gamma=0.5, density=0.1)
    cycles = [Program.compile([layer], HardwareConfig(rows=8, cols=8, batch=16, beat=k)).input_cycles
              for k in (1, 2, 4, 8)]
    assert cycles[0] == 128
    assert cycles == sorted(cycles, reverse=True) and cycles[3] < cycles[0] / 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"beat": 3}, "beat must be a power of two"),
    ({"beat": 0}, "beat must be a power of two"),
    ({"beat": True}, "beat must be a power of two"),
    ({"beat": 32, "cell": "serial"}, r"must divide the 16 lanes of a memory word.*use --beat 16 or less"),
])
def test_bad_beats_are_refused(kwargs, message):
    with pytest.raises(ColcombError, match=message):
        Program.compile(_chain(0), HardwareConfig(**{"rows": 2, "cols": 4, "batch": 3, "cell": "parallel", **kwargs}))


def test_serial_chain_takes_wider_words_for_a_wide_beat():
    """Its column words hold 4 lanes; a beat of 8 or 16 gets the gathered layout's 8 or 16."""
    layers = _chain(0)
    assert Program.compile(layers, HardwareConfig(rows=2, cols=4, cell="serial", batch=3)).lanes_per_part == 4
    for beat in (8, 16):
        config = HardwareConfig(rows=2, cols=4, cell="serial", batch=3, beat=beat)
        assert Program.compile(layers, config).lanes_per_part == beat


def test_design_files_describe_the_beat(tmp_path):
    layers = _chain(2)
    d = generate_layers(layers, HardwareConfig(rows=2, cols=4, batch=3, beat=np.int64(4)), tmp_path / "g",
        tb_vectors=0)
    info = json.loads(d.info.read_text())  # a numpy beat still makes plain JSON
    assert info["beat"] == 4 and info["out_cycles_per_vector"] == 2
    assert "4 x signed(8)" in info["stream"]["payload"] and "in 8 beats" in info["stream"]["input"]
    assert info["in_cycles_per_vector"] == d.program.input_cycles < 30
    # the ROM images are the Verilog's: the beat schedule, not the one-word input map
    names = sorted(p.name for p in d.roms)
    assert "colcomb_top.beat_map.hex" in names and "colcomb_top.input_map.hex" not in names
    words = [int(t, 16) for t in (tmp_path / "g" / "colcomb_top.beat_map.hex").read_text().split()]
    assert words == d.program.beat_map


def test_banked_array_and_row_runs_refuse_wider_beats():
    rng = np.random.default_rng(4)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    with pytest.raises(ColcombError, match=r"copy of the input memory per column.*--beat 1"):
        Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="parallel", batch=2, beat=2), stages=stages)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6, kernel_rows=True)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    with pytest.raises(ColcombError, match=r"row runs.*--beat 1"):
        Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=2, beat=2), stages=stages)


# -- the framing -----------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(data=st.data(), beat=st.sampled_from([1, 2, 4, 8]), bits=st.integers(2, 12),
       words=st.integers(1, 11), vectors=st.integers(1, 5))
def test_beats_round_trip(data, beat, bits, words, vectors):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    x = np.array(data.draw(st.lists(st.lists(st.integers(lo, hi), min_size=words, max_size=words),
                                    min_size=vectors, max_size=vectors)))
    beats = pack_beats(x, bits, beat)
    assert len(beats) == vectors * -(-words // beat)
    assert all(0 <= b < 1 << (beat * bits) for b in beats)
    back, padding = unpack_beats(beats, bits, beat, words)
    assert back == x.reshape(-1).tolist()
    assert padding == [0] * (vectors * (-(-words // beat) * beat - words))
    # the payloads: last on each batch's final beat, above the beat's data
    payloads = stream_payloads(x, bits, 2, beat)
    per = -(-words // beat)
    lasts = [p >> (beat * bits) for p in payloads]
    assert [i for i, flag in enumerate(lasts) if flag] == sorted(
        {min(vectors, v + 2) * per - 1 for v in range(0, vectors, 2)})


# -- the hardware ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "beat"), [("parallel", 2), ("parallel", 8), ("serial", 4), ("serial", 8)])
def test_top_with_wider_beats_is_bit_exact_and_counted(cell, beat):
    layers = _chain(7)
    x = inputs(np.random.default_rng(7), 7, 30)
    prog = Program.compile(layers, HardwareConfig(rows=2, cols=4, cell=cell, batch=3, beat=beat))
    one = Program.compile(layers, HardwareConfig(rows=2, cols=4, cell=cell, batch=3))
    res = run_top(prog, x)
    assert np.array_equal(res.outputs, run_network(layers, x))
    assert res.padding == [0] * (7 * (-6 % beat))  # the last beat's padding words are zero
    assert res.lasts == [False] * (prog.out_beats * 3 - 1) + [True] + [False] * (prog.out_beats * 3 - 1) + [True] \
        + [False] * (prog.out_beats - 1) + [True]
    assert res.cycles == network_cycles(prog, 7)["total"]  # the cycle model, exact
    assert res.cycles < run_top(one, x).cycles


@pytest.mark.parametrize("channels", [1, 3])
def test_image_network_with_wider_beats_on_the_serial_array(channels):
    rng = np.random.default_rng(20 + channels)
    if channels == 1:
        layers, graph, shape = random_cnn(rng, alpha=4, size=6)
    else:  # three input channels: three slots of an input word, in banks of their own
        layers, graph, shape = image_net(rng, (3, 5, 5), [("conv", 4, (3, 3), (1, 1), (1, 1)), ("pool", 2),
                                                         ("flatten",), ("linear", 3)])
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    prog = Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=2, beat=4), stages=stages)
    x = rng.integers(-128, 128, (3, *shape))
    got = run_top(prog, x.reshape(3, -1), max_cycles=200_000)
    assert np.array_equal(got.outputs, run_graph(layers, graph, x))
    assert got.cycles == network_cycles(prog, 3)["total"]


@pytest.fixture(scope="module")
def chain_manifest(tmp_path_factory):
    layers = _chain(11)
    folder = tmp_path_factory.mktemp("beat") / "manifest"
    write_manifest(layers, folder)
    return folder, layers


@pytest.mark.rtl
@pytest.mark.parametrize("bench", ["fast", "cycle"])
def test_verilator_runs_wider_beats_bit_exact(chain_manifest, bench):
    folder, layers = chain_manifest
    x = inputs(np.random.default_rng(3), 9, 30)
    res = simulate(folder, HardwareConfig(rows=2, cols=4, batch=3, beat=4), inputs=x, bench=bench, idle=0.3,
        stall=0.2, seed=5)
    assert res.passed and res.checked == 9 * 6
    np.testing.assert_array_equal(res.outputs(), run_network(layers, x))
    plain = simulate(folder, HardwareConfig(rows=2, cols=4, batch=3, beat=4), inputs=x, bench=bench)
    assert plain.passed
    prog = Program.compile(layers, HardwareConfig(rows=2, cols=4, batch=3, beat=4))
    assert plain.cycles == network_cycles(prog, 9)["total"]


@pytest.mark.rtl
def test_verilator_catches_a_wrong_weight_with_wider_beats(chain_manifest):
    folder, layers = chain_manifest
    block = layers[0].blocks[0]
    weights = block.weights.copy()
    r, g = np.argwhere(weights != 0)[0]
    weights[r, g] = -weights[r, g] if weights[r, g] != -128 else 127
    wrong = [dataclasses.replace(layers[0], blocks=(dataclasses.replace(block, weights=weights),
                                                    *layers[0].blocks[1:])), layers[1]]
    x = inputs(np.random.default_rng(4), 6, 30)
    assert not np.array_equal(run_network(wrong, x), run_network(layers, x))
    res = simulate(folder, HardwareConfig(rows=2, cols=4, batch=3, beat=2), inputs=x, hardware_layers=wrong,
        check=False)
    assert not res.passed and res.mismatch_count > 0


@needs_icarus
@pytest.mark.rtl
def test_icarus_testbench_with_wider_beats(tmp_path):
    layers = _chain(12)
    d = generate_layers(layers, HardwareConfig(rows=2, cols=4, batch=3, beat=4), tmp_path / "ok", tb_vectors=5)
    run = run_icarus(d.verilog.parent, d.top, params={"STALL": 1})
    assert run.passed, run.output
    assert "5 vectors, 10 of 10 output beats received" in run.output  # 6 words: 2 beats a vector
    bad = tmp_path / "bad"
    shutil.copytree(d.verilog.parent, bad)
    exp = bad / "tb_colcomb_top.out.hex"
    lines = exp.read_text().split()
    lines[3] = f"{int(lines[3], 16) ^ (1 << 8):0{len(lines[3])}x}"  # word 1 of beat 3
    exp.write_text("\n".join(lines) + "\n")
    run = run_icarus(bad, d.top)
    assert not run.passed and "mismatches: 1 data, 0 last;" in run.output
    assert re.search(r"beat 3 \(vector 1, beat 1\)", run.output)


def test_cli_refuses_a_beat_the_array_cannot_carry(chain_manifest, tmp_path, capsys):
    folder, _ = chain_manifest
    code = main(["generate", str(folder), "--rows", "2", "--cols", "4", "--cell", "serial", "--beat", "32",
                 "--out", str(tmp_path / "g")])
    assert code != 0
    err = capsys.readouterr().err
    assert "must divide the 16 lanes" in err and "--beat 16 or less" in err
    assert not (tmp_path / "g").exists()
