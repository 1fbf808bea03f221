"""`colcomb train`: dense pretraining, joint optimization, export; the run's folder layout.

A run folder ``DIR`` holds:

- ``DIR/model.pt``: the checkpoint (a dict loadable with ``torch.load(weights_only=True)``):
  ``format``, ``version``, ``config`` (the :class:`TrainConfig`), ``input_shape``, ``classes``,
  ``vocab`` (text), ``state_dict``, ``masks``, ``groups`` (per layer: [row_start, row_stop,
  groups] per block), ``alphas``, ``history``;
- ``DIR/packed/``: the manifest (``manifest.json`` + arrays + ROM images), whose ``meta`` holds
  the graph the integer evaluation runs (see :mod:`colcomb.train.export`);
- ``DIR/report.json``: accuracies and column counts measured at the end of training.

The checkpoint is rewritten (atomically: a temporary file renamed into place) after every epoch
and after every round's combining, with ``progress`` (``stage`` 0 = dense pretraining, k = round
k; ``epochs`` done in that stage; ``finished``) and the Adam state of the stage in progress.
``colcomb train --resume --out DIR`` reloads it and continues exactly where it stopped: the run's
own config is used, the shuffles of finished epochs are replayed, so the resumed run ends with the
same weights as one that was never interrupted.

Each step is a named function so a failing run can be bisected: :func:`pretrain`,
:func:`optimize`, :func:`export`, then :func:`colcomb.train.evaluate.evaluate_run`. Under torchrun
(see :mod:`colcomb.train.distributed`) every rank trains; only rank 0 writes.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
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
    time_limit: float = 60.0  # seconds per matrix and round for method "exact"
    bits: int = 8
    data_bits: int = 8
    acc_bits: int = 32
    lr: float = 1e-3
    retrain_lr: float = 5e-4
    batch_size: int = 64
    seed: int = 0
    hidden: list[int] | None = None
    width: int | None = None  # vgg16 / resnet20 first-stage channels (default 64 / 16)
    dense: bool = False  # skip the joint optimization (the dense baseline)
    calib_samples: int = 1000
    integer_samples: int | None = None  # integer (golden model) accuracy on the first N test samples; None: all
    data_dir: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def _quiet(_msg: str) -> None:
    pass


@dataclass
class RunState:
    """Where a run stands: the checkpoint's ``progress`` and the joint optimization so far."""

    stage: int = 0  # 0: dense pretraining; k: round k (combined, retraining)
    epochs: int = 0  # epochs done in the stage
    finished: bool = False
    masks: dict = field(default_factory=dict)  # target name -> bool tensor (CPU)
    groups: dict = field(default_factory=dict)
    alphas: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    optimizer: dict | None = None  # Adam state of the stage in progress

    @classmethod
    def from_checkpoint(cls, ck: dict) -> RunState:
        prog = ck.get("progress") or {}
        groups = {k: [(int(r0), int(r1), [list(map(int, g)) for g in gs]) for r0, r1, gs in v]
                  for k, v in (ck.get("groups") or {}).items()}
        return cls(stage=int(prog.get("stage", 0)), epochs=int(prog.get("epochs", 0)),
                   finished=bool(prog.get("finished", True)), masks=dict(ck.get("masks") or {}),
                   groups=groups, alphas=dict(ck.get("alphas") or {}), history=list(ck.get("history") or []),
                   optimizer=ck.get("optimizer"))

    def at(self, stage: int) -> int:
        """Epochs already done in ``stage`` (0 for a later stage, all of them for an earlier one)."""
        if self.finished or stage < self.stage:
            return 1 << 30
        return self.epochs if stage == self.stage else 0


