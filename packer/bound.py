"""Lower bounds on the packed columns of any grouping: how far a packing can be from optimal.

Grouping the nonzero columns of a matrix into groups of at most ``alpha`` columns, each pruning at
most ``B = floor(gamma x rows)`` weights, is a bounded colouring of the columns' conflict graph
(two columns conflict when they share a nonzero row) at gamma 0, and a budgeted variant above it.
No grouping, by any method, can use fewer groups than each of these bounds:

- ``count``: ``ceil(n / alpha)`` for ``n`` nonzero columns.
- ``rows``: with ``G`` groups a row keeps at most ``G`` of its nonzeros (one per group), so it
  prunes at least ``count_r - G``; the groups together may prune at most ``G x B``. The smallest
  ``G`` with ``sum_r max(0, count_r - G) <= G x B`` is a bound; at gamma 0 it is the densest row.
- ``clique``: columns that pairwise conflict (found greedily, starting from the densest rows).
  A group holding ``m`` of them prunes at least ``m - 1`` weights, so it holds at most
  ``min(alpha, B + 1)``: the clique needs ``ceil(k / min(alpha, B + 1))`` groups.
- ``degree``: a group holding column ``v`` holds, besides ``v``, at most ``B`` of the ``d(v)``
  columns ``v`` conflicts with (each prunes one of them at least) and any of the others, so its
  size ``s_v <= min(alpha, n - d(v) + min(B, d(v)))``; the groups number ``sum_v 1/|group(v)| >=
  sum_v 1/s_v``. It needs the conflict degrees (:func:`conflict_degrees`); where they would take
  more than seconds (see its limits) it is left out, and ``parts`` lacks it.

Tighter bounds need a solver: ``--method exact`` (:mod:`colcomb.packer.exact`) proves its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from colcomb.packer.combine import _check, conflict_budget

DEGREE_WORK = 1 << 39  # column pairs x rows in one matrix product: a few seconds of BLAS on two cores
HEAD_ROWS = 512  # densest rows checked by matrix product; the rest by bit sets, pair by pair
PAIR_WORK = 1 << 28  # pairs the head rows leave apart x 64-row words of the other rows
CLIQUE_SEEDS = 4  # densest rows each grown into a clique
CLIQUE_WORK = 1 << 36  # members x rows x columns spent growing one clique


@dataclass(frozen=True)
class Bound:
    """The best lower bound on packed columns, which bound gives it, every bound computed, and how
    the exact search ended where one ran (``search``: "", "optimal", "time limit", "too large")."""

    value: int
    name: str
    parts: dict[str, int] = field(default_factory=dict)
    search: str = ""

    def __add__(self, other: Bound) -> Bound:
        """The bound of two independently grouped parts (row blocks, sections): the sum."""
        if self.name == "none":
            return replace(other, search=_last_search(self.search, other.search))
        if other.name == "none":
            return replace(self, search=_last_search(self.search, other.search))
        # a bound a part lacks (too costly there) is left out of the sum rather than counted as 0
        parts = {k: self.parts[k] + other.parts[k] for k in self.parts.keys() & other.parts.keys()}
        names = {self.name, other.name}
        return Bound(self.value + other.value, names.pop() if len(names) == 1 else "mixed", parts,
                     _last_search(self.search, other.search))


SEARCHES = ("optimal", "time limit", "too large")  # a sum reports the last of its parts' in this order


ZERO = Bound(0, "none", {})


def _last_search(*searches: str) -> str:
    found = [s for s in SEARCHES if s in searches]
    return found[-1] if found else ""


def lower_bound(weights: np.ndarray, alpha: int, gamma: float = 0.0) -> Bound:
    """A valid lower bound on the groups any grouping of ``weights`` needs at ``alpha``, ``gamma``."""
    nz = _check(weights, alpha, gamma)
    nz = nz[:, nz.any(axis=0)]
    n = nz.shape[1]
    if n == 0:
        return ZERO
    budget = conflict_budget(gamma, nz.shape[0])
    parts = {"count": -(-n // alpha), "rows": rows_bound(nz, budget)}
    per_group = min(alpha, budget + 1)
    parts["clique"] = -(-len(greedy_clique(nz)) // per_group)
    degree = degree_bound(nz, alpha, budget)
    if degree is not None:
        parts["degree"] = degree
    name = max(parts, key=lambda k: (parts[k], -list(parts).index(k)))
    return Bound(parts[name], name, parts)


def rows_bound(nz: np.ndarray, budget: int) -> int:
    """Smallest G with sum_r max(0, count_r - G) <= G x budget (binary search: the left side falls
    and the right side grows with G)."""
    counts = nz.sum(axis=1)
    lo, hi = 1, max(int(counts.max()), 1)
    while lo < hi:
        mid = (lo + hi) // 2
        if np.maximum(counts - mid, 0).sum() <= mid * budget:
            hi = mid
        else:
            lo = mid + 1
    return lo


def greedy_clique(nz: np.ndarray) -> list[int]:
    """A set of pairwise conflicting columns: each of the densest rows' columns (a clique already),
    grown by the columns that conflict with every member, densest first; the largest found. The
    growth stops where it would cost more than :data:`CLIQUE_WORK` (what it has is a clique)."""
    rows, n = nz.shape
    best: list[int] = []
    nzf = nz.astype(np.float32)
    density = nz.sum(axis=0)
    for r in np.argsort(-nz.sum(axis=1), kind="stable")[:CLIQUE_SEEDS]:
        clique = [int(c) for c in np.flatnonzero(nz[r])]
        work = len(clique) * rows * n
        if work <= CLIQUE_WORK:
            cand = ((nzf[:, clique].T @ nzf) > 0).all(axis=0)  # conflicts with every member
            cand[clique] = False
            while cand.any() and work <= CLIQUE_WORK:
                pick = int(np.flatnonzero(cand)[np.argmax(density[cand])])
                clique.append(pick)
                cand[pick] = False
                cand &= nz[nz[:, pick]].any(axis=0)
                work += (int(density[pick]) + 1) * n * 64  # a Python step costs as much as a short product
        if len(clique) > len(best):
            best = clique
    return sorted(best)


def conflict_degrees(nz: np.ndarray, block: int = 1024) -> np.ndarray | None:
    """For each column, how many other columns share a nonzero row with it; None where that costs
    more than :data:`DEGREE_WORK` (column pairs x head rows in BLAS) or :data:`PAIR_WORK`.

    The :data:`HEAD_ROWS` densest rows settle most pairs in one matrix product; only the pairs they
    leave apart are checked on the other rows, as 64-bit row sets."""
    n = nz.shape[1]
    order = np.argsort(-nz.sum(axis=1), kind="stable")
    head = nz[order[:HEAD_ROWS]].astype(np.float32)
    if n * n * head.shape[0] > DEGREE_WORK:
        return None
    tail = _row_sets(nz[order[HEAD_ROWS:]])
    deg = np.zeros(n, np.int64)
    pair_work = 0
    for s in range(0, n, block):
        e = min(s + block, n)
        hit = (head[:, s:e].T @ head) > 0
        hit[np.arange(e - s), np.arange(s, e)] = True  # a column is not its own neighbour
        if tail.shape[1]:
            i, j = np.nonzero(~hit)
            pair_work += len(i) * tail.shape[1]
            if pair_work > PAIR_WORK:
                return None
            for k in range(0, len(i), 1 << 18):
                a, b = i[k : k + (1 << 18)], j[k : k + (1 << 18)]
                shared = (tail[s + a] & tail[b]).any(axis=1)
                hit[a[shared], b[shared]] = True
        deg[s:e] = hit.sum(axis=1) - 1
    return deg


def _row_sets(nz: np.ndarray) -> np.ndarray:
    """(columns, words) uint64: each column's nonzero rows as a bit set."""
    rows, n = nz.shape
    padded = np.zeros((-(-rows // 64) * 64, n), bool)
    padded[:rows] = nz
    return np.ascontiguousarray(np.packbits(padded, axis=0).T).view(np.uint64)


def degree_bound(nz: np.ndarray, alpha: int, budget: int) -> int | None:
    """ceil(sum_v 1 / min(alpha, n - d(v) + min(budget, d(v)))) (see the module's docstring); None
    where the degrees cost too much."""
    n = nz.shape[1]
    deg = conflict_degrees(nz)
    if deg is None:
        return None
    size = np.minimum(alpha, n - deg + np.minimum(budget, deg))
    return int(np.ceil(float(np.sum(1.0 / size)) - 1e-9))
