"""Column grouping: which sparse columns of a filter matrix share one packed column.

A group holds at most ``alpha`` columns. Combining columns that are both nonzero in a row is a
conflict: only the largest-magnitude weight of that row survives, the others are pruned. A group
may prune at most ``floor(gamma * rows)`` weights (gamma = 0 is conflict-free combining). All-zero
columns are dropped: they never get a packed column.

Three algorithms, and ``auto`` (the default) which runs all three and keeps the grouping with the
fewest packed columns, then the fewest pruned weights (benchmarks/pack_speed.py shows why: none of
them wins on every matrix, and all three together cost well under a second at 1024 columns):

- :func:`group_best_fit`: best-fit decreasing. Columns are taken densest first; each joins the
  fullest group it does not conflict with, else opens a group. Then the smallest groups are
  dissolved whenever each of their columns fits into another group within the budget, and
  remaining groups merge pairwise, least conflicting partner first.
- :func:`group_fill`: sequential filling. The densest unplaced column seeds a group that takes the
  least-conflicting unplaced column until full; then the same dissolving pass.
- :func:`group_published`: the greedy rule of Kung et al. (ASPLOS 2019): take the lowest-index
  open group and merge it with the partner that leaves the fewest empty rows, until no partner is
  feasible. Kept as the baseline the benchmarks compare against.

Both are vectorized over groups (a column's conflicts with every group are one matrix-vector
product of boolean occupancy).
"""

from __future__ import annotations

import numpy as np

from colcomb.core.errors import ColcombError

METHODS = ("auto", "best-fit", "fill", "published")


def conflict_budget(gamma: float, rows: int) -> int:
    """Most weights one group may prune: floor(gamma x rows)."""
    return int(np.floor(gamma * rows + 1e-9))


def _check(weights: np.ndarray, alpha: int, gamma: float) -> np.ndarray:
    w = np.asarray(weights)
    if w.ndim != 2:
        raise ColcombError(f"a filter matrix must be 2-D (rows x columns), got shape {list(w.shape)}")
    if not isinstance(alpha, (int, np.integer)) or alpha < 1:
        raise ColcombError(f"alpha must be an integer >= 1 (columns per group), got {alpha!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ColcombError(f"gamma must lie in [0, 1] (fraction of rows a group may prune), got {gamma!r}")
    if not np.all(np.isfinite(w)):
        raise ColcombError("the filter matrix holds NaN or infinite weights; fix the model first")
    return w != 0


def group_best_fit(weights: np.ndarray, alpha: int, gamma: float = 0.0) -> list[list[int]]:
    """Groups (lists of original column indices, ascending) by best-fit decreasing + elimination."""
    nz = _check(weights, alpha, gamma)
    rows = nz.shape[0]
    budget = conflict_budget(gamma, rows)
    counts = nz.sum(axis=0)
    order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0]
    occ = np.zeros((rows, max(len(order), 1)), np.float32)  # occupancy of each group, per row
    size = np.zeros(occ.shape[1], np.int64)
    members: list[list[int]] = []
    nzf = nz.astype(np.float32)
    fill = np.zeros(occ.shape[1], np.float32)
    for c in order:
        col = nzf[:, c]
        n = len(members)
        best = -1
        if n:
            overlap = (col @ occ[:, :n]).astype(np.int64)
            ok = (size[:n] < alpha) & (overlap == 0)
            if ok.any():
                best = int(np.argmax(np.where(ok, fill[:n], -1)))
        if best < 0:
            best = n
            members.append([])
        members[best].append(c)
        size[best] += 1
        np.maximum(occ[:, best], col, out=occ[:, best])
        fill[best] = occ[:, best].sum()
    members = _eliminate(nzf, members, alpha, budget)
    members = _merge_pairs(nzf, members, alpha, budget)
    return sorted(sorted(g) for g in members)


