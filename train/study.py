"""`colcomb study`: the seed study side by side, on one CNN and on the character LSTM.

Arms, each with the same training budget after one shared dense pretraining (per model: the
LSTM's default is 2 retraining epochs per round and 2 final epochs, 8 in all, against the CNN's 4;
:meth:`StudyConfig.budget`):

- ``dense``: the pretrained model trained on for as many epochs as a joint optimization retrains;
- ``cc``: conflict-free column combining (gamma 0);
- ``cpcc``: conflict-permitted combining, one arm per gamma of ``gammas``;
- ``fm-cc`` (CNN only): combining whole input feature maps of the convolutions, with the budget of
  :mod:`colcomb.packer.feature_map` (counted in weights, so feature maps can combine);
- ``block-cc``: combining per row block of ``row_block`` rows (gamma ``block_gamma``);
- ``quant``: the block-CC model with its weights quantized to ``bits`` bits, one scale per layer,
  per row block or per row (:func:`colcomb.packer.quantize.row_scales`); no retraining.

Every combining arm runs the joint optimization of :mod:`colcomb.train.joint` (magnitude pruning
on a ramp, combining, retraining under masks) from a copy of the pretrained model. The CNN is
measured in test accuracy, the LSTM in bits per character on held-out text (:func:`heldout_bpc`).

Outputs (``OUT/``): ``study.csv`` (one row per arm), ``layers.csv`` (per arm and combined layer:
columns and packed columns), ``study.png`` (metric against packed columns, one panel per model)
and ``heatmap_<model>.png`` (which cells of one layer's packed matrix hold a weight, packed
without and with row blocks).
"""

from __future__ import annotations

import copy
import csv
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError

Log = Callable[[str], None]
MODELS = ("cnn", "lstm")
FIELDS = ("model", "arm", "alpha", "gamma", "row_block", "quant", "bits", "weights", "columns",
          "packed_columns", "reduction", "metric", "value", "seconds")
LAYER_FIELDS = ("model", "arm", "layer", "columns", "packed_columns", "weights")
HEATMAP_LAYER = {"cnn": "fc1", "lstm": "lstm.weight_hh_l0"}


@dataclass(frozen=True)
class ModelPlan:
    """One model's data, size and schedule."""

    dataset: str = "mnist5k"  # cnn: an image dataset; lstm: "stdlib", "text" (embedded) or a file path
    model: str = "lenet5"
    hidden: int | None = None  # charlstm units
    pretrain_epochs: int = 6
    lr: float = 1e-3
    retrain_lr: float = 5e-4
    batch_size: int = 64
    seq_len: int = 64  # lstm
    train_chars: int | None = None  # lstm: training characters per epoch (None: the whole training text)
    test_chars: int | None = None  # lstm: held-out characters measured (None: all)
    max_chars: int | None = None  # lstm with a text file: its first characters only (None: all)
    retrain_epochs: int | None = None  # this model's retraining epochs per round (None: the study's)
    final_epochs: int | None = None  # this model's epochs after the last round (None: the study's)


