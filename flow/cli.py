"""The ``colcomb`` command: one subcommand per flow step."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from colcomb import __version__
from colcomb.errors import ColcombError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register a subcommand: its argument setup and its handler."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (add_args, fn)
        return fn

    return wrap


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
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
                   help="grouping algorithm (default auto: the best of all, per matrix)")
    p.add_argument("--activation", choices=("none", "relu"), default="none",
                   help="output clamp of every layer (default none)")
    p.add_argument("--act-scale", type=float, default=None,
                   help="real value of one activation step, used to convert biases (default 1/(2^(data_bits-1)-1))")
    p.add_argument("--out", type=Path, required=True, help="output folder for manifest.json and its files")


@command("pack", _pack_args)
def _pack(args: argparse.Namespace) -> int:
    from colcomb.packer.manifest import write_manifest
    from colcomb.packer.pack import PackOptions, pack_layer
    from colcomb.packer.sources import read_matrices
    from colcomb.summary import pack_summary

    opts = PackOptions(
        alpha=args.alpha, gamma=args.gamma, bits=args.bits, data_bits=args.data_bits,
        acc_bits=args.acc_bits, row_block=args.row_block, section=args.section, quant=args.quant,
        power_of_two=args.power_of_two, method=args.method, activation=args.activation,
        act_scale=args.act_scale,
    )
    opts.validate()
    matrices = read_matrices(args.input)
    layers = []
    for i, m in enumerate(matrices, 1):
        t0 = time.perf_counter()
        layers.append(pack_layer(m.name, m.weights, opts, m.bias))
        print(f"[{i}/{len(matrices)}] {m.name} {m.weights.shape[0]}x{m.weights.shape[1]} "
              f"packed in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    path = write_manifest(layers, args.out, meta={"source": str(args.input), "options": vars(opts)})
    print(pack_summary(layers))
    print(f"wrote {path}")
    return 0


# -- golden --------------------------------------------------------------------------------------

def _golden_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="folder holding manifest.json (from colcomb pack)")
    p.add_argument("--input", type=Path, required=True,
                   help=".npy of integer inputs: (batch, cols of the first layer) or (cols,)")
    p.add_argument("--out", type=Path, required=True, help=".npy file for the integer outputs")
    p.add_argument("--layer", default=None, help="run only this layer (default: the whole network, in manifest order)")


@command("golden", _golden_args)
def _golden(args: argparse.Namespace) -> int:
    from colcomb.atomic import save_npy
    from colcomb.packer.manifest import load_manifest
    from colcomb.sim.golden import run_network

    manifest = load_manifest(args.manifest)
    layers = [manifest.layer(args.layer)] if args.layer else manifest.layers
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ColcombError(f"{args.input}: cannot read it as a .npy array ({exc})") from None
    y = run_network(layers, x)
    save_npy(args.out, y)
    print(f"{layers[0].name} .. {layers[-1].name}: {y.shape[0]} vector(s) -> {args.out} "
          f"(shape {list(y.shape)}, range [{y.min()}, {y.max()}])")
    return 0


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
    "pack": "group, prune and quantize sparse layers; write manifest.json and ROM images",
    "golden": "run the integer golden model of a packed network on inputs",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ColcombError as exc:
        print(f"colcomb {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("colcomb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
