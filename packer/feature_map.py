"""Combining whole input feature maps (FM_CC): groups of channels of a k x k convolution.

A conv filter matrix has ``kernel = kh*kw`` columns per input channel (torch's im2col order,
channel-major). Combining per feature map groups whole channels: a group of channels
``c1, c2, ...`` becomes ``kernel`` packed columns, packed column ``p`` combining kernel position
``p`` of each of them, so the lanes of a group fetch whole input feature maps. As in per-column
combining, each cell (row, packed column) keeps the largest-magnitude weight among its columns:
a conflict is two channels of a group both holding a weight at the same row and kernel position.

Why a budget of its own: the per-column rule, ``floor(gamma x rows)`` per group, applied to whole
channels (a conflict per row and channel pair, as an earlier version did) never lets two channels
of a conv layer combine, since after magnitude pruning nearly every channel has some weight in
nearly every row: ``colcomb train --model lenet5 --per-feature-map`` packed conv2's 150 columns
into 150. Here the budget counts pruned **weights**: a channel group may prune at most
``kernel x floor(gamma x rows)`` of them, exactly the budget of the ``kernel`` packed columns it
becomes, each allowed ``floor(gamma x rows)`` as in per-column combining.

Grouping reuses :func:`colcomb.packer.combine.group_columns` (every method) on the channel
occupancy matrix: one column per channel, one row per (filter row, kernel position), in which
two channels conflict exactly where their combined packed columns would.
"""

from __future__ import annotations

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.combine import combine, conflict_budget, group_columns


def _check(weights: np.ndarray, kernel: int) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.ndim != 2:
        raise ColcombError(f"a filter matrix must be 2-D (rows x columns), got shape {list(w.shape)}")
    if not isinstance(kernel, (int, np.integer)) or kernel < 1 or w.shape[1] % kernel:
        raise ColcombError(f"kernel size {kernel!r} must be an integer >= 1 dividing the {w.shape[1]} columns")
    return w


def channel_columns(weights: np.ndarray, kernel: int) -> np.ndarray:
    """(rows * kernel, channels): channel ``c``'s column lists its weights at (row, position)."""
    w = _check(weights, kernel)
    rows = w.shape[0]
    return w.reshape(rows, -1, kernel).transpose(0, 2, 1).reshape(rows * kernel, -1)


def feature_map_budget(gamma: float, rows: int, kernel: int) -> int:
    """Most weights one channel group may prune: ``kernel x floor(gamma x rows)``."""
    return kernel * conflict_budget(gamma, rows)


def expand_groups(groups: list[list[int]], kernel: int) -> list[list[int]]:
    """Channel groups to flattened-column groups: one group per channel group and kernel position."""
    return [[c * kernel + p for c in g] for g in groups for p in range(kernel)]


def group_feature_maps(weights: np.ndarray, kernel: int, alpha: int, gamma: float = 0.0,
                       method: str = "auto", time_limit: float = 60.0) -> list[list[int]]:
    """Channel groups (ascending channel indices) of a (rows, channels*kernel) filter matrix, each
    of at most ``alpha`` channels pruning at most :func:`feature_map_budget` weights."""
    w = _check(weights, kernel)
    rows = w.shape[0]
    if not 0.0 <= gamma <= 1.0:
        raise ColcombError(f"gamma must lie in [0, 1] (fraction of rows a group may prune), got {gamma!r}")
    # group_columns allows floor(g x rows*kernel): this g makes that kernel x floor(gamma x rows)
    g = conflict_budget(gamma, rows) / rows if rows else 0.0
    return group_columns(channel_columns(w, kernel), alpha, g, method, time_limit=time_limit)


def _spans(total: int, step: int | None) -> list[tuple[int, int]]:
    step = step or total
    return [(s, min(s + step, total)) for s in range(0, total, step)]


def combine_feature_maps(
    weights: np.ndarray, kernel: int, alpha: int, gamma: float,
    row_block: int | None = None, section: int | None = None, method: str = "auto", time_limit: float = 60.0,
) -> tuple[np.ndarray, list[tuple[int, int, list[list[int]]]]]:
    """Group whole feature maps per row block (and per section of ``section`` channels); return
    the keep-mask combining leaves (per row and packed column the largest weight) and, per block,
    ``(row_start, row_stop, flattened column groups)``."""
    w = _check(weights, kernel)
    channels = w.shape[1] // kernel
    keep = np.zeros(w.shape, bool)
    out = []
    for r0, r1 in _spans(w.shape[0], row_block):
        chans: list[list[int]] = []
        for c0, c1 in _spans(channels, section):
            local = group_feature_maps(w[r0:r1, c0 * kernel : c1 * kernel], kernel, alpha, gamma, method, time_limit)
            chans += [[c0 + c for c in g] for g in local]
        groups = expand_groups(sorted(chans), kernel)
        packed, selects = combine(w[r0:r1], groups)
        for gi, group in enumerate(groups):
            live = np.flatnonzero(packed[:, gi] != 0)
            keep[r0 + live, np.asarray(group)[selects[live, gi]]] = True
        out.append((r0, r1, groups))
    return keep, out
