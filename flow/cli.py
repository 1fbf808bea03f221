"""The ``colcomb`` command: one subcommand per flow step."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from colcomb import __version__
from colcomb.core.errors import ColcombError
from colcomb.hdl.config import ConfigError
from colcomb.hdl.design_folder import is_design_folder, load_design_folder
from colcomb.hwflags import add_config_args, config_from_args, flag_of, given_fields

Handler = Callable[[argparse.Namespace], int]
#: what `colcomb explore` can rank by (:data:`colcomb.fpga.explore.OBJECTIVES`, kept here so that the
#: parser is built without importing the search)
OBJECTIVES = ("throughput", "latency", "cells")
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register a subcommand: its argument setup and its handler."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (add_args, fn)
        return fn

    return wrap


#: the largest count any option takes unless it names a smaller one (README "What colcomb refuses")
MAX_COUNT = 1_000_000


def _int_at_least(low: int, high: int = MAX_COUNT):
    """An argparse type: an integer from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} must be from {low:,} to {high:,}")
        return value

    return parse


_positive_int = _int_at_least(1)
_count = _int_at_least(0)
_seed = _int_at_least(0, 2**32 - 1)
_epochs = _int_at_least(0, 10_000)
_vectors = _int_at_least(1, 100_000)  # simulated or stored vectors: hours of simulation already


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None


def _probability(text: str) -> float:
    """A stream's idle or stall probability, at most 0.999: a stream stalled on every cycle would
    never finish, and one at 0.999 already takes 1,000 times the model's cycles."""
    from colcomb.sim.runner import MAX_STREAM_PROBABILITY

    value = _number(text)
    if not 0.0 <= value <= MAX_STREAM_PROBABILITY:
        raise argparse.ArgumentTypeError(
            f"{value} must lie in [0, {MAX_STREAM_PROBABILITY}] (at {MAX_STREAM_PROBABILITY} a word waits "
            f"1,000 cycles on average; 1 would never transfer one)")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 1]")
    return value


# -- pack ----------------------------------------------------------------------------------------

def _pack_args(p: argparse.ArgumentParser) -> None:
    from colcomb.packer.combine import METHODS
    from colcomb.packer.quantize import GRANULARITIES

    p.add_argument("input", type=Path,
                   help="a .npy matrix, a .npz of named matrices, or a torch checkpoint (.pt/.pth)")
    p.add_argument("--alpha", type=_positive_int, default=8,
                   help="most columns combined into one packed column (default 8)")
    p.add_argument("--gamma", type=_fraction, default=0.0,
                   help="conflict budget: a group may prune at most floor(gamma x block rows) weights "
                   "(default 0: conflict-free)")
    p.add_argument("--bits", type=_positive_int, default=8, help="weight width in bits (default 8)")
    p.add_argument("--data-bits", type=_positive_int, default=8, help="activation width in bits (default 8)")
    p.add_argument("--acc-bits", type=_positive_int, default=32, help="accumulator width in bits (default 32)")
    p.add_argument("--row-block", type=_positive_int, default=None, metavar="R",
                   help="split rows into blocks of R rows, each packed with its own groups (default: one block)")
    p.add_argument("--section", type=_positive_int, default=None, metavar="S",
                   help="pack columns in independent sections of S columns (default: one section)")
    p.add_argument("--quant", choices=GRANULARITIES, default="layer",
                   help="one weight scale per layer, per row block, or per row (default layer)")
    p.add_argument("--power-of-two", action="store_true", help="round weight scales up to powers of two")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="grouping algorithm (default auto: the best heuristic, per matrix; exact: a CP-SAT search "
                   "for the fewest groups, seeded with auto's, returning the optimum or the proven gap)")
    p.add_argument("--time-limit", type=_positive_float, default=60.0, metavar="S",
                   help="seconds per matrix (row block and section) for --method exact (default 60)")
    p.add_argument("--activation", choices=("none", "relu"), default="none",
                   help="output clamp of every layer (default none)")
    p.add_argument("--act-scale", type=float, default=None,
                   help="real value of one activation step, used to convert biases (default 1/(2^(data_bits-1)-1))")
    p.add_argument("--out", type=Path, required=True, help="output folder for manifest.json and its files")


@command("pack", _pack_args)
def _pack(args: argparse.Namespace) -> int:
    from colcomb.core.outdir import check_replaceable
    from colcomb.packer.manifest import write_manifest
    from colcomb.packer.pack import PackOptions, pack_layer
    from colcomb.packer.sources import read_matrices
    from colcomb.packer.summary import exact_notes, pack_summary

    opts = PackOptions(
        alpha=args.alpha, gamma=args.gamma, bits=args.bits, data_bits=args.data_bits,
        acc_bits=args.acc_bits, row_block=args.row_block, section=args.section, quant=args.quant,
        power_of_two=args.power_of_two, method=args.method, activation=args.activation,
        act_scale=args.act_scale, time_limit=args.time_limit,
    )
    opts.validate()
    check_replaceable(args.out, [args.input])  # before the packing work, not after it
    skipped: list[str] = []
    matrices = read_matrices(args.input, skipped)
    if skipped:
        print(f"warning: {len(skipped)} tensor(s) of {args.input} not packed: " + "; ".join(skipped[:20])
              + ("; ..." if len(skipped) > 20 else ""), file=sys.stderr)
    layers = []
    for i, m in enumerate(matrices, 1):
        t0 = time.perf_counter()
        layers.append(pack_layer(m.name, m.weights, opts, m.bias))
        print(f"[{i}/{len(matrices)}] {m.name} {m.weights.shape[0]}x{m.weights.shape[1]} "
              f"packed in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    path = write_manifest(layers, args.out, meta={"source": str(args.input), "options": vars(opts)},
                          inputs=[args.input])
    print(pack_summary(layers))
    for note in exact_notes(layers):
        print(note)
    print(f"wrote {path}")
    return 0


