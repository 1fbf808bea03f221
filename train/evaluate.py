"""`colcomb evaluate DIR`: float and integer (golden model) quality of a trained run.

The float figure runs the trained torch model; the integer figure runs the packed manifest
through :mod:`colcomb.train.integer`, i.e. every layer through the golden model. Both use the
dataset's held-out test split. Classifiers report accuracy, the character LSTM bits per character.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from colcomb.core.errors import ColcombError
from colcomb.train.datasets import TextData

Log = Callable[[str], None]


def load_checkpoint(path: Path) -> dict:
    from colcomb.train.run import FORMAT, VERSION

    if not path.is_file():
        raise ColcombError(f"{path}: no checkpoint; run `colcomb train --out {path.parent}` first")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ColcombError(
            f"{path}: not a readable colcomb checkpoint ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ColcombError(f"{path}: not a colcomb checkpoint (written by `colcomb train`)")
    if ck.get("version") != VERSION:
        raise ColcombError(f"{path}: checkpoint version {ck.get('version')!r}, this colcomb reads {VERSION}")
    return ck


def load_run(run_dir: str | os.PathLike, data=None, data_dir: str | None = None):
    """(config, data, model with the trained weights, manifest) of a `colcomb train` folder."""
    from colcomb.packer.manifest import load_manifest
    from colcomb.train.export import fold_batchnorm, matrices
    from colcomb.train.run import CHECKPOINT, PACKED, TrainConfig, build_for, load_data

    root = Path(run_dir)
    if not root.is_dir():
        raise ColcombError(f"{root}: no such folder; name the --out folder of `colcomb train`")
    ck = load_checkpoint(root / CHECKPOINT)
    cfg = TrainConfig.from_dict(ck.get("config") or {})
    if data_dir is not None:
        cfg.data_dir = str(data_dir)
    if data is None:
        data = load_data(cfg)
    want_shape = None if isinstance(data, TextData) else list(data.input_shape)
    if ck.get("input_shape") != want_shape or ck.get("classes") != data.classes:
        raise ColcombError(
            f"{root / CHECKPOINT} was trained on inputs {ck.get('input_shape')} with "
            f"{ck.get('classes')} classes; dataset {cfg.dataset!r} has {want_shape} and {data.classes}"
        )
    model = build_for(cfg, data)
    try:
        model.load_state_dict(ck["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        raise ColcombError(
            f"{root / CHECKPOINT} does not fit the {cfg.model} model: "
            f"{' '.join(line.strip() for line in first[:3])[:400]}"
        ) from None
    manifest = load_manifest(root / PACKED)
    mats = matrices(fold_batchnorm(model))
    for layer in manifest.layers:
        w = mats.get(layer.name)
        if w is None or tuple(w[0].shape) != tuple(layer.shape):
            raise ColcombError(
                f"{root / PACKED}: layer {layer.name!r} of shape {list(layer.shape)} does not match "
                f"the checkpoint's model; re-run `colcomb train`"
            )
    return cfg, data, model, manifest


def layer_rows(manifest) -> list[dict]:
    """Per layer: shape, dense columns, packed columns, nonzero weights, utilization."""
    combined = set(manifest.meta.get("combined_layers", []))
    rows = []
    for layer in manifest.layers:
        rows.append({
            "layer": layer.name,
            "shape": f"{layer.rows}x{layer.cols}",
            "combined": layer.name in combined,
            "alpha": layer.alpha,
            "columns": layer.cols,
            "packed_columns": layer.packed_columns,
            "weights": layer.nonzero_weights(),
            "utilization_before": float(layer.stats.get("utilization_before", float("nan"))),
            "utilization_after": layer.utilization(),
        })
    return rows


def integer_score(manifest, data, samples: int | None = None) -> float:
    """Integer accuracy (classifier) or bits per character (LSTM) on the test split (its first
    ``samples`` images when given: the golden model runs on the CPU, slowly for CIFAR networks)."""
    from colcomb.train.integer import lstm_bits_per_char, quantize_input, run_graph

    meta = manifest.meta
    if "graph" not in meta:
        raise ColcombError("the manifest has no graph in its meta: it was not written by `colcomb train`")
    bits = int(meta.get("data_bits", 8))
    if isinstance(data, TextData):
        return lstm_bits_per_char(manifest.layers, meta["graph"], data.encode(data.test), bits)
    n = len(data.y_test) if samples is None else min(int(samples), len(data.y_test))
    x = quantize_input(data.x_test[:n], float(meta["input_scale"]), bits)
    out = run_graph(manifest.layers, meta["graph"], x)
    return float(np.mean(out.argmax(axis=1) == data.y_test[:n]))


def evaluate_run(run_dir, data=None, data_dir: str | None = None, log: Log = print,
                 integer_samples: int | None = None) -> dict:
    """Measure and print float and integer quality and the packing of every layer."""
    from colcomb.core.table import table
    from colcomb.train.joint import accuracy, bits_per_char

    cfg, data, model, manifest = load_run(run_dir, data, data_dir)
    if isinstance(data, TextData):
        metric = "bits/char"
        flt = bits_per_char(model, data.encode(data.test))
    else:
        metric = "accuracy"
        flt = accuracy(model, data.x_test, data.y_test)
    if integer_samples is None:
        integer_samples = cfg.integer_samples
    if integer_samples is not None and integer_samples < 1:
        raise ColcombError(f"--integer-samples must be at least 1, got {integer_samples}")
    integer = integer_score(manifest, data, integer_samples)
    n_int = None if isinstance(data, TextData) else min(integer_samples or len(data.y_test), len(data.y_test))
    rows = layer_rows(manifest)
    comb = [r for r in rows if r["combined"]]
    dense_cols = sum(r["columns"] for r in comb)
    packed_cols = sum(r["packed_columns"] for r in comb)
    log(table(["layer", "shape", "combined", "alpha", "columns", "packed", "weights", "util before", "util after"],
              [[r["layer"], r["shape"], "yes" if r["combined"] else "no", r["alpha"], r["columns"],
                r["packed_columns"], r["weights"], r["utilization_before"], r["utilization_after"]]
               for r in rows]))
    if comb:
        log(f"combined layers: {dense_cols} columns -> {packed_cols} packed columns "
            f"({dense_cols / max(packed_cols, 1):.2f}x fewer)")
    log(f"total weights: {sum(r['weights'] for r in rows)}")
    log(f"float {metric}: {flt:.4f}")
    log(f"integer {metric}: {integer:.4f}"
        + (f" (first {n_int} of {len(data.y_test)} test samples)" if n_int is not None and n_int < len(data.y_test)
           else ""))
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "metric": metric,
        "float": flt,
        "integer": integer,
        "layers": rows,
        "combined_columns": dense_cols,
        "combined_packed_columns": packed_cols,
        "weights": sum(r["weights"] for r in rows),
        "test_samples": len(data.test) if isinstance(data, TextData) else len(data.y_test),
        "integer_samples": n_int,
    }
