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

METHODS = ("auto", "best-fit", "fill", "published", "dsatur", "exact")
HEURISTICS = ("best-fit", "fill", "published", "dsatur")


def _rows_of(nz: np.ndarray) -> list[np.ndarray]:
    """Each column's nonzero rows."""
    return [np.flatnonzero(nz[:, c]) for c in range(nz.shape[1])]


def _overlap(occ: np.ndarray, rows: np.ndarray, n: int | None = None) -> np.ndarray:
    """Rows shared with each of the first ``n`` columns of the 0/1 matrix ``occ`` by a column
    nonzero in ``rows``: a sum over those rows only, so a sparse column costs its nonzeros, not
    the matrix height (float32 sums of 0/1 are exact far beyond any row count)."""
    n = occ.shape[1] if n is None else n
    if not len(rows):
        return np.zeros(n, np.int64)
    if 4 * len(rows) < occ.shape[0]:
        return occ[rows, :n].sum(axis=0).astype(np.int64)
    v = np.zeros(occ.shape[0], occ.dtype)
    v[rows] = 1
    return (v @ occ[:, :n]).astype(np.int64)


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
    rows_of = _rows_of(nz)
    fill = np.zeros(occ.shape[1], np.float32)
    for c in order:
        col = nzf[:, c]
        n = len(members)
        best = -1
        if n:
            overlap = _overlap(occ, rows_of[c], n)
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
        overlap = _overlap(occ, np.flatnonzero(occ[:, i]))
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
            overlap = _overlap(sub, np.flatnonzero(occ))
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
            overlap = _overlap(occ, np.flatnonzero(col))
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


def group_dsatur(weights: np.ndarray, alpha: int, gamma: float = 0.0) -> list[list[int]]:
    """Conflict-free groups by DSatur (Brelaz's graph colouring) with at most ``alpha`` columns a
    colour: the column whose conflicting columns already sit in the most distinct groups goes
    next (ties: the most conflicts, then the lowest index), into the fullest group it may join.
    It places the most constrained columns (a dense row's) while they still have a choice, which
    the density orders do not. It prunes nothing, so it is valid at any gamma."""
    nz = _check(weights, alpha, gamma)
    cols = np.flatnonzero(nz.any(axis=0))
    n = len(cols)
    if n == 0:
        return []
    nzf = nz[:, cols].astype(np.float32)
    adj = (nzf.T @ nzf) > 0
    np.fill_diagonal(adj, False)
    seen = np.zeros((n, n), bool)  # seen[g, v]: a column conflicting with v is in group g
    size = np.zeros(n, np.int64)
    key = adj.sum(axis=1).astype(np.int64)  # saturation x (n + 1) + degree; -1 once placed
    free = np.ones(n, bool)
    members: list[list[int]] = []
    for _ in range(n):
        v = int(np.argmax(key))
        k = len(members)
        ok = ~seen[:k, v] & (size[:k] < alpha)
        g = int(np.argmax(np.where(ok, size[:k], -1))) if ok.any() else k
        if g == k:
            members.append([])
        members[g].append(int(cols[v]))
        size[g] += 1
        free[v] = False
        fresh = adj[v] & ~seen[g]
        seen[g, fresh] = True
        key[fresh & free] += n + 1
        key[v] = -1
    return sorted(sorted(g) for g in members)


def group_published(weights: np.ndarray, alpha: int, gamma: float = 0.0) -> list[list[int]]:
    """The published greedy rule (baseline): lowest-index group merges with the partner leaving
    the fewest empty rows, within alpha and the conflict budget."""
    nz = _check(weights, alpha, gamma)
    rows, _ = nz.shape
    budget = conflict_budget(gamma, rows)
    cols_nz = [int(c) for c in np.flatnonzero(nz.any(axis=0))]
    groups = [[c] for c in cols_nz]
    occ = nz[:, cols_nz].astype(np.float32)
    fill = occ.sum(axis=0)
    size = np.ones(len(groups), np.int64)
    pruned = np.zeros(len(groups), np.int64)
    alive = np.ones(len(groups), bool)
    for i in range(len(groups)):
        if not alive[i]:
            continue
        while size[i] < alpha:
            overlap = _overlap(occ, np.flatnonzero(occ[:, i]))
            union = occ[:, i].sum() + fill - overlap
            ok = alive & (size[i] + size <= alpha) & (pruned[i] + pruned + overlap <= budget)
            ok[: i + 1] = False
            if not ok.any():
                break
            j = int(np.argmax(np.where(ok, union, -1)))  # fewest empty rows = largest union
            groups[i] += groups[j]
            size[i] += size[j]
            pruned[i] += pruned[j] + overlap[j]
            np.maximum(occ[:, i], occ[:, j], out=occ[:, i])
            fill[i] = occ[:, i].sum()
            alive[j] = False
    return [sorted(g) for g, a in zip(groups, alive, strict=True) if a]