def pretrain(model, data, cfg: TrainConfig, log: Log, runtime=None, state: RunState | None = None,
             save: Callable[[RunState], None] | None = None) -> None:
    """Dense training on the whole training set (resuming from ``state``, checkpointing by ``save``)."""
    from colcomb.train.joint import accuracy, bits_per_char, fit_classifier, fit_lm

    state = state or RunState()
    done = state.at(0)
    if cfg.epochs < 1 or done >= cfg.epochs:
        return
    log(f"dense training: {cfg.epochs} epoch(s)" + (f", resuming after epoch {done}" if done else ""))
    on_epoch = _epoch_saver(state, 0, save)
    opt_state = state.optimizer if done else None
    if isinstance(data, TextData):
        test = data.encode(data.test)
        fit_lm(model, data.encode(data.train), cfg.epochs, lr=cfg.lr * 3, seed=cfg.seed, log=log,
               evaluate=lambda: bits_per_char(model, test), runtime=runtime, start_epoch=done + 1,
               optimizer_state=opt_state, on_epoch=on_epoch)
    else:
        fit_classifier(model, data.x_train, data.y_train, cfg.epochs, cfg.lr, cfg.batch_size,
                       seed=cfg.seed, log=log, evaluate=lambda: accuracy(model, data.x_test, data.y_test),
                       runtime=runtime, augment=data.augment, start_epoch=done + 1,
                       optimizer_state=opt_state, on_epoch=on_epoch)


def _epoch_saver(state: RunState, stage: int, save):
    def on_epoch(epoch: int, opt) -> None:
        state.stage, state.epochs, state.optimizer = stage, epoch, opt.state_dict()
        if save is not None:
            save(state)
    return on_epoch


def joint_options(cfg: TrainConfig):
    """The :class:`~colcomb.train.joint.JointOptions` a config asks for."""
    from colcomb.train.joint import JointOptions, Schedule

    return JointOptions(
        alpha=cfg.alpha, gamma=cfg.gamma, layer_alpha=dict(cfg.layer_alpha),
        exclude_first=not cfg.include_first, per_feature_map=cfg.per_feature_map,
        row_block=cfg.row_block, section=cfg.section, method=cfg.method, time_limit=cfg.time_limit,
        schedule=Schedule(rounds=cfg.rounds, sparsity=cfg.sparsity, ramp=cfg.ramp,
                          retrain_epochs=cfg.retrain_epochs, final_epochs=cfg.final_epochs,
                          lr=cfg.retrain_lr),
    )


