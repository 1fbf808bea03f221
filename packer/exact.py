"""Exact grouping: the fewest groups, proven, by CP-SAT (OR-tools), within a time limit.

The model: a boolean ``x[c, g]`` puts column ``c`` in group ``g`` (one group each), ``g`` below the
heuristic's group count; a group is used when it holds a column, holds at most ``alpha`` columns,
and prunes at most ``B = floor(gamma x rows)`` weights. At gamma 0 that is one column per row
and group (an at-most-one per row); above it, a group's pruned weights are its columns' nonzeros
in shared rows minus the rows it occupies. The objective is the number of used groups.

The search starts from the best heuristic grouping (``auto``'s, as a hint and as the group count
to beat), fixes a clique of the conflict graph into distinct groups at gamma 0, orders the used
groups first (symmetry), and starts from :func:`colcomb.packer.bound.lower_bound`. It returns the
optimum when it proves it, otherwise the best grouping found and the proven bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.bound import Bound, greedy_clique, lower_bound
from colcomb.packer.combine import _check, conflict_budget, group_columns, pruned_count

MAX_TERMS = 3_000_000  # literals of the model's constraints: beyond this building it takes minutes
BUILD_SHARE = 0.8  # the model may take this share of the time limit to build, or the hint is kept
WORKERS = 8


@dataclass(frozen=True)
class ExactResult:
    """Groups (original column indices), the proven lower bound, and how the search ended."""

    groups: list[list[int]]
    bound: Bound
    status: str  # "optimal", "time limit" (gap open) or "too large" (the heuristic's grouping kept)
    seconds: float

    @property
    def optimal(self) -> bool:
        return len(self.groups) == self.bound.value


def group_exact(weights: np.ndarray, alpha: int, gamma: float = 0.0, time_limit: float = 60.0) -> ExactResult:
    """The fewest groups within ``time_limit`` seconds (wall clock, model building included)."""
    start = time.perf_counter()
    nz = _check(weights, alpha, gamma)
    if not (isinstance(time_limit, (int, float)) and np.isfinite(time_limit) and time_limit > 0):
        raise ColcombError(f"the exact method's time limit must be a positive number of seconds, got {time_limit!r}")
    try:
        from ortools.sat.python import cp_model
    except ImportError as e:  # pragma: no cover - a dependency; only a broken install lacks it
        raise ColcombError("--method exact needs OR-tools: pip install ortools") from e
    hint = group_columns(weights, alpha, gamma, "auto")
    bound = lower_bound(weights, alpha, gamma)
    cols = np.flatnonzero(nz.any(axis=0))
    n, groups = len(cols), len(hint)
    if groups <= bound.value:
        return _result(hint, bound, "optimal", start)
    sub = nz[:, cols]
    budget = conflict_budget(gamma, nz.shape[0])
    shared = [np.flatnonzero(row) for row in sub if row.sum() >= 2]  # rows where pruning can happen
    if model_terms(n, groups, shared, budget) > MAX_TERMS:
        return _result(hint, bound, "too large", start)
    local = {int(c): i for i, c in enumerate(cols)}
    model = cp_model.CpModel()
    total = cp_model.LinearExpr.sum
    x = [[model.new_bool_var(f"x{c}_{g}") for g in range(groups)] for c in range(n)]
    used = [model.new_bool_var(f"u{g}") for g in range(groups)]
    for c in range(n):
        model.add_exactly_one(x[c])
    for g in range(groups):
        members = [x[c][g] for c in range(n)]
        model.add(total(members) <= alpha * used[g])
        for lit in members:
            model.add_implication(lit, used[g])
        if g:
            model.add_implication(used[g], used[g - 1])
    for g in range(groups):
        if time.perf_counter() - start > BUILD_SHARE * time_limit:
            return _result(hint, bound, "time limit", start)
        if budget == 0:
            for row in shared:
                model.add_at_most_one(x[c][g] for c in row)
        elif shared:
            occupied = [model.new_bool_var(f"z{r}_{g}") for r in range(len(shared))]
            for z, row in zip(occupied, shared, strict=True):
                model.add(z <= total([x[c][g] for c in row]))
            model.add(total([x[c][g] for row in shared for c in row]) - total(occupied) <= budget)
    if budget == 0:  # a clique's columns go to distinct groups: fix them (breaks symmetry)
        for g, c in enumerate(greedy_clique(sub)[:groups]):
            model.add(x[c][g] == 1)
    model.add(total(used) >= bound.value)
    model.minimize(total(used))
    for g, group in enumerate(hint):
        for c in group:
            model.add_hint(x[local[c]][g], True)
        model.add_hint(used[g], True)

    left = time_limit - (time.perf_counter() - start)
    if left <= 0.05 * time_limit:
        return _result(hint, bound, "time limit", start)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = left
    solver.parameters.num_workers = WORKERS
    code = solver.solve(model)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return _result(hint, bound, "time limit", start)
    found = [[int(cols[c]) for c in range(n) if solver.boolean_value(x[c][g])] for g in range(groups)]
    found = sorted(sorted(g) for g in found if g)
    if (len(found), pruned_count(weights, found)) > (len(hint), pruned_count(weights, hint)):
        found = hint
    proven = int(np.ceil(solver.best_objective_bound - 1e-6))
    if code == cp_model.OPTIMAL:
        proven = len(found)
    if proven > bound.value:
        bound = Bound(proven, "exact", {**bound.parts, "exact": proven})
    return _result(found, bound, "optimal" if len(found) == bound.value else "time limit", start)


def model_terms(columns: int, groups: int, shared: list[np.ndarray], budget: int) -> int:
    """Literals in the model's constraints: three per column and group (assignment, capacity,
    use), and per group each shared row's columns (once at gamma 0, twice with a budget)."""
    per_group = 3 * columns + sum(len(r) for r in shared) * (1 if budget == 0 else 2) + len(shared)
    return groups * per_group


def _result(groups: list[list[int]], bound: Bound, status: str, start: float) -> ExactResult:
    return ExactResult(groups, replace(bound, search=status), status, time.perf_counter() - start)
