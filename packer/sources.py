"""Reading filter matrices: a ``.npy`` matrix, a ``.npz`` of named matrices, or a torch checkpoint.

Every Linear and Conv1d/2d/3d weight of a checkpoint is taken, and the LSTM/GRU matrices
(``weight_ih_l0``, ``weight_hh_l0``, ...); conv weights (filters, channels, kernel...) are flattened
to filters x (channels * kernel positions). A ``<layer>.bias`` (``bias_ih_l0``, ...) next to a weight
comes along. A torch.nn.utils.prune pair (``weight_orig``, ``weight_mask``) is one weight, their
product; parametrized weights are refused; every other tensor is reported as not packed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.core.npy_file import load_npy, load_npz
from colcomb.packer.manifest import MAX_NAME

TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


@dataclass(frozen=True)
class Matrix:
    """One layer's filter matrix as read from a file."""

    name: str
    weights: np.ndarray  # float64 (rows, cols)
    bias: np.ndarray | None  # float64 (rows,) or None
    kernel: tuple[int, ...] | None = None  # original conv weight shape, when flattened


def _finite(name: str, arr: np.ndarray, source: Path) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ColcombError(f"{source}: {name} holds {arr.dtype} values, expected real numbers")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        bad = int(np.count_nonzero(~np.isfinite(out)))
        raise ColcombError(
            f"{source}: {name} holds {bad} NaN or infinite weights; fix or retrain the model first"
        )
    return out


def layer_name(key: str) -> str:
    """A layer name the manifest accepts, from an npz key, file stem or checkpoint key: path
    separators and control characters become ``_``, leading dots go (``../x`` -> ``_x``)."""
    name = "".join("_" if c in "/\\" or ord(c) < 32 or ord(c) == 127 else c for c in key)
    return name.lstrip(".")[:MAX_NAME] or "layer"


def _as_matrix(name: str, arr: np.ndarray, bias: np.ndarray | None, source: Path) -> Matrix:
    w = _finite(name, np.asarray(arr), source)
    kernel = None
    if w.ndim in (3, 4, 5):  # Conv1d, Conv2d, Conv3d: filters x (channels x kernel positions)
        kernel = tuple(w.shape)
        w = w.reshape(w.shape[0], -1)
    if w.ndim != 2 or min(w.shape) < 1:
        raise ColcombError(
            f"{source}: {name} has shape {list(np.shape(arr))}; a filter matrix must be 2-D "
            f"(rows x columns) or a 3-D to 5-D conv weight"
        )
    b = None
    if bias is not None:
        b = _finite(f"{name} bias", np.asarray(bias), source)
        if b.shape != (w.shape[0],):
            raise ColcombError(
                f"{source}: bias of {name} has shape {list(b.shape)}, expected [{w.shape[0]}]"
            )
    return Matrix(layer_name(name), w, b, kernel)


def _from_named(
    named: dict[str, np.ndarray], source: Path, *, weights_only: bool, skipped: list[str] | None = None
) -> list[Matrix]:
    """The filter matrices of named arrays. A checkpoint's (``weights_only``) tensors are each
    packed, refused by name, or named in ``skipped`` with the reason."""
    if weights_only:
        named = _merge_pruned(named, source)
        _refuse_parametrized(named, source)
    used: set[str] = set()
    out = []
    for key, arr in named.items():
        if weights_only:
            last = key.rsplit(".", 1)[-1]
            if not last.startswith("weight") or np.ndim(arr) not in (2, 3, 4, 5):
                continue
            if last != "weight":  # recurrent matrices: weight_ih_l0 -> bias_ih_l0
                prefix = key[: -len(last)]
                bias_key = prefix + "bias" + last[len("weight"):]
                out.append(_as_matrix(key, arr, named.get(bias_key), source))
                used.update((key, bias_key))
                continue
            stem = key[: -len("weight")].rstrip(".")
        else:
            if key.endswith(".bias") or key == "bias":
                continue
            stem = key[: -len(".weight")] if key.endswith(".weight") else key
        bias_key = f"{stem}.bias" if stem else "bias"
        out.append(_as_matrix(stem or key, arr, named.get(bias_key), source))
        used.update((key, bias_key))
    if weights_only and skipped is not None:
        skipped += [f"{k} ({_why_skipped(k, a)})" for k, a in named.items() if k not in used]
    return out


def _why_skipped(key: str, arr: np.ndarray) -> str:
    last = key.rsplit(".", 1)[-1]
    if last in ("running_mean", "running_var", "num_batches_tracked") or (last in ("weight", "bias")
                                                                             and np.ndim(arr) == 1):
        return "batch norm or a 1-D parameter: fold batch norm into the conv before packing"
    if last.startswith("bias"):
        return "a bias without a packed weight"
    return f"{np.ndim(arr)}-D, not a layer's weight"


