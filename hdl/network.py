"""An image network as the engine runs it on chip: one :class:`Stage` per matrix layer.

The manifest's graph (:mod:`colcomb.train.export`) lists host steps: ``conv``, ``maxpool``,
``flatten``, ``linear``. The engine runs a conv layer over its input feature map itself (no host
im2col), max-pools its requantized outputs as they leave the array, and flattens the last feature
map straight into the first linear layer's lanes; so each matrix layer becomes a stage that knows
its input geometry, its kernel and the pooling after it. :func:`stages_of` turns a graph into
stages and refuses, naming the step, what the engine has no unit for (residual adds, average
pooling, shifts, overlapping or padded pooling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import check_vectors
from colcomb.packer.packed import PackedLayer

__all__ = ["ImageNetwork", "Stage", "image_network", "stages_of"]


@dataclass(frozen=True)
class Stage:
    """Matrix layer ``layer`` of an image network.

    A ``conv`` stage reads an input feature map of ``in_shape`` (channels, height, width) through
    a ``kernel`` with ``stride`` and zero ``padding``; its outputs are max-pooled over ``pool`` x
    ``pool`` windows (stride ``pool``; 1: no pooling). A ``linear`` stage reads a vector of
    ``in_shape[0]`` features (a flattened feature map when it follows a conv stage)."""

    layer: str
    kind: str  # "conv" or "linear"
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pool: int = 1

    @property
    def conv(self) -> bool:
        return self.kind == "conv"

    @property
    def out_size(self) -> tuple[int, int]:
        """Output height and width of the conv (before pooling); (1, 1) for a linear stage."""
        if not self.conv:
            return 1, 1
        _, h, w = self.in_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    @property
    def pooled_size(self) -> tuple[int, int]:
        """Height and width after pooling (floor, as torch's max-pool)."""
        oh, ow = self.out_size
        return oh // self.pool, ow // self.pool

    @property
    def positions(self) -> int:
        """Vectors per image: the output positions the pooling reads (a position no pooling
        window covers is not computed)."""
        ph, pw = self.pooled_size
        return ph * pw * self.pool * self.pool

    @property
    def emitted(self) -> int:
        """Output positions per image after pooling."""
        ph, pw = self.pooled_size
        return ph * pw

    @property
    def padded_size(self) -> tuple[int, int]:
        """The input feature map's height and width with its zero border."""
        _, h, w = self.in_shape
        return h + 2 * self.padding[0], w + 2 * self.padding[1]

    def patch_origins(self) -> list[tuple[int, int]]:
        """(row, column) of each computed position's window origin in the padded input, in
        pooling-window order: the ``pool * pool`` positions of pooled output 0, then of pooled
        output 1, ... (row-major)."""
        ph, pw = self.pooled_size
        (sh, sw), k = self.stride, self.pool
        return [((py * k + dy) * sh, (px * k + dx) * sw)
                for py in range(ph) for px in range(pw) for dy in range(k) for dx in range(k)]


def _pair(step: dict, key: str, where: str) -> tuple[int, int]:
    value = step.get(key)
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ColcombError(f"{where}: {key} must be two integers, not {value!r}")
    return int(value[0]), int(value[1])


def stages_of(graph: Sequence[dict], input_shape: Sequence[int],
              shapes: dict[str, tuple[int, int]]) -> list[Stage]:
    """The stages of an image ``graph`` for inputs of ``input_shape`` (channels, height, width);
    ``shapes`` gives each layer's matrix (rows, columns), checked against the geometry."""
    if len(input_shape) != 3 or not all(isinstance(v, int) and v >= 1 for v in input_shape):
        raise ColcombError(f"the input shape must be (channels, height, width), not {list(input_shape)}")
    shape: tuple[int, ...] = tuple(int(v) for v in input_shape)
    stages: list[Stage] = []
    for i, step in enumerate(graph):
        op = step.get("op") if isinstance(step, dict) else None
        where = f"graph step {i} ({op})"
        if op in ("conv", "linear"):
            name = step.get("layer")
            if name not in shapes:
                raise ColcombError(f"{where}: the manifest has no layer {name!r}")
        if op == "conv":
            if len(shape) != 3:
                raise ColcombError(f"{where}: a conv needs a feature map, but the flatten before it made a vector")
            kernel, stride, padding = (_pair(step, key, where) for key in ("kernel", "stride", "padding"))
            if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
                raise ColcombError(f"{where}: kernel {kernel}, stride {stride}, padding {padding} must be positive "
                                   f"(padding non-negative)")
            stage = Stage(name, "conv", shape, kernel, stride, padding)
            c, _, _ = shape
            need = c * kernel[0] * kernel[1]
            if shapes[name][1] != need:
                raise ColcombError(f"{where}: layer {name!r} has {shapes[name][1]} columns, but a "
                                   f"{kernel[0]}x{kernel[1]} kernel over {c} channels needs {need}")
            oh, ow = stage.out_size
            if oh < 1 or ow < 1:
                raise ColcombError(f"{where}: the {shape[1]}x{shape[2]} input is smaller than the kernel")
            stages.append(stage)
            shape = (shapes[name][0], oh, ow)
        elif op == "maxpool":
            if not stages or not stages[-1].conv or stages[-1].pool != 1 or len(shape) != 3:
                raise ColcombError(f"{where}: the engine max-pools a conv layer's outputs once, right after it")
            kernel, stride, padding = (_pair(step, key, where) for key in ("kernel", "stride", "padding"))
            k = kernel[0]
            if kernel != (k, k) or stride != kernel or padding != (0, 0) or k & (k - 1):
                raise ColcombError(f"{where}: the engine pools square windows of a power-of-two size with "
                                   f"stride = kernel and no padding, not kernel {kernel}, stride {stride}, "
                                   f"padding {padding}")
            last = stages[-1]
            stages[-1] = Stage(last.layer, last.kind, last.in_shape, last.kernel, last.stride, last.padding, k)
            if min(stages[-1].pooled_size) < 1:
                raise ColcombError(f"{where}: the {shape[1]}x{shape[2]} map is smaller than the pooling window")
            shape = (shape[0], *stages[-1].pooled_size)
        elif op == "flatten":
            if len(shape) == 3:
                shape = (shape[0] * shape[1] * shape[2],)
        elif op == "linear":
            if len(shape) != 1:
                raise ColcombError(f"{where}: a linear layer needs a vector; flatten the feature map first")
            name = step["layer"]
            if shape[0] != shapes[name][1]:
                raise ColcombError(f"{where}: layer {name!r} has {shapes[name][1]} columns but its input has "
                                   f"{shape[0]} features")
            stages.append(Stage(name, "linear", (shape[0], 1, 1)))
            shape = (shapes[name][0],)
        else:
            raise ColcombError(f"{where}: the engine has no unit for {op!r}; on chip it runs conv, maxpool, "
                               f"flatten and linear steps (name layers with --layer to chain them as "
                               f"matrices instead)")
    if not stages:
        raise ColcombError("the graph has no conv or linear layer")
    return stages


@dataclass(frozen=True)
class ImageNetwork:
    """A manifest's image network as the engine runs it whole: its layers in graph order, their
    stages, and the graph the integer CNN path (the reference) walks."""

    layers: list[PackedLayer]
    stages: list[Stage]
    graph: list[dict]
    input_shape: tuple[int, int, int]

    @property
    def in_words(self) -> int:
        """Input words per image: channels x height x width, in torch's (C, H, W) order."""
        c, h, w = self.input_shape
        return c * h * w

    def check(self, x: np.ndarray) -> np.ndarray:
        """``x`` as (images, in_words) int64, or a clear error."""
        return check_vectors(x, self.in_words, self.layers[0].data_bits,
                             f"the image network ({'x'.join(map(str, self.input_shape))} images)")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(images, outputs) of the integer CNN path for (images, in_words) flattened images."""
        from colcomb.packer.graph import run_graph

        flat = self.check(x)
        return run_graph(self.layers, self.graph, flat.reshape(-1, *self.input_shape))


def image_network(manifest, names: Sequence[str] | None = None) -> ImageNetwork | None:
    """The manifest's image network, run whole on chip, when ``names`` picks no layers and its
    graph (``meta``) holds a conv; None otherwise (the layers chain as matrices)."""
    meta = manifest.meta or {}
    graph = meta.get("graph")
    if names or not isinstance(graph, list) or not any(isinstance(s, dict) and s.get("op") == "conv"
                                                       for s in graph):
        return None
    shape = meta.get("input_shape")
    if not isinstance(shape, list) or len(shape) != 3:
        raise ColcombError("the manifest's graph has conv layers but its meta has no input_shape [C, H, W] "
                           "(pack it with colcomb train, or pick a chain of layers with --layer)")
    by_name = {layer.name: layer for layer in manifest.layers}
    stages = stages_of(graph, shape, {name: layer.shape for name, layer in by_name.items()})
    return ImageNetwork([by_name[s.layer] for s in stages], stages, graph, tuple(int(v) for v in shape))