# -- golden --------------------------------------------------------------------------------------

def _golden_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="folder holding manifest.json (from colcomb pack)")
    p.add_argument("--input", type=Path, required=True,
                   help=".npy of integer inputs: (batch, cols of the first layer) or (cols,)")
    p.add_argument("--out", type=Path, required=True, help=".npy file for the integer outputs")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="run only these manifest layers, chained in this order (repeatable; "
                   "default: the whole network, in manifest order), as simulate and generate do")


@command("golden", _golden_args)
def _golden(args: argparse.Namespace) -> int:
    from colcomb.core.atomic import save_npy
    from colcomb.labelled import input_vectors
    from colcomb.packer.golden import run_network
    from colcomb.packer.manifest import load_manifest

    manifest = load_manifest(args.manifest)
    layers = manifest.chain(args.layer)
    _check_out_file(args.out, args.input, manifest.path.parent)
    x = input_vectors(args.input, manifest.meta or {})
    if x.size == 0:
        raise ColcombError(f"{args.input} holds no input vectors (shape {list(x.shape)})")
    y = run_network(layers, x)
    save_npy(args.out, y)
    print(f"{layers[0].name} .. {layers[-1].name}: {y.shape[0]} vector(s) -> {args.out} "
          f"(shape {list(y.shape)}, range [{y.min()}, {y.max()}])")
    return 0



def _check_out_file(out: Path, source: Path, manifest_dir: Path) -> None:
    """Refuse an output file that would overwrite an input or a file of the manifest's folder."""
    if out.suffix.lower() != ".npy":
        raise ColcombError(f"--out {out} must name a .npy file (it is written with np.save)")
    target = out.resolve()
    if target == source.resolve():
        raise ColcombError(f"--out {out} is the input file; name another file")
    if manifest_dir.resolve() in target.parents:
        raise ColcombError(f"--out {out} lies inside the manifest folder {manifest_dir}; write it elsewhere")


# -- seal ----------------------------------------------------------------------------------------

def _seal_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="folder holding the hand-edited manifest.json")


@command("seal", _seal_args)
def _seal(args: argparse.Namespace) -> int:
    from colcomb.packer.manifest import seal_manifest

    path = seal_manifest(args.manifest)
    print(f"sealed {path}: its current content is now what golden, generate and simulate compute")
    return 0


# -- generate / simulate -------------------------------------------------------------------------

def _design_config(args: argparse.Namespace):
    """The hardware config of the command line; where the positional folder is a design folder
    (``colcomb generate``'s, :mod:`colcomb.hdl.design_folder`), its config, manifest and layers,
    which flags cannot change (regenerate to change them)."""
    if not is_design_folder(args.manifest):
        return config_from_args(args)
    design = load_design_folder(args.manifest)
    extra = given_fields(args)
    # the board, its clock and DSP use do not change the compiled design: a design folder takes them
    late = {k: extra.pop(k) for k in ("board", "clock_mhz", "dsp") if k in extra}
    given = sorted(extra)
    if given or args.config is not None or args.layer:
        flags = ([flag_of(f) for f in given] + (["--config"] if args.config else [])
                 + (["--layer"] if args.layer else []))
        raise ColcombError(f"{args.manifest} is a generated design: its config and layers are fixed "
                           f"({design.config.describe()}); leave out {', '.join(flags)} or run `colcomb generate` "
                           f"again with them")
    args.manifest, args.layer = design.manifest, design.layers
    return design.config.replace(**late)



def _array_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="folder holding manifest.json (from colcomb pack or train); simulate "
                   "also takes a design folder from colcomb generate (its config and layers)")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="run only these manifest layers, in this order (repeatable; default: all). "
                   "Without --layer a CNN's graph runs whole on chip (convolution, max-pool, flatten; the serial "
                   "array with --cols 2, 4 or 8); with it, the named layers chain as matrices")
    add_config_args(p)


def _generate_args(p: argparse.ArgumentParser) -> None:
    _array_args(p)
    p.add_argument("--top", default="colcomb_top", help="Verilog module name (default colcomb_top)")
    p.add_argument("--no-lint", action="store_true", help="skip `verilator --lint-only -Wall`")
    p.add_argument("--tb-vectors", type=_int_at_least(0, 100_000), default=16,
                   help="random vectors in the self-checking testbench tb_TOP.v (default 16; 0: no testbench)")
    p.add_argument("--tb-seed", type=_seed, default=0, help="seed of the testbench's vectors (default 0)")
    p.add_argument("--flash-model", action="store_true",
                   help="with --cell-memory spram: put a simulation model of the SPI flash, holding the cell words' "
                   "image, inside TOP.v (stream ports only, and the testbench), instead of the flash pins")
    p.add_argument("--out", type=Path, required=True, help="output folder for the Verilog, waivers and ROM images")


@command("generate", _generate_args)
def _generate(args: argparse.Namespace) -> int:
    from colcomb.hdl.generate import generate

    t0 = time.perf_counter()
    config = config_from_args(args)
    design = generate(args.manifest, config, args.out, top=args.top, lint=not args.no_lint, layers=args.layer,
                      tb_vectors=args.tb_vectors, tb_seed=args.tb_seed, flash_model=args.flash_model)
    info = design.program.summary()
    beat = f", {config.beat} words a beat" if config.beat > 1 else ""
    print(f"{design.top}: {config.rows}x{config.cols} {config.cell} array{beat}, "
          f"{len(design.program.layers)} layer(s), {info.get('tiles', '?')} tile(s), "
          f"lint {'skipped' if args.no_lint else 'clean'} ({time.perf_counter() - t0:.1f} s)")
    for path in design.paths:
        print(f"wrote {path}")
    return 0


