"""Random packed layers for the hardware tests, built directly from numpy (no training, no
quantizer): a random sparse integer matrix, grouped and combined per row block."""

from __future__ import annotations

import numpy as np

from colcomb.packer.combine import combine, group_columns
from colcomb.packer.feature_map import combine_feature_maps
from colcomb.packer.packed import (
    PackedBlock,
    PackedLayer,
    Requant,
    activation_clamp,
    signed_range,
)


def random_layer(
    rng: np.random.Generator,
    rows: int,
    cols: int,
    alpha: int,
    *,
    gamma: float = 0.0,
    density: float = 0.3,
    name: str = "fc",
    bits: int = 8,
    data_bits: int = 8,
    acc_bits: int = 32,
    block_rows: int | None = None,
    activation: str = "none",
    shift: int | np.ndarray | None = None,
    weights: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    multiplier: np.ndarray | None = None,
    kernel: int = 1,
    section: int | None = -1,
    row_width: int | None = None,
    groups: list[list[int]] | None = None,
) -> PackedLayer:
    """A valid column-combined layer; output scale chosen so that most outputs stay unclamped
    unless ``shift``/``multiplier`` say otherwise. ``shift``: one for every row or one per row
    (default: random per row). ``kernel`` > 1: a conv filter matrix combined per feature map,
    channel groups inside aligned sections of ``section`` channels (default ``alpha``; None: any
    channels). ``row_width``: combine per kernel row instead (columns in sections of that many);
    ``groups``: these groups (one block)."""
    lo, hi = signed_range(bits)
    if weights is None:
        w = rng.integers(lo, hi + 1, (rows, cols)) * (rng.random((rows, cols)) < density)
    else:
        w = np.asarray(weights, np.int64)
    blocks = []
    step = block_rows or rows
    for r0 in range(0, rows, step):
        sub = w[r0 : r0 + step]
        if groups is not None:
            chosen = groups
        elif row_width:
            chosen = [[c0 + c for c in g] for c0 in range(0, cols, row_width)
                      for g in group_columns(sub[:, c0: c0 + row_width].astype(np.float64), alpha, gamma)]
        elif kernel > 1:
            span = alpha if section == -1 else section
            chosen = combine_feature_maps(sub.astype(np.float64), kernel, alpha, gamma, section=span)[1][0][2]
        else:
            chosen = group_columns(sub.astype(np.float64), alpha, gamma)
        packed, selects = combine(sub, chosen)
        blocks.append(
            PackedBlock(
                r0,
                min(rows, r0 + step),
                tuple(tuple(g) for g in chosen),
                packed.astype(np.int64),
                selects,
                np.ones(sub.shape[0]),
            )
        )
    d_hi = 1 << (data_bits - 1)
    typical = max(1.0, float(np.sqrt(max(1, np.count_nonzero(w) / rows))) * (hi / 2) * d_hi / 2)
    if shift is None:  # one per row, up to 12 apart (as per-row scales give), outputs in range
        top = max(0, int(np.log2((1 << 15) * typical / (d_hi / 3))))
        shift = rng.integers(max(0, top - 12), top + 1, rows)
    shift = np.broadcast_to(np.asarray(shift, np.int64), (rows,)).copy()
    if multiplier is None:
        target = d_hi / 3 * 2.0 ** shift / typical
        multiplier = np.clip(
            np.round(target * rng.uniform(0.5, 2.0, rows)), 0, (1 << 16) - 1
        ).astype(np.int64)
    if bias is None:
        bias = rng.integers(-int(typical), int(typical) + 1, rows)
    six = min(d_hi - 1, 6 * 8)
    requant = Requant(
        bias=np.asarray(bias, np.int64),
        multiplier=np.asarray(multiplier, np.int64),
        shift=shift,
        activation=activation,
        clamp=activation_clamp(activation, data_bits, six if activation == "relu6" else None),
    )
    layer = PackedLayer(
        name=name,
        shape=(rows, cols),
        alpha=alpha,
        gamma=gamma,
        bits=bits,
        blocks=tuple(blocks),
        requant=requant,
        data_bits=data_bits,
        acc_bits=acc_bits,
    )
    layer.validate()
    return layer


