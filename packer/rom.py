"""ROM images for the hardware: ``$readmemh`` text, one hexadecimal word per line.

Two images per block:

- cells (block rows x packed columns words, row-major): ``{select, weight}`` with the weight in
  the low ``bits`` bits (two's complement) and the select in the ``select_bits(alpha)`` bits above.
  Word width = bits + select_bits(alpha).
- lanes (packed columns x alpha words, column-major over lanes): the original input column feeding
  each lane of each packed column; the value ``cols`` (one past the last column) marks an unused
  lane, which carries zero. Word width = bit length of ``cols``.
"""

from __future__ import annotations

import re

import numpy as np

from colcomb.core.errors import ColcombError
from colcomb.packer.packed import PackedBlock, select_bits

_HEX = re.compile(r"[0-9a-fA-F]+")

CELLS_LAYOUT = (
    "word = select << bits | (weight & (2**bits - 1)); row-major over block rows x packed columns"
)
LANES_LAYOUT = (
    "word = original input column of lane l of packed column g (cols = unused lane, zero); "
    "order g-major, l-minor"
)


def cell_word_bits(bits: int, alpha: int) -> int:
    return bits + select_bits(alpha)


def lane_word_bits(cols: int) -> int:
    return max(1, cols.bit_length())


def cell_words(weights: np.ndarray, selects: np.ndarray, bits: int) -> np.ndarray:
    """The cell word of each (weight, select) pair, as unsigned ints of the same shape: the
    weight's ``bits``-bit two's complement in the low bits, the select above it. The one cell
    word encoder: the ROM images here and the hardware's cell ROM
    (:mod:`colcomb.hdl.program`) both use it."""
    mask = (1 << bits) - 1
    return (np.asarray(selects, np.int64) << bits) | (np.asarray(weights, np.int64) & mask)


def encode_cells(block: PackedBlock, bits: int, alpha: int) -> np.ndarray:
    """Cell words of a block, row-major, as unsigned ints."""
    return cell_words(block.weights, block.selects, bits).ravel()


def decode_cells(words: np.ndarray, bits: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_cells`: (weights, selects) each (rows, cols)."""
    mask = (1 << bits) - 1
    raw = words & mask
    weights = np.where(raw >= 1 << (bits - 1), raw - (1 << bits), raw)
    return weights.reshape(rows, cols), (words >> bits).reshape(rows, cols)


def format_hex(words: np.ndarray, width: int) -> str:
    digits = max(1, (width + 3) // 4)
    return "".join(f"{int(w):0{digits}x}\n" for w in words)


def parse_hex(text: str, width: int, name: str) -> np.ndarray:
    """Words of a ``$readmemh`` image; reject anything that is not one in-range hex word per line."""
    words = []
    for number, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        try:
            # $readmemh digits only: int() alone would also take "0x1f", "-1", "+1" and "1_0"
            if not _HEX.fullmatch(token):
                raise ValueError(token)
            value = int(token, 16)
        except ValueError:
            raise ColcombError(
                f"ROM image {name} line {number}: {token!r} is not a hexadecimal word; "
                f"regenerate the image with `colcomb pack`"
            ) from None
        if value >> width:
            raise ColcombError(
                f"ROM image {name} line {number}: word {token} is wider than {width} bits"
            )
        words.append(value)
    return np.array(words, np.int64)