def _simulate_args(p: argparse.ArgumentParser) -> None:
    _array_args(p)
    p.add_argument("--vectors", type=_vectors, default=16,
                   help="random input vectors to run (default 16; the first three are the extremes)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--input", type=Path, default=None,
                   help=".npy of input vectors instead of random ones: integers (vectors, cols of the first layer), "
                   "or float images of a `colcomb train` run's dataset (quantized with the manifest's input scale, "
                   "as the golden model's evaluation does)")
    p.add_argument("--labels", type=Path, default=None,
                   help=".npy of the inputs' class labels (vectors,): print the hardware's accuracy beside the "
                   "golden model's")
    p.add_argument("--test-split", type=_positive_int, default=None, metavar="N", nargs="?", const=0,
                   help="run the first N images (default: all) of the test split of the `colcomb train` run the "
                   "manifest comes from, with their labels (prints the accuracy)")
    p.add_argument("--data-dir", default=None, help="folder of the mnist or cifar10 files for --test-split, if moved")
    p.add_argument("--bench", choices=["fast", "cycle"], default="fast",
                   help="fast (default): the Verilog harness streams the words from memories, no Python per cycle; "
                   "cycle: the cocotb driver and monitor on every cycle")
    p.add_argument("--opt", choices=["0", "1", "2", "3", "s"], default="1",
                   help="C++ optimisation of the Verilator build (-ON; default 1: builds a little slower than 0, "
                   "simulates ten times faster)")
    p.add_argument("--stall", type=_probability, default=0.0, metavar="P",
                   help="back-pressure: the output stream's ready is low on a cycle with probability P "
                   "(0 <= P <= 0.999, default 0)")
    p.add_argument("--idle", type=_probability, default=0.0, metavar="P",
                   help="the input stream's valid is low before a word with probability P "
                   "(0 <= P <= 0.999, default 0)")
    p.add_argument("--waves", action="store_true", help="dump waveforms (VCD) into the run folder")
    p.add_argument("--build-dir", type=Path, default=None,
                   help="cache of Verilator builds (default build/sim or $COLCOMB_SIM_BUILD)")


@command("simulate", _simulate_args)
def _simulate(args: argparse.Namespace) -> int:
    from colcomb.core.progress import Stages
    from colcomb.hdl.network import image_network
    from colcomb.labelled import accuracy, simulation_inputs
    from colcomb.packer.golden import run_network
    from colcomb.packer.manifest import load_manifest
    from colcomb.sim.runner import simulate

    config = _design_config(args)
    given = simulation_inputs(args.manifest, layers=args.layer, inputs=args.input, labels=args.labels,
                              test_split=args.test_split, data_dir=args.data_dir)
    streams = f", input idle {args.idle:g}, output stalled {args.stall:g}" if args.idle or args.stall else ""
    if config.beat > 1:
        streams += f", {config.beat} words a beat"
    what = f"{given.source}" if given else f"{args.vectors} random vectors"
    print(f"building and running {args.manifest} on a {config.rows}x{config.cols} array in Verilator "
          f"({what}, {args.bench} bench{streams}; the first build of a design takes a minute or two)...",
          file=sys.stderr)
    with Stages(["build", "simulate"], label="simulate") as progress:
        result = simulate(args.manifest, config, vectors=args.vectors, seed=args.seed, waves=args.waves,
                          inputs=None if given is None else given.x,
                          root=None if args.build_dir is None else args.build_dir.absolute(), check=False,
                          layers=args.layer, stall=args.stall, idle=args.idle, bench=args.bench,
                          opt=f"-O{args.opt}", progress=progress.stage)
    verdict = "all equal to the golden model" if result.passed else f"{result.mismatch_count} differ"
    print(f"vectors checked: {result.vectors} ({result.checked} output words, {verdict})")
    print(f"cycles: {result.cycles} (first input word to last output word; "
          f"{result.compute_cycles} computing)")
    if result.cycles_per_inference is not None:
        print(f"cycles per inference: {result.cycles_per_inference:g} (steady state: cycles between the final "
              f"words of the last two full batches of {config.batch}, of {result.vectors // config.batch})")
    else:
        print(f"cycles per inference: not measured (needs two full batches: --vectors {2 * config.batch} or more)")
    print(f"effective MACs per cycle: {result.macs_per_cycle:.2f} "
          f"({result.dense_macs} dense-equivalent MACs; {result.compute_macs_per_cycle:.2f} while computing)")
    print(f"simulation: {result.sim_cycles_per_s:.0f} cycles/s ({result.bench} bench), "
          f"build {'reused' if result.cached_build else 'new'} in {result.build_dir}")
    if given is not None and given.labels is not None and result.checked == result.vectors * result.out_words:
        manifest = load_manifest(args.manifest)
        network = image_network(manifest, args.layer)
        golden = network.predict(given.x) if network else run_network(manifest.chain(args.layer), given.x)
        hw = accuracy(result.outputs(), given.labels)
        print(f"accuracy on {len(given.labels)} labelled inputs: hardware {100 * hw:.2f}%, "
              f"golden model {100 * accuracy(golden, given.labels):.2f}%")
    if result.waves:
        print(f"waves: {result.waves}")
    if not result.passed:
        for m in result.mismatches[:10]:
            print(f"  mismatch: vector {m['vector']} output {m['index']}: hardware {m['got']}, "
                  f"golden model {m['expected']}", file=sys.stderr)
        for e in result.protocol_errors[:10]:
            print(f"  protocol: {e}", file=sys.stderr)
        raise ColcombError(
            f"{result.mismatch_count} of {result.checked} output words differ from the golden model"
            f"{' and the stream protocol was violated' if result.protocol_errors else ''}; "
            f"details in {result.run_dir}"
        )
    return 0

