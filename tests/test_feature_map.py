"""Combining whole feature maps (packer/feature_map.py): the budget counted in weights."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from colcomb.packer.feature_map import (
    channel_columns,
    combine_feature_maps,
    expand_groups,
    feature_map_budget,
    group_feature_maps,
)
from colcomb.train.prune import check_groups


def _lenet_conv2(seed: int = 0, density: float = 0.2) -> np.ndarray:
    """LeNet-5's conv2 shape (16 filters x 6 channels x 5x5) after 80 % magnitude pruning."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, 150))
    return w * (rng.random(w.shape) < density)


def _pruned_by_hand(w: np.ndarray, kernel: int, channels: list[int]) -> int:
    """Weights a channel group prunes: per row and kernel position, all nonzeros but one."""
    total = 0
    for r in range(w.shape[0]):
        for p in range(kernel):
            n = sum(1 for c in channels if w[r, c * kernel + p] != 0)
            total += max(n - 1, 0)
    return total


def test_lenet_conv2_feature_maps_combine_within_the_weight_budget():
    w, k = _lenet_conv2(), 25
    budget = 25 * int(0.5 * 16)
    assert feature_map_budget(0.5, 16, k) == budget
    # counted per (row, channel) pair as before, no two channels fit floor(0.5 x 16) = 8 rows
    live = np.abs(w).reshape(16, 6, k).sum(axis=2) > 0
    assert min((live[:, a] & live[:, b]).sum() for a in range(6) for b in range(a + 1, 6)) > 8
    groups = group_feature_maps(w, k, alpha=8, gamma=0.5)
    assert sorted(c for g in groups for c in g) == list(range(6))
    packed = len(expand_groups(groups, k))
    assert packed <= 150 // 3  # at least 3x fewer columns than 150
    for g in groups:
        assert len(g) <= 8 and _pruned_by_hand(w, k, g) <= budget


def test_gamma_zero_feature_maps_combine_only_without_conflicts():
    w = np.zeros((2, 8))  # 4 channels of 2 positions; channels 0 and 1 never share a cell
    w[0, 0] = w[1, 1] = 1.0  # channel 0: (row 0, p0), (row 1, p1)
    w[0, 3] = w[1, 2] = 2.0  # channel 1: (row 0, p1), (row 1, p0)
    w[0, 4] = 3.0  # channel 2 at (row 0, p0): conflicts with channel 0
    groups = group_feature_maps(w, 2, alpha=4, gamma=0.0)
    assert all(_pruned_by_hand(w, 2, g) == 0 for g in groups)
    assert len(groups) == 2 and ([0, 1] in groups or [1, 2] in groups)


def test_keep_mask_keeps_the_largest_weight_per_cell():
    w, k = _lenet_conv2(seed=3, density=0.4), 25
    keep, blocks = combine_feature_maps(w, k, alpha=3, gamma=0.5, row_block=8)
    assert [(r0, r1) for r0, r1, _ in blocks] == [(0, 8), (8, 16)]
    check_groups(w * keep, blocks, 3)
    for r0, r1, groups in blocks:
        for g in groups:
            for r in range(r0, r1):
                vals = np.abs(w[r, g])
                kept = [c for c in g if keep[r, c]]
                if vals.max() == 0:
                    assert kept == []
                else:
                    assert kept == [g[int(np.argmax(vals))]]


def test_channel_columns_lay_out_row_and_position():
    w = np.arange(2 * 3 * 4, dtype=float).reshape(2, 12)
    cc = channel_columns(w, 4)
    assert cc.shape == (8, 3)
    assert cc[1 * 4 + 2, 2] == w[1, 2 * 4 + 2]


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 12), channels=st.integers(1, 7), kernel=st.sampled_from([1, 4, 9]),
       alpha=st.integers(1, 5), gamma=st.sampled_from([0.0, 0.125, 0.5, 1.0]),
       density=st.floats(0.05, 0.9), seed=st.integers(0, 10_000))
def test_feature_map_groups_honour_alpha_and_budget(rows, channels, kernel, alpha, gamma, density, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, channels * kernel)) * (rng.random((rows, channels * kernel)) < density)
    groups = group_feature_maps(w, kernel, alpha, gamma)
    live = [c for c in range(channels) if np.any(w[:, c * kernel : (c + 1) * kernel])]
    assert sorted(c for g in groups for c in g) == live
    for g in groups:
        assert 1 <= len(g) <= alpha
        assert _pruned_by_hand(w, kernel, g) <= kernel * int(np.floor(gamma * rows + 1e-9))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(3, 3), (5, 5), (3, 5)]), st.sampled_from([2, 4, 8]),
       st.floats(0.0, 1.0))
def test_a_one_channel_conv_combines_per_kernel_row(seed, kernel, alpha, gamma):
    """A one-channel conv has no channels to combine: per feature map it combines per kernel
    row, every group inside one kernel row, within alpha, one kept weight per row and group,
    and the mask keeps each row's largest weight of each group."""
    from colcomb.packer.pack import PackOptions
    from colcomb.train.prune import combine_mask

    kh, kw = kernel
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((6, kh * kw)) * (rng.random((6, kh * kw)) < 0.5)
    keep, blocks = combine_mask(w, PackOptions(alpha=alpha, gamma=gamma), kh * kw, True, kw)
    (_, _, groups), = blocks
    check_groups(w * keep, blocks, alpha)
    for g in groups:
        assert len({c // kw for c in g}) == 1  # one kernel row
        for r in range(6):
            kept = [c for c in g if keep[r, c]]
            assert len(kept) <= 1
            if kept:
                assert abs(w[r, kept[0]]) == max(abs(w[r, c]) for c in g)
    assert sorted(c for g in groups for c in g) == [c for c in range(kh * kw) if w[:, c].any()]
    # a layer of several channels still combines whole channels
    many = rng.standard_normal((6, 2 * kh * kw))
    _, (( _, _, channel_groups),) = combine_mask(many, PackOptions(alpha=alpha, gamma=1.0), kh * kw, True, kw)
    assert all(len({c % (kh * kw) for c in g}) == 1 for g in channel_groups)