def _merge_pruned(named: dict[str, np.ndarray], source: Path) -> dict[str, np.ndarray]:
    """torch.nn.utils.prune leaves ``X.weight_orig`` and ``X.weight_mask``: the weight is their
    product (packing them as two layers would keep every pruned weight)."""
    out = dict(named)
    for key in [k for k in named if k.endswith("weight_orig")]:
        stem = key[: -len("_orig")]
        mask = named.get(stem + "_mask")
        if mask is None:
            raise ColcombError(f"{source}: {key} has no {stem}_mask beside it (a torch.nn.utils.prune checkpoint "
                               f"keeps both); save the pruned model after torch.nn.utils.prune.remove")
        if np.shape(mask) != np.shape(named[key]):
            raise ColcombError(f"{source}: {stem}_mask has shape {list(np.shape(mask))}, its weight "
                               f"{list(np.shape(named[key]))}")
        del out[key], out[stem + "_mask"]
        out[stem] = np.asarray(named[key]) * (np.asarray(mask) != 0)
    for key in [k for k in out if k.endswith("weight_mask")]:
        raise ColcombError(f"{source}: {key} has no {key[: -len('_mask')]}_orig beside it; save the model after "
                           f"torch.nn.utils.prune.remove")
    return out


def _refuse_parametrized(named: dict[str, np.ndarray], source: Path) -> None:
    """A parametrized weight (torch.nn.utils.parametrize, weight_norm) is a function of its stored
    tensors that the checkpoint does not hold: refuse it by name rather than pack a factor."""
    for key in named:
        last = key.rsplit(".", 1)[-1]
        if ".parametrizations." in key or last in ("weight_g", "weight_v"):
            raise ColcombError(
                f"{source}: {key} is part of a parametrized weight (its value is computed from it, which the "
                f"checkpoint does not say how); remove the parametrization (torch.nn.utils.parametrize."
                f"remove_parametrizations, or torch.nn.utils.remove_weight_norm) and save the state_dict again"
            )


def _read_torch(path: Path) -> dict[str, np.ndarray]:
    import torch

    _check_zip(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ColcombError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
            f"save one with torch.save(model.state_dict(), path)"
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ColcombError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    out = {}
    for key, tensor in obj.items():
        if not isinstance(key, str):
            raise ColcombError(f"{path}: the state_dict key {key!r:.60} is not a string; a state_dict maps "
                               f"parameter names to tensors")
        if not isinstance(tensor, torch.Tensor):
            continue
        last = str(key).rsplit(".", 1)[-1]
        problem = _tensor_problem(tensor)
        if problem is None:
            out[key] = _to_numpy(tensor, f"{path}: {key}")
        elif last.startswith(("weight", "bias")):  # a tensor pack would use: refuse it by name
            raise ColcombError(f"{path}: {key} is {problem}; convert it to a dense float tensor first")
    return out


def _check_zip(path: Path) -> None:
    """torch.load does not check a zip checkpoint's CRCs: one flipped byte would change a weight
    silently. Every member's CRC is checked here first (legacy non-zip files have none)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
        raise ColcombError(f"{path}: a damaged zip checkpoint ({exc}); save it again") from None
    if bad is not None:
        raise ColcombError(f"{path}: the checkpoint's member {bad!r} fails its CRC check (the file is damaged); "
                           f"save it again")


def _tensor_problem(tensor) -> str | None:
    """Why a checkpoint tensor cannot become a float64 matrix, or None when it can."""
    import torch

    if tensor.is_meta:
        return "a meta tensor (shape only, no values)"
    if tensor.layout != torch.strided:
        return f"a sparse tensor ({tensor.layout})"
    if tensor.is_complex():
        return f"complex ({tensor.dtype})"
    if tensor.is_quantized:
        return f"a quantized tensor ({tensor.dtype})"
    if "float8" in str(tensor.dtype) or "float4" in str(tensor.dtype):
        return f"{tensor.dtype} (an 8-bit float format numpy cannot hold)"
    return None


def _to_numpy(tensor, where: str) -> np.ndarray:
    import torch

    t = tensor.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16; float32 holds both exactly
        t = t.to(torch.float32)
    try:
        return t.numpy()
    except (TypeError, RuntimeError) as exc:
        raise ColcombError(f"{where} is a {t.dtype} tensor numpy cannot hold ({exc})") from None


def _unique(mats: list[Matrix], source: Path) -> list[Matrix]:
    seen: dict[str, int] = {}
    for m in mats:
        if m.name in seen:
            raise ColcombError(
                f"{source}: two matrices become the layer name {m.name!r} (path separators, control "
                f"characters and leading dots are replaced); rename one of them"
            )
        seen[m.name] = 1
    return mats


def read_matrices(path: str | os.PathLike, skipped: list[str] | None = None) -> list[Matrix]:
    """Filter matrices from a .npy, .npz or torch checkpoint file, in file order. ``skipped``
    receives each checkpoint tensor not packed, with the reason (the CLI warns of them)."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ColcombError(f"{p} is not a regular file (a folder, FIFO or device); name a .npy, .npz or "
                           "torch checkpoint")
    if not p.is_file():
        raise ColcombError(f"{p}: no such file; name a .npy, .npz or torch checkpoint")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            mats = [_as_matrix(p.stem, load_npy(p), None, p)]
        elif suffix == ".npz":
            mats = _from_named(load_npz(p), p, weights_only=False)
        elif suffix in TORCH_SUFFIXES:
            mats = _from_named(_read_torch(p), p, weights_only=True, skipped=skipped)
        else:
            raise ColcombError(
                f"{p}: unknown file type {suffix or '(none)'}; use .npy, .npz or a torch "
                f"checkpoint ({', '.join(TORCH_SUFFIXES)})"
            )
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ColcombError(f"{p}: cannot read it ({type(exc).__name__}: {exc})") from None
    _unique(mats, p)
    if not mats:
        raise ColcombError(f"{p}: holds no Conv2d, Linear or LSTM weight (2-D or 4-D '...weight*' tensor)")
    return mats
