"""`colcomb train`: dense pretraining, joint optimization, export; the run's folder layout.

A run folder ``DIR`` holds:

- ``DIR/model.pt``: the checkpoint (a dict loadable with ``torch.load(weights_only=True)``):
  ``format``, ``version``, ``config`` (the :class:`TrainConfig`), ``input_shape``, ``classes``,
  ``vocab`` (text), ``state_dict``, ``masks``, ``groups`` (per layer: [row_start, row_stop,
  groups] per block), ``alphas``, ``history``;
- ``DIR/packed/``: the manifest (``manifest.json`` + arrays + ROM images), whose ``meta`` holds
  the graph the integer evaluation runs (see :mod:`colcomb.train.export`);
- ``DIR/report.json``: accuracies and column counts measured at the end of training.

Each step is a named function so a failing run can be bisected: :func:`pretrain`,
:func:`optimize`, :func:`export`, then :func:`colcomb.train.evaluate.evaluate_run`.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from colcomb.core.errors import ColcombError
from colcomb.train.datasets import ImageData, TextData, balanced_subset, load_dataset
from colcomb.train.models import build_model

CHECKPOINT = "model.pt"
PACKED = "packed"
REPORT = "report.json"
FORMAT = "colcomb-checkpoint"
VERSION = 1
Log = Callable[[str], None]


@dataclass
class TrainConfig:
    """Everything `colcomb train` needs; defaults are the CLI's."""

    dataset: str = "mnist5k"
    model: str = "lenet5"
    alpha: int = 8
    gamma: float = 0.5
    epochs: int = 6  # dense pretraining epochs
    rounds: int = 4
    sparsity: float = 0.8
    ramp: str = "cubic"
    retrain_epochs: int = 2
    final_epochs: int = 3
    data_fraction: float = 1.0  # class-balanced fraction of the training set used for retraining
    per_feature_map: bool = False
    include_first: bool = False
    layer_alpha: dict[str, int] = field(default_factory=dict)
    row_block: int | None = None
    section: int | None = None
    method: str = "auto"
    bits: int = 8
    data_bits: int = 8
    acc_bits: int = 32
    lr: float = 1e-3
    retrain_lr: float = 5e-4
    batch_size: int = 64
    seed: int = 0
    hidden: list[int] | None = None
    dense: bool = False  # skip the joint optimization (the dense baseline)
    calib_samples: int = 1000
    data_dir: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def pretrain(model, data, cfg: TrainConfig, log: Log) -> None:
    """Dense training on the whole training set."""
    from colcomb.train.joint import accuracy, bits_per_char, fit_classifier, fit_lm

    if cfg.epochs < 1:
        return
    log(f"dense training: {cfg.epochs} epoch(s)")
    if isinstance(data, TextData):
        test = data.encode(data.test)
        fit_lm(model, data.encode(data.train), cfg.epochs, lr=cfg.lr * 3, seed=cfg.seed, log=log,
               evaluate=lambda: bits_per_char(model, test))
    else:
        fit_classifier(model, data.x_train, data.y_train, cfg.epochs, cfg.lr, cfg.batch_size,
                       seed=cfg.seed, log=log, evaluate=lambda: accuracy(model, data.x_test, data.y_test))


def joint_options(cfg: TrainConfig):
    """The :class:`~colcomb.train.joint.JointOptions` a config asks for."""
    from colcomb.train.joint import JointOptions, Schedule

    return JointOptions(
        alpha=cfg.alpha, gamma=cfg.gamma, layer_alpha=dict(cfg.layer_alpha),
        exclude_first=not cfg.include_first, per_feature_map=cfg.per_feature_map,
        row_block=cfg.row_block, section=cfg.section, method=cfg.method,
        schedule=Schedule(rounds=cfg.rounds, sparsity=cfg.sparsity, ramp=cfg.ramp,
                          retrain_epochs=cfg.retrain_epochs, final_epochs=cfg.final_epochs,
                          lr=cfg.retrain_lr),
    )


def optimize(model, data, cfg: TrainConfig, log: Log):
    """Joint optimization with retraining on a class-balanced ``data_fraction`` of the train set."""
    from colcomb.train.joint import accuracy, bits_per_char, fit_classifier, fit_lm, joint_optimize

    opts = joint_options(cfg)
    if isinstance(data, TextData):
        ids = data.encode(data.train)
        n = max(2, int(len(ids) * cfg.data_fraction))
        ids = ids[:n]
        test = data.encode(data.test)

        def retrain(epochs, masks):
            fit_lm(model, ids, epochs, lr=cfg.retrain_lr * 3, masks=masks, seed=cfg.seed, log=log)
            score = bits_per_char(model, test)
            log(f"  test bits/char {score:.4f}")
            return score
    else:
        idx = balanced_subset(data.y_train, cfg.data_fraction, cfg.seed)
        x, y = data.x_train[idx], data.y_train[idx]
        if cfg.data_fraction < 1.0:
            log(f"retraining on {len(idx)} of {len(data.y_train)} training samples (class-balanced)")

        def retrain(epochs, masks):
            fit_classifier(model, x, y, epochs, cfg.retrain_lr, cfg.batch_size, masks=masks,
                           seed=cfg.seed, log=log)
            score = accuracy(model, data.x_test, data.y_test)
            log(f"  test accuracy {score:.4f}")
            return score

    return joint_optimize(model, opts, retrain, log)


