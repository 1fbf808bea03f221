"""Packing speed and quality: colcomb's grouping against a straightforward implementation of the
published greedy rule (Kung et al., ASPLOS 2019), side by side on the same matrices.

    python benchmarks/pack_speed.py [--seed S] [--repeat N] [--scaling] [--vgg]

For each matrix (256 x 512 and 64 x 1024 at 80-95 % zeros), alpha 8, gamma 0 and 0.5, it prints
packed columns, pruned weights and packing time of both, and the ratios ours / reference.
The reference uses Python integers as row bitsets and loops over candidate partners, as the rule
is written: the lowest-index open group merges with the partner that leaves the fewest empty rows.

``--scaling`` prints ``auto``'s time against columns (64 rows, 10 % nonzero, 1,024 to 40,000
columns, gamma 0 and 0.5) with the packed columns, the lower bound and the gap, and the seconds per
thousand columns (flat when the time grows linearly). ``--vgg`` adds VGG-16's ImageNet classifier
shape, 4,096 x 25,088 at 10 % (about three minutes and 1 GB here).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from colcomb.core.table import table
from colcomb.packer.bound import lower_bound
from colcomb.packer.combine import conflict_budget, group_columns, pruned_count


def published_reference(weights: np.ndarray, alpha: int, gamma: float) -> list[list[int]]:
    """The published greedy rule, written plainly."""
    nz = weights != 0
    rows = nz.shape[0]
    budget = conflict_budget(gamma, rows)
    masks = {c: int("".join("1" if b else "0" for b in nz[:, c]), 2) for c in range(nz.shape[1]) if nz[:, c].any()}
    groups = [[c] for c in sorted(masks)]
    occ = [masks[g[0]] for g in groups]
    pruned = [0] * len(groups)
    alive = [True] * len(groups)
    for i in range(len(groups)):
        if not alive[i]:
            continue
        while len(groups[i]) < alpha:
            best, best_union = -1, -1
            for j in range(i + 1, len(groups)):
                if not alive[j] or len(groups[i]) + len(groups[j]) > alpha:
                    continue
                overlap = (occ[i] & occ[j]).bit_count()
                if pruned[i] + pruned[j] + overlap > budget:
                    continue
                union = (occ[i] | occ[j]).bit_count()
                if union > best_union:
                    best, best_union = j, union
            if best < 0:
                break
            pruned[i] += pruned[best] + (occ[i] & occ[best]).bit_count()
            occ[i] |= occ[best]
            groups[i] += groups[best]
            alive[best] = False
    return [sorted(g) for g, a in zip(groups, alive, strict=True) if a]


def timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def scaling(seed: int, vgg: bool) -> None:
    """auto's time against columns, with the bound that says what the speed cost in quality, beside
    the same methods over the whole matrix as one window (their work grows with columns squared)."""
    rng = np.random.default_rng(seed)
    shapes = [(64, c) for c in (1024, 2048, 5000, 10000, 20000, 40000)] + ([(4096, 25088)] if vgg else [])
    rows_out = []
    for shape in shapes:
        w = rng.standard_normal(shape, dtype=np.float32) * (rng.random(shape, dtype=np.float32) < 0.1)
        for gamma in (0.0, 0.5):
            t0 = time.perf_counter()
            groups = group_columns(w, 8, gamma, "auto")
            seconds = time.perf_counter() - t0
            bound = lower_bound(w, 8, gamma)
            whole, t_whole = [], float("nan")
            if shape[0] == 64:  # one window: the quadratic path (hours for the tall layer)
                t0 = time.perf_counter()
                whole = group_columns(w, 8, gamma, "auto", window=shape[1])
                t_whole = time.perf_counter() - t0
            rows_out.append([f"{shape[0]}x{shape[1]}", gamma, len(groups), bound.value, bound.name,
                             f"{len(groups) / bound.value - 1:.2%}", f"{seconds:.2f}",
                             f"{1e3 * seconds / shape[1]:.3f}", len(whole) if whole else "-",
                             f"{t_whole:.2f}" if whole else "-", f"{t_whole / seconds:.1f}x" if whole else "-"])
            print(f"{shape[0]}x{shape[1]} gamma {gamma}: {seconds:.1f} s", flush=True)
    print(table(["matrix", "gamma", "auto cols", "bound", "by", "gap", "auto s", "s per 1k cols",
                 "one window cols", "one window s", "ratio"], rows_out))
    print(f"\npeak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
          f"(alpha 8, 10 % nonzero, seed {seed})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings (default 3)")
    ap.add_argument("--scaling", action="store_true", help="auto's time against columns instead")
    ap.add_argument("--vgg", action="store_true", help="with --scaling: add the 4,096 x 25,088 layer")
    args = ap.parse_args()
    if args.scaling:
        scaling(args.seed, args.vgg)
        return
    rng = np.random.default_rng(args.seed)
    rows_out = []
    totals = np.zeros(4)
    for shape in ((256, 512), (64, 1024)):
        for zeros in (0.80, 0.90, 0.95):
            w = rng.standard_normal(shape) * (rng.random(shape) >= zeros)
            for gamma in (0.0, 0.5):
                ours, t_ours = timed(lambda w=w, g=gamma: group_columns(w, 8, g, "auto"), args.repeat)
                ref, t_ref = timed(lambda w=w, g=gamma: published_reference(w, 8, g), args.repeat)
                p_ours, p_ref = pruned_count(w, ours), pruned_count(w, ref)
                totals += [len(ours), len(ref), p_ours, p_ref]
                rows_out.append([
                    f"{shape[0]}x{shape[1]}", f"{zeros:.0%}", gamma,
                    len(ref), len(ours), len(ours) / len(ref),
                    p_ref, p_ours, f"{p_ours / p_ref:.3f}" if p_ref else "-",
                    f"{t_ref * 1e3:.0f}", f"{t_ours * 1e3:.0f}", f"{t_ref / t_ours:.1f}x",
                ])
    print(table(["matrix", "zeros", "gamma", "cols ref", "cols ours", "ratio", "pruned ref",
                 "pruned ours", "ratio", "ms ref", "ms ours", "speedup"], rows_out))
    print(f"\ntotal packed columns ours/ref: {totals[0] / totals[1]:.3f}; "
          f"total pruned weights ours/ref: {totals[2] / totals[3]:.3f} (alpha 8, seed {args.seed})")


if __name__ == "__main__":
    main()
