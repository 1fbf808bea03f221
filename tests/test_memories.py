"""The memory list the estimate prices (:func:`colcomb.hdl.memories.memories`) against the memories
the elaborated design really builds, over chains and image networks, both cells and the options
that add or resize memories."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.hdl._mem import MemoryInstance
from hw_layers import random_cnn, random_layer

from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.memories import memories
from colcomb.hdl.network import stages_of
from colcomb.hdl.program import Program
from colcomb.hdl.top import Top


def elaborated(program: Program) -> Counter:
    """(depth, width, written, read ports) of every memory in the elaborated top."""
    found: Counter = Counter()

    def walk(frag):
        if isinstance(frag, MemoryInstance):
            found[(frag._data.depth, frag._data.shape.width, bool(frag._write_ports), len(frag._read_ports))] += 1
        for sub, _name, _loc in frag.subfragments:
            walk(sub)

    walk(Fragment.get(Top(program=program), None))
    return found


def listed(program: Program) -> Counter:
    return Counter((m.depth, m.width, not m.rom, m.read_ports) for m in memories(program))


CHAINS = [
    HardwareConfig(rows=4, cols=4),
    HardwareConfig(rows=3, cols=5, batch=7),
    HardwareConfig(rows=4, cols=4, cell="serial", batch=3),
    HardwareConfig(rows=8, cols=2, cell="serial", batch=16),
    HardwareConfig(rows=4, cols=4, beat=2),
    HardwareConfig(rows=4, cols=4, shadow=True, requant_stages=3),
    HardwareConfig(rows=4, cols=2, cell_memory="spram", batch=2),
]


@pytest.mark.parametrize("config", CHAINS, ids=[c.describe() for c in CHAINS])
def test_a_chains_memories_are_listed_one_for_one(config):
    rng = np.random.default_rng(config.rows * 31 + config.cols)
    layers = [random_layer(rng, 9, 14, 4, gamma=0.25, name="l0", activation="relu"),
              random_layer(rng, 5, 9, 8, gamma=0.5, name="l1")]
    prog = Program.compile(layers, config)
    assert listed(prog) == elaborated(prog)


NETWORKS = [
    HardwareConfig(rows=4, cols=4, cell="serial", batch=2, pass_vectors=16),
    HardwareConfig(rows=8, cols=2, cell="serial", batch=1),
    HardwareConfig(rows=4, cols=4, batch=2),
    HardwareConfig(rows=8, cols=8, batch=1, pass_vectors=32),
    HardwareConfig(rows=4, cols=2, cell="serial", batch=1, cell_memory="spram"),
]


@pytest.mark.parametrize("kernel_rows", [False, True])
@pytest.mark.parametrize("config", NETWORKS, ids=[c.describe() for c in NETWORKS])
def test_an_image_networks_memories_are_listed_one_for_one(config, kernel_rows):
    rng = np.random.default_rng(config.rows + 7 * config.cols)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6, kernel_rows=kernel_rows)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    prog = Program.compile(layers, config, stages=stages)
    assert listed(prog) == elaborated(prog)
    assert sum(m.spram for m in memories(prog)) == (config.cell_memory == "spram")
