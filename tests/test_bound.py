"""Lower bounds and the exact method against a brute-force optimum, and no grouping beats a bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.core.errors import ColcombError
from colcomb.packer.bound import ZERO, Bound, conflict_degrees, greedy_clique, lower_bound, rows_bound
from colcomb.packer.combine import HEURISTICS, conflict_budget, group_columns, pruned_count
from colcomb.packer.exact import group_exact
from colcomb.packer.pack import PackOptions, pack_layer


def feasible(nz: np.ndarray, group: list[int], alpha: int, budget: int) -> bool:
    sub = nz[:, group]
    return len(group) <= alpha and int((sub.sum(axis=1) - sub.any(axis=1)).sum()) <= budget


def optimum(w: np.ndarray, alpha: int, gamma: float) -> int:
    """Fewest groups by exhaustive search (columns placed in order into an existing or a new group)."""
    nz = w != 0
    cols = [int(c) for c in np.flatnonzero(nz.any(axis=0))]
    budget = conflict_budget(gamma, nz.shape[0])
    best = len(cols)
    groups: list[list[int]] = []

    def place(i: int) -> None:
        nonlocal best
        if len(groups) >= best:
            return
        if i == len(cols):
            best = len(groups)
            return
        for g in groups:
            g.append(cols[i])
            if feasible(nz, g, alpha, budget):
                place(i + 1)
            g.pop()
        groups.append([cols[i]])
        place(i + 1)
        groups.pop()

    place(0)
    return best


@st.composite
def small(draw, max_rows=8, max_cols=9):
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    density = draw(st.sampled_from([0.1, 0.25, 0.4, 0.7]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)


@settings(max_examples=60, deadline=None)
@given(w=small(), alpha=st.integers(1, 4), gamma=st.sampled_from([0.0, 0.2, 0.5]))
def test_bound_and_exact_against_the_brute_force_optimum(w, alpha, gamma):
    best = optimum(w, alpha, gamma)
    bound = lower_bound(w, alpha, gamma)
    assert bound.value <= best
    assert all(v <= best for v in bound.parts.values())
    result = group_exact(w, alpha, gamma, time_limit=20)
    assert len(result.groups) == best and result.status == "optimal"
    assert result.bound.value == best
    nz = w != 0
    assert sorted(c for g in result.groups for c in g) == np.flatnonzero(nz.any(axis=0)).tolist()
    assert all(feasible(nz, g, alpha, conflict_budget(gamma, w.shape[0])) for g in result.groups)


@st.composite
def medium(draw):
    rows = draw(st.integers(2, 24))
    cols = draw(st.integers(2, 60))
    density = draw(st.sampled_from([0.05, 0.15, 0.3]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    return rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)


@settings(max_examples=40, deadline=None)
@given(w=medium(), alpha=st.integers(1, 8), gamma=st.sampled_from([0.0, 0.25]))
def test_no_method_beats_the_bound(w, alpha, gamma):
    bound = lower_bound(w, alpha, gamma).value
    for method in (*HEURISTICS, "auto"):
        assert len(group_columns(w, alpha, gamma, method)) >= bound
    result = group_exact(w, alpha, gamma, time_limit=5)
    assert bound <= result.bound.value <= len(result.groups) <= len(group_columns(w, alpha, gamma, "auto"))


def test_each_bound_on_a_matrix_built_for_it():
    w = np.zeros((6, 20))
    w[0, :9] = 1.0  # a row with 9 nonzeros: 9 groups at gamma 0
    w[1:, 9:] = np.eye(5, 11)  # 11 more columns, one of them all zero
    w[1, 19] = 0.0
    nz = w != 0
    assert lower_bound(w, 8, 0.0).parts["count"] == -(-int(nz.any(axis=0).sum()) // 8)
    assert rows_bound(nz[:, nz.any(axis=0)], 0) == 9
    # budget 2 (gamma 1/3 of 6 rows): G groups keep G of the 9, so 9 - G <= 2 G: G >= 3
    assert rows_bound(nz[:, nz.any(axis=0)], 2) == 3
    assert len(greedy_clique(nz)) >= 9
    # a column conflicting with every other column can share a group with none of them
    full = np.ones((3, 5))
    assert lower_bound(full, 8, 0.0).value == 5
    assert conflict_degrees(full != 0).tolist() == [4] * 5


def test_bounds_of_parts_add_up():
    a = Bound(3, "rows", {"rows": 3, "count": 2})
    b = Bound(4, "count", {"count": 4})
    total = a + b
    # "rows" is missing from b (too costly there): left out of the sum, not counted as 0
    assert total.value == 7 and total.parts == {"count": 6} and total.name == "mixed"
    assert (ZERO + a) == a and (ZERO + ZERO).name == "none"


def test_the_exact_search_keeps_its_time_limit_when_the_model_is_large():
    """A budgeted model's constraints grow with the nonzeros of shared rows: too large is said at
    once, and a build that eats the limit returns the heuristic's grouping in time."""
    import time

    rng = np.random.default_rng(0)
    w = (rng.random((512, 300)) < 0.3) * 1.0
    t0 = time.perf_counter()
    result = group_exact(w, 8, 0.02, time_limit=2)
    assert result.status in ("too large", "time limit") and time.perf_counter() - t0 < 2 * 2 + 3
    assert result.bound.value <= len(result.groups) == len(group_columns(w, 8, 0.02))


