"""Joint optimization (Kung et al., ASPLOS 2019): rounds of pruning and column combining, each
followed by retraining, with masks that keep pruned weights at zero.

Round k of R (see :class:`Schedule`):

1. magnitude pruning: every target's smallest weights go until it reaches the ramp's sparsity
   ``s_k`` (cubic ramp ``s_R * (1 - (1 - k/R)**3)`` by default, or linear ``s_R * k/R``);
2. column combining: the pruned matrix is grouped with :func:`colcomb.packer.pack.pack_matrix`
   (per-layer alpha, gamma, row blocks, sections, per flattened column or per whole input feature
   map); in each row and group only the largest weight survives;
3. retraining for ``retrain_epochs`` with the masks re-applied after every optimizer step.

After the last round the groups are frozen and ``final_epochs`` more epochs retrain with them.
The result's groups are what :mod:`colcomb.train.export` packs; retraining under the masks
keeps them valid (at most one nonzero weight per row and group).

Also here: plain training loops for classifiers and character language models (Adam), used for
dense pretraining and retraining.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.packer.pack import PackOptions
from colcomb.train.prune import Groups, Masks, Target, combine_mask, find_targets, magnitude_mask

Log = Callable[[str], None]
RAMPS = ("cubic", "linear")  # colcomb.train.catalog.RAMPS repeats these for the CLI


@dataclass(frozen=True)
class Schedule:
    """How many rounds, how sparse, how long to retrain."""

    rounds: int = 4
    sparsity: float = 0.8  # magnitude-pruning sparsity of the last round (before combining prunes more)
    ramp: str = "cubic"
    retrain_epochs: int = 2
    final_epochs: int = 3
    lr: float = 5e-4

    def validate(self) -> None:
        if self.rounds < 1:
            raise ColcombError(f"rounds must be at least 1, got {self.rounds}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ColcombError(f"sparsity must lie in [0, 1), got {self.sparsity}")
        if self.ramp not in RAMPS:
            raise ColcombError(f"ramp {self.ramp!r} is not one of {', '.join(RAMPS)}")
        if self.retrain_epochs < 0 or self.final_epochs < 0:
            raise ColcombError("retrain and final epochs must be >= 0")
        if not self.lr > 0:
            raise ColcombError(f"learning rate must be positive, got {self.lr}")

    def sparsity_at(self, k: int) -> float:
        """Magnitude sparsity of round k (1-based)."""
        t = k / self.rounds
        return self.sparsity * (t if self.ramp == "linear" else 1.0 - (1.0 - t) ** 3)


@dataclass(frozen=True)
class JointOptions:
    """Combining options of the joint optimization; ``layer_alpha`` overrides alpha per layer."""

    alpha: int = 8
    gamma: float = 0.5
    layer_alpha: dict[str, int] = field(default_factory=dict)
    exclude_first: bool = True
    per_feature_map: bool = False
    row_block: int | None = None
    section: int | None = None
    method: str = "auto"
    schedule: Schedule = field(default_factory=Schedule)

    def pack_options(self, name: str) -> PackOptions:
        opts = PackOptions(
            alpha=int(self.layer_alpha.get(name, self.alpha)),
            gamma=float(self.gamma),
            row_block=self.row_block,
            section=self.section,
            method=self.method,
        )
        opts.validate()
        return opts

    def validate(self, targets: list[Target]) -> None:
        names = {t.name for t in targets}
        unknown = sorted(set(self.layer_alpha) - names)
        if unknown:
            raise ColcombError(
                f"--layer-alpha names {', '.join(unknown)}, which the model does not combine; "
                f"its combined layers are {', '.join(sorted(names))}"
            )
        for t in targets:
            self.pack_options(t.name)
        self.schedule.validate()


@dataclass
class JointResult:
    """Masks and frozen groups per target, with one history entry per round."""

    targets: list[Target]
    masks: Masks
    groups: dict[str, Groups]
    alphas: dict[str, int]
    history: list[dict] = field(default_factory=list)

    def packed_columns(self, name: str) -> int:
        return sum(len(g) for _, _, g in self.groups[name])


def combine_target(target: Target, keep: np.ndarray, opts: JointOptions) -> tuple[np.ndarray, Groups]:
    """Group one target's masked matrix; return its new keep-mask (2-D) and groups."""
    w = target.matrix() * keep
    return combine_mask(
        w, opts.pack_options(target.name), target.kernel_size, opts.per_feature_map and target.is_conv
    )


