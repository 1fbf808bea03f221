"""`colcomb sweep`: accuracy against the number of weights, conflict-free vs conflict-permitted.

One dense model is trained once; every point copies it and runs the joint optimization with one
(alpha, gamma, sparsity) setting, then exports and measures float and integer (golden model)
accuracy. gamma = 0 points are conflict-free combining, gamma > 0 conflict-permitted. Results go
to ``OUT/sweep.csv`` and ``OUT/sweep.png`` (integer accuracy against nonzero weights, one series
per mode; matplotlib's Agg backend, no display needed).
"""

from __future__ import annotations

import copy
import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.train.datasets import TextData

Log = Callable[[str], None]
FIELDS = ("mode", "alpha", "gamma", "sparsity", "weights", "columns", "packed_columns",
          "float_accuracy", "integer_accuracy")


def run_sweep(
    base,
    alphas: Sequence[int],
    gammas: Sequence[float],
    sparsities: Sequence[float],
    out: str | os.PathLike,
    log: Log = print,
) -> list[dict]:
    """Train ``base`` (a TrainConfig) densely once, then one joint optimization per point."""
    import torch

    from colcomb.core.atomic import write_bytes, write_text
    from colcomb.core.outdir import OutputFolder, check_replaceable
    from colcomb.train.export import export_model
    from colcomb.train.integer import quantize_input, run_graph
    from colcomb.train.joint import accuracy
    from colcomb.train.run import build_for, calibration_inputs, load_data, optimize, pretrain

    if not alphas or not gammas or not sparsities:
        raise ColcombError("a sweep needs at least one alpha, one gamma and one sparsity")
    out = Path(out)
    check_replaceable(out, [base.data_dir] if base.data_dir else [])
    # OUT is locked from here (a second sweep into it fails at once) and replaced at the end
    with OutputFolder(out, command="sweep", inputs=[base.data_dir] if base.data_dir else []) as stage:
        torch.manual_seed(base.seed)
        data = load_data(base)
        if isinstance(data, TextData):
            raise ColcombError("the sweep measures classification accuracy; pick an image dataset")
        dense = build_for(base, data)
        pretrain(dense, data, base, log)
        dense_acc = accuracy(dense, data.x_test, data.y_test)
        log(f"dense float accuracy: {dense_acc:.4f}")
        calib = calibration_inputs(data, base)
        rows: list[dict] = []
        points = [(a, g, s) for a in alphas for g in gammas for s in sparsities]
        for k, (alpha, gamma, sparsity) in enumerate(points, 1):
            cfg = replace(base, alpha=int(alpha), gamma=float(gamma), sparsity=float(sparsity))
            mode = "conflict-free" if gamma == 0 else "conflict-permitted"
            log(f"[{k}/{len(points)}] {mode}: alpha {alpha}, gamma {gamma}, sparsity {sparsity}")
            model = copy.deepcopy(dense)
            result = optimize(model, data, cfg, lambda _msg: None)
            layers, meta = export_model(model, calib, result.groups, result.alphas, cfg.gamma,
                                        cfg.bits, cfg.data_bits, cfg.acc_bits)
            x = quantize_input(data.x_test, meta["input_scale"], cfg.data_bits)
            int_acc = float(np.mean(run_graph(layers, meta["graph"], x).argmax(1) == data.y_test))
            comb = [layer for layer in layers if layer.name in result.groups]
            row = {
                "mode": mode, "alpha": int(alpha), "gamma": float(gamma), "sparsity": float(sparsity),
                "weights": int(sum(layer.nonzero_weights() for layer in layers)),
                "columns": int(sum(layer.cols for layer in comb)),
                "packed_columns": int(sum(layer.packed_columns for layer in comb)),
                "float_accuracy": accuracy(model, data.x_test, data.y_test),
                "integer_accuracy": int_acc,
            }
            log(f"  weights {row['weights']}, packed columns {row['packed_columns']}/{row['columns']}, "
                f"float accuracy: {row['float_accuracy']:.4f}, integer accuracy: {int_acc:.4f}")
            rows.append(row)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        write_text(stage.path / "sweep.csv", buf.getvalue())
        write_bytes(stage.path / "sweep.png", plot(rows, dense_acc, f"{base.model} on {base.dataset}"))
        stage.commit()
    log(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")
    return rows


def plot(rows: list[dict], dense_accuracy: float | None = None, title: str = "") -> bytes:
    """PNG bytes: integer accuracy against nonzero weights, one series per combining mode."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for mode, marker in (("conflict-free", "o"), ("conflict-permitted", "s")):
        pts = sorted((r["weights"], r["integer_accuracy"], r) for r in rows if r["mode"] == mode)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=mode)
        for w, acc, r in pts:
            ax.annotate(f"a{r['alpha']} g{r['gamma']:g}", (w, acc), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    if dense_accuracy is not None:
        ax.axhline(dense_accuracy, color="grey", linestyle="--", label="dense (float)")
    ax.set_xlabel("nonzero weights")
    ax.set_ylabel("integer accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