@dataclass(frozen=True)
class StudyConfig:
    """Everything `colcomb study` needs; defaults are the command's."""

    models: tuple[str, ...] = MODELS
    cnn: ModelPlan = field(default_factory=ModelPlan)
    lstm: ModelPlan = field(default_factory=lambda: ModelPlan(
        dataset="stdlib", model="charlstm", hidden=256, pretrain_epochs=10, lr=3e-3, retrain_lr=3e-3,
        batch_size=32, seq_len=64, train_chars=600_000, test_chars=100_000, retrain_epochs=2, final_epochs=2))
    alpha: int = 8
    gammas: tuple[float, ...] = (0.125, 0.25, 0.5)
    block_gamma: float = 0.5
    fm_gamma: float = 0.5
    row_block: int = 32
    sparsity: float = 0.8
    lstm_sparsity: float = 0.875
    rounds: int = 3
    retrain_epochs: int = 1
    final_epochs: int = 1
    bits: tuple[int, ...] = (4, 8)
    seed: int = 0
    threads: int = 1  # torch CPU threads: 1 keeps a shared 2-core machine from oversubscription

    def validate(self) -> None:
        unknown = sorted(set(self.models) - set(MODELS))
        if unknown or not self.models:
            raise ColcombError(f"--models takes {', '.join(MODELS)} (comma-separated), got {','.join(self.models)}")
        if not self.gammas:
            raise ColcombError("--gammas needs at least one gamma")
        for g in (*self.gammas, self.block_gamma, self.fm_gamma):
            if not 0.0 < g <= 1.0:
                raise ColcombError(f"conflict-permitted gammas must lie in (0, 1], got {g}")
        if self.alpha < 2:
            raise ColcombError(f"--alpha must be at least 2 to combine anything, got {self.alpha}")
        if self.row_block < 1:
            raise ColcombError(f"--row-block must be at least 1, got {self.row_block}")
        for s in (self.sparsity, self.lstm_sparsity):
            if not 0.0 <= s < 1.0:
                raise ColcombError(f"sparsity must lie in [0, 1), got {s}")
        epochs = [self.retrain_epochs, self.final_epochs, *(self.epochs(k)[i] for k in MODELS for i in (0, 1))]
        if self.rounds < 1 or min(epochs) < 0:
            raise ColcombError("--rounds must be >= 1 and retrain/final epochs >= 0")
        for b in self.bits:
            if not 2 <= b <= 16:
                raise ColcombError(f"--bits must lie in [2, 16], got {b}")

    def epochs(self, kind: str) -> tuple[int, int]:
        """(retraining epochs per round, final epochs) of one model's arms."""
        plan = self.cnn if kind == "cnn" else self.lstm
        return (self.retrain_epochs if plan.retrain_epochs is None else plan.retrain_epochs,
                self.final_epochs if plan.final_epochs is None else plan.final_epochs)

    def budget(self, kind: str) -> int:
        """Epochs every arm of one model trains after the shared pretraining (dense included)."""
        retrain, final = self.epochs(kind)
        return self.rounds * retrain + final


def quick_config(models: Sequence[str] = MODELS) -> StudyConfig:
    """A tiny study for tests and smoke runs (seconds): LeNet-5 on scikit-learn's digits, a
    16-unit LSTM on the embedded text, one round."""
    return StudyConfig(
        models=tuple(models),
        cnn=ModelPlan(dataset="digits", model="lenet5", pretrain_epochs=1),
        lstm=ModelPlan(dataset="text", model="charlstm", hidden=16, pretrain_epochs=1, lr=3e-3,
                       retrain_lr=3e-3, batch_size=16, seq_len=32),
        gammas=(0.25, 0.5), row_block=8, rounds=1, retrain_epochs=1, final_epochs=0, bits=(4,),
    )


# -- data and measurement ------------------------------------------------------------------------

def load_text(plan: ModelPlan):
    """The LSTM's corpus: ``stdlib`` (default), ``text`` (the embedded text) or a file path."""
    from colcomb.train.corpora import read_text, split_corpus, stdlib_corpus, text_data
    from colcomb.train.datasets import load_dataset

    if plan.dataset == "text":
        return load_dataset("text")
    if plan.dataset == "stdlib":
        return text_data("stdlib", *stdlib_corpus(), plan.test_chars)
    name = Path(plan.dataset).name
    text = read_text(plan.dataset)
    return text_data(name, *split_corpus(name, text[: plan.max_chars] if plan.max_chars else text), plan.test_chars)


def heldout_bpc(model, ids: np.ndarray, streams: int = 32) -> float:
    """Bits per character over held-out ids: the text is cut into ``streams`` contiguous pieces
    read in parallel, each from an empty state (the ends that do not fill a stream are left out)."""
    import torch
    from torch import nn

    ids = np.asarray(ids)
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    n = (len(ids) - 1) // streams
    if n < 1:
        raise ColcombError("need at least two held-out characters to measure bits per character")
    model.eval()
    x = torch.as_tensor(ids[: n * streams + 1])
    inp, tgt = x[:-1].reshape(streams, n), x[1:].reshape(streams, n)
    with torch.no_grad():
        logits, _ = model(inp)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt.reshape(-1))
    return float(loss) / float(np.log(2))