def pruned_count(weights: np.ndarray, groups: list[list[int]]) -> int:
    """Nonzero weights that combining ``groups`` prunes (all but one nonzero per row and group)."""
    nz = np.asarray(weights) != 0
    return int(sum((nz[:, g].sum(axis=1) - nz[:, g].any(axis=1)).sum() for g in groups))


def window_for(rows: int) -> int:
    """Most nonzero columns grouped together: 4,096, fewer for tall matrices (a window's work grows
    with columns squared times rows), never under 512."""
    return max(512, min(4096, (1 << 22) // max(rows, 1)))


def group_columns(
    weights: np.ndarray,
    alpha: int,
    gamma: float = 0.0,
    method: str = "auto",
    window: int | None = None,
    time_limit: float = 60.0,
) -> list[list[int]]:
    """Group the columns of one block/section with the named method. ``auto`` runs every heuristic
    and keeps the grouping with the fewest packed columns, then the fewest pruned weights;
    ``exact`` searches for the fewest groups for up to ``time_limit`` seconds
    (:func:`colcomb.packer.exact.group_exact`, which also returns the bound it proves).

    A matrix with more nonzero columns than ``window`` (default :func:`window_for`) is grouped
    window by window (equal runs of consecutive nonzero columns); the columns of a window's unfilled
    groups move on to the next window (up to a window's worth), so the work grows linearly in the
    columns instead of quadratically while the groups still fill."""
    weights = np.asarray(weights)
    nz = _check(weights, alpha, gamma)
    if method not in METHODS:
        raise ColcombError(f"unknown combining method {method!r}; use one of {', '.join(METHODS)}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
        raise ColcombError(f"window must be an integer >= 1 (nonzero columns grouped together), got {window!r}")
    if method == "exact":
        from colcomb.packer.exact import group_exact  # exact builds on this module

        return group_exact(weights, alpha, gamma, time_limit).groups
    if method == "auto":
        # dsatur prunes nothing: with a budget it would win ties on pruned weights alone, and the
        # budgeted methods are what joint training was tuned with; it runs where the budget is 0
        budgeted = conflict_budget(gamma, nz.shape[0]) > 0
        heuristics = [m for m in HEURISTICS if not (budgeted and m == "dsatur")]
        results = [group_columns(weights, alpha, gamma, m, window) for m in heuristics]
        return min(results, key=lambda gs: (len(gs), pruned_count(weights, gs)))
    cols = np.flatnonzero(nz.any(axis=0))
    size = window_for(nz.shape[0]) if window is None else window
    windows = max(1, -(-len(cols) // size))
    size = max(1, -(-len(cols) // windows))  # windows of equal size
    budget = conflict_budget(gamma, nz.shape[0])
    groups: list[list[int]] = []
    carried = np.zeros(0, np.int64)
    for s in range(0, len(cols), size):
        part = np.concatenate([carried, cols[s : s + size]])
        alone = _alone(nz[:, part], budget)
        groups += [[int(c)] for c in part[alone]]
        rest = part[~alone]
        found = _SINGLE[method](weights[:, rest], alpha, gamma) if len(rest) else []
        local = [[int(rest[c]) for c in g] for g in found]
        unfilled = [c for g in local if len(g) < alpha for c in g]
        if s + size < len(cols) and len(unfilled) <= size:
            groups += [g for g in local if len(g) >= alpha]
            carried = np.array(sorted(unfilled), np.int64)
        else:
            groups += local
            carried = np.zeros(0, np.int64)
    return sorted(sorted(g) for g in groups)


def _alone(nz: np.ndarray, budget: int) -> np.ndarray:
    """Columns that share more than ``budget`` rows with every other column: no group can hold
    one of them with anything else, so they stay single without a search (all of them, in a tall
    layer where every pair conflicts)."""
    nzf = nz.astype(np.float32)
    shared = nzf.T @ nzf
    np.fill_diagonal(shared, np.inf)
    return (shared > budget).all(axis=1)


_SINGLE = {"best-fit": group_best_fit, "fill": group_fill, "published": group_published, "dsatur": group_dsatur}


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
