"""The manifest contract: ``DIR/manifest.json`` plus the ``.npy`` arrays and ROM images it names.

Writing is atomic (a temporary folder renamed into place); reading validates the format version,
every field's type, every file's sha256, array shapes and ranges, the agreement between ROM images
and arrays, and the layer invariants, and fails with one :class:`ColcombError` naming the first
problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colcomb import __version__
from colcomb.core.errors import ColcombError
from colcomb.packer import rom
from colcomb.packer.packed import MAX_ALPHA, PackedBlock, PackedLayer, Requant

FORMAT = "colcomb-manifest"
VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    """A loaded, validated manifest: its layers in network order and free-form metadata."""

    layers: list[PackedLayer]
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    def chain(self, names: Sequence[str] | None = None) -> list[PackedLayer]:
        """The named layers in the given order (all layers when ``names`` is empty or None)."""
        return select_layers(self, names)

    def layer(self, name: str) -> PackedLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = ", ".join(x.name for x in self.layers)
        raise ColcombError(f"no layer {name!r} in the manifest; it has: {names}")


def select_layers(manifest: Manifest, names: Sequence[str] | None) -> list[PackedLayer]:
    """The layers named (in that order), or every layer when ``names`` is empty or None."""
    return [manifest.layer(n) for n in names] if names else list(manifest.layers)


def safe_name(name: str) -> str:
    """A file-name stem for a layer name (torch names like ``features.0`` keep their dots)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "layer"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _block_json(layer: PackedLayer, k: int, block: PackedBlock, files: dict[str, bytes]) -> dict:
    stem = f"{safe_name(layer.name)}.b{k}"
    names = {
        "weights": f"{stem}.weights.npy",
        "selects": f"{stem}.selects.npy",
        "cells": f"{stem}.cells.hex",
        "lanes": f"{stem}.lanes.hex",
    }
    files[names["weights"]] = _npy_bytes(block.weights.astype(np.int32))
    files[names["selects"]] = _npy_bytes(block.selects.astype(np.int32))
    cw = rom.cell_word_bits(layer.bits, layer.alpha)
    lw = rom.lane_word_bits(layer.cols)
    files[names["cells"]] = rom.format_hex(rom.encode_cells(block, layer.bits, layer.alpha), cw).encode()
    lanes = block.lane_table(layer.alpha, fill=layer.cols).ravel()
    files[names["lanes"]] = rom.format_hex(lanes, lw).encode()
    scale = block.scale
    return {
        "rows": [block.row_start, block.row_stop],
        "groups": [list(map(int, g)) for g in block.groups],
        "weights": names["weights"],
        "selects": names["selects"],
        "scale": float(scale[0]) if np.all(scale == scale[0]) else [float(s) for s in scale],
        "rom": {
            "cells": names["cells"],
            "cell_word_bits": cw,
            "lanes": names["lanes"],
            "lane_word_bits": lw,
        },
    }


def manifest_json(layers: Sequence[PackedLayer], meta: dict | None = None) -> tuple[dict, dict[str, bytes]]:
    """The manifest document and the bytes of every file it names."""
    names = [layer.name for layer in layers]
    stems = [safe_name(n) for n in names]
    if len(set(stems)) != len(stems):
        raise ColcombError(f"layer names {names} collide as file names; rename the layers")
    files: dict[str, bytes] = {}
    out_layers = []
    for layer in layers:
        layer.validate()
        rq = layer.requant
        out_layers.append(
            {
                "name": layer.name,
                "shape": list(layer.shape),
                "alpha": layer.alpha,
                "gamma": layer.gamma,
                "bits": layer.bits,
                "data_bits": layer.data_bits,
                "acc_bits": layer.acc_bits,
                "requant": {
                    "bias": [int(b) for b in rq.bias],
                    "multiplier": [int(m) for m in rq.multiplier],
                    "shift": [int(v) for v in rq.shift],
                    "activation": rq.activation,
                    "clamp": [int(rq.clamp[0]), int(rq.clamp[1])],
                },
                "stats": layer.stats,
                "blocks": [_block_json(layer, k, b, files) for k, b in enumerate(layer.blocks)],
            }
        )
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "generator": f"colcomb {__version__}",
        "rom_layout": {"cells": rom.CELLS_LAYOUT, "lanes": rom.LANES_LAYOUT},
        "meta": meta or {},
        "layers": out_layers,
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    return doc, files


def _dumps(obj, depth: int = 0) -> str:
    """JSON with one key per line, but lists of numbers (and lists of such lists) kept short."""
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and obj and all(isinstance(v, (list, dict)) for v in obj):
        return "[\n" + ",\n".join(inner + _dumps(v, depth + 1) for v in obj) + f"\n{pad}]"
    return json.dumps(obj)


