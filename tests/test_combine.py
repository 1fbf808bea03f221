"""Invariants of column grouping and combining, under hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.core.errors import ColcombError
from colcomb.packer.combine import (
    HEURISTICS,
    METHODS,
    combine,
    conflict_budget,
    group_columns,
    pruned_count,
)
from colcomb.packer.pack import PackOptions, pack_layer, pack_matrix


@st.composite
def matrices(draw, max_rows=20, max_cols=36):
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    density = draw(st.sampled_from([0.0, 0.05, 0.15, 0.3, 0.6, 1.0]))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)
    return w


@settings(max_examples=150, deadline=None)
@given(
    w=matrices(),
    alpha=st.integers(1, 9),
    gamma=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]),
    method=st.sampled_from(METHODS),
)
def test_grouping_invariants(w, alpha, gamma, method):
    groups = group_columns(w, alpha, gamma, method)
    flat = [c for g in groups for c in g]
    # every nonzero column in exactly one group, all-zero columns in none
    assert sorted(flat) == sorted(np.flatnonzero((w != 0).any(axis=0)).tolist())
    assert all(1 <= len(g) <= alpha for g in groups)
    budget = conflict_budget(gamma, w.shape[0])
    nz = w != 0
    for g in groups:
        assert int((nz[:, g].sum(axis=1) - nz[:, g].any(axis=1)).sum()) <= budget
    if gamma == 0:
        assert pruned_count(w, groups) == 0


@settings(max_examples=60, deadline=None)
@given(
    w=matrices(max_cols=60),
    alpha=st.integers(1, 9),
    gamma=st.sampled_from([0.0, 0.25, 0.5]),
    method=st.sampled_from(HEURISTICS),
    window=st.integers(1, 16),
)
def test_windowed_grouping_keeps_the_invariants(w, alpha, gamma, method, window):
    """Wide matrices are grouped window by window; a small window puts every path under test."""
    groups = group_columns(w, alpha, gamma, method, window=window)
    flat = sorted(c for g in groups for c in g)
    assert flat == np.flatnonzero((w != 0).any(axis=0)).tolist()
    assert all(1 <= len(g) <= alpha for g in groups)
    nz, budget = w != 0, conflict_budget(gamma, w.shape[0])
    assert all(int((nz[:, g].sum(axis=1) - nz[:, g].any(axis=1)).sum()) <= budget for g in groups)
    auto = group_columns(w, alpha, gamma, "auto", window=window)
    assert (len(auto), pruned_count(w, auto)) <= (len(groups), pruned_count(w, groups)) or method == "dsatur"


def test_dsatur_is_conflict_free_at_any_gamma(rng):
    w = rng.standard_normal((30, 80)) * (rng.random((30, 80)) < 0.15)
    for gamma in (0.0, 0.5):
        groups = group_columns(w, 8, gamma, "dsatur")
        assert pruned_count(w, groups) == 0 and all(len(g) <= 8 for g in groups)


def test_columns_that_conflict_with_all_others_stay_single(rng):
    w = rng.standard_normal((16, 40)) * (rng.random((16, 40)) < 0.1)
    w[:, :5] = 1.0  # five dense columns: each shares every row with every other column
    for method in METHODS:
        groups = group_columns(w, 8, 0.0, method, window=12)
        assert all([c] in groups for c in range(5))


@settings(max_examples=100, deadline=None)
@given(w=matrices(), alpha=st.integers(1, 6), gamma=st.sampled_from([0.0, 0.3]))
def test_combine_keeps_largest_and_select_points_back(w, alpha, gamma):
    groups = group_columns(w, alpha, gamma)
    packed, selects = combine(w, groups)
    for g, group in enumerate(groups):
        for r in range(w.shape[0]):
            col = group[selects[r, g]]
            assert packed[r, g] == w[r, col]
            assert abs(packed[r, g]) == np.abs(w[r, group]).max()


@settings(max_examples=60, deadline=None)
@given(
    w=matrices(max_rows=30, max_cols=40),
    alpha=st.integers(1, 8),
    gamma=st.sampled_from([0.0, 0.2, 0.5]),
    row_block=st.one_of(st.none(), st.integers(1, 12)),
    section=st.one_of(st.none(), st.integers(1, 16)),
    quant=st.sampled_from(["layer", "block", "row"]),
    pow2=st.booleans(),
)
def test_packed_layer_invariants(w, alpha, gamma, row_block, section, quant, pow2):
    opts = PackOptions(alpha=alpha, gamma=gamma, row_block=row_block, section=section,
                       quant=quant, power_of_two=pow2)
    layer = pack_layer("x", w, opts)
    layer.validate()
    nz = w != 0
    dense = layer.dense_int()
    for block in layer.blocks:
        assert block.rows == (row_block or w.shape[0]) or block.row_stop == w.shape[0]
        budget = conflict_budget(gamma, block.rows)
        rows = slice(block.row_start, block.row_stop)
        for group in block.groups:
            assert len(group) <= alpha
            if section:  # groups never cross sections
                assert len({c // section for c in group}) == 1
            sub = nz[rows][:, list(group)]
            assert int((sub.sum(axis=1) - sub.any(axis=1)).sum()) <= budget
            # at most one kept weight per row and group
            assert ((dense[rows][:, list(group)] != 0).sum(axis=1) <= 1).all()
        # every select points back at the original column whose weight the cell keeps
        src = block.source_columns()
        for (r, g), q in np.ndenumerate(block.weights):
            if q:
                assert block.groups[g][block.selects[r, g]] == src[r, g]
                orig = w[block.row_start + r, src[r, g]]
                scale = block.scale[r]
                assert abs(q * scale - orig) <= scale / 2 + 1e-12
    # kept weights are a subset of the original nonzeros
    assert not (dense != 0)[~nz].any()
    if pow2:
        s = layer.row_scales()
        assert np.allclose(np.log2(s), np.round(np.log2(s)))


def test_quantization_error_within_half_step_for_all_kept_weights(rng):
    w = rng.standard_normal((16, 32)) * (rng.random((16, 32)) < 0.3)
    for quant in ("layer", "block", "row"):
        layer = pack_layer("q", w, PackOptions(alpha=4, gamma=0.5, row_block=5, quant=quant))
        parts = pack_matrix(w, PackOptions(alpha=4, gamma=0.5, row_block=5))
        for block, (_, _, _, packed, _) in zip(layer.blocks, parts, strict=True):
            err = np.abs(block.weights * block.scale[:, None] - packed)
            assert (err <= block.scale[:, None] / 2 + 1e-12).all()


def test_auto_never_needs_more_columns_than_the_published_rule(rng):
    for density in (0.05, 0.1, 0.2):
        w = rng.standard_normal((64, 128)) * (rng.random((64, 128)) < density)
        for gamma in (0.0, 0.25):
            auto = group_columns(w, 8, gamma, "auto")
            pub = group_columns(w, 8, gamma, "published")
            assert (len(auto), pruned_count(w, auto)) <= (len(pub), pruned_count(w, pub))


def test_alpha_one_is_the_dense_array_without_zero_columns(rng):
    w = rng.standard_normal((8, 10))
    w[:, 3] = 0
    groups = group_columns(w, 1, 0.5)
    assert groups == [[c] for c in range(10) if c != 3]


def test_conflict_free_combining_of_disjoint_columns():
    w = np.zeros((4, 4))
    w[0, 0] = w[1, 1] = w[2, 2] = w[3, 3] = 1.0
    assert group_columns(w, 4, 0.0) == [[0, 1, 2, 3]]
    assert len(group_columns(w, 2, 0.0)) == 2


@pytest.mark.parametrize(
    ("alpha", "gamma", "bad"),
    [(0, 0.0, "alpha"), (2, -0.1, "gamma"), (2, 1.5, "gamma")],
)
def test_bad_parameters_are_named(alpha, gamma, bad):
    with pytest.raises(ColcombError, match=bad):
        group_columns(np.ones((2, 2)), alpha, gamma)


def test_nan_weights_are_rejected():
    w = np.ones((3, 3))
    w[1, 1] = np.nan
    with pytest.raises(ColcombError, match="NaN"):
        group_columns(w, 2, 0.0)
    with pytest.raises(ColcombError, match="NaN"):
        pack_layer("n", w, PackOptions())


def test_1024_columns_group_completely(rng):
    """Not a timing assertion: shows the vectorized path handles the size the issue names."""
    w = rng.standard_normal((64, 1024)) * (rng.random((64, 1024)) < 0.1)
    groups = group_columns(w, 8, 0.5)
    assert sum(map(len, groups)) == int((w != 0).any(axis=0).sum())