def calibration_inputs(data, cfg: TrainConfig) -> np.ndarray:
    """Training samples (class-balanced) or training text the activation scales are set on."""
    if isinstance(data, TextData):
        return data.encode(data.train)[: max(cfg.calib_samples, 200)]
    frac = min(1.0, cfg.calib_samples / max(len(data.y_train), 1))
    return data.x_train[balanced_subset(data.y_train, frac, cfg.seed + 1)]


def export(model, data, cfg: TrainConfig, groups: dict, alphas: dict, out: Path):
    """Quantize and pack the trained model; write ``out/packed``."""
    from colcomb.packer.manifest import write_manifest
    from colcomb.train.export import export_model

    shape = None if isinstance(data, TextData) else data.input_shape
    layers, meta = export_model(model, calibration_inputs(data, cfg), groups, alphas, cfg.gamma,
                                cfg.bits, cfg.data_bits, cfg.acc_bits, input_shape=shape)
    meta.update({"model": cfg.model, "dataset": cfg.dataset,
                 "task": "lm" if isinstance(data, TextData) else "classify",
                 "combined_layers": sorted(groups)})
    path = write_manifest(layers, out / PACKED, meta)
    return layers, meta, path


def build_for(cfg: TrainConfig, data) -> torch.nn.Module:
    shape = None if isinstance(data, TextData) else data.input_shape
    return build_model(cfg.model, shape, data.classes, hidden=cfg.hidden)


def save_checkpoint(path: Path, model, data, cfg: TrainConfig, result=None) -> None:
    from colcomb.core.atomic import write_bytes

    ck = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(cfg),
        "input_shape": None if isinstance(data, TextData) else list(data.input_shape),
        "classes": int(data.classes),
        "vocab": data.vocab if isinstance(data, TextData) else None,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "masks": result.masks.state() if result else {},
        "groups": {k: [[r0, r1, [list(g) for g in gs]] for r0, r1, gs in v]
                   for k, v in result.groups.items()} if result else {},
        "alphas": dict(result.alphas) if result else {},
        "history": result.history if result else [],
    }
    buf = io.BytesIO()
    torch.save(ck, buf)
    write_bytes(path, buf.getvalue())


def load_data(cfg: TrainConfig) -> ImageData | TextData:
    data = load_dataset(cfg.dataset, cfg.data_dir)
    if cfg.model == "charlstm" and not isinstance(data, TextData):
        raise ColcombError(f"the charlstm model needs --dataset text, not {cfg.dataset!r}")
    return data


def run_training(cfg: TrainConfig, out: str | os.PathLike, log: Log = _log_default) -> dict:
    """Train, jointly optimize, export and evaluate; return the report written to DIR/report.json."""
    from colcomb.core.outdir import OutputFolder, check_replaceable

    out = Path(out)
    check_replaceable(out, [cfg.data_dir] if cfg.data_dir else [])
    if not 0.0 < cfg.data_fraction <= 1.0:
        raise ColcombError(f"--data-fraction must lie in (0, 1], got {cfg.data_fraction}")
    for label, lr in (("--lr", cfg.lr), ("--retrain-lr", cfg.retrain_lr)):
        if not (np.isfinite(lr) and lr > 0):
            raise ColcombError(f"{label} must be a positive learning rate, got {lr}")
    # the export's widths, refused now rather than after the whole training
    from colcomb.packer.pack import PackOptions

    PackOptions(bits=cfg.bits, data_bits=cfg.data_bits, acc_bits=cfg.acc_bits).validate()
    # OUT is locked from here (a second `train --out OUT` fails at once) and replaced at the end
    with OutputFolder(out, command="train", inputs=[cfg.data_dir] if cfg.data_dir else []) as stage:
        report = _train_into(cfg, stage.path, log)
        stage.commit()
    log(f"wrote {out / CHECKPOINT}, {out / PACKED} and {out / REPORT}")
    return report


def _train_into(cfg: TrainConfig, out: Path, log: Log) -> dict:
    from colcomb.core.atomic import write_text
    from colcomb.train.evaluate import evaluate_run

    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    data = load_data(cfg)
    model = build_for(cfg, data)
    if not cfg.dense:  # refuse bad combining options before spending time on training
        from colcomb.train.prune import find_targets

        joint_options(cfg).validate(find_targets(model, not cfg.include_first))
    log(f"{cfg.model} on {cfg.dataset}: "
        + (f"{len(data.train)} training characters" if isinstance(data, TextData)
           else f"{len(data.y_train)} training / {len(data.y_test)} test samples"))
    pretrain(model, data, cfg, log)
    result = None
    if not cfg.dense:
        result = optimize(model, data, cfg, log)
    groups = result.groups if result else {}
    alphas = result.alphas if result else {}
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / CHECKPOINT, model, data, cfg, result)
    _, _, path = export(model, data, cfg, groups, alphas, out)
    log(f"trained, exported and packed {Path(path).parent.name}/ ({time.perf_counter() - t0:.1f} s)")
    report = evaluate_run(out, data=data, log=log)
    write_text(out / REPORT, json.dumps(report, indent=1) + "\n")
    return report