def _merge_pairs(nzf: np.ndarray, members: list[list[int]], alpha: int, budget: int) -> list[list[int]]:
    """Merge whole groups, smallest first, each with the partner it conflicts with least."""
    groups = [list(g) for g in members]
    if len(groups) < 2:
        return groups
    occ = np.stack([nzf[:, g].max(axis=1) for g in groups], axis=1)
    cnt = np.stack([nzf[:, g].sum(axis=1) for g in groups], axis=1)
    pruned = np.maximum(cnt - 1, 0).sum(axis=0).astype(np.int64)
    size = np.array([len(g) for g in groups], np.int64)
    alive = np.ones(len(groups), bool)
    for i in np.argsort(size, kind="stable"):
        if not alive[i]:
            continue
        overlap = (occ[:, i] @ occ).astype(np.int64)
        ok = alive & (size + size[i] <= alpha) & (pruned + pruned[i] + overlap <= budget)
        ok[i] = False
        if not ok.any():
            continue
        j = int(np.argmin(np.where(ok, overlap * (nzf.shape[0] + 1) - occ.sum(axis=0), np.inf)))
        groups[j] += groups[i]
        size[j] += size[i]
        pruned[j] += pruned[i] + overlap[j]
        np.maximum(occ[:, j], occ[:, i], out=occ[:, j])
        alive[i] = False
    return [g for g, a in zip(groups, alive, strict=True) if a]


def group_fill(weights: np.ndarray, alpha: int, gamma: float = 0.0) -> list[list[int]]:
    """Groups by sequential filling + elimination: the densest unplaced column seeds a group, which
    then takes the unplaced column it conflicts with least (ties: the densest) until it holds alpha
    columns or nothing fits the budget."""
    nz = _check(weights, alpha, gamma)
    rows = nz.shape[0]
    budget = conflict_budget(gamma, rows)
    counts = nz.sum(axis=0)
    cand = np.flatnonzero(counts > 0)
    cand = cand[np.argsort(-counts[cand], kind="stable")]
    sub = nz[:, cand].astype(np.float32)
    density = counts[cand]
    free = np.ones(len(cand), bool)
    members: list[list[int]] = []
    for k in range(len(cand)):
        if not free[k]:
            continue
        free[k] = False
        group, occ, pruned = [int(cand[k])], sub[:, k].copy(), 0
        while len(group) < alpha and free.any():
            overlap = (occ @ sub).astype(np.int64)
            ok = free & (pruned + overlap <= budget)
            if not ok.any():
                break
            j = int(np.argmin(np.where(ok, overlap * (rows + 1) - density, np.inf)))
            free[j] = False
            group.append(int(cand[j]))
            pruned += int(overlap[j])
            np.maximum(occ, sub[:, j], out=occ)
        members.append(group)
    members = _eliminate(nz.astype(np.float32), members, alpha, budget)
    return sorted(sorted(g) for g in members)


def _eliminate(nzf: np.ndarray, members: list[list[int]], alpha: int, budget: int) -> list[list[int]]:
    """Dissolve small groups whose every column fits into some other group."""
    rows = nzf.shape[0]
    groups = [list(g) for g in members]
    if not groups:
        return groups
    occ = np.stack([nzf[:, g].max(axis=1) for g in groups], axis=1)
    cnt = np.stack([nzf[:, g].sum(axis=1) for g in groups], axis=1)
    pruned = np.maximum(cnt - 1, 0).sum(axis=0).astype(np.int64)
    size = np.array([len(g) for g in groups], np.int64)
    fill = occ.sum(axis=0)
    alive = np.ones(len(groups), bool)
    for victim in np.argsort(size, kind="stable"):
        if size[victim] >= alpha:  # it grew during this pass: full groups are not dissolved
            continue
        alive[victim] = False
        undo = []  # (dest, old occupancy column, old fill, overlap) to roll back a failed attempt
        for c in sorted(groups[victim], key=lambda c: -nzf[:, c].sum()):
            col = nzf[:, c]
            overlap = (col @ occ).astype(np.int64)
            ok = alive & (size < alpha) & (pruned + overlap <= budget)
            if not ok.any():
                break
            dest = int(np.argmin(np.where(ok, overlap * (rows + 1) - fill, np.inf)))
            undo.append((dest, occ[:, dest].copy(), fill[dest], int(overlap[dest]), c))
            pruned[dest] += overlap[dest]
            size[dest] += 1
            np.maximum(occ[:, dest], col, out=occ[:, dest])
            fill[dest] = occ[:, dest].sum()
        if len(undo) == len(groups[victim]):
            for dest, *_, c in undo:
                groups[dest].append(c)
            groups[victim] = []
        else:
            for dest, old, old_fill, overlap, _ in reversed(undo):
                occ[:, dest], fill[dest] = old, old_fill
                pruned[dest] -= overlap
                size[dest] -= 1
            alive[victim] = True
    return [g for g, a in zip(groups, alive, strict=True) if a and g]