# -- train ---------------------------------------------------------------------------------------

def _layer_alpha(text: str) -> tuple[str, int]:
    name, sep, value = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=ALPHA (e.g. fc1=4)")
    return name, _positive_int(value)


def _int_list(text: str) -> list[int]:
    return [_positive_int(t) for t in text.split(",") if t.strip()]


def _train_args(p: argparse.ArgumentParser) -> None:
    from colcomb.packer.combine import METHODS
    from colcomb.train.catalog import MODELS, RAMPS
    from colcomb.train.datasets import DATASETS

    p.add_argument("--dataset", default=None, metavar="D",
                   help=f"one of {', '.join(DATASETS)} (mnist and cifar10 read --data-dir); required unless --resume")
    p.add_argument("--model", default=None, metavar="M", help=f"one of {', '.join(MODELS)}; required unless --resume")
    p.add_argument("--alpha", type=_positive_int, default=8, help="most columns per group (default 8)")
    p.add_argument("--gamma", type=_fraction, default=0.5,
                   help="conflict budget per group, fraction of rows (default 0.5; 0 = conflict-free)")
    p.add_argument("--epochs", type=_epochs, default=6, help="dense pretraining epochs (default 6)")
    p.add_argument("--rounds", type=_positive_int, default=4, help="pruning/combining rounds (default 4)")
    p.add_argument("--sparsity", type=float, default=0.8,
                   help="magnitude-pruning sparsity reached in the last round (default 0.8)")
    p.add_argument("--ramp", choices=RAMPS, default="cubic", help="sparsity ramp over the rounds (default cubic)")
    p.add_argument("--retrain-epochs", type=_epochs, default=2, help="retraining epochs per round (default 2)")
    p.add_argument("--final-epochs", type=_epochs, default=3, help="extra epochs after the last round (default 3)")
    p.add_argument("--data-fraction", type=float, default=1.0, metavar="F",
                   help="retrain on a class-balanced fraction F of the training set (default 1)")
    p.add_argument("--per-feature-map", action="store_true",
                   help="combine conv columns as whole input feature maps (all kh x kw weights together)")
    p.add_argument("--include-first", action="store_true", help="also combine the first layer")
    p.add_argument("--layer-alpha", type=_layer_alpha, action="append", default=[], metavar="NAME=A",
                   help="alpha for one layer (repeatable)")
    p.add_argument("--row-block", type=_positive_int, default=None, metavar="R", help="row blocks of R rows")
    p.add_argument("--section", type=_positive_int, default=None, metavar="S",
                   help="column sections of S columns (channels with --per-feature-map)")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="grouping algorithm (default auto; exact: CP-SAT within --time-limit)")
    p.add_argument("--time-limit", type=_positive_float, default=60.0, metavar="S",
                   help="seconds per matrix and round for --method exact (default 60)")
    p.add_argument("--bits", type=_positive_int, default=8, help="weight width (default 8)")
    p.add_argument("--data-bits", type=_positive_int, default=8, help="activation width (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="pretraining learning rate (default 1e-3)")
    p.add_argument("--retrain-lr", type=float, default=5e-4, help="retraining learning rate (default 5e-4)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="minibatch size (default 64)")
    p.add_argument("--hidden", type=_int_list, default=None, metavar="W[,W..]",
                   help="mlp hidden widths (default 300,100) or charlstm units (default 128)")
    p.add_argument("--width", type=_positive_int, default=None, metavar="W",
                   help="vgg16/resnet20 first-stage channels (default 64 / 16; other stages scale with it)")
    p.add_argument("--dense", action="store_true", help="no pruning or combining (the dense baseline)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--data-dir", default=None, help="folder holding the mnist or cifar10 files")
    p.add_argument("--integer-samples", type=_positive_int, default=None, metavar="N",
                   help="integer (golden model) accuracy on the first N test samples (default all; the golden "
                   "model runs on the CPU, which takes long for the CIFAR-10 networks)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default auto: cuda when torch sees a GPU); bf16 autocast on cuda")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out from its last checkpoint with the options it was "
                   "started with (other training options are not read; --device and --data-dir are)")
    p.add_argument("--out", type=Path, required=True, help="run folder: model.pt, packed/, report.json")


def _train_config(args: argparse.Namespace):
    from colcomb.train.run import TrainConfig

    return TrainConfig(
        dataset=args.dataset, model=args.model, alpha=args.alpha, gamma=args.gamma,
        epochs=args.epochs, rounds=args.rounds, sparsity=args.sparsity, ramp=args.ramp,
        retrain_epochs=args.retrain_epochs, final_epochs=args.final_epochs,
        data_fraction=args.data_fraction, per_feature_map=args.per_feature_map,
        include_first=args.include_first, layer_alpha=dict(args.layer_alpha),
        row_block=args.row_block, section=args.section, method=args.method, time_limit=args.time_limit,
        bits=args.bits,
        data_bits=args.data_bits, lr=args.lr, retrain_lr=args.retrain_lr,
        batch_size=args.batch_size, seed=args.seed, hidden=args.hidden, width=args.width, dense=args.dense,
        data_dir=args.data_dir, integer_samples=args.integer_samples,
    )


def _check_names(dataset: str, model: str) -> None:
    from colcomb.train.catalog import MODELS
    from colcomb.train.datasets import DATASETS

    if dataset not in DATASETS:
        raise ColcombError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if model not in MODELS:
        raise ColcombError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")


@command("train", _train_args)
def _train(args: argparse.Namespace) -> int:
    from colcomb.train.run import TrainConfig, run_training

    if args.resume:
        run_training(TrainConfig(data_dir=args.data_dir), args.out, resume=True, device=args.device)
        return 0
    if args.dataset is None or args.model is None:
        raise ColcombError("name the --dataset and the --model to train (or --resume an earlier run)")
    _check_names(args.dataset, args.model)
    if args.epochs < 0 or args.retrain_epochs < 0 or args.final_epochs < 0:
        raise ColcombError("epoch counts must be >= 0")
    run_training(_train_config(args), args.out, device=args.device)
    return 0


# -- evaluate ------------------------------------------------------------------------------------

def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="the --out folder of `colcomb train`")
    p.add_argument("--data-dir", default=None, help="folder holding the mnist or cifar10 files, if moved")
    p.add_argument("--integer-samples", type=_positive_int, default=None, metavar="N",
                   help="integer accuracy on the first N test samples (default: the run's setting, else all)")


