"""The integer reference of an image network's graph: the golden model's layers and the host
steps around them.

Every conv/linear layer runs through :func:`colcomb.packer.golden.run_layer` (the integer-exact
model of the array); the steps around it only move integers (zero padding and im2col for convs,
max-pooling, flattening, channel shifts), except two integer steps the array has no unit for: the
rounded mean of global average pooling and the residual add, whose integer semantics
:mod:`colcomb.train.export` defines. The graph and scales come from the manifest's ``meta``.
This is what the engine's on-chip convolution (:mod:`colcomb.hdl.network`) is checked against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import run_layer
from colcomb.packer.packed import PackedLayer

__all__ = ["global_avgpool", "im2col", "layer_named", "layers_by_name", "maxpool", "residual_add", "run_graph",
           "shift"]


def im2col(
    x: np.ndarray, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> tuple[np.ndarray, int, int]:
    """(N*OH*OW, C*kh*kw) patch vectors in torch's (channel, kh, kw) order, and OH, OW."""
    n, c, h, w = x.shape
    kh, kw = kernel
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    if xp.shape[2] < kh or xp.shape[3] < kw:
        raise ColcombError(f"input {h}x{w} (padded {xp.shape[2]}x{xp.shape[3]}) is smaller than the kernel {kh}x{kw}")
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, :: stride[0], :: stride[1]]  # (N, C, OH, OW, kh, kw)
    oh, ow = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    return cols, oh, ow


def maxpool(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]) -> np.ndarray:
    ph, pw = padding
    low = np.iinfo(np.int64).min
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=low) if ph or pw else x
    win = np.lib.stride_tricks.sliding_window_view(xp, tuple(kernel), axis=(2, 3))
    return win[:, :, :: stride[0], :: stride[1]].max(axis=(4, 5))


def shift(x: np.ndarray, shifts: Sequence[Sequence[int]]) -> np.ndarray:
    """out[c, y, x] = in[c, y + dy, x + dx], zero outside (see colcomb.train.models.Shift)."""
    _, c, h, w = x.shape
    if len(shifts) != c:
        raise ColcombError(f"shift step has {len(shifts)} offsets for {c} channels")
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.empty_like(x)
    for ch, (dy, dx) in enumerate(shifts):
        out[:, ch] = xp[:, ch, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return out


def layers_by_name(layers: Sequence[PackedLayer] | dict[str, PackedLayer]) -> dict[str, PackedLayer]:
    return layers if isinstance(layers, dict) else {layer.name: layer for layer in layers}


def layer_named(by_name: dict[str, PackedLayer], name: str) -> PackedLayer:
    if name not in by_name:
        raise ColcombError(f"the graph names layer {name!r}, which the manifest lacks")
    return by_name[name]


def run_graph(layers, graph: list[dict], x_int: np.ndarray, chunk: int = 100) -> np.ndarray:
    """Integer outputs (N, outputs) of an image network for integer inputs (N, C, H, W)."""
    by_name = layers_by_name(layers)
    outs = [_run_chunk(by_name, graph, x_int[i : i + chunk]) for i in range(0, len(x_int), chunk)]
    if not outs:
        raise ColcombError("no inputs to evaluate")
    return np.concatenate(outs)


def _run_chunk(by_name: dict[str, PackedLayer], graph: list[dict], x: np.ndarray) -> np.ndarray:
    h = np.asarray(x, np.int64)
    for step in graph:
        op = step["op"]
        if op == "conv":
            if h.ndim != 4:
                raise ColcombError(f"conv {step['layer']!r} needs (N, C, H, W) inputs, got {list(h.shape)}")
            layer = layer_named(by_name, step["layer"])
            cols, oh, ow = im2col(h, step["kernel"], step["stride"], step["padding"])
            y = run_layer(layer, cols)
            h = y.reshape(h.shape[0], oh, ow, layer.rows).transpose(0, 3, 1, 2)
        elif op == "linear":
            if h.ndim != 2:
                raise ColcombError(f"linear {step['layer']!r} needs (N, features); flatten first")
            h = run_layer(layer_named(by_name, step["layer"]), h)
        elif op == "maxpool":
            h = maxpool(h, step["kernel"], step["stride"], step["padding"])
        elif op == "avgpool":
            h = global_avgpool(h)
        elif op == "flatten":
            h = h.reshape(h.shape[0], -1)
        elif op == "shift":
            h = shift(h, step["shifts"])
        elif op == "residual":
            a = _run_chunk(by_name, step["body"], h)
            b = _run_chunk(by_name, step["shortcut"], h) if step["shortcut"] else h
            h = residual_add(a, b, step["multipliers"], step["shift"], step["clamp"])
        else:
            raise ColcombError(f"graph step {op!r} is not an image-network step")
    return np.ascontiguousarray(h)


def global_avgpool(x: np.ndarray) -> np.ndarray:
    """(N, C, 1, 1) rounded means (half up) of each channel's H x W integers: ``floor((sum + n//2) / n)``."""
    if x.ndim != 4:
        raise ColcombError(f"global average pooling needs (N, C, H, W) inputs, got {list(x.shape)}")
    n = x.shape[2] * x.shape[3]
    total = x.sum(axis=(2, 3), keepdims=True, dtype=np.int64)
    return np.floor_divide(total + n // 2, n)


def residual_add(
    a: np.ndarray, b: np.ndarray, multipliers: Sequence[int], shift: int, clamp: Sequence[int]
) -> np.ndarray:
    """``clamp((a * m_a + b * m_b + 2^(shift-1)) >> shift)``: the two branches of a residual block
    brought to the block's output scale and added, rounded half up like the golden model's
    requantization."""
    if a.shape != b.shape:
        raise ColcombError(f"residual add of shapes {list(a.shape)} and {list(b.shape)}; they must match")
    ma, mb = (int(m) for m in multipliers)
    y = a.astype(np.int64) * ma + b.astype(np.int64) * mb
    if shift:
        y = (y + (1 << (int(shift) - 1))) >> int(shift)
    return np.clip(y, int(clamp[0]), int(clamp[1]))
