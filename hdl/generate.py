"""``colcomb generate``: a manifest in, lint-clean Verilog of the accelerator out."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from colcomb.core.errors import ColcombError
from colcomb.core.outdir import OutputFolder
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.cycles import cycle_summary
from colcomb.hdl.design_folder import DESIGN_FILE, design_record
from colcomb.hdl.emit import portable_verilog
from colcomb.hdl.flash_loader import FLASH_IMAGE, FLASH_OFFSET
from colcomb.hdl.flash_model import TopWithFlash
from colcomb.hdl.identifiers import check_module_name
from colcomb.hdl.network import ImageNetwork, image_network
from colcomb.hdl.program import Program
from colcomb.hdl.testbench import DEFAULT_VECTORS, write_testbench
from colcomb.hdl.top import Top
from colcomb.packer.manifest import load_manifest
from colcomb.packer.packed import PackedLayer

__all__ = ["Design", "generate", "generate_layers", "verilog_text"]

DEFAULT_TOP = "colcomb_top"



@dataclass(frozen=True)
class Design:
    """What :func:`generate` wrote."""

    top: str  # Verilog module name
    verilog: Path  # OUT/<top>.v
    waivers: Path  # OUT/<top>.vlt, the named Verilator lint waivers
    info: Path  # OUT/<top>.json: parameters, stream format, tile counts, latencies
    program: Program
    roms: tuple[Path, ...] = ()  # OUT/<top>.<rom>.hex: the ROM contents the Verilog holds
    testbench: tuple[Path, ...] = ()  # OUT/tb_<top>.v and its hex images (colcomb.hdl.testbench)

    @property
    def paths(self) -> list[Path]:
        return [self.verilog, self.waivers, self.info, *self.roms, *self.testbench]


def verilog_text(program: Program, top: str = DEFAULT_TOP, *, flash_model: bool = False) -> str:
    """The Verilog of :class:`~colcomb.hdl.top.Top` for ``program``: plain Verilog-2001 without
    ``always @*`` blocks, so that event-driven simulators start it (:mod:`colcomb.hdl.emit`).
    ``flash_model``: with the cell words in SPRAM, the top and a simulation model of the SPI flash
    holding their image (:class:`~colcomb.hdl.flash_model.TopWithFlash`, stream ports only)."""
    check_module_name(top)
    with_model = flash_model and program.cell_memory == "spram"
    dut = TopWithFlash(program=program) if with_model else Top(program=program)
    return portable_verilog(dut, top)


def design_info(program: Program, top: str, provenance: dict | None = None, *, flash_model: bool = False) -> dict:
    p = program
    return {
        "top": top,
        "clock": "clk (rising edge)",
        "reset": "rst (synchronous, active high)",
        "stream": {
            "payload": (f"{{data: signed({p.data_bits}) in the low bits, last: 1 above}}" if p.beat == 1 else
                        f"{{data: {p.beat} x signed({p.data_bits}), word 0 in the low bits, last: 1 above}}"),
            "input": (f"{p.in_words} words per vector, up to {p.batch} vectors per batch, last on the final word of "
                      "the batch" if p.beat == 1 else
                      f"{p.in_words} words per vector in {p.in_beats} beats (the last padded), up to {p.batch} "
                      "vectors per batch, last on the final beat of the batch"),
            "output": (f"{p.out_words} words per vector, last on the final word of the batch" if p.beat == 1 else
                       f"{p.out_words} words per vector in {p.out_beats} beats (padding words zero), last on the "
                       "final beat of the batch"),
            "ports": ["i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"],
        },
        **({"flash": {**({} if flash_model else {"ports": ["flash__sck", "flash__cs (high: selected)", "flash__copi",
                                                             "flash__cipo", "flash_error"]}),
                      "image": f"{top}.{FLASH_IMAGE}", "offset": FLASH_OFFSET,
                      "command": "0xAB (wake), then 0x03 (read) from the offset; SCK at half the clock, SPI mode 0",
                      "in_this_verilog": "a simulation model of the flash" if flash_model else "the pins"}}
           if p.cell_memory == "spram" else {}),
        **p.summary(),
        **cycle_summary(p),
        "provenance": provenance,
    }


def generate_layers(
    layers: Sequence[PackedLayer],
    config: HardwareConfig,
    out_dir: str | os.PathLike,
    *,
    top: str = DEFAULT_TOP,
    weight_bits: int | None = None,
    data_bits: int | None = None,
    acc_bits: int | None = None,
    lint: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
    provenance: dict | None = None,
    tb_vectors: int = DEFAULT_VECTORS,
    tb_seed: int = 0,
    network: ImageNetwork | None = None,
    flash_model: bool = False,
    record: dict | None = None,
) -> Design:
    """Like :func:`generate`, from layers already in memory (``record``: the design folder's
    ``design.json``, :mod:`colcomb.hdl.design_folder`). ``OUT`` is replaced whole (see
    :mod:`colcomb.core.outdir`); ``inputs`` are files it must not hold; ``provenance`` (where
    the layers came from, :func:`colcomb.packer.manifest.provenance`) goes into the design JSON.
    ``network``: the layers are this image network's, run whole (image words in)."""
    from colcomb.hdl import lint as lint_mod

    if flash_model and config.cell_memory != "spram":
        raise ColcombError("a flash model is for cell words in SPRAM: add --cell-memory spram or leave "
                           "--flash-model out")
    program = Program.compile(layers, config, weight_bits=weight_bits, data_bits=data_bits, acc_bits=acc_bits,
                              stages=network.stages if network else None)
    out = Path(out_dir)
    if isinstance(tb_vectors, bool) or not isinstance(tb_vectors, int) or tb_vectors < 0:
        raise ColcombError(f"the testbench's vector count must be 0 (none) or more, not {tb_vectors!r}")
    # before OUT is touched: a bad --top leaves nothing behind
    text = verilog_text(program, top, flash_model=flash_model)
    # everything is written and linted in a staging folder that replaces OUT only when complete
    with OutputFolder(out, command="generate", inputs=inputs) as stage:
        tmp = stage.path
        try:
            (tmp / f"{top}.v").write_text(text)
            lint_mod.write_waivers(tmp, top)
            (tmp / f"{top}.json").write_text(json.dumps(design_info(program, top, provenance, flash_model=flash_model),
                                                        indent=1) + "\n")
            if record is not None:
                from colcomb.hdl.cycles import steady_cycles_per_inference

                figures = {"tiles": len(program.tiles), "alpha": program.alpha,
                           "cycles_per_inference": steady_cycles_per_inference(program)}
                (tmp / DESIGN_FILE).write_text(json.dumps({**record, **figures}, indent=1) + "\n")
            images = rom_images(program)
            roms = [f"{top}.{name}.hex" for name in images]
            for name, fname in zip(images, roms, strict=True):
                (tmp / fname).write_text(_hex_image(getattr(program, name)))
            if program.cell_memory == "spram":  # what the board's flash must hold
                roms.append(f"{top}.{FLASH_IMAGE}")
                (tmp / roms[-1]).write_bytes(program.flash_image)
            tb = []
            # the testbench drives the stream ports alone: a top with flash pins needs the model
            if tb_vectors and (program.cell_memory != "spram" or flash_model):
                written = write_testbench(tmp, top, program, layers, vectors=tb_vectors, seed=tb_seed,
                                          network=network)
                tb = [path.name for path in written.paths]
        except OSError as exc:
            raise ColcombError(f"cannot write {out}: {exc.strerror or exc}") from None
        if lint:
            lint_mod.lint(tmp / f"{top}.v", tmp / f"{top}.vlt", top)
        stage.commit()
    return Design(top=top, verilog=out / f"{top}.v", waivers=out / f"{top}.vlt", info=out / f"{top}.json",
                  program=program, roms=tuple(out / r for r in roms), testbench=tuple(out / t for t in tb))