@command("evaluate", _evaluate_args)
def _evaluate(args: argparse.Namespace) -> int:
    from colcomb.train.evaluate import evaluate_run

    evaluate_run(args.run, data_dir=args.data_dir, integer_samples=args.integer_samples)
    return 0


# -- sweep ---------------------------------------------------------------------------------------

def _float_list(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _sweep_args(p: argparse.ArgumentParser) -> None:
    from colcomb.train.catalog import MODELS
    from colcomb.train.datasets import DATASETS

    p.add_argument("--dataset", default="mnist5k", metavar="D", help=f"one of {', '.join(DATASETS)} (default mnist5k)")
    p.add_argument("--model", default="lenet5", metavar="M", help=f"one of {', '.join(MODELS)} (default lenet5)")
    p.add_argument("--alphas", type=_int_list, default=[8], metavar="A[,A..]", help="alphas (default 8)")
    p.add_argument("--gammas", type=_float_list, default=[0.0, 0.125, 0.25, 0.5], metavar="G[,G..]",
                   help="gammas; 0 is conflict-free (default 0,0.125,0.25,0.5)")
    p.add_argument("--sparsities", type=_float_list, default=[0.8], metavar="S[,S..]",
                   help="magnitude-pruning sparsities (default 0.8)")
    p.add_argument("--epochs", type=_epochs, default=4, help="dense pretraining epochs (default 4)")
    p.add_argument("--rounds", type=_positive_int, default=3, help="rounds per point (default 3)")
    p.add_argument("--retrain-epochs", type=_epochs, default=1, help="retraining epochs per round (default 1)")
    p.add_argument("--final-epochs", type=_epochs, default=2, help="extra epochs after the last round (default 2)")
    p.add_argument("--data-fraction", type=float, default=1.0, metavar="F", help="retraining data fraction")
    p.add_argument("--per-feature-map", action="store_true", help="combine conv layers per input feature map")
    p.add_argument("--hidden", type=_int_list, default=None, metavar="W[,W..]", help="mlp hidden widths")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--data-dir", default=None, help="folder holding the mnist or cifar10 files")
    p.add_argument("--out", type=Path, required=True, help="folder for sweep.csv and sweep.png")


@command("sweep", _sweep_args)
def _sweep(args: argparse.Namespace) -> int:
    from colcomb.train.run import TrainConfig
    from colcomb.train.sweep import run_sweep

    _check_names(args.dataset, args.model)
    if args.epochs < 0 or args.retrain_epochs < 0 or args.final_epochs < 0:
        raise ColcombError("epoch counts must be >= 0")
    for g in args.gammas:
        if not 0.0 <= g <= 1.0:
            raise ColcombError(f"gamma {g} must lie in [0, 1]")
    for s in args.sparsities:
        if not 0.0 <= s < 1.0:
            raise ColcombError(f"sparsity {s} must lie in [0, 1)")
    base = TrainConfig(dataset=args.dataset, model=args.model, epochs=args.epochs, rounds=args.rounds,
                       retrain_epochs=args.retrain_epochs, final_epochs=args.final_epochs,
                       data_fraction=args.data_fraction, per_feature_map=args.per_feature_map,
                       hidden=args.hidden, seed=args.seed, data_dir=args.data_dir)
    run_sweep(base, args.alphas, args.gammas, args.sparsities, args.out)
    return 0


# -- study ---------------------------------------------------------------------------------------

def _float_tuple(text: str) -> tuple[float, ...]:
    return tuple(_float_list(text))


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True,
                   help="folder for study.csv, layers.csv, study.png and heatmap_<model>.png")
    p.add_argument("--text", type=Path, default=None, metavar="FILE",
                   help="UTF-8 text file for the character LSTM (default: the Python standard library's "
                   "own source, the top-level *.py files, about 4.7 MB)")
    p.add_argument("--models", default="cnn,lstm", metavar="cnn,lstm", help="which models to study (default both)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny study in seconds (LeNet-5 on scikit-learn digits, a 16-unit LSTM on the embedded "
                   "text unless --text, one round): for smoke tests, not for figures")
    p.add_argument("--alpha", type=_int_at_least(2), default=None, help="most columns per group (default 8)")
    p.add_argument("--gammas", type=_float_tuple, default=None, metavar="G[,G..]",
                   help="conflict-permitted gammas, one CPCC arm each (default 0.125,0.25,0.5)")
    p.add_argument("--gamma", type=_fraction, default=None,
                   help="gamma of the FM_CC and block arms; a CPCC arm at this gamma is added if --gammas "
                   "lacks it, for the heatmap (default 0.5)")
    p.add_argument("--row-block", type=_positive_int, default=None, metavar="R", help="rows per block (default 32)")
    p.add_argument("--rounds", type=_positive_int, default=None, help="pruning/combining rounds per arm (default 3)")
    p.add_argument("--retrain-epochs", type=_count, default=None, help="retraining epochs per round (default 1)")
    p.add_argument("--final-epochs", type=_count, default=None, help="epochs after the last round (default 1)")
    p.add_argument("--lstm-retrain-epochs", type=_count, default=None, metavar="N",
                   help="the LSTM arms' retraining epochs per round, overriding --retrain-epochs for the LSTM "
                   "(default 2); the dense LSTM arm trains the same total")
    p.add_argument("--lstm-final-epochs", type=_count, default=None, metavar="N",
                   help="the LSTM arms' epochs after the last round, overriding --final-epochs for the LSTM "
                   "(default 2)")
    p.add_argument("--cnn-epochs", type=_count, default=None, help="CNN dense pretraining epochs (default 6)")
    p.add_argument("--lstm-epochs", type=_count, default=None, help="LSTM dense pretraining epochs (default 10)")
    p.add_argument("--lstm-hidden", type=_positive_int, default=None, help="LSTM units (default 256)")
    p.add_argument("--lstm-chars", type=_positive_int, default=None, metavar="N",
                   help="LSTM training characters per epoch (default 600000); held out: every tenth "
                   "standard library module, or the last 10 %% of --text, at most 100000 characters measured")
    p.add_argument("--bits", type=_int_list, default=None, metavar="B[,B..]",
                   help="weight widths of the quantization arms (default 4,8)")
    p.add_argument("--threads", type=_int_at_least(1, 256), default=1,
                   help="torch CPU threads (default 1: on a shared machine more threads oversubscribe the cores)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")


