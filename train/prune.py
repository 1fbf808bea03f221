"""Masks for a torch model's weight matrices: magnitude pruning and column-combining pruning.

A *target* is one weight matrix the joint optimization prunes and combines: the ``weight`` of a
Conv2d or Linear layer, or an LSTM's ``weight_ih_l<k>`` / ``weight_hh_l<k>``. Its filter matrix
is the weight flattened to (rows, columns): a conv weight (filters, channels, kh, kw) becomes
filters x (channels * kh * kw), the column order torch's ``unfold`` (im2col) uses.

A mask is a boolean tensor of the weight's shape; :meth:`Masks.apply` zeroes every weight outside
it (call it after each optimizer step, so pruned weights stay zero).

Combining per feature map (``per_feature_map``): the columns of a conv layer are grouped as whole
input channels (:mod:`colcomb.packer.feature_map`): each channel group becomes kh*kw packed
columns (kernel position p of channels c1, c2, ... combine into one), each cell keeping its
largest weight. Its conflict budget counts pruned weights, kh*kw times the per-column budget, so
that whole feature maps can combine. A conv layer of one input channel (a grey image's first
layer) has no channels to combine: it combines per kernel row instead, each packed column taking
positions of one kernel row (sections of kw columns), which on chip read one run of a row of the
image (:meth:`colcomb.hdl.program.Program.channel_words`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.packer.feature_map import combine_feature_maps, expand_groups  # noqa: F401 (re-exported)
from colcomb.packer.pack import PackOptions, pack_matrix

Groups = list[tuple[int, int, list[list[int]]]]  # per row block: (row_start, row_stop, groups)


@dataclass(frozen=True)
class Target:
    """One prunable weight matrix of a model."""

    name: str  # layer name in the manifest: module name, or "<lstm>.weight_ih_l0" for an LSTM
    module: nn.Module
    param: str  # attribute holding the weight

    @property
    def weight(self) -> torch.Tensor:
        return getattr(self.module, self.param)

    @property
    def is_conv(self) -> bool:
        return isinstance(self.module, nn.Conv2d)

    @property
    def kernel_size(self) -> int:
        """Columns per input channel: kh * kw for a conv, else 1."""
        w = self.weight
        return int(w.shape[2] * w.shape[3]) if w.dim() == 4 else 1

    @property
    def kernel_width(self) -> int:
        """Columns per kernel row: kw for a conv, else 1."""
        w = self.weight
        return int(w.shape[3]) if w.dim() == 4 else 1

    def matrix(self) -> np.ndarray:
        w = self.weight.detach().cpu().numpy().astype(np.float64)
        return w.reshape(w.shape[0], -1)


def find_targets(model: nn.Module, exclude_first: bool = False) -> list[Target]:
    """Every Conv2d/Linear weight and LSTM weight matrix, in module order; optionally without the
    first one (the input layer, often too small to gain from combining)."""
    out: list[Target] = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            out.append(Target(name, mod, "weight"))
        elif isinstance(mod, nn.LSTM):
            for k in range(mod.num_layers):
                for kind in ("ih", "hh"):
                    param = f"weight_{kind}_l{k}"
                    out.append(Target(f"{name}.{param}", mod, param))
    if not out:
        raise ColcombError("the model has no Conv2d, Linear or LSTM weights to prune")
    return out[1:] if exclude_first else out


class Masks:
    """Boolean keep-masks by target name; :meth:`apply` zeroes everything outside them."""

    def __init__(self, targets: list[Target]):
        self.targets = {t.name: t for t in targets}
        self.masks: dict[str, torch.Tensor] = {
            t.name: torch.ones_like(t.weight, dtype=torch.bool) for t in targets
        }

    def set(self, name: str, mask: torch.Tensor) -> None:
        want = self.targets[name].weight.shape
        if tuple(mask.shape) != tuple(want):
            raise ColcombError(f"mask for {name} has shape {list(mask.shape)}, the weight {list(want)}")
        self.masks[name] = mask.to(device=self.targets[name].weight.device, dtype=torch.bool)

    @torch.no_grad()
    def apply(self) -> None:
        for name, mask in self.masks.items():
            self.targets[name].weight.mul_(mask)

    def density(self, name: str) -> float:
        return float(self.masks[name].float().mean())

    def state(self) -> dict[str, torch.Tensor]:
        """CPU copies of the masks (for checkpoints)."""
        return {k: v.detach().cpu().clone() for k, v in self.masks.items()}


def magnitude_mask(weight: np.ndarray, keep: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-mask reaching at least ``sparsity`` zeros overall: the smallest-magnitude weights still
    kept are pruned (already-pruned ones stay pruned)."""
    if not 0.0 <= sparsity < 1.0:
        raise ColcombError(f"sparsity must lie in [0, 1), got {sparsity!r}")
    w = np.abs(np.asarray(weight, np.float64)) * keep
    n_keep = int(np.ceil(w.size * (1.0 - sparsity)))
    alive = int(np.count_nonzero(w))
    if alive <= n_keep:
        return keep & (w != 0)
    order = np.argsort(-w, axis=None, kind="stable")[:n_keep]
    out = np.zeros(w.size, bool)
    out[order] = True
    return out.reshape(w.shape) & keep