# Program attributes holding ROM contents, written as OUT/<top>.<name>.hex for reference and
# for tools that load $readmemh images; the Verilog carries the same words as memory initial values.
ROM_IMAGES = ("cells", "descriptors", "requant", "writes", "input_map")


def rom_images(program: Program) -> tuple[str, ...]:
    """The :data:`ROM_IMAGES` ``program``'s Verilog holds: with wider beats the beat schedule
    (``beat_map``, :mod:`colcomb.hdl.beat_port`) instead of the input map."""
    if program.beat == 1:
        return ROM_IMAGES
    return tuple("beat_map" if name == "input_map" else name for name in ROM_IMAGES)


def _hex_image(words: Sequence[int]) -> str:
    digits = max(1, (max((int(w).bit_length() for w in words), default=1) + 3) // 4)
    return "".join(f"{int(w):0{digits}x}\n" for w in words)


def generate(
    manifest_dir: str | os.PathLike,
    config: HardwareConfig,
    out_dir: str | os.PathLike,
    *,
    top: str = DEFAULT_TOP,
    weight_bits: int | None = None,
    data_bits: int | None = None,
    acc_bits: int | None = None,
    lint: bool = True,
    layers: Sequence[str] | None = None,
    tb_vectors: int = DEFAULT_VECTORS,
    tb_seed: int = 0,
    flash_model: bool = False,
) -> Design:
    """Elaborate the accelerator for the manifest's network on the hardware ``config``.

    Loads and validates the manifest (sha256, ROM images against arrays), compiles the tile
    program (:meth:`colcomb.hdl.program.Program.compile`, refusing layers that could overflow
    their accumulator), and writes into ``out_dir``: ``<top>.v`` (the Verilog, ROM contents
    included as memory initial values), ``<top>.vlt`` (named Verilator lint waivers) and
    ``<top>.json`` (parameters, stream format, tile counts, cycle model, and ``provenance``: the
    manifest's path and sha256, the layers and the config). ``layers`` picks a chain of the
    manifest's layers by name (default: all, in order). With ``lint`` (default) it runs
    ``verilator --lint-only -Wall`` and raises :class:`ColcombError` on any warning not waived.
    Widths default to the widest the layers need. ``tb_vectors`` (0: none) seeded random vectors
    (``tb_seed``) go into the self-checking testbench ``tb_<top>.v`` with its input and
    golden-model output images (:mod:`colcomb.hdl.testbench`). With the cell words in SPRAM,
    ``<top>.cells.flash.bin`` is the image the board's flash holds at 1 MiB, and ``<top>.v`` has
    the flash's pins, or with ``flash_model`` a simulation model of the flash holding the image
    (then, and only then, the testbench is written).
    """
    check_module_name(top)  # before any work
    manifest = load_manifest(manifest_dir)
    network = image_network(manifest, layers)
    chosen = network.layers if network else manifest.chain(layers)
    parameters = {**config.to_dict(), "top": top, "weight_bits": weight_bits, "data_bits": data_bits,
                  "acc_bits": acc_bits, "lint": lint, **({"flash_model": True} if flash_model else {})}
    parameters.pop("format")
    return generate_layers(chosen, config, out_dir, top=top, weight_bits=weight_bits, data_bits=data_bits,
                           acc_bits=acc_bits, lint=lint, tb_vectors=tb_vectors, tb_seed=tb_seed, network=network,
                           flash_model=flash_model, inputs=[manifest_dir],
                           provenance=manifest.provenance([la.name for la in chosen], parameters),
                           record=design_record(config, manifest.path.parent, manifest.sha256, layers, top, {}))