#: characters `study --quick --text FILE` reads of the text (a 50 MB text took many minutes)
QUICK_TEXT_CHARS = 25_000


@command("study", _study_args)
def _study(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from colcomb.train.study import StudyConfig, quick_config, run_study

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    cfg = quick_config(models) if args.quick else StudyConfig(models=models)
    lstm, cnn = cfg.lstm, cfg.cnn
    if args.text is not None:
        lstm = replace(lstm, dataset=str(args.text))
        if args.quick:  # seconds, whatever the text's size: its first characters only
            lstm = replace(lstm, max_chars=QUICK_TEXT_CHARS)
    if args.lstm_hidden is not None:
        lstm = replace(lstm, hidden=args.lstm_hidden)
    if args.lstm_chars is not None:
        lstm = replace(lstm, train_chars=args.lstm_chars)
    if args.lstm_epochs is not None:
        lstm = replace(lstm, pretrain_epochs=args.lstm_epochs)
    if args.lstm_retrain_epochs is not None:
        lstm = replace(lstm, retrain_epochs=args.lstm_retrain_epochs)
    if args.lstm_final_epochs is not None:
        lstm = replace(lstm, final_epochs=args.lstm_final_epochs)
    if args.cnn_epochs is not None:
        cnn = replace(cnn, pretrain_epochs=args.cnn_epochs)
    changes = {k: v for k, v in (("alpha", args.alpha), ("gammas", args.gammas), ("row_block", args.row_block),
                                 ("rounds", args.rounds), ("retrain_epochs", args.retrain_epochs),
                                 ("final_epochs", args.final_epochs),
                                 ("bits", tuple(args.bits) if args.bits else None)) if v is not None}
    if args.gamma is not None:
        changes.update(block_gamma=args.gamma, fm_gamma=args.gamma)
    cfg = replace(cfg, lstm=lstm, cnn=cnn, seed=args.seed, threads=args.threads, **changes)
    run_study(cfg, args.out, log=lambda msg: print(msg, flush=True))
    return 0


# -- demo ----------------------------------------------------------------------------------------

def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("build/demo"), help="run folder (default build/demo)")
    p.add_argument("--alpha", type=_positive_int, default=8, help="most columns per group (default 8)")
    p.add_argument("--gamma", type=_fraction, default=0.5, help="conflict budget (default 0.5)")
    p.add_argument("--epochs", type=_epochs, default=10, help="dense pretraining epochs (default 10)")
    p.add_argument("--hidden", type=_int_list, default=[64], metavar="W[,W..]", help="mlp hidden widths (default 64)")
    p.add_argument("--batch", type=_positive_int, default=16,
                   help="test images run on the simulated array (default 16)")
    p.add_argument("--no-hardware", action="store_true", help="skip the simulated-hardware step")


@command("demo", _demo_args)
def _demo(args: argparse.Namespace) -> int:
    from colcomb.demo import run_demo

    if args.epochs < 0:
        raise ColcombError(f"--epochs {args.epochs} must be >= 0")
    run_demo(args.out, alpha=args.alpha, gamma=args.gamma, epochs=args.epochs, hidden=args.hidden,
             images=args.batch, hardware=False if args.no_hardware else None)
    return 0


# -- synthesize / boards / report (issue 5) --------------------------------------------------------