class _Task:
    """Training and scoring one model of the study."""

    def __init__(self, kind: str, plan: ModelPlan):
        from colcomb.train.datasets import load_dataset
        from colcomb.train.models import build_model

        self.kind, self.plan = kind, plan
        self.cursor = 0  # lstm: where the next epoch's characters start in the training text
        if kind == "lstm":
            self.data = load_text(plan)
            self.train_ids = self.data.encode(self.data.train)
            self.test_ids = self.data.encode(self.data.test)
            self.metric = "bpc"
            self.model = build_model("charlstm", None, self.data.classes, hidden=plan.hidden)
        else:
            self.data = load_dataset(plan.dataset)
            if getattr(self.data, "kind", "") != "image":
                raise ColcombError(f"the study's CNN needs an image dataset, not {plan.dataset!r}")
            self.metric = "accuracy"
            self.model = build_model(plan.model, self.data.input_shape, self.data.classes)

    def stream(self, epochs: int, offset: int = 0) -> np.ndarray:
        """``epochs x train_chars`` training characters, starting ``offset`` epochs after the
        cursor (wrapping around the training text); the cursor moves on only in :meth:`advance`,
        so every arm reads the same characters after the shared pretraining."""
        ids, per = self.train_ids, self.plan.train_chars or len(self.train_ids)
        want = epochs * per
        start = (self.cursor + offset * per) % len(ids)
        reps = -(-(start + want) // len(ids))
        return np.tile(ids, reps)[start : start + want] if reps > 1 else ids[start : start + want]

    def advance(self, epochs: int) -> None:
        if self.kind == "lstm":
            self.cursor += epochs * (self.plan.train_chars or len(self.train_ids))

    def describe(self) -> str:
        if self.kind == "lstm":
            per = self.plan.train_chars or len(self.train_ids)
            return (f"charlstm ({self.plan.hidden} units) on {self.data.name}: {len(self.train_ids)} training "
                    f"characters, {per} per epoch, {len(self.test_ids)} held-out, vocabulary {self.data.classes}")
        return (f"{self.plan.model} on {self.plan.dataset}: {len(self.data.y_train)} training / "
                f"{len(self.data.y_test)} test samples")

    def fit(self, model, epochs: int, lr: float, masks=None, seed: int = 0, offset: int = 0) -> None:
        """Train ``epochs`` epochs (the LSTM: the characters ``offset`` epochs past the cursor)."""
        from colcomb.train.joint import fit_classifier, fit_lm

        if epochs < 1:
            return
        if self.kind == "lstm":
            fit_lm(model, self.stream(epochs, offset), 1, lr=lr, seq_len=self.plan.seq_len,
                   batch_size=self.plan.batch_size, masks=masks, seed=seed)
        else:
            fit_classifier(model, self.data.x_train, self.data.y_train, epochs, lr, self.plan.batch_size,
                           masks=masks, seed=seed, augment=self.data.augment)

    def score(self, model) -> float:
        from colcomb.train.joint import accuracy

        if self.kind == "lstm":
            return heldout_bpc(model, self.test_ids)
        return accuracy(model, self.data.x_test, self.data.y_test)


# -- arms ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arm:
    name: str
    gamma: float | None = None  # None: dense
    per_feature_map: bool = False
    row_block: int | None = None


def arms_for(kind: str, cfg: StudyConfig) -> list[Arm]:
    arms = [Arm("dense"), Arm("cc", 0.0)]
    # the block arm's gamma always has a one-block CPCC arm too: the heatmap compares the two
    arms += [Arm(f"cpcc-{g:g}", float(g)) for g in sorted({*cfg.gammas, cfg.block_gamma})]
    if kind == "cnn":
        arms.append(Arm("fm-cc", cfg.fm_gamma, per_feature_map=True))
    arms.append(Arm("block-cc", cfg.block_gamma, row_block=cfg.row_block))
    return arms


def _joint_options(arm: Arm, cfg: StudyConfig, kind: str, sparsity: float, retrain_lr: float):
    from colcomb.train.joint import JointOptions, Schedule

    retrain, final = cfg.epochs(kind)
    return JointOptions(
        alpha=cfg.alpha, gamma=float(arm.gamma or 0.0), per_feature_map=arm.per_feature_map,
        row_block=arm.row_block,
        schedule=Schedule(rounds=cfg.rounds, sparsity=sparsity, retrain_epochs=retrain,
                          final_epochs=final, lr=retrain_lr),
    )


def run_arm(task: _Task, dense, arm: Arm, cfg: StudyConfig):
    """Train one arm from a copy of the pretrained model; return (model, JointResult or None)."""
    from colcomb.train.joint import joint_optimize

    model = copy.deepcopy(dense)
    lr = task.plan.retrain_lr
    if arm.gamma is None:
        task.fit(model, cfg.budget(task.kind), lr, seed=cfg.seed + 1)
        return model, None
    sparsity = cfg.lstm_sparsity if task.kind == "lstm" else cfg.sparsity
    opts = _joint_options(arm, cfg, task.kind, sparsity, lr)

    done = [0]  # epochs this arm has trained: each round reads the next characters

    def retrain(epochs: int, masks) -> None:
        task.fit(model, epochs, lr, masks=masks, seed=cfg.seed + 1 + done[0], offset=done[0])
        done[0] += epochs

    return model, joint_optimize(model, opts, retrain, log=lambda _m: None)


def layer_rows(kind: str, arm: str, result) -> list[dict]:
    """Per combined layer: dense-array columns (columns x row blocks), packed columns, weights."""
    rows = []
    for t in result.targets:
        blocks = result.groups[t.name]
        w = t.matrix()
        rows.append({"model": kind, "arm": arm, "layer": t.name, "columns": w.shape[1] * len(blocks),
                     "packed_columns": sum(len(g) for _, _, g in blocks),
                     "weights": int(np.count_nonzero(w))})
    return rows


def quantized_copy(model, blocks_of: Callable[[str, int], list[tuple[int, int]]], bits: int, granularity: str):
    """A copy of ``model`` whose every target weight matrix is quantized (symmetric, ``bits``
    bits, one scale per layer, row block or row over the row spans ``blocks_of(name, rows)``)."""
    import torch

    from colcomb.packer.quantize import quantize_values, row_scales
    from colcomb.train.prune import find_targets

    q = copy.deepcopy(model)
    for t in find_targets(q):
        w = t.matrix()
        spans = blocks_of(t.name, w.shape[0])
        parts = [w[r0:r1] for r0, r1 in spans]
        scales = row_scales(parts, bits, granularity)
        deq = np.concatenate([quantize_values(p, s, bits) * s[:, None] for p, s in zip(parts, scales, strict=True)])
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(deq.reshape(t.weight.shape)).to(t.weight.dtype))
    return q