def optimize(model, data, cfg: TrainConfig, log: Log, runtime=None, state: RunState | None = None,
             save: Callable[[RunState], None] | None = None):
    """Joint optimization with retraining on a class-balanced ``data_fraction`` of the train set.

    Rank 0 combines each round and broadcasts masks and groups; ``state`` resumes, ``save``
    checkpoints after each round's combining and each epoch."""
    from colcomb.train.distributed import Runtime
    from colcomb.train.joint import (
        JointResult,
        accuracy,
        bits_per_char,
        combine_round,
        fit_classifier,
        fit_lm,
        round_message,
    )
    from colcomb.train.prune import Masks, find_targets

    rt = runtime or Runtime(torch.device("cpu"))
    state = state or RunState()
    opts = joint_options(cfg)
    targets = find_targets(model, opts.exclude_first)
    opts.validate(targets)
    for note in opts.kernel_row_notes(targets, first=not opts.exclude_first):
        log(f"note: {note}")
    masks = Masks(targets)
    for name, m in state.masks.items():
        masks.set(name, m)
    masks.apply()
    alphas = {t.name: opts.pack_options(t.name).alpha for t in targets}
    state.alphas = alphas
    if isinstance(data, TextData):
        ids = data.encode(data.train)
        ids = ids[: max(2, int(len(ids) * cfg.data_fraction))]
        test = data.encode(data.test)

        def retrain(epochs, start, opt_state, on_epoch, label):
            fit_lm(model, ids, epochs, lr=cfg.retrain_lr * 3, masks=masks, seed=cfg.seed, log=log,
                   runtime=rt, start_epoch=start, optimizer_state=opt_state, on_epoch=on_epoch, label=label)
            score = bits_per_char(model, test)
            log(f"  test bits/char {score:.4f}")
            return score
    else:
        idx = balanced_subset(data.y_train, cfg.data_fraction, cfg.seed)
        x, y = data.x_train[idx], data.y_train[idx]
        if cfg.data_fraction < 1.0:
            log(f"retraining on {len(idx)} of {len(data.y_train)} training samples (class-balanced)")

        def retrain(epochs, start, opt_state, on_epoch, label):
            fit_classifier(model, x, y, epochs, cfg.retrain_lr, cfg.batch_size, masks=masks, seed=cfg.seed,
                           log=log, runtime=rt, augment=data.augment, start_epoch=start,
                           optimizer_state=opt_state, on_epoch=on_epoch, label=label)
            score = accuracy(model, data.x_test, data.y_test) if rt.main else None
            if score is not None:
                log(f"  test accuracy {score:.4f}")
            return score

    sched = opts.schedule
    for k in range(1, sched.rounds + 1):
        done = state.at(k)
        if state.stage < k and not state.finished:  # round k not combined yet
            if rt.main:
                groups, info = combine_round(targets, masks, opts, k)
                shared = (masks.state(), groups, info)
            else:
                shared = None
            mask_state, groups, info = rt.broadcast(shared)
            for name, m in mask_state.items():
                masks.set(name, m)
            masks.apply()
            state.groups.update(groups)
            state.masks = masks.state()
            state.stage, state.epochs, state.optimizer = k, 0, None
            state.history.append(info)
            if save is not None:
                save(state)
            log(round_message(info, sched.rounds))
            done = 0
        epochs = sched.round_epochs(k)
        if done < epochs or "score" not in state.history[k - 1]:
            if done:
                log(f"round {k}/{sched.rounds}: resuming after epoch {done}")
            score = retrain(epochs, done + 1, state.optimizer if done else None,
                            _epoch_saver(state, k, save), f"round {k} ")
            state.history[k - 1]["score"] = score
    return JointResult(targets, masks, dict(state.groups), alphas, state.history)


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
    if not isinstance(data, TextData) and data.normalization is not None:
        meta["normalization"] = {"mean": data.normalization[0], "std": data.normalization[1]}
    path = write_manifest(layers, out / PACKED, meta)
    return layers, meta, path


def build_for(cfg: TrainConfig, data) -> torch.nn.Module:
    shape = None if isinstance(data, TextData) else data.input_shape
    return build_model(cfg.model, shape, data.classes, hidden=cfg.hidden, width=cfg.width)


def save_checkpoint(path: Path, model, data, cfg: TrainConfig, result=None, state: RunState | None = None) -> None:
    """Write the checkpoint atomically; ``result`` (a JointResult) or ``state`` (a run in progress)
    gives masks, groups and history."""
    from colcomb.core.atomic import write_bytes

    if state is None:
        state = RunState(finished=True)
        if result is not None:
            state.masks, state.groups = result.masks.state(), result.groups
            state.alphas, state.history = dict(result.alphas), result.history
    ck = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(cfg),
        "input_shape": None if isinstance(data, TextData) else list(data.input_shape),
        "classes": int(data.classes),
        "vocab": data.vocab if isinstance(data, TextData) else None,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "masks": {k: v.detach().cpu().clone() for k, v in state.masks.items()},
        "groups": {k: [[r0, r1, [list(g) for g in gs]] for r0, r1, gs in v] for k, v in state.groups.items()},
        "alphas": dict(state.alphas),
        "history": list(state.history),
        "progress": {"stage": state.stage, "epochs": state.epochs, "finished": state.finished},
        "optimizer": None if state.finished else state.optimizer,
    }
    buf = io.BytesIO()
    torch.save(ck, buf)
    write_bytes(path, buf.getvalue())