def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, nargs="?",
                   help="folder holding manifest.json (from colcomb pack), or a design folder from colcomb generate")
    p.add_argument("--list-boards", action="store_true", help="list the supported boards and exit")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="run only these layers (repeat; default: the whole network in manifest order)")
    p.add_argument("--vectors", type=_vectors, default=None,
                   help="test vectors stored on the chip (default: one batch)")
    p.add_argument("--inputs", type=Path, default=None,
                   help=".npy of test inputs (default: generated): integers (vectors, cols of the first layer), or "
                   "float images of a `colcomb train` run's dataset (quantized with the manifest's input scale)")
    p.add_argument("--labels", type=Path, default=None,
                   help=".npy of the --inputs' class labels (vectors,): the board also prints each image's "
                   "predicted and expected class and the correct count on the UART")
    p.add_argument("--test-split", type=_positive_int, default=None, metavar="N",
                   help="store the first N images of the test split of the `colcomb train` run the manifest comes "
                   "from, with their labels (the UART prints each image's predicted and expected class)")
    p.add_argument("--data-dir", default=None, help="folder of the mnist or cifar10 files for --test-split, if moved")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the generated test inputs (default 0)")
    p.add_argument("--objective", choices=OBJECTIVES, default="throughput",
                   help="without array flags or --config: what the design search maximises (default throughput)")
    p.add_argument("--router", choices=["router1", "router2"], default=None,
                   help="nextpnr's router (default: nextpnr's own, router1)")
    p.add_argument("--no-throughput", action="store_true",
                   help="skip the Verilator run that measures the cycles per inference for report.json's throughput")
    p.add_argument("--out", type=Path, default=None, help="output folder: report.json, build/ with the bitstream")
    add_config_args(p, board_help="board name (see --list-boards), e.g. icebreaker, ulx3s-85f (required)")


@command("synthesize", _synth_args)
def _synthesize(args: argparse.Namespace) -> int:
    from colcomb.core.progress import Stages
    from colcomb.fpga.boards import boards_table
    from colcomb.fpga.synth import summary, synthesize
    from colcomb.labelled import simulation_inputs

    if args.list_boards:
        print(boards_table())
        return 0
    board_known = args.board is not None or args.config is not None or bool(
        args.manifest and is_design_folder(args.manifest))
    missing = [flag for flag, v in (("DIR", args.manifest), ("--board", board_known or None), ("--out", args.out))
               if v is None]
    if missing:
        raise ColcombError(f"synthesize needs {', '.join(missing)} (or --list-boards)")
    if is_design_folder(args.manifest):  # checked above: a folder is given
        config = _design_config(args)
    else:
        config = _searched_config(args) if _needs_search(args) else config_from_args(args)
    given = simulation_inputs(args.manifest, layers=args.layer, inputs=args.inputs, labels=args.labels,
                              test_split=args.test_split, data_dir=args.data_dir, input_flag="--inputs")
    stages = (["synth", "place-and-route", "pack"] if args.no_throughput
              else ["simulate", "synth", "place-and-route", "pack"])
    try:
        with Stages(stages, label="synthesize") as progress:
            report = synthesize(args.manifest, config, out=args.out, layers=args.layer, vectors=args.vectors,
                                seed=args.seed, inputs=None if given is None else given.x,
                                labels=None if given is None else given.labels,
                                input_source=None if given is None else given.source,
                                throughput=not args.no_throughput, progress=progress, router=args.router)
    except ColcombError:
        report_path = args.out / "report.json"
        if report_path.exists():
            import json

            try:
                print(summary(json.loads(report_path.read_text())))
            except (ValueError, KeyError):
                pass
        raise
    print(summary(report))
    print(f"wrote {args.out / 'report.json'}")
    return 0


def _boards_args(p: argparse.ArgumentParser) -> None:
    pass


@command("boards", _boards_args)
def _boards(args: argparse.Namespace) -> int:
    from colcomb.fpga.boards import boards_table

    print(boards_table())
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="folder holding manifest.json (from colcomb pack)")
    p.add_argument("--vectors", type=_vectors, default=None, help="vectors to time (default: one batch)")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="only these layers (repeat; default: the whole network)")
    p.add_argument("--synth-report", type=Path, default=None, metavar="REPORT_JSON",
                   help="take the hardware config (board, array, batch, DSP use, ...) from a `colcomb synthesize` "
                   "report and the clock from its achieved Fmax; flags given beside it win")
    p.add_argument("--no-synth", action="store_true", help="skip the yosys cell synthesis (no LUT figures)")
    p.add_argument("--out", type=Path, required=True, help="output folder: cost.json, cost.md, heatmap.png")
    add_config_args(p, board_help="board whose FPGA family prices the cells (default: the synthesis report's, "
                                  "else icebreaker)")


@command("report", _report_args)
def _report(args: argparse.Namespace) -> int:
    from colcomb.fpga.cost import cost_report, markdown
    from colcomb.fpga.synth import report_config

    if args.synth_report is not None:
        if args.config is not None:
            raise ColcombError("give --config or --synth-report, not both (the report holds its config)")
        if args.clock is not None:
            raise ColcombError("--clock and --synth-report: the report's achieved Fmax is the clock; give one")
        config = report_config(args.synth_report).replace(**given_fields(args))
    else:
        config = _design_config(args)
    report = cost_report(args.manifest, config, out=args.out, vectors=args.vectors,
                         synth_report=args.synth_report, layers=args.layer, synth=not args.no_synth)
    print(markdown(report))
    print(f"wrote {args.out / 'cost.json'}, {args.out / 'cost.md'}, {args.out / 'heatmap.png'}")
    return 0


# -- estimate / explore --------------------------------------------------------------------------