# -- the study -----------------------------------------------------------------------------------

def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="arm", leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty())


def study_model(kind: str, cfg: StudyConfig, log: Log) -> tuple[list[dict], list[dict], dict]:
    """Every arm of one model: study rows, layer rows and the heatmap's two groupings."""
    import torch

    plan = cfg.cnn if kind == "cnn" else cfg.lstm
    torch.manual_seed(cfg.seed)
    task = _Task(kind, plan)
    log(f"[{kind}] {task.describe()}")
    t0 = time.perf_counter()
    task.fit(task.model, plan.pretrain_epochs, plan.lr, seed=cfg.seed)
    task.advance(plan.pretrain_epochs)
    log(f"[{kind}] dense pretraining: {plan.pretrain_epochs} epoch(s), {task.metric} "
        f"{task.score(task.model):.4f} ({time.perf_counter() - t0:.0f} s); each arm then trains "
        f"{cfg.budget(kind)} epoch(s)")
    rows: list[dict] = []
    layers: list[dict] = []
    models: dict[str, tuple] = {}
    arms = arms_for(kind, cfg)
    bar = _bar(len(arms), kind)
    for arm in arms:
        t1 = time.perf_counter()
        model, result = run_arm(task, task.model, arm, cfg)
        value = task.score(model)
        secs = time.perf_counter() - t1
        models[arm.name] = (model, result)
        row = _row(kind, arm.name, cfg.alpha if result else 1, arm.gamma, arm.row_block, "", "",
                   model, result, task.metric, value, secs)
        if result is not None:
            layers += layer_rows(kind, arm.name, result)
        rows.append(row)
        log(f"[{kind}] {arm.name:10s} packed columns {row['packed_columns']}/{row['columns']} "
            f"({row['reduction']:.2f}x fewer), weights {row['weights']}, {task.metric} {value:.4f} ({secs:.0f} s)")
        bar.update()
    bar.close()
    block_model, block_result = models["block-cc"]
    spans = {name: [(r0, r1) for r0, r1, _ in gs] for name, gs in block_result.groups.items()}

    def blocks_of(name: str, n: int) -> list[tuple[int, int]]:
        return spans.get(name, [(0, n)])

    for bits in cfg.bits:
        for gran in ("layer", "block", "row"):
            q = quantized_copy(block_model, blocks_of, bits, gran)
            value = task.score(q)
            rows.append(_row(kind, f"quant-{gran}", cfg.alpha, cfg.block_gamma, cfg.row_block, gran, bits,
                             q, block_result, task.metric, value, 0.0))
            log(f"[{kind}] block-cc quantized to {bits} bits per {gran}: {task.metric} {value:.4f}")
    main = f"cpcc-{cfg.block_gamma:g}"
    heat = {}
    if main in models and models[main][1] is not None:
        heat = {"plain": models[main][1], "blocks": block_result, "layer": HEATMAP_LAYER.get(kind)}
    return rows, layers, heat


