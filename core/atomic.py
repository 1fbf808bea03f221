"""Writing output files so that a failure never leaves a half-written one behind."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.core.outdir import user_mode


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    p = Path(path)
    if p.is_dir():
        raise ColcombError(f"{p} is a folder; name a file to write")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    except OSError as exc:
        raise ColcombError(f"cannot write {p}: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, user_mode("file"))  # mkstemp makes 0600; a written file gets the umask's mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ColcombError(f"cannot write {p}: {exc.strerror or exc}") from None
        raise
    return p


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode())


def save_npy(path: str | os.PathLike, arr: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return write_bytes(path, buf.getvalue())
