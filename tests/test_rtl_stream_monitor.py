"""The bench's stream checks on synthetic designs: a word after the final ``last`` must fail the
run, and ``last`` must mark exactly the final word of each batch.

The designs under test are tiny stand-ins with the accelerator's stream ports: an echo of the
input stream (the golden model of an identity layer), and the same echo followed by one stray
word after each batch. The real bench (driver, monitor, scoreboard) runs them in Verilator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from hw_layers import random_layer

from colcomb.hdl.lint import write_waivers
from colcomb.hdl.top import word_layout
from colcomb.packer.manifest import write_manifest
from colcomb.sim.runner import BUILD_ARGS, Build, _verilator_environ, random_inputs, run
from colcomb.sim.scoreboard import Scoreboard

WORDS = 4  # words per vector, in and out
BATCH = 3


class Echo(wiring.Component):
    """Sends every input word back unchanged (with its ``last``); with ``trailing`` it then
    sends one stray word (data 0, last 0) after each word that carried ``last``."""

    def __init__(self, *, data_bits: int = 8, trailing: bool = False):
        self.trailing = trailing
        layout = word_layout(data_bits)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        held = Signal.like(self.i.payload)
        full = Signal()
        stray = Signal()
        m.d.comb += [
            self.i.ready.eq(~full & ~stray),
            self.o.valid.eq(full | stray),
            self.o.payload.eq(held),
        ]
        with m.If(stray & ~full):
            m.d.comb += self.o.payload.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), full.eq(1)]
        with m.If(self.o.valid & self.o.ready):
            with m.If(full):
                m.d.sync += [full.eq(0), stray.eq(held.last & self.trailing)]
            with m.Else():
                m.d.sync += stray.eq(0)
        return m


def _build(root: Path, name: str, trailing: bool) -> Build:
    from cocotb_tools.runner import get_runner

    folder = root / name
    folder.mkdir(parents=True)
    source = folder / f"{name}.v"
    source.write_text(verilog.convert(Echo(trailing=trailing), name=name, emit_src=False))
    design = {"in_words": WORDS, "in_cycles_per_vector": WORDS, "out_words": WORDS, "batch": BATCH,
              "data_bits": 8, "rows": 1,
              "cols": 1, "alpha": 1, "tiles": 1, "prep_cycles": 2, "drain_cycles": 1, "dense_macs_per_vector": 1,
              "engine_cycles": [16] * BATCH}  # the design JSON's cycle model: the echo takes a few cycles
    (folder / f"{name}.json").write_text(json.dumps(design))
    with _verilator_environ():
        get_runner("verilator").build(sources=[write_waivers(folder, name), source],
                                      hdl_toplevel=name, build_dir=folder / "obj",
                                      build_args=BUILD_ARGS, log_file=folder / "build.log")
    return Build(name, folder, name, source, design, False, False, 0.0)


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    """A manifest whose golden model is the identity on 4 words (so the echo matches it)."""
    layer = random_layer(np.random.default_rng(0), WORDS, WORDS, 1, weights=np.eye(WORDS, dtype=int),
                         shift=0, multiplier=np.ones(WORDS, np.int64), bias=np.zeros(WORDS, np.int64))
    folder = tmp_path_factory.mktemp("identity") / "manifest"
    write_manifest([layer], folder)
    return folder, layer


@pytest.mark.rtl
def test_trailing_word_fails_and_clean_echo_passes(identity, tmp_path):
    manifest, layer = identity
    x = random_inputs(layer, 2 * BATCH + 1, seed=3)  # 3 batches: 3 + 3 + 1 vectors
    clean = run(_build(tmp_path, "echo", False), manifest, x, check=False, stall=0.3, idle=0.3)
    assert clean.passed, clean.summary
    stray = run(_build(tmp_path, "echo_stray", True), manifest, x[-1:], check=False)
    assert not stray.passed and stray.mismatch_count == 0  # every expected word was right
    assert any("1 output word(s) after the final word" in e for e in stray.protocol_errors)


def test_scoreboard_wants_last_exactly_on_each_batch_end():
    expected = np.arange(5 * 2).reshape(5, 2)  # 5 vectors of 2 words, batches of 2: 2 + 2 + 1
    good = [False, False, False, True, False, False, False, True, False, True]
    board = Scoreboard(expected)
    board.check(expected.ravel().tolist(), good, 2)
    assert board.passed
    for wrong in ([*good[:-1], False],  # no last at the end
                  [True, *good[1:]],  # an early last
                  [False, True, *good[2:]]):  # last on each vector, not each batch
        board = Scoreboard(expected)
        board.check(expected.ravel().tolist(), wrong, 2)
        assert not board.passed and "'last' wrong" in board.summary()


def test_scoreboard_reports_words_after_the_final_one():
    expected = np.arange(4).reshape(2, 2)
    board = Scoreboard(expected)
    board.check([0, 1, 2, 3, 0], [False, False, False, True, False], 2)
    assert not board.passed and board.mismatch_count == 0
    assert "1 output word(s) after the final word" in board.summary()
    short = Scoreboard(expected)
    short.check([0, 1, 2], [False, False, False], 2)
    assert not short.passed and "received 3 output words, expected 4" in short.summary()