def write_manifest(layers: Sequence[PackedLayer], out_dir: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write the manifest and its files into ``out_dir`` atomically; return the manifest's path.

    An existing ``out_dir`` is replaced only when it is empty or holds a colcomb manifest.
    """
    out = Path(out_dir)
    doc, files = manifest_json(layers, meta)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())):
        raise ColcombError(
            f"{out} exists and is not a colcomb output folder (no {MANIFEST}); "
            f"name a new or empty folder with --out"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise ColcombError(f"cannot create {out}: {exc.strerror or exc}; name another folder with --out") from None
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / MANIFEST).write_text(_dumps(doc) + "\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.rename(out, old / "x")
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ColcombError(f"cannot write {out}: {exc.strerror or exc}") from None
        raise
    return out / MANIFEST


# -- reading -------------------------------------------------------------------------------------

def _field(obj: dict, key: str, kind: type | tuple, where: str):
    if not isinstance(obj, dict):
        raise ColcombError(f"manifest: {where} must be a JSON object")
    if key not in obj:
        raise ColcombError(f"manifest: {where} lacks the field {key!r}; regenerate it with `colcomb pack`")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ColcombError(f"manifest: {where}.{key} must be {names}, got {type(value).__name__} {value!r:.60}")
    return value


def _int_list(value, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ColcombError(f"manifest: {where} must be a list of integers")
    if any(not -(1 << 63) <= v < 1 << 63 for v in value):
        raise ColcombError(f"manifest: {where} holds an integer outside the 64-bit range")
    return value


def _number(value, where: str) -> float:
    """A finite-or-not float of a JSON number (not a bool); ColcombError for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ColcombError(f"manifest: {where} must be a number, got {type(value).__name__} {value!r:.60}")
    try:
        return float(value)
    except OverflowError:
        raise ColcombError(f"manifest: {where} {value!r:.60} is too large") from None


class _Files:
    """Reads the files a manifest names, each checked against its sha256 once."""

    def __init__(self, root: Path, hashes: dict):
        self.root = root
        self.hashes = hashes

    def read(self, name: str, where: str) -> bytes:
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise ColcombError(f"manifest: {where} must be a plain file name inside the folder, got {name!r}")
        if name not in self.hashes:
            raise ColcombError(f"manifest: {where} names {name}, which has no sha256 in 'files'")
        path = self.root / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ColcombError(
                f"manifest: cannot read {path} ({exc.strerror}); regenerate with `colcomb pack`"
            ) from None
        if _sha256(data) != self.hashes[name]:
            raise ColcombError(
                f"manifest: {path} does not match its sha256 in {MANIFEST}: the file was changed "
                f"or corrupted; regenerate it with `colcomb pack`"
            )
        return data

    def array(self, name: str, where: str, shape: tuple[int, int]) -> np.ndarray:
        data = self.read(name, where)
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ColcombError(f"manifest: {name} is not a readable .npy array ({exc})") from None
        if not np.issubdtype(arr.dtype, np.integer):
            raise ColcombError(f"manifest: {name} holds {arr.dtype}, expected integers")
        if arr.shape != shape:
            raise ColcombError(f"manifest: {name} has shape {list(arr.shape)}, expected {list(shape)}")
        return arr.astype(np.int64)


def _read_block(obj: dict, layer: dict, k: int, files: _Files) -> PackedBlock:
    where = f"layer {layer['name']!r} block {k}"
    rows = _int_list(_field(obj, "rows", list, where), f"{where}.rows")
    if len(rows) != 2:
        raise ColcombError(f"manifest: {where}.rows must be [start, stop]")
    groups_raw = _field(obj, "groups", list, where)
    groups = tuple(tuple(_int_list(g, f"{where}.groups[{i}]")) for i, g in enumerate(groups_raw))
    shape = (rows[1] - rows[0], len(groups))
    if shape[0] < 1:
        raise ColcombError(f"manifest: {where}.rows {rows} is empty or reversed")
    weights = files.array(_field(obj, "weights", str, where), f"{where}.weights", shape)
    selects = files.array(_field(obj, "selects", str, where), f"{where}.selects", shape)
    scale_raw = _field(obj, "scale", (int, float, list), where)
    if isinstance(scale_raw, list):
        scale = np.array([_number(v, f"{where}.scale[{j}]") for j, v in enumerate(scale_raw)], float)
    else:
        scale = np.full(shape[0], _number(scale_raw, f"{where}.scale"))
    block = PackedBlock(rows[0], rows[1], groups, weights, selects, scale)
    romj = _field(obj, "rom", dict, where)
    bits, alpha, cols = layer["bits"], layer["alpha"], layer["shape"][1]
    for key, width_key, width in (
        ("cells", "cell_word_bits", rom.cell_word_bits(bits, alpha)),
        ("lanes", "lane_word_bits", rom.lane_word_bits(cols)),
    ):
        if _field(romj, width_key, int, f"{where}.rom") != width:
            raise ColcombError(f"manifest: {where}.rom.{width_key} must be {width} for this layer")
        name = _field(romj, key, str, f"{where}.rom")
        words = rom.parse_hex(files.read(name, f"{where}.rom.{key}").decode("ascii", "replace"), width, name)
        expect = (
            rom.encode_cells(block, bits, alpha)
            if key == "cells"
            else block.lane_table(alpha, fill=cols).ravel()
        )
        if words.shape != expect.shape or np.any(words != expect):
            raise ColcombError(
                f"manifest: ROM image {name} disagrees with the {where} arrays and groups; "
                f"regenerate it with `colcomb pack`"
            )
    return block


def _shifts(value, rows: int, where: str) -> np.ndarray:
    """Per-row shifts: a list of one integer per row, or (manifests written before shifts were
    per row) one integer meaning that shift for every row."""
    if isinstance(value, int):
        return np.full(rows, value, np.int64)
    shifts = _int_list(value, where)
    if len(shifts) != rows:
        raise ColcombError(f"manifest: {where} has {len(shifts)} entries, the layer has {rows} rows")
    return np.array(shifts, np.int64)


def _read_layer(obj: dict, i: int, files: _Files) -> PackedLayer:
    where = f"layers[{i}]"
    name = _field(obj, "name", str, where)
    where = f"layer {name!r}"
    shape = _int_list(_field(obj, "shape", list, where), f"{where}.shape")
    if len(shape) != 2 or min(shape) < 1:
        raise ColcombError(f"manifest: {where}.shape must be [rows, cols] of positive integers, got {shape}")
    alpha = _field(obj, "alpha", int, where)
    if not 1 <= alpha <= MAX_ALPHA:
        raise ColcombError(f"manifest: {where}.alpha {alpha} must be at least 1 and at most {MAX_ALPHA}")
    bits = _field(obj, "bits", int, where)
    data_bits = _field(obj, "data_bits", int, where)
    if not 2 <= bits <= 32 or not 2 <= data_bits <= 32:
        raise ColcombError(f"manifest: {where} widths bits={bits}, data_bits={data_bits} must lie in [2, 32]")
    header = {"name": name, "shape": shape, "alpha": alpha, "bits": bits}
    rq = _field(obj, "requant", dict, where)
    clamp = _int_list(_field(rq, "clamp", list, f"{where}.requant"), f"{where}.requant.clamp")
    if len(clamp) != 2:
        raise ColcombError(f"manifest: {where}.requant.clamp must be [low, high]")
    requant = Requant(
        bias=np.array(_int_list(_field(rq, "bias", list, f"{where}.requant"), f"{where}.requant.bias"), np.int64),
        multiplier=np.array(
            _int_list(_field(rq, "multiplier", list, f"{where}.requant"), f"{where}.requant.multiplier"), np.int64
        ),
        shift=_shifts(_field(rq, "shift", (int, list), f"{where}.requant"), shape[0], f"{where}.requant.shift"),
        activation=_field(rq, "activation", str, f"{where}.requant"),
        clamp=(clamp[0], clamp[1]),
    )
    blocks = _field(obj, "blocks", list, where)
    if not blocks:
        raise ColcombError(f"manifest: {where}.blocks is empty")
    layer = PackedLayer(
        name=name,
        shape=(shape[0], shape[1]),
        alpha=alpha,
        gamma=_number(_field(obj, "gamma", (int, float), where), f"{where}.gamma"),
        bits=bits,
        blocks=tuple(_read_block(b, header, k, files) for k, b in enumerate(blocks)),
        requant=requant,
        data_bits=data_bits,
        acc_bits=_field(obj, "acc_bits", int, where),
        stats=obj.get("stats", {}) if isinstance(obj.get("stats", {}), dict) else {},
    )
    layer.validate()
    return layer


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and fully validate a manifest (a folder holding manifest.json, or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        text = p.read_text()
    except FileNotFoundError:
        out = p.parent if p.name == MANIFEST else p
        raise ColcombError(f"no manifest at {p}; run `colcomb pack ... --out {out}` first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ColcombError(f"cannot read {p}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ColcombError(f"{p} is not valid JSON (line {exc.lineno}: {exc.msg}); regenerate it") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ColcombError(f"{p} is not a colcomb manifest (its 'format' is not {FORMAT!r})")
    if doc.get("version") != VERSION or isinstance(doc.get("version"), bool):
        raise ColcombError(
            f"{p} has manifest version {doc.get('version')!r}; this colcomb reads version {VERSION}: "
            f"repack with this colcomb"
        )
    hashes = _field(doc, "files", dict, "the manifest")
    files = _Files(p.parent, hashes)
    layers_raw = _field(doc, "layers", list, "the manifest")
    if not layers_raw:
        raise ColcombError(f"{p} lists no layers")
    layers = [_read_layer(obj, i, files) for i, obj in enumerate(layers_raw)]
    names = [x.name for x in layers]
    if len(set(names)) != len(names):
        raise ColcombError(f"{p}: layer names repeat: {names}")
    meta = doc.get("meta", {}) if isinstance(doc.get("meta", {}), dict) else {}
    return Manifest(layers=layers, meta=meta, path=p)