def load_data(cfg: TrainConfig) -> ImageData | TextData:
    data = load_dataset(cfg.dataset, cfg.data_dir)
    if cfg.model == "charlstm" and not isinstance(data, TextData):
        raise ColcombError(f"the charlstm model needs --dataset text, not {cfg.dataset!r}")
    return data


def resume_config(out: Path, data_dir: str | None = None) -> tuple[TrainConfig, dict]:
    """The config and checkpoint of the run in ``out`` (``data_dir`` replaces the stored one)."""
    from colcomb.train.evaluate import load_checkpoint

    if not (out / CHECKPOINT).is_file():
        raise ColcombError(f"{out}: no {CHECKPOINT} to resume; start the run without --resume")
    ck = load_checkpoint(out / CHECKPOINT)
    where = f"{out / CHECKPOINT}"
    if not isinstance(ck, dict) or not isinstance(ck.get("config"), dict):
        raise ColcombError(f"{where} holds no run config; start the run again without --resume")
    for f in fields(TrainConfig):
        if f.name in ck["config"] and not _fits(ck["config"][f.name], f):
            raise ColcombError(f"{where}: its config field {f.name!r} is {ck['config'][f.name]!r:.60}, not of the "
                               f"type a run writes (damaged or edited?); start the run again without --resume")
    cfg = TrainConfig.from_dict(ck["config"])
    try:
        RunState.from_checkpoint(ck)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ColcombError(f"{where}: its progress, groups or masks are malformed ({type(exc).__name__}: "
                           f"{str(exc)[:120]}); start the run again without --resume") from None
    if data_dir is not None:
        cfg = replace(cfg, data_dir=str(data_dir))
    return cfg, ck


def _fits(value, f) -> bool:
    """Whether a stored config value has the type of the field's default (None where it may be)."""
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    if value is None:
        return default is None or "None" in str(f.type)
    if default is None:
        return True  # optional fields of several kinds (hidden widths, a data folder)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def run_training(cfg: TrainConfig | None, out: str | os.PathLike, log: Log = _log_default, *,
                 resume: bool = False, device: str = "auto") -> dict | None:
    """Train, jointly optimize, export and evaluate; return the report written to DIR/report.json
    (rank 0; other ranks of a torchrun job return None). ``resume`` continues the run in ``out``
    from its checkpoint with the run's own config (``cfg`` may then be None, or give ``data_dir``).

    A run writes into ``out`` as it goes (the checkpoint after every epoch, so ``--resume`` finds
    it), through :class:`colcomb.core.outdir.RunFolder`: ``out`` is locked for the whole run, and
    a new run replaces only a folder colcomb wrote."""
    from colcomb.core.outdir import RunFolder
    from colcomb.train.distributed import setup

    out = Path(out)
    ck = None
    if resume:
        cfg, ck = resume_config(out, cfg.data_dir if cfg is not None else None)
    elif cfg is None:
        raise ColcombError("no training configuration given")
    _check_options(cfg)
    rt = setup(device)
    try:
        data, model = _prepare(cfg)  # everything that can refuse the run, before OUT is touched
        if not rt.main:  # rank 0 owns the folder; the others only train
            return _train(cfg, out, _quiet, rt, ck, data, model, None)
        inputs = [cfg.data_dir] if cfg.data_dir else []
        with RunFolder(out, command="train", inputs=inputs, resume=resume) as folder:
            if resume:  # the checkpoint as it is now that OUT is locked
                ck = resume_config(out, cfg.data_dir)[1]
            report = _train(cfg, out, log, rt, ck, data, model, folder)
        log(f"wrote {out / CHECKPOINT}, {out / PACKED} and {out / REPORT}")
        return report
    finally:
        rt.close()