def _row(kind, arm, alpha, gamma, row_block, quant, bits, model, result, metric, value, secs) -> dict:
    from colcomb.train.prune import find_targets

    if result is None:  # dense: the layers the combining arms combine, uncombined
        targets = find_targets(model, exclude_first=True)
        cols = packed = sum(t.matrix().shape[1] for t in targets)
        weights = sum(int(np.count_nonzero(t.matrix())) for t in targets)
    else:
        lr = layer_rows(kind, arm, result)
        cols = sum(r["columns"] for r in lr)
        packed = sum(r["packed_columns"] for r in lr)
        weights = sum(r["weights"] for r in lr)
    return {"model": kind, "arm": arm, "alpha": alpha, "gamma": "" if gamma is None else gamma,
            "row_block": row_block or "", "quant": quant, "bits": bits, "weights": weights,
            "columns": cols, "packed_columns": packed, "reduction": cols / max(packed, 1),
            "metric": metric, "value": round(float(value), 4), "seconds": round(secs, 1)}


def run_study(cfg: StudyConfig, out: str | os.PathLike, log: Log = print) -> list[dict]:
    """Run every model's arms; write study.csv, layers.csv, study.png and heatmap PNGs to ``out``."""
    from colcomb.core.atomic import write_bytes, write_text
    from colcomb.core.outdir import OutputFolder, check_replaceable

    cfg.validate()
    import torch

    torch.set_num_threads(max(1, cfg.threads))
    inputs = [p.dataset for p in (cfg.cnn, cfg.lstm) if p.dataset not in ("stdlib", "text")
              and os.path.exists(p.dataset)]
    out = Path(out)
    check_replaceable(out, inputs)
    if "lstm" in cfg.models and cfg.lstm.dataset not in ("stdlib", "text"):  # refuse a bad --text first
        from colcomb.train.corpora import read_text

        read_text(cfg.lstm.dataset)
    t0 = time.perf_counter()
    with OutputFolder(out, command="study", inputs=inputs) as stage:
        rows: list[dict] = []
        layers: list[dict] = []
        for kind in cfg.models:
            r, lay, heat = study_model(kind, cfg, log)
            rows += r
            layers += lay
            if heat:
                write_bytes(stage.path / f"heatmap_{kind}.png", heatmap_png(heat, kind))
        write_text(stage.path / "study.csv", _csv(rows, FIELDS))
        write_text(stage.path / "layers.csv", _csv(layers, LAYER_FIELDS))
        write_bytes(stage.path / "study.png", plot(rows))
        stage.commit()
    log(summary(rows))
    log(f"wrote {out / 'study.csv'}, layers.csv, study.png and heatmaps ({time.perf_counter() - t0:.0f} s)")
    return rows


def summary(rows: list[dict]) -> str:
    """The study as a plain-text table, with each arm's metric against its model's dense arm."""
    from colcomb.core.table import table

    dense = {r["model"]: r["value"] for r in rows if r["arm"] == "dense"}
    body = []
    for r in rows:
        arm = f"{r['arm']} {r['bits']}-bit" if r["quant"] else r["arm"]
        delta = r["value"] - dense[r["model"]] if r["model"] in dense else float("nan")
        if r["metric"] == "accuracy":
            delta *= 100  # points
        body.append([r["model"], arm, "" if r["gamma"] == "" else f"{r['gamma']:g}", r["row_block"] or "",
                     r["packed_columns"], r["columns"], round(r["reduction"], 2), r["weights"], r["metric"],
                     round(r["value"], 4), round(delta, 2 if r["metric"] == "accuracy" else 3)])
    return table(["model", "arm", "gamma", "row block", "packed", "columns", "fewer (x)", "weights", "metric",
                  "value", "vs dense"], body) + "\n(vs dense: accuracy points or bits per character)"