@pytest.mark.parametrize("window", [0, -1, 1.5, True])
def test_a_bad_window_is_named(window):
    with pytest.raises(ColcombError, match="window"):
        group_columns(np.eye(4), 2, 0.0, "best-fit", window=window)


def test_a_nested_list_is_a_matrix():
    assert group_columns([[1, 0], [0, 1]], 2, 0.0, "best-fit") == [[0, 1]]


def test_exact_proves_the_optimum_of_small_matrices_and_never_loses_to_auto():
    rng = np.random.default_rng(5)
    for _ in range(3):
        w = rng.standard_normal((10, 30)) * (rng.random((10, 30)) < 0.3)
        auto = group_columns(w, 4, 0.0, "auto")
        result = group_exact(w, 4, 0.0, time_limit=30)
        assert len(result.groups) <= len(auto)
        assert result.status == "optimal" and result.optimal
        assert result.bound.value == len(result.groups)
        assert all(feasible(w != 0, g, 4, 0) for g in result.groups)


def test_exact_under_a_short_limit_returns_the_heuristic_or_better_with_the_gap():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 256)) * (rng.random((64, 256)) < 0.15)
    result = group_exact(w, 8, 0.0, time_limit=1.0)
    auto = group_columns(w, 8, 0.0, "auto")
    assert len(result.groups) <= len(auto)
    assert result.status in ("time limit", "optimal")
    assert result.bound.value <= len(result.groups)
    assert pruned_count(w, result.groups) == 0


@pytest.mark.parametrize("limit", [0, -1.0, float("nan"), float("inf")])
def test_a_bad_time_limit_is_named(limit):
    with pytest.raises(ColcombError, match="time limit"):
        group_exact(np.eye(3), 2, 0.0, time_limit=limit)
    with pytest.raises(ColcombError, match="time_limit"):
        PackOptions(method="exact", time_limit=limit).validate()


def test_pack_stores_the_bound_of_every_block_and_section(rng):
    w = rng.standard_normal((40, 90)) * (rng.random((40, 90)) < 0.2)
    opts = PackOptions(alpha=4, gamma=0.25, row_block=16, section=32)
    layer = pack_layer("w", w, opts)
    expect = 0
    for r0 in range(0, 40, 16):
        for c0 in range(0, 90, 32):
            expect += lower_bound(w[r0 : r0 + 16, c0 : c0 + 32], 4, 0.25).value
    assert layer.stats["bound"] == expect <= layer.packed_columns
    assert layer.stats["gap"] == pytest.approx(layer.packed_columns / expect - 1)


def test_pack_cli_prints_bound_and_gap_and_exact_runs(tmp_path, rng, capsys):
    from colcomb.cli import main

    w = rng.standard_normal((10, 30)) * (rng.random((10, 30)) < 0.3)
    np.save(tmp_path / "w.npy", w)
    assert main(["pack", str(tmp_path / "w.npy"), "--alpha", "4", "--method", "exact", "--time-limit", "20",
                 "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "bound" in out.splitlines()[0] and "gap" in out.splitlines()[0]
    stats = json.loads((tmp_path / "p" / "manifest.json").read_text())["layers"][0]["stats"]
    assert stats["method"] == "exact" and stats["bound"] == stats["packed_columns"] and stats["gap"] == 0
    assert stats["bound_by"] in ("count", "rows", "clique", "degree", "exact")
    with pytest.raises(SystemExit):
        main(["pack", str(tmp_path / "w.npy"), "--method", "exact", "--time-limit", "0", "--out", str(tmp_path / "q")])


def test_train_takes_the_exact_method(tmp_path, capsys):
    from colcomb.cli import main
    from colcomb.packer.manifest import load_manifest

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--hidden", "16", "--alpha", "4", "--gamma", "0",
                 "--method", "exact", "--time-limit", "2", "--epochs", "1", "--rounds", "1", "--retrain-epochs", "0",
                 "--final-epochs", "0", "--out", str(out)]) == 0
    import torch

    config = torch.load(out / "model.pt", weights_only=True)["config"]
    assert config["method"] == "exact" and config["time_limit"] == 2
    layer = load_manifest(out / "packed").layers[-1]  # fc2, combined
    assert layer.stats["packed_columns"] < layer.cols
    for block in layer.blocks:
        for group in block.groups:
            assert len(group) <= 4
