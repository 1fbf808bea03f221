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

    def round_epochs(self, k: int) -> int:
        """Retraining epochs after round k's combining (the last round adds ``final_epochs``)."""
        return self.retrain_epochs + (self.final_epochs if k == self.rounds else 0)

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
    time_limit: float = 60.0  # seconds per matrix for method "exact"
    schedule: Schedule = field(default_factory=Schedule)

    def pack_options(self, name: str) -> PackOptions:
        opts = PackOptions(
            alpha=int(self.layer_alpha.get(name, self.alpha)),
            gamma=float(self.gamma),
            row_block=self.row_block,
            section=self.section,
            method=self.method,
            time_limit=self.time_limit,
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

    def kernel_row_notes(self, targets: list[Target], first: bool) -> list[str]:
        """What the chip will say of the one-channel conv layers this run combines per kernel
        row (:func:`colcomb.train.prune.combine_mask`): they read row runs on chip only as the
        network's first layer (``first``: ``targets[0]`` is it) and with alpha of at least the
        kernel width; said before the rounds of combining, not after training."""
        notes = []
        for i, t in enumerate(targets):
            if not (self.per_feature_map and t.is_conv and t.weight.shape[1] == 1 and t.kernel_size > 1):
                continue
            alpha, kw = self.pack_options(t.name).alpha, t.kernel_width
            if i or not first:
                notes.append(f"{t.name} (one input channel) is combined per kernel row, but on chip only the first "
                             f"layer reads row runs: generate, simulate and synthesize will refuse the whole CNN")
            elif alpha < kw:
                notes.append(f"{t.name} is combined per kernel row at alpha {alpha}, below its kernel width {kw}: "
                             f"on chip a run of {kw} pixels does not fit a word of {alpha} lanes and generate, "
                             f"simulate and synthesize will refuse the whole CNN; use --alpha {kw} (or --layer-alpha "
                             f"{t.name}={kw})")
        return notes


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
        w, opts.pack_options(target.name), target.kernel_size, opts.per_feature_map and target.is_conv,
        target.kernel_width,
    )


def combine_round(targets: list[Target], masks: Masks, opts: JointOptions, k: int) -> tuple[dict[str, Groups], dict]:
    """Round ``k``'s magnitude pruning and column combining of every target: updates and applies
    ``masks``; returns the groups per target and the round's figures for the history."""
    s = opts.schedule.sparsity_at(k)
    dense_cols = packed = 0
    groups: dict[str, Groups] = {}
    for t in targets:
        shape = t.weight.shape
        keep = masks.masks[t.name].reshape(shape[0], -1).cpu().numpy()
        keep = magnitude_mask(t.matrix(), keep, s)
        keep, gs = combine_target(t, keep, opts)
        masks.set(t.name, torch.from_numpy(keep.reshape(shape)))
        groups[t.name] = gs
        dense_cols += t.matrix().shape[1]
        packed += sum(len(g) for _, _, g in gs)
    masks.apply()
    density = float(np.mean([masks.density(t.name) for t in targets]))
    return groups, {"round": k, "sparsity": s, "density": density, "columns": dense_cols,
                    "packed_columns": packed}


def round_message(info: dict, rounds: int) -> str:
    return (f"round {info['round']}/{rounds}: magnitude sparsity {info['sparsity']:.3f}, weights kept "
            f"{info['density']:.3f}, columns {info['columns']} -> {info['packed_columns']} packed")


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
        groups, info = combine_round(targets, masks, opts, k)
        result.groups.update(groups)
        log(round_message(info, sched.rounds))
        info["score"] = retrain(sched.round_epochs(k), masks)
        result.history.append(info)
    return result


# -- training loops ------------------------------------------------------------------------------