def _csv(rows: list[dict], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# -- plots ---------------------------------------------------------------------------------------

def _figure(w: float, h: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def plot(rows: list[dict]) -> bytes:
    """PNG, one column per model: on top the metric against packed columns (log scale), one
    point per training arm, the dense figure as a dashed line; below, the quantization arms as
    bars per width and granularity, the unquantized block-CC figure as a dashed line."""
    kinds = [k for k in MODELS if any(r["model"] == k for r in rows)]
    fig = _figure(5.5 * len(kinds), 7.5)
    for i, kind in enumerate(kinds):
        mine = [r for r in rows if r["model"] == kind]
        bpc = mine[0]["metric"] == "bpc"
        ylabel = "held-out bits per character (lower is better)" if bpc else "test accuracy"
        ax = fig.add_subplot(2, len(kinds), i + 1)
        for r in (r for r in mine if not r["quant"]):
            ax.plot(r["packed_columns"], r["value"], marker="o", linestyle="none")
            ax.annotate(r["arm"], (r["packed_columns"], r["value"]), fontsize=8,
                        textcoords="offset points", xytext=(4, 3))
        ref = {r["arm"]: r["value"] for r in mine if not r["quant"]}
        if "dense" in ref:
            ax.axhline(ref["dense"], color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("packed columns of the combined layers (log)")
        ax.set_ylabel(ylabel)
        ax.set_title("character LSTM" if kind == "lstm" else "CNN")
        ax.grid(True, alpha=0.3)
        qx = fig.add_subplot(2, len(kinds), len(kinds) + i + 1)
        quant = [r for r in mine if r["quant"]]
        bits = sorted({int(r["bits"]) for r in quant})
        for j, gran in enumerate(("layer", "block", "row")):
            vals = [next((r["value"] for r in quant if r["quant"] == gran and int(r["bits"]) == b), np.nan)
                    for b in bits]
            qx.bar(np.arange(len(bits)) + (j - 1) * 0.27, vals, width=0.25, label=f"per {gran}")
        if "block-cc" in ref:
            qx.axhline(ref["block-cc"], color="grey", linestyle="--", linewidth=0.8, label="block-cc, float")
        vals = [r["value"] for r in quant] + [ref.get("block-cc", np.nan)]
        lo, hi = np.nanmin(vals), np.nanmax(vals)
        pad = max((hi - lo) * 0.3, 0.005)
        qx.set_ylim(lo - pad, hi + pad)
        qx.set_xticks(np.arange(len(bits)), [f"{b}-bit weights" for b in bits])
        qx.set_ylabel(ylabel)
        qx.set_title("block-CC model quantized: one scale per layer / row block / row", fontsize=9)
        qx.legend(fontsize=7)
        qx.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def occupancy(result, layer: str) -> list[np.ndarray]:
    """Per row block of ``layer``: a (block rows, packed columns) boolean array, True where the
    packed cell holds a nonzero weight."""
    target = next(t for t in result.targets if t.name == layer)
    w = target.matrix() != 0
    return [np.stack([w[r0:r1][:, g].any(axis=1) for g in gs], axis=1) if gs else np.zeros((r1 - r0, 0), bool)
            for r0, r1, gs in result.groups[layer]]


def heatmap_png(heat: dict, kind: str) -> bytes:
    """PNG: the packed matrix of one layer, without and with row blocks; dark blue cells hold a
    weight, white cells are empty, grey cells do not exist (a block with fewer packed columns)."""
    layer = heat["layer"]
    fig = _figure(10, 5)
    for i, (key, title) in enumerate((("plain", "one block"), ("blocks", "row blocks")), 1):
        result = heat[key]
        if layer not in result.groups:
            continue
        occ = occupancy(result, layer)
        width = max(o.shape[1] for o in occ)
        img = np.full((sum(o.shape[0] for o in occ), width, 3), 0.75)  # grey: no such cell
        r = 0
        for o in occ:
            img[r : r + o.shape[0], : o.shape[1]] = np.where(o[:, :, None], (0.1, 0.2, 0.55), (1.0, 1.0, 1.0))
            r += o.shape[0]
        ax = fig.add_subplot(1, 2, i)
        ax.imshow(img, aspect="auto", interpolation="nearest")
        r = 0
        for o in occ[:-1]:
            r += o.shape[0]
            ax.axhline(r - 0.5, color="red", linewidth=0.6)
        cells = sum(o.size for o in occ)
        used = sum(int(o.sum()) for o in occ)
        ax.set_title(f"{layer}, {title}: {len(occ)} block(s), {sum(o.shape[1] for o in occ)} packed "
                     f"columns,\nutilization {used / max(cells, 1):.3f}", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("packed column")
        ax.set_ylabel("row")
    return _png(fig)