def channel_matrix(weight: np.ndarray, kernel: int) -> np.ndarray:
    """(rows, channels) sum of |w| over each channel's ``kernel`` columns."""
    w = np.abs(np.asarray(weight, np.float64))
    return w.reshape(w.shape[0], -1, kernel).sum(axis=2)


def combine_mask(
    weight: np.ndarray, opts: PackOptions, kernel: int = 1, per_feature_map: bool = False,
    kernel_width: int | None = None,
) -> tuple[np.ndarray, Groups]:
    """Group the columns of a (rows, columns) filter matrix; return the keep-mask that combining
    leaves (per row and group only the largest weight) and the groups per row block, as original
    flattened column indices. With ``per_feature_map``,
    :func:`colcomb.packer.feature_map.combine_feature_maps` groups whole channels within a budget
    counted in weights; ``opts.section`` then counts channels. A one-channel conv (``kernel``
    columns) combines per kernel row instead: columns in sections of ``kernel_width``."""
    w = np.asarray(weight, np.float64)
    if per_feature_map and kernel > 1 and w.shape[1] == kernel and kernel_width:
        if kernel % kernel_width:
            raise ColcombError(f"a kernel row of {kernel_width} does not divide the kernel's {kernel} positions")
        opts = replace(opts, section=kernel_width)
    elif per_feature_map and kernel > 1:
        return combine_feature_maps(w, kernel, opts.alpha, opts.gamma, opts.row_block, opts.section, opts.method,
                                    opts.time_limit)
    keep = np.zeros(w.shape, bool)
    out = []
    for r0, r1, groups, packed, selects in pack_matrix(w, opts):
        _mark(keep, r0, groups, packed, selects)
        out.append((r0, r1, groups))
    return keep, out


def _mark(keep: np.ndarray, r0: int, groups, packed: np.ndarray, selects: np.ndarray) -> None:
    for g, group in enumerate(groups):
        rows = np.flatnonzero(packed[:, g] != 0)
        cols = np.asarray(group)[selects[rows, g]]
        keep[r0 + rows, cols] = True


def check_groups(matrix: np.ndarray, blocks: Groups, alpha: int) -> None:
    """Raise ColcombError unless ``blocks`` is a valid grouping of the (masked) ``matrix``: rows
    covered in order, every nonzero column in exactly one group per block, at most ``alpha``
    columns per group, at most one nonzero per row and group."""
    nz = np.asarray(matrix) != 0
    expect = 0
    for r0, r1, groups in blocks:
        if r0 != expect:
            raise ColcombError(f"row blocks must cover the rows in order; block starts at {r0}")
        expect = r1
        seen = np.zeros(nz.shape[1], bool)
        for g in groups:
            if not 1 <= len(g) <= alpha:
                raise ColcombError(f"group {g} has {len(g)} columns, alpha is {alpha}")
            if seen[g].any():
                raise ColcombError(f"a column of group {g} is in two groups")
            seen[g] = True
            if (nz[r0:r1][:, g].sum(axis=1) > 1).any():
                raise ColcombError(f"group {g} keeps two weights in one row")
        if (nz[r0:r1].any(axis=0) & ~seen).any():
            raise ColcombError("a nonzero column is in no group")
    if expect != nz.shape[0]:
        raise ColcombError(f"row blocks cover {expect} of {nz.shape[0]} rows")
