"""A design folder: what ``colcomb generate`` wrote, named by simulate, synthesize, estimate and report.

``design.json`` beside the Verilog records the hardware config, the manifest it was compiled from
(its folder and the sha256 of its manifest.json, which pins every weight) and the layers run. A
step given the folder takes all of that from it, no array flags, and refuses the folder when the
manifest no longer matches the digest (the weights changed since the design was generated).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from colcomb.core import strict_json
from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig

__all__ = ["DESIGN_FILE", "DesignFolder", "design_record", "is_design_folder", "load_design_folder"]

DESIGN_FILE = "design.json"
FORMAT = "colcomb-design/1"


@dataclass(frozen=True)
class DesignFolder:
    path: Path
    manifest: Path  # the manifest folder
    config: HardwareConfig
    layers: list[str] | None  # the --layer selection (None: the whole network)
    top: str


def design_record(config: HardwareConfig, manifest_dir: str | os.PathLike, manifest_sha256: str,
                  layers, top: str, figures: dict) -> dict:
    """The ``design.json`` of a generated design."""
    return {"format": FORMAT, "config": config.to_dict(), "manifest": str(Path(manifest_dir).resolve()),
            "manifest_sha256": manifest_sha256, "layers": None if layers is None else list(layers), "top": top,
            **figures}


def is_design_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / DESIGN_FILE).is_file()


def load_design_folder(path: str | os.PathLike) -> DesignFolder:
    """The design of a folder ``colcomb generate`` wrote; refused when malformed or when its
    manifest's manifest.json is not the one it was generated from."""
    path = Path(path)
    source = path / DESIGN_FILE
    try:
        rec = strict_json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        raise ColcombError(f"{source}: not a colcomb design folder ({exc}); run `colcomb generate`") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise ColcombError(f"{source}: not a colcomb design record (format {FORMAT!r}); run `colcomb generate`")
    try:
        config = HardwareConfig.from_dict(rec["config"], f"{source}: config")
        manifest = Path(rec["manifest"])
        want = str(rec["manifest_sha256"])
        layers = rec.get("layers")
        top = str(rec["top"])
    except (KeyError, TypeError) as exc:
        raise ColcombError(f"{source}: a design record without {exc}; run `colcomb generate` again") from None
    try:
        got = hashlib.sha256((manifest / "manifest.json").read_bytes()).hexdigest()
    except OSError as exc:
        raise ColcombError(f"{source}: its manifest {manifest} cannot be read ({exc.strerror or exc}); "
                           f"regenerate the design from the manifest's new place") from None
    if got != want:
        raise ColcombError(f"{source}: the manifest {manifest} changed since this design was generated (sha256 "
                           f"{got[:12]}..., the design's {want[:12]}...); run `colcomb generate` again")
    return DesignFolder(path, manifest, config, layers, top)
