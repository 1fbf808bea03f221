"""Integer evaluation of an exported network: host steps around the golden model.

Every conv/linear layer runs through :func:`colcomb.packer.golden.run_layer` (the integer-exact
model of the array); the host does only what moves integers around without arithmetic on them:
zero padding and im2col for convs, max-pooling, flattening, channel shifts; and two integer
steps the array has no unit for: the rounded mean of global average pooling and the residual
add, whose integer semantics :mod:`colcomb.train.export` defines. For an LSTM the host
also adds the two gate layers' integer outputs and applies sigmoid/tanh in floating point (the
array has no such units), quantizing h back to integers for the next step.

The graph and scales come from the manifest's ``meta`` (see :mod:`colcomb.train.export`).
"""

from __future__ import annotations

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import run_layer
from colcomb.packer.graph import (
    global_avgpool,
    im2col,
    layer_named,
    layers_by_name,
    maxpool,
    residual_add,
    run_graph,
    shift,
)

__all__ = ["global_avgpool", "im2col", "lstm_bits_per_char", "maxpool", "quantize_input", "residual_add",
           "run_graph", "run_lstm", "shift"]


def quantize_input(x: np.ndarray, scale: float, data_bits: int) -> np.ndarray:
    """Integers nearest ``x / scale``, saturated to the symmetric data range."""
    q = (1 << (data_bits - 1)) - 1
    return np.clip(np.rint(np.asarray(x, np.float64) / scale), -q, q).astype(np.int64)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def run_lstm(layers, graph: list[dict], ids: np.ndarray, data_bits: int = 8) -> tuple[np.ndarray, float]:
    """Integer logits (steps, vocab) of the character LSTM reading ``ids`` (one sequence) and
    their scale. Gate matrices and the output layer run on the golden model."""
    by_name = layers_by_name(layers)
    if len(graph) != 2 or graph[0]["op"] != "lstm" or graph[1]["op"] != "linear":
        raise ColcombError("an LSTM graph must be [lstm, linear]")
    step, head = graph
    ih, hh = layer_named(by_name, step["ih"]), layer_named(by_name, step["hh"])
    fc = layer_named(by_name, head["layer"])
    q = (1 << (data_bits - 1)) - 1
    s_g = float(step["gate_scale"])
    hidden = int(step["hidden"])
    vocab = int(step["vocab"])
    h_int = np.zeros((1, hidden), np.int64)
    c = np.zeros((1, hidden))
    hs = []
    for t in np.asarray(ids, np.int64):
        x = np.zeros((1, vocab), np.int64)
        x[0, t] = q
        g = (run_layer(ih, x) + run_layer(hh, h_int)) * s_g
        i, f, gg, o = np.split(g, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
        h_int = quantize_input(_sigmoid(o) * np.tanh(c), 1.0 / q, data_bits)
        hs.append(h_int[0])
    logits = run_layer(fc, np.array(hs))
    return logits, float(head["out_scale"])


def lstm_bits_per_char(layers, graph: list[dict], ids: np.ndarray, data_bits: int = 8) -> float:
    """Bits per character of the integer LSTM on ``ids`` (predicting ids[1:] from ids[:-1])."""
    ids = np.asarray(ids, np.int64)
    logits, scale = run_lstm(layers, graph, ids[:-1], data_bits)
    z = logits * scale
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].mean() / np.log(2))
