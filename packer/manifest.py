"""The manifest contract: ``DIR/manifest.json`` plus the ``.npy`` arrays and ROM images it names.

Writing goes through :class:`~colcomb.core.outdir.OutputFolder` (staged, checked by loading it
back, swapped in whole). The manifest carries a digest of its own canonical JSON, so an edit made
behind colcomb's back is refused; :func:`seal_manifest` (``colcomb seal DIR``) accepts an edit on
purpose. Reading validates the digest, the format version, every field's type, every file's sha256
(files opened only as regular files inside the folder, with a size cap), array shapes and ranges,
the agreement between ROM images and arrays, and the layer invariants, and fails with one
:class:`ColcombError` naming the first problem.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colcomb import __version__
from colcomb.core import strict_json
from colcomb.core.atomic import write_bytes, write_text
from colcomb.core.errors import ColcombError
from colcomb.core.outdir import OutputFolder
from colcomb.packer import rom
from colcomb.packer.packed import MAX_ALPHA, PackedBlock, PackedLayer, Requant

FORMAT = "colcomb-manifest"
VERSION = 1
MANIFEST = "manifest.json"
DIGEST = "digest"  # "sha256:<hex>" of the canonical JSON of every other field
MAX_MANIFEST_BYTES = 256 << 20
MAX_DIM = 1 << 24  # rows or columns of one layer: far above any real layer, far below a MemoryError
MAX_NAME = 200


@dataclass
class Manifest:
    """A loaded, validated manifest: its layers in network order and free-form metadata."""

    layers: list[PackedLayer]
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None  # of the manifest.json bytes that were read and validated

    def chain(self, names: Sequence[str] | None = None) -> list[PackedLayer]:
        """The named layers in the given order (all layers when ``names`` is empty or None)."""
        return select_layers(self, names)

    def provenance(self, layers: Sequence[str], parameters: dict) -> dict:
        """Where a flow step's output came from (:func:`provenance`), for this loaded manifest."""
        path = None if self.path is None else str(self.path.resolve())
        return _provenance(path, self.sha256, layers, parameters)

    def layer(self, name: str) -> PackedLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = ", ".join(x.name for x in self.layers)
        raise ColcombError(f"no layer {name!r} in the manifest; it has: {names}")


def _provenance(path: str | None, sha256: str | None, layers: Sequence[str], parameters: dict) -> dict:
    return {"manifest": path, "manifest_sha256": sha256, "layers": list(layers),
            "parameters": dict(parameters)}