def inputs(rng: np.random.Generator, n: int, cols: int, data_bits: int = 8) -> np.ndarray:
    """Random inputs over the full data range, with the extremes in the first vectors."""
    lo, hi = signed_range(data_bits)
    x = rng.integers(lo, hi + 1, (n, cols))
    if n >= 1:
        x[0] = lo
    if n >= 2:
        x[1] = hi
    if n >= 3:
        x[2] = np.where(np.arange(cols) % 2, lo, hi)
    return x


def random_cnn(rng: np.random.Generator, *, alpha: int = 4, size: int = 6, channels: tuple[int, int] = (3, 5),
               classes: int = 4, data_bits: int = 8, density: float = 0.5, section: int | None = -1,
               kernel_rows: bool = False):
    """A small random image network: conv 3x3 (pad 1) - ReLU - max-pool 2 - conv 3x3 (pad 1) -
    ReLU - flatten - linear - ReLU - linear, on 1 x ``size`` x ``size`` images, conv layers
    combined per feature map (``kernel_rows``: the one-channel conv1 per kernel row, gamma 0.5).
    Returns (layers, graph, input shape)."""
    c1, c2 = channels
    pooled = size // 2
    conv1 = random_layer(rng, c1, 9, alpha, density=density, name="conv1", kernel=9, activation="relu",
                         data_bits=data_bits, gamma=0.5 if kernel_rows else 0.0, row_width=3 if kernel_rows else None)
    conv2 = random_layer(rng, c2, c1 * 9, alpha, gamma=0.25, density=density, name="conv2", kernel=9,
                         activation="relu", data_bits=data_bits, section=section)
    fc1 = random_layer(rng, 7, c2 * pooled * pooled, alpha, gamma=0.25, density=density, name="fc1",
                       activation="relu", data_bits=data_bits)
    fc2 = random_layer(rng, classes, 7, alpha, density=density, name="fc2", data_bits=data_bits)
    conv = {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1]}
    graph = [{"op": "conv", "layer": "conv1", **conv}, {"op": "maxpool", "kernel": [2, 2], "stride": [2, 2],
                                                       "padding": [0, 0]},
             {"op": "conv", "layer": "conv2", **conv}, {"op": "flatten"},
             {"op": "linear", "layer": "fc1"}, {"op": "linear", "layer": "fc2"}]
    return [conv1, conv2, fc1, fc2], graph, (1, size, size)


def image_net(rng: np.random.Generator, in_shape: tuple[int, int, int], spec: list[tuple], *, alpha: int = 4,
              density: float = 0.5):
    """A random image network from ``spec``: ("conv", out channels, (kh, kw), (sh, sw), (ph, pw)),
    ("pool", k), ("flatten",), ("linear", outputs); conv layers combined per feature map, ReLU
    after every layer. Returns (layers, graph, input shape)."""
    layers, graph = [], []
    c, h, w = in_shape
    for item in spec:
        if item[0] == "conv":
            _, out, k, st, pad = item
            name = f"conv{len(layers) + 1}"
            layers.append(random_layer(rng, out, c * k[0] * k[1], alpha, gamma=0.25, density=density, name=name,
                                       kernel=k[0] * k[1], activation="relu"))
            graph.append({"op": "conv", "layer": name, "kernel": list(k), "stride": list(st), "padding": list(pad)})
            c, h, w = out, (h + 2 * pad[0] - k[0]) // st[0] + 1, (w + 2 * pad[1] - k[1]) // st[1] + 1
        elif item[0] == "pool":
            graph.append({"op": "maxpool", "kernel": [item[1]] * 2, "stride": [item[1]] * 2, "padding": [0, 0]})
            h, w = h // item[1], w // item[1]
        elif item[0] == "flatten":
            graph.append({"op": "flatten"})
            c, h, w = c * h * w, 1, 1
        else:
            name = f"fc{len(layers) + 1}"
            layers.append(random_layer(rng, item[1], c, alpha, gamma=0.25, density=density, name=name,
                                       activation="relu"))
            graph.append({"op": "linear", "layer": name})
            c = item[1]
    return layers, graph, in_shape