def joint_optimize(
    model: nn.Module, opts: JointOptions, retrain: Callable[[int, Masks], float | None], log: Log = print
) -> JointResult:
    """Run the rounds on ``model`` in place. ``retrain(epochs, masks)`` trains the model for that
    many epochs, calling ``masks.apply()`` after every optimizer step, and may return a score
    (accuracy, or bits per character) for the log."""
    targets = find_targets(model, opts.exclude_first)
    opts.validate(targets)
    masks = Masks(targets)
    result = JointResult(targets, masks, {}, {t.name: opts.pack_options(t.name).alpha for t in targets})
    sched = opts.schedule
    for k in range(1, sched.rounds + 1):
        s = sched.sparsity_at(k)
        dense_cols = packed = 0
        for t in targets:
            shape = t.weight.shape
            keep = masks.masks[t.name].reshape(shape[0], -1).cpu().numpy()
            keep = magnitude_mask(t.matrix(), keep, s)
            keep, groups = combine_target(t, keep, opts)
            masks.set(t.name, torch.from_numpy(keep.reshape(shape)))
            result.groups[t.name] = groups
            dense_cols += t.matrix().shape[1]
            packed += sum(len(g) for _, _, g in groups)
        masks.apply()
        density = np.mean([masks.density(t.name) for t in targets])
        log(f"round {k}/{sched.rounds}: magnitude sparsity {s:.3f}, weights kept {density:.3f}, "
            f"columns {dense_cols} -> {packed} packed")
        score = retrain(sched.retrain_epochs + (sched.final_epochs if k == sched.rounds else 0), masks)
        result.history.append(
            {"round": k, "sparsity": s, "density": float(density), "columns": dense_cols,
             "packed_columns": packed, "score": score}
        )
    return result


# -- training loops ------------------------------------------------------------------------------

def fit_classifier(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    masks: Masks | None = None,
    seed: int = 0,
    log: Log | None = None,
    evaluate: Callable[[], float] | None = None,
) -> None:
    """Adam on cross-entropy; masks re-applied after every step."""
    if len(x) == 0:
        raise ColcombError("no training samples")
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, np.float32))
    yt = torch.as_tensor(np.asarray(y, np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            if masks is not None:
                masks.apply()
            total += loss.item() * len(idx)
        if log is not None:
            extra = f", test accuracy {evaluate():.4f}" if evaluate is not None else ""
            log(f"  epoch {epoch}/{epochs}: loss {total / len(xt):.4f}{extra}")


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class predictions of a classifier (eval mode)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        out.append(model(torch.as_tensor(np.asarray(x[i : i + batch_size], np.float32))).argmax(1))
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predict(model, x) == np.asarray(y)))


def _lm_batches(ids: np.ndarray, seq_len: int, batch: int, gen: torch.Generator):
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ColcombError(f"the text has {len(ids)} characters, too few for sequences of {seq_len}")
    starts = torch.randperm(n, generator=gen) * seq_len
    t = torch.as_tensor(ids)
    for i in range(0, n, batch):
        s = starts[i : i + batch]
        idx = s[:, None] + torch.arange(seq_len + 1)[None, :]
        chunk = t[idx]
        yield chunk[:, :-1], chunk[:, 1:]


def fit_lm(
    model: nn.Module,
    ids: np.ndarray,
    epochs: int,
    lr: float = 3e-3,
    seq_len: int = 64,
    batch_size: int = 16,
    masks: Masks | None = None,
    seed: int = 0,
    log: Log | None = None,
    evaluate: Callable[[], float] | None = None,
) -> None:
    """Adam on next-character cross-entropy over random windows of ``seq_len`` characters."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        for xb, yb in _lm_batches(np.asarray(ids), seq_len, batch_size, gen):
            opt.zero_grad()
            logits, _ = model(xb)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if masks is not None:
                masks.apply()
            total += loss.item() * yb.numel()
            count += yb.numel()
        if log is not None:
            extra = f", test bits/char {evaluate():.4f}" if evaluate is not None else ""
            log(f"  epoch {epoch}/{epochs}: bits/char {total / count / np.log(2):.4f}{extra}")


@torch.no_grad()
def bits_per_char(model: nn.Module, ids: np.ndarray) -> float:
    """Mean -log2 p(next char) over the text, read in one pass from an empty state."""
    if len(ids) < 2:
        raise ColcombError("need at least two characters to measure bits per character")
    model.eval()
    t = torch.as_tensor(np.asarray(ids))[None, :]
    logits, _ = model(t[:, :-1])
    loss = nn.functional.cross_entropy(logits[0], t[0, 1:])
    return float(loss) / float(np.log(2))
