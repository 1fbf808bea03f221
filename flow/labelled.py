"""Inputs of ``colcomb simulate`` beyond random vectors: user arrays, float images of a
``colcomb train`` run (quantized the way the golden model's evaluation quantizes them) and the
run's own test split, with labels, so that the simulated hardware's accuracy can be printed
beside the golden model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.core.npy_file import load_npy

__all__ = ["Labelled", "accuracy", "input_vectors", "simulation_inputs"]


@dataclass(frozen=True)
class Labelled:
    """Integer input vectors for the hardware and, when known, their class labels."""

    x: np.ndarray  # (vectors, cols of the first layer) integers
    labels: np.ndarray | None  # (vectors,) class indices
    source: str  # where they came from, for the log


def _quantize_images(x: np.ndarray, meta: dict, source: str) -> np.ndarray:
    """Float images -> the integers the golden model's evaluation feeds the network
    (:func:`colcomb.train.integer.quantize_input` with the manifest's input scale), flattened."""
    from colcomb.train.integer import quantize_input

    if "input_scale" not in meta:
        raise ColcombError(f"{source} holds floats, and the manifest has no input_scale to quantize them "
                           f"with (it was not written by `colcomb train`): give integer inputs")
    scale, bits = float(meta["input_scale"]), int(meta.get("data_bits", 8))
    q = quantize_input(x, scale, bits)
    top = (1 << (bits - 1)) - 1
    with np.errstate(invalid="ignore"):
        saturated = int(np.count_nonzero(np.abs(np.asarray(x, np.float64) / scale) > top + 0.5))
    if saturated:
        import sys

        print(f"warning: {saturated:,} of {x.size:,} values of {source} lie beyond the {bits}-bit range at the input "
              f"scale {scale:.6g} and saturate to +-{top}", file=sys.stderr)
    return q.reshape(q.shape[0], -1)


def input_vectors(path: Path, meta: dict) -> np.ndarray:
    """The input vectors of a .npy file as ``golden`` and ``simulate`` both read them: integers as
    the quantized activations they are; floats quantized with the manifest's input scale (a
    ``colcomb train`` run's), refused where the manifest has none."""
    x = load_npy(path)
    if x.size and np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise ColcombError(f"{path} holds NaN or infinite inputs")
        x = _quantize_images(x, meta, str(path))
    return x


def simulation_inputs(manifest_dir: Path, *, layers: Sequence[str] | None = None, inputs: Path | None = None,
                      labels: Path | None = None, test_split: int | None = None,
                      data_dir: str | None = None, input_flag: str = "--input") -> Labelled | None:
    """The inputs the options name (None: none named, the bench draws random vectors).
    ``test_split`` (0: all) takes the first images of the test split of the manifest's dataset.
    ``input_flag`` is the command's name for ``inputs`` in the error messages."""
    from colcomb.packer.manifest import load_manifest

    if test_split is not None and inputs is not None:
        raise ColcombError(f"give either {input_flag} or --test-split, not both")
    if labels is not None and inputs is None:
        raise ColcombError(f"--labels needs {input_flag} (the images they label)")
    if inputs is None and test_split is None:
        return None
    manifest = load_manifest(manifest_dir)
    meta = manifest.meta or {}
    if test_split is not None:
        from colcomb.train.datasets import ImageData, load_dataset

        if "dataset" not in meta:
            raise ColcombError(f"{manifest_dir} names no dataset (it was not written by `colcomb train`): "
                               f"give {input_flag} and --labels instead of --test-split")
        data = load_dataset(str(meta["dataset"]), data_dir)
        if not isinstance(data, ImageData):
            raise ColcombError(f"--test-split needs an image dataset, not {meta['dataset']!r}")
        n = len(data.y_test) if test_split == 0 else min(test_split, len(data.y_test))
        x = _quantize_images(data.x_test[:n], meta, f"the {meta['dataset']} test split")
        return Labelled(x, np.asarray(data.y_test[:n], np.int64), f"{n} images of the {meta['dataset']} test split")
    x = input_vectors(inputs, meta)
    y = None
    if labels is not None:
        y = load_npy(labels)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ColcombError(f"{labels}: labels must be a 1-d integer array, not {y.dtype} {list(y.shape)}")
        rows = x.shape[0] if x.ndim == 2 else 1
        if len(y) != rows:
            raise ColcombError(f"{labels} holds {len(y)} labels for {rows} input vectors in {inputs}")
        y = y.astype(np.int64)
        classes = manifest.chain(layers)[-1].rows
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ColcombError(f"{labels}: labels range [{y.min()}, {y.max()}] is outside the network's "
                               f"{classes} output words (classes 0 .. {classes - 1})")
    return Labelled(x, y, str(inputs))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of vectors whose largest output word (the first on ties, like ``argmax``) is the
    label."""
    out = np.asarray(outputs)
    if out.ndim != 2 or out.shape[0] != len(labels):
        raise ColcombError(f"outputs {list(out.shape)} do not match {len(labels)} labels")
    return float(np.mean(out.argmax(axis=1) == np.asarray(labels)))