def provenance(path: str | os.PathLike, layers: Sequence[str] | None, parameters: dict) -> dict:
    """Where a flow step's output came from, for its JSON: ``manifest`` (the absolute path of
    manifest.json), ``manifest_sha256`` (sha256 of its bytes: the manifest lists every array and
    ROM image with its own sha256, so this one digest pins the weights), the ``layers`` run and
    the step's ``parameters``. ``path`` is the manifest folder or file; ``layers`` None means
    all of its layers."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ColcombError(f"cannot read {p}: {exc.strerror or exc}; name a manifest folder") from None
    if not layers:
        try:
            layers = [str(layer["name"]) for layer in json.loads(raw)["layers"]]
        except (ValueError, KeyError, TypeError):
            raise ColcombError(f"{p} is not a colcomb manifest; run `colcomb pack` first") from None
    return _provenance(str(p.resolve()), _sha256(raw), layers, parameters)


def select_layers(manifest: Manifest, names: Sequence[str] | None) -> list[PackedLayer]:
    """The layers named (in that order), or every layer when ``names`` is empty or None."""
    return [manifest.layer(n) for n in names] if names else list(manifest.layers)


def safe_name(name: str) -> str:
    """A file-name stem for a layer name (torch names like ``features.0`` keep their dots, but
    a stem never starts with one: the loader opens no hidden or parent-relative file)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "layer"


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a layer name in a manifest, or None when it can."""
    if not isinstance(name, str) or not name:
        return "a layer name must be a non-empty string"
    if len(name) > MAX_NAME:
        return f"a layer name must be at most {MAX_NAME} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a layer name must not hold control characters (NUL, newline, ...)"
    if "/" in name or "\\" in name or name.startswith("."):
        return "a layer name must not hold '/' or '\\' or start with '.'"
    return None


def manifest_digest(doc: dict) -> str:
    """``sha256:<hex>`` of the canonical JSON (sorted keys, no spaces) of ``doc`` without its digest."""
    body = {k: v for k, v in doc.items() if k != DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


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
    for n in names:
        if (problem := name_problem(n)) is not None:
            raise ColcombError(f"layer name {n!r:.80}: {problem}; rename the layer")
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
    doc[DIGEST] = manifest_digest(doc)
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


def write_manifest(
    layers: Sequence[PackedLayer],
    out_dir: str | os.PathLike,
    meta: dict | None = None,
    inputs: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write the manifest and its files into ``out_dir``; return the manifest's path.

    The folder is staged, loaded back (colcomb never writes a manifest its loader refuses) and
    swapped in whole. An existing ``out_dir`` is replaced only when colcomb wrote every file in
    it, and never when it holds one of ``inputs`` (see :mod:`colcomb.core.outdir`).
    """
    doc, files = manifest_json(layers, meta)
    with OutputFolder(out_dir, command="pack", inputs=inputs) as stage:
        try:
            for name, data in files.items():
                (stage.path / name).write_bytes(data)
            (stage.path / MANIFEST).write_text(_dumps(doc) + "\n")
        except OSError as exc:
            raise ColcombError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
        try:
            load_manifest(stage.path)
        except ColcombError as exc:
            raise ColcombError(f"colcomb wrote a manifest its own loader refuses (a bug): {exc}") from None
        stage.commit()
    return Path(out_dir) / MANIFEST