def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops of the images padded by ``pad`` (zeros) and random horizontal flips: the
    standard CIFAR-10 augmentation. Offsets and flips are drawn from ``gen`` (on the CPU) for the
    whole batch."""
    n, _, h, w = x.shape
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    xp = nn.functional.pad(x, (pad, pad, pad, pad))
    rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]  # (n, h)
    cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    b = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar (with ETA) on a terminal, else a silent stand-in."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
        except ImportError:
            pass
    return _NoBar()


class _NoBar:
    def update(self, _n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _show_progress(runtime) -> bool:
    import sys

    return (runtime is None or runtime.main) and sys.stderr.isatty()


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
    *,
    runtime=None,
    augment: str | None = None,
    start_epoch: int = 1,
    optimizer_state: dict | None = None,
    on_epoch: Callable[[int, torch.optim.Optimizer], None] | None = None,
    label: str = "",
) -> None:
    """Adam on cross-entropy; masks re-applied after every step.

    ``runtime`` (:class:`colcomb.train.distributed.Runtime`) gives the device, bf16 autocast on
    CUDA and, under torchrun, the rank's share of every minibatch (DDP averages the gradients; the
    loss is scaled so the step equals one process's on the whole minibatch). ``augment`` =
    ``"crop-flip"`` augments each minibatch. ``start_epoch`` > 1 resumes: the shuffles of the
    skipped epochs are still drawn, so the run continues exactly; ``optimizer_state`` restores
    Adam. ``on_epoch(epoch, optimizer)`` runs after every epoch (checkpoints)."""
    from colcomb.train.distributed import Runtime

    if len(x) == 0:
        raise ColcombError("no training samples")
    if augment not in (None, "crop-flip"):
        raise ColcombError(f"unknown augmentation {augment!r}")
    rt = runtime or Runtime(torch.device("cpu"))
    dev = rt.device
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, np.float32)).to(dev)
    yt = torch.as_tensor(np.asarray(y, np.int64)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    net = rt.wrap(model)
    whole = rt.world == 1
    loss_fn = nn.CrossEntropyLoss(reduction="mean" if whole else "sum")
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(xt), generator=gen)
        if epoch < start_epoch:
            continue
        aug_gen = torch.Generator().manual_seed(seed * 100_003 + epoch) if augment else None
        perm = perm.to(dev)
        model.train()
        total = torch.zeros((), dtype=torch.float64, device=dev)
        bar = _progress(-(-len(xt) // batch_size), f"{label}epoch {epoch}/{epochs}", _show_progress(runtime))
        for i in range(0, len(xt), batch_size):
            idx = perm[i : i + batch_size]
            xb = augment_batch(xt[idx], aug_gen) if aug_gen is not None else xt[idx]
            yb = yt[idx]
            if not whole:
                if len(idx) < rt.world:  # too few to share; every rank skips it alike
                    continue
                xb, yb = xb[rt.rank :: rt.world], yb[rt.rank :: rt.world]
            opt.zero_grad()
            with rt.autocast():
                loss = loss_fn(net(xb), yb)
            if whole:
                loss.backward()
                total += loss.detach().double() * len(idx)
            else:
                (loss * (rt.world / len(idx))).backward()
                total += loss.detach().double()
            opt.step()
            if masks is not None:
                masks.apply()
            bar.update()
        bar.close()
        total = rt.all_sum(total)
        if on_epoch is not None:
            on_epoch(epoch, opt)
        if log is not None and rt.main:
            extra = f", test accuracy {evaluate():.4f}" if evaluate is not None else ""
            log(f"  {label}epoch {epoch}/{epochs}: loss {float(total) / len(xt):.4f}{extra}")


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class predictions of a classifier (eval mode), computed on the model's device."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[i : i + batch_size], np.float32)).to(dev)
        out.append(model(xb).argmax(1).cpu())
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
    *,
    runtime=None,
    start_epoch: int = 1,
    optimizer_state: dict | None = None,
    on_epoch: Callable[[int, torch.optim.Optimizer], None] | None = None,
    label: str = "",
) -> None:
    """Adam on next-character cross-entropy over random windows of ``seq_len`` characters (one
    process; ``runtime`` gives the device; resuming as :func:`fit_classifier`)."""
    if runtime is not None and runtime.distributed:
        raise ColcombError("the character LSTM trains in one process; run it without torchrun")
    dev = runtime.device if runtime is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    loss_fn = nn.CrossEntropyLoss()
    ids = np.asarray(ids)
    for epoch in range(1, epochs + 1):
        if epoch < start_epoch:
            torch.randperm(max(1, (len(ids) - 1) // seq_len), generator=gen)  # the skipped epoch's draw
            continue
        model.train()
        total, count = 0.0, 0
        for xb, yb in _lm_batches(ids, seq_len, batch_size, gen):
            xb, yb = xb.to(dev), yb.to(dev)
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
        if on_epoch is not None:
            on_epoch(epoch, opt)
        if log is not None:
            extra = f", test bits/char {evaluate():.4f}" if evaluate is not None else ""
            log(f"  {label}epoch {epoch}/{epochs}: bits/char {total / count / np.log(2):.4f}{extra}")


@torch.no_grad()
def bits_per_char(model: nn.Module, ids: np.ndarray) -> float:
    """Mean -log2 p(next char) over the text, read in one pass from an empty state."""
    if len(ids) < 2:
        raise ColcombError("need at least two characters to measure bits per character")
    model.eval()
    t = torch.as_tensor(np.asarray(ids))[None, :].to(next(model.parameters()).device)
    logits, _ = model(t[:, :-1])
    loss = nn.functional.cross_entropy(logits[0].float(), t[0, 1:])
    return float(loss) / float(np.log(2))