def _prepare(cfg: TrainConfig):
    """The data and the model, with the combining options checked against the model."""
    torch.manual_seed(cfg.seed)
    data = load_data(cfg)
    model = build_for(cfg, data)
    if not cfg.dense:  # refuse bad combining options before spending time on training
        from colcomb.train.prune import find_targets

        targets = find_targets(model, not cfg.include_first)
        joint_options(cfg).validate(targets)
        first = targets[0] if targets else None
        if cfg.include_first and not cfg.per_feature_map and first is not None and first.is_conv \
                and first.kernel_size > 1:
            raise ColcombError(
                f"--include-first without --per-feature-map would combine {first.name}'s columns across kernel "
                f"rows, which the chip cannot read (generate, simulate and synthesize would refuse the network "
                f"after training); add --per-feature-map ({first.name} is then combined per kernel row, which "
                f"the chip reads as row runs), or leave out --include-first")
    return data, model


def _check_options(cfg: TrainConfig) -> None:
    """Refuse bad options before any folder is touched or any epoch runs."""
    if not 0.0 < cfg.data_fraction <= 1.0:
        raise ColcombError(f"--data-fraction must lie in (0, 1], got {cfg.data_fraction}")
    for label, lr in (("--lr", cfg.lr), ("--retrain-lr", cfg.retrain_lr)):
        if not (np.isfinite(lr) and lr > 0):
            raise ColcombError(f"{label} must be a positive learning rate, got {lr}")
    # the export's widths, refused now rather than after the whole training
    from colcomb.packer.pack import PackOptions

    PackOptions(bits=cfg.bits, data_bits=cfg.data_bits, acc_bits=cfg.acc_bits).validate()


def _train(cfg: TrainConfig, out: Path, log: Log, rt, ck: dict | None, data, model, folder) -> dict | None:
    """The run itself; ``folder`` (a :class:`colcomb.core.outdir.RunFolder`, None on the ranks
    that write nothing) is told each file before it is written."""
    from colcomb.core.atomic import write_text
    from colcomb.train.evaluate import evaluate_run

    def claim(name: str, whole_folder: bool = False) -> None:
        if folder is not None:
            folder.record(name, folder=whole_folder)

    t0 = time.perf_counter()
    state = RunState()
    if ck is not None:
        state = RunState.from_checkpoint(ck)
        try:
            model.load_state_dict(ck["state_dict"])
        except (RuntimeError, KeyError, TypeError) as exc:
            raise ColcombError(f"{out / CHECKPOINT} does not fit the {cfg.model} model ({str(exc)[:200]})") from None
    model.to(rt.device)
    where = f"{rt.device.type}" + (f", {rt.world} processes" if rt.distributed else "")
    log(f"{cfg.model} on {cfg.dataset} ({where}): "
        + (f"{len(data.train)} training characters" if isinstance(data, TextData)
           else f"{len(data.y_train)} training / {len(data.y_test)} test samples"))
    if ck is not None:
        log("resuming: " + ("training finished; exporting again" if state.finished
                            else f"stage {state.stage} ({'dense' if state.stage == 0 else 'round'}), "
                                 f"{state.epochs} epoch(s) done"))

    def save(st: RunState) -> None:
        if rt.main:
            claim(CHECKPOINT)
            save_checkpoint(out / CHECKPOINT, model, data, cfg, state=st)

    pretrain(model, data, cfg, log, rt, state, save)
    groups: dict = {}
    alphas: dict = {}
    if not cfg.dense:
        result = optimize(model, data, cfg, log, rt, state, save)
        groups, alphas = result.groups, result.alphas
    state.finished, state.optimizer = True, None
    rt.barrier()
    if not rt.main:
        return None
    model.to("cpu")
    claim(CHECKPOINT)
    save_checkpoint(out / CHECKPOINT, model, data, cfg, state=state)
    claim(PACKED, whole_folder=True)
    _, _, path = export(model, data, cfg, groups, alphas, out)
    log(f"trained, exported and packed {Path(path).parent.name}/ ({time.perf_counter() - t0:.1f} s)")
    report = evaluate_run(out, data=data, log=log)
    claim(REPORT)
    write_text(out / REPORT, json.dumps(report, indent=1) + "\n")
    return report