def seal_manifest(path: str | os.PathLike) -> Path:
    """Accept a hand-edited manifest on purpose: store the digest of its current content.

    The sealed manifest must still pass every other check of :func:`load_manifest` (file hashes,
    ranges, invariants); when it does not, the file is left as it was and the error says why.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    text = _read_manifest_text(p)
    doc = _parse(text, p)
    original = p.read_bytes()
    doc[DIGEST] = manifest_digest(doc)
    write_text(p, _dumps(doc) + "\n")
    try:
        load_manifest(p)
    except ColcombError:
        write_bytes(p, original)
        raise
    return p


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


def read_regular(path: Path, limit: int, *, follow: bool = False) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Opened without blocking (a FIFO cannot hang) and, unless ``follow``, without following a
    symbolic link (a manifest's files stay inside its folder); devices and folders are refused.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ColcombError(
                f"{path} is a symbolic link; a manifest's files must be regular files in its folder"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ColcombError(f"{path} is not a regular file (a folder, device, FIFO or socket); regenerate it")
        if st.st_size > limit:
            raise ColcombError(f"{path} holds {st.st_size} bytes, more than the {limit} its manifest allows")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(min(limit, st.st_size) + 1)  # read() allocates what it is asked for
        if len(data) > limit:
            raise ColcombError(f"{path} holds more than the {limit} bytes its manifest allows")
        return data
    finally:
        os.close(fd)


class _Files:
    """Reads the files a manifest names, each checked against its sha256 once."""

    def __init__(self, root: Path, hashes: dict):
        self.root = root
        self.hashes = hashes

    def read(self, name: str, where: str, limit: int) -> bytes:
        if (not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name
                or name.startswith(".")):
            raise ColcombError(f"manifest: {where} must be a plain file name inside the folder, got {name!r:.80}")
        if name not in self.hashes:
            raise ColcombError(f"manifest: {where} names {name}, which has no sha256 in 'files'")
        path = self.root / name
        try:
            data = read_regular(path, limit)
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
        data = self.read(name, where, shape[0] * shape[1] * 8 + 4096)  # int64 at most, plus header
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
    if rows[0] < 0 or rows[1] > layer["shape"][0] or shape[1] > layer["shape"][1]:
        raise ColcombError(
            f"manifest: {where} has rows {rows} and {shape[1]} packed columns, outside the layer's "
            f"shape {layer['shape']}"
        )
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
        count = shape[0] * shape[1] if key == "cells" else shape[1] * alpha
        limit = count * ((width + 3) // 4 + 2) + 4096  # digits and a CR LF per word
        words = rom.parse_hex(files.read(name, f"{where}.rom.{key}", limit).decode("ascii", "replace"), width, name)
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
    if (problem := name_problem(name)) is not None:
        raise ColcombError(f"manifest: {where}.name {name!r:.80}: {problem}")
    where = f"layer {name!r}"
    shape = _int_list(_field(obj, "shape", list, where), f"{where}.shape")
    if len(shape) != 2 or min(shape) < 1:
        raise ColcombError(f"manifest: {where}.shape must be [rows, cols] of positive integers, got {shape}")
    if max(shape) > MAX_DIM:
        raise ColcombError(f"manifest: {where}.shape {shape} exceeds {MAX_DIM} rows or columns")
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


def _read_manifest_text(p: Path) -> str:
    try:
        data = read_regular(p, MAX_MANIFEST_BYTES, follow=True)
    except FileNotFoundError:
        out = p.parent if p.name == MANIFEST else p
        raise ColcombError(f"no manifest at {p}; run `colcomb pack ... --out {out}` first") from None
    except OSError as exc:
        raise ColcombError(f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ColcombError(f"cannot read {p}: not UTF-8 text ({exc.reason})") from None


def _parse(text: str, p: Path) -> dict:
    """The manifest document, its format and version checked; one ColcombError for any bad JSON."""
    try:
        doc = strict_json.loads(text)
    except strict_json.DuplicateKey as exc:
        raise ColcombError(f"{p}: {exc}, which a manifest never holds (edited by hand?); regenerate it") from None
    except json.JSONDecodeError as exc:
        raise ColcombError(f"{p} is not valid JSON (line {exc.lineno}: {exc.msg}); regenerate it") from None
    except (ValueError, RecursionError) as exc:  # integers of thousands of digits, deep nesting
        kind = "nests too deeply" if isinstance(exc, RecursionError) else f"holds a value JSON cannot carry ({exc})"
        raise ColcombError(f"{p} {kind:.160}; regenerate it") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ColcombError(f"{p} is not a colcomb manifest (its 'format' is not {FORMAT!r})")
    if doc.get("version") != VERSION or isinstance(doc.get("version"), bool):
        raise ColcombError(
            f"{p} has manifest version {doc.get('version')!r:.40}; this colcomb reads version {VERSION}: "
            f"repack with this colcomb"
        )
    return doc


def _check_digest(doc: dict, p: Path) -> None:
    folder = p.parent if p.name == MANIFEST else p
    stored = doc.get(DIGEST)
    if stored is None:
        raise ColcombError(
            f"{p} carries no digest (written by hand or an older colcomb); repack it, or run "
            f"`colcomb seal {folder}` to accept its content as it is"
        )
    try:
        actual = manifest_digest(doc)
    except (ValueError, RecursionError, TypeError):
        actual = None
    if stored != actual:
        raise ColcombError(
            f"{p} was changed after colcomb wrote it (its digest does not match its content): an edit "
            f"to a bias, multiplier, shift, clamp or any other field changes what the network "
            f"computes; repack it, or run `colcomb seal {folder}` to accept the edit on purpose"
        )


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and fully validate a manifest (a folder holding manifest.json, or the file itself).

    Every malformed input, however odd, ends in one :class:`ColcombError`.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST
    try:
        return _load(p)
    except RecursionError:
        raise ColcombError(f"{p} nests too deeply to be a colcomb manifest; regenerate it") from None
    except MemoryError:
        raise ColcombError(f"{p} describes arrays too large to hold in memory; regenerate it") from None


def _load(p: Path) -> Manifest:
    text = _read_manifest_text(p)
    doc = _parse(text, p)
    _check_digest(doc, p)
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
    return Manifest(layers=layers, meta=meta, path=p, sha256=_sha256(text.encode()))  # UTF-8: the bytes read