def group_published(weights: np.ndarray, alpha: int, gamma: float = 0.0) -> list[list[int]]:
    """The published greedy rule (baseline): lowest-index group merges with the partner leaving
    the fewest empty rows, within alpha and the conflict budget."""
    nz = _check(weights, alpha, gamma)
    rows, _ = nz.shape
    budget = conflict_budget(gamma, rows)
    cols_nz = [int(c) for c in np.flatnonzero(nz.any(axis=0))]
    groups = [[c] for c in cols_nz]
    occ = nz[:, cols_nz].astype(np.float32)
    size = np.ones(len(groups), np.int64)
    pruned = np.zeros(len(groups), np.int64)
    alive = np.ones(len(groups), bool)
    for i in range(len(groups)):
        if not alive[i]:
            continue
        while size[i] < alpha:
            overlap = (occ[:, i] @ occ).astype(np.int64)
            union = occ[:, i].sum() + occ.sum(axis=0) - overlap
            ok = alive & (size[i] + size <= alpha) & (pruned[i] + pruned + overlap <= budget)
            ok[: i + 1] = False
            if not ok.any():
                break
            j = int(np.argmax(np.where(ok, union, -1)))  # fewest empty rows = largest union
            groups[i] += groups[j]
            size[i] += size[j]
            pruned[i] += pruned[j] + overlap[j]
            np.maximum(occ[:, i], occ[:, j], out=occ[:, i])
            alive[j] = False
    return [sorted(g) for g, a in zip(groups, alive, strict=True) if a]


def pruned_count(weights: np.ndarray, groups: list[list[int]]) -> int:
    """Nonzero weights that combining ``groups`` prunes (all but one nonzero per row and group)."""
    nz = np.asarray(weights) != 0
    return int(sum((nz[:, g].sum(axis=1) - nz[:, g].any(axis=1)).sum() for g in groups))


def group_columns(weights: np.ndarray, alpha: int, gamma: float = 0.0, method: str = "auto") -> list[list[int]]:
    """Group the columns of one block/section with the named method. ``auto`` runs every method
    and keeps the grouping with the fewest packed columns, then the fewest pruned weights."""
    single = {"best-fit": group_best_fit, "fill": group_fill, "published": group_published}
    if method in single:
        return single[method](weights, alpha, gamma)
    if method == "auto":
        results = [fn(weights, alpha, gamma) for fn in single.values()]
        return min(results, key=lambda gs: (len(gs), pruned_count(weights, gs)))
    raise ColcombError(f"unknown combining method {method!r}; use one of {', '.join(METHODS)}")


def combine(weights: np.ndarray, groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Packed weights and selects (rows x groups): each row keeps its group's largest-magnitude
    weight (ties: the lowest column); select is that column's position in the group."""
    w = np.asarray(weights, np.float64)
    rows = w.shape[0]
    packed = np.zeros((rows, len(groups)), np.float64)
    selects = np.zeros((rows, len(groups)), np.int64)
    for g, group in enumerate(groups):
        sub = w[:, group]
        sel = np.argmax(np.abs(sub), axis=1)
        selects[:, g] = sel
        packed[:, g] = sub[np.arange(rows), sel]
    return packed, selects