def _estimate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="folder holding manifest.json (from colcomb pack or train)")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="only these layers (repeat; default: the whole network, a CNN whole on chip)")
    p.add_argument("--vectors", type=_vectors, default=None,
                   help="test vectors the board self-test stores (default: one batch)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the estimate as JSON")
    add_config_args(p, board_help="board to estimate for (required; `colcomb boards` lists them)")


@command("estimate", _estimate_args)
def _estimate(args: argparse.Namespace) -> int:
    import json

    from colcomb.core.atomic import write_text
    from colcomb.fpga.estimate import estimate
    from colcomb.fpga.explore_report import estimate_text

    t0 = time.perf_counter()
    config = _design_config(args)
    if config.board is None:
        raise ColcombError("estimate needs --board (or a --config that names one)")
    est = estimate(args.manifest, config, layers=args.layer, vectors=args.vectors)
    print(estimate_text(est))
    print(f"({time.perf_counter() - t0:.2f} s, no synthesis: calibrated model; `colcomb synthesize` measures)")
    if args.json is not None:
        write_text(args.json, json.dumps(est.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if est.fits else 1


def _explore_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="folder holding manifest.json (from colcomb pack or train)")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="only these layers (repeat; default: the whole network, a CNN whole on chip)")
    p.add_argument("--objective", choices=OBJECTIVES, default="throughput",
                   help="rank by inferences/s (throughput, default), one image's latency, or fewest logic cells")
    p.add_argument("--top", type=_positive_int, default=10, help="designs listed (default 10)")
    p.add_argument("--utilization", type=_fraction, default=None,
                   help="most of the board's logic cells a design may fill (default 0.98: place and route needs "
                   "slack)")
    p.add_argument("--confirm", type=_count, default=0, metavar="K",
                   help="place and route the best K designs (minutes each) and print predicted against measured")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder: best.json (the winner's config), designs.csv, explore.json, pareto.png "
                   "(default build/explore-BOARD)")
    add_config_args(p, board_help="board to search for (required); every other flag given pins that field")


@command("explore", _explore_args)
def _explore(args: argparse.Namespace) -> int:
    from colcomb.fpga.explore_report import run_explore

    if args.board is None and args.config is None:
        raise ColcombError("explore needs --board")
    fixed = given_fields(args)
    if args.config is not None:
        from colcomb.hdl.config import HardwareConfig

        fixed = {**{k: v for k, v in HardwareConfig.load(args.config).to_dict().items()
                    if k != "format" and v is not None}, **fixed}
    return run_explore(args.manifest, fixed, objective=args.objective, top=args.top, out=args.out,
                       confirm=args.confirm, layers=args.layer, utilization=args.utilization)


#: flags that choose the array: without any of them (and without --config), synthesize searches
_ARRAY_FIELDS = ("rows", "cols", "cell")


def _needs_search(args: argparse.Namespace) -> bool:
    return args.config is None and not any(f in given_fields(args) for f in _ARRAY_FIELDS)


def _searched_config(args: argparse.Namespace):
    """The best design ``colcomb explore`` finds for the manifest on the board (flags given pin
    their fields); one clear error, before any synthesis, when none fits."""
    from colcomb.fpga.explore_report import search_for_synthesis

    return search_for_synthesis(args.manifest, given_fields(args), objective=args.objective, layers=args.layer)


# -- entry point ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colcomb",
        description="Column combining for sparse neural networks on FPGA systolic arrays: "
        "pack sparse layers, generate and simulate the hardware, check it against the golden model.",
    )
    parser.add_argument("--version", action="version", version=f"colcomb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (add_args, handler) in _COMMANDS.items():
        doc = (handler.__doc__ or "").strip()
        sp = sub.add_parser(name, help=_HELP.get(name, doc), description=_HELP.get(name, doc))
        add_args(sp)
        sp.set_defaults(handler=handler)
    return parser


_HELP = {
    "synthesize": "build the self-testing board top (network + stored test vectors) for a board; report.json",
    "boards": "list the boards `colcomb synthesize` supports, with device and default clock",
    "estimate": "predicted logic cells, block RAMs, SPRAMs, DSPs and cycles per inference of one hardware config on a "
                "board, in under a second (no synthesis)",
    "explore": "search the hardware configs for a network on a board: the best designs that fit, a Pareto plot, "
               "and the winner as a config file",
    "report": "hardware cost: dense array vs column-combined array (cells, LUTs per cell, cycles, MAC/s, heatmap)",
    "pack": "group, prune and quantize sparse layers; write manifest.json and ROM images",
    "golden": "run the integer golden model of a packed network on inputs",
    "seal": "accept a hand-edited manifest.json on purpose: store the digest of its current content",
    "generate": "write the Verilog of the column-combined systolic array for a packed network (lint-checked)",
    "simulate": "run the generated array in Verilator (cocotb) and check every output against the golden model",
    "train": "train a model, prune and combine its columns jointly, write checkpoint + packed manifest",
    "evaluate": "float and integer (golden model) accuracy of a `colcomb train` run, packing per layer",
    "sweep": "accuracy vs number of weights for conflict-free and conflict-permitted combining (CSV + PNG)",
    "study": "the seed study: dense, CC, CPCC, FM_CC, row-block CC and per-layer/block/row quantization "
             "on a CNN (accuracy) and a char LSTM (held-out bits per character); CSV + PNG",
    "demo": "train + pack + evaluate an MLP on MNIST 5k, then check the simulated array against the golden model",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:  # a field of the hardware config: name the flag that sets it
        print(f"colcomb {args.command}: error: {flag_of(exc.field)}: {exc}", file=sys.stderr)
        return 2
    except ColcombError as exc:
        print(f"colcomb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the user named could not be read or written
        print(f"colcomb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("colcomb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
