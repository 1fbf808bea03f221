"""Reading .npy and .npz files without trusting them: regular files only (a FIFO would block for
ever), and every array's shape checked from its header against a limit before any of its data is
read or decompressed (a 1 MB archive can expand to gigabytes)."""

from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from colcomb.core.errors import ColcombError

#: the most elements one array may hold unless a caller says less: 2^28 (2 GiB of float64),
#: room for a 4,096 x 25,088 classifier layer
MAX_ELEMENTS = 1 << 28


def open_regular(path: Path):
    """A binary file object of ``path``, refused unless it is a regular file (no FIFO, device or
    folder), opened without blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ColcombError(f"{path}: cannot open it ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise ColcombError(f"{path} is {kind}; name a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _check_header(f, where: str, max_elements: int) -> int:
    """The element count of the .npy array whose header ``f`` starts with, refused beyond
    ``max_elements`` or holding Python objects; reads the header only."""
    try:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = reader(f)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ColcombError(f"{where}: cannot read it as a .npy array ({exc})") from None
    elements = math.prod(shape)
    if elements > max_elements:
        raise ColcombError(f"{where}: an array of shape {list(shape)} ({elements:,} elements) is larger than the "
                           f"{max_elements:,} elements colcomb reads; split it")
    if dtype.hasobject:
        raise ColcombError(f"{where}: holds Python objects (dtype {dtype}); save numbers")
    return elements


def _read_data(f, where: str) -> np.ndarray:
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ColcombError(f"{where}: cannot read its data ({exc})") from None


def load_npy(path: str | os.PathLike, max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """The array of a .npy file, its size checked from the header first; an .npz archive given
    instead is named as one, with its arrays."""
    p = Path(path)
    with open_regular(p) as f:
        if f.read(4) == b"PK\x03\x04":
            f.seek(0)
            try:
                keys = ", ".join(n.removesuffix(".npy") for n in zipfile.ZipFile(f).namelist())
            except (zipfile.BadZipFile, OSError):
                keys = "unreadable"
            raise ColcombError(f"{p} is an .npz archive (arrays: {keys or 'none'}); save one array as a .npy file "
                               f"with np.save")
        f.seek(0)
        _check_header(f, str(p), max_elements)
        f.seek(0)
        return _read_data(f, str(p))


def load_npz(path: str | os.PathLike, max_elements: int = MAX_ELEMENTS) -> dict[str, np.ndarray]:
    """The named arrays of a .npz archive, in archive order; each member's size checked from its
    header before it is decompressed, and their total against ``max_elements`` as well."""
    p = Path(path)
    out: dict[str, np.ndarray] = {}
    total = 0
    with open_regular(p) as f:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ColcombError(f"{p}: not a .npz archive ({exc})") from None
        with archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                where = f"{p} [{name}]"
                with archive.open(info) as member:  # the header alone, then the member again whole
                    total += _check_header(member, where, max_elements - total)
                with archive.open(info) as member:
                    out[name] = _read_data(member, where)
    return out
