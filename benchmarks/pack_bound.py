"""How close to optimal is the packing: every heuristic, ``auto``, ``exact`` and the lower bound side
by side, with times, on seeded random matrices and on the trained matrices of built-in runs.

    python benchmarks/pack_bound.py [--time-limit 60] [--alpha 8] [--gamma 0] [RUN/model.pt ...]

Without run arguments it reads the runs below that exist (and names those missing, with the
command that makes each). Per matrix: packed columns of each heuristic, of ``auto`` (with its
seconds) and of ``exact`` (its status, its seconds against the limit); the bound and which bound
gives it; ``auto``'s gap to the bound, and how many fewer columns ``exact`` found than ``auto``.
The issue's target: on the trained LeNet-5 and LSTM matrices at gamma 0 and alpha 8, ``auto``
within 5 % of the bound, or ``exact`` at least 5 % smaller within 60 s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from colcomb.core.table import table
from colcomb.packer.bound import lower_bound
from colcomb.packer.combine import HEURISTICS, group_columns
from colcomb.packer.exact import group_exact
from colcomb.packer.sources import read_matrices

RUNS = {
    "build/lenet14/model.pt": "colcomb train --dataset mnist5k-14 --model lenet5 --alpha 8 --gamma 0.5 "
    "--per-feature-map --out build/lenet14",
    "build/lenet28-first/model.pt": "colcomb train --dataset mnist5k --model lenet5 --alpha 8 --gamma 0.5 "
    "--per-feature-map --include-first --out build/lenet28-first",
    "build/lstm256/model.pt": "colcomb train --dataset text --model charlstm --hidden 256 --alpha 8 --gamma 0.5 "
    "--epochs 2 --rounds 2 --retrain-epochs 1 --final-epochs 1 --out build/lstm256",
}
RANDOM = [((32, 128), 0.10), ((64, 256), 0.10), ((64, 256), 0.15), ((64, 1024), 0.10), ((128, 512), 0.05)]


def matrices(runs: list[str], seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = [(f"random {r}x{c} {d:.0%}", rng.standard_normal((r, c)) * (rng.random((r, c)) < d)) for (r, c), d in RANDOM]
    for run in runs:
        name = Path(run).parent.name
        out += [(f"{name} {m.name}", m.weights) for m in read_matrices(Path(run)) if m.weights.ndim == 2]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="trained checkpoints (default: the built-in runs that exist)")
    ap.add_argument("--alpha", type=int, default=8)
    ap.add_argument("--gamma", type=float, default=0.0)
    ap.add_argument("--time-limit", type=float, default=60.0, help="exact's seconds per matrix (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random matrices (default 0)")
    args = ap.parse_args()
    runs = args.runs
    if not runs:
        runs = [r for r in RUNS if Path(r).exists()]
        for r, cmd in RUNS.items():
            if r not in runs:
                print(f"(skipping {r}: make it with `{cmd}`)")
    rows = []
    for name, w in matrices(runs, args.seed):
        if not (w != 0).any():
            continue
        each = [len(group_columns(w, args.alpha, args.gamma, m)) for m in HEURISTICS]
        t0 = time.perf_counter()
        auto = group_columns(w, args.alpha, args.gamma, "auto")
        t_auto = time.perf_counter() - t0
        t0 = time.perf_counter()
        bound = lower_bound(w, args.alpha, args.gamma)
        t_bound = time.perf_counter() - t0
        exact = group_exact(w, args.alpha, args.gamma, args.time_limit)
        best = exact.bound.value
        rows.append([
            name, f"{w.shape[0]}x{w.shape[1]}", *each, len(auto), f"{t_auto:.2f}",
            bound.value, bound.name, f"{t_bound:.2f}", f"{len(auto) / bound.value - 1:.1%}",
            len(exact.groups), best, exact.status, f"{exact.seconds:.1f}",
            f"{1 - len(exact.groups) / len(auto):.1%}",
        ])
        print(f"{name}: done", flush=True)
    print(f"\nalpha {args.alpha}, gamma {args.gamma}, exact limit {args.time_limit:g} s per matrix\n")
    print(table(["matrix", "shape", *HEURISTICS, "auto", "s", "bound", "by", "s", "auto gap",
                 "exact", "proven", "status", "s", "exact fewer"], rows))


if __name__ == "__main__":
    main()
