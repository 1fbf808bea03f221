"""Text corpora for the character LSTM, without a download.

- :func:`stdlib_corpus`: the Python standard library's own source, the top-level ``*.py`` files
  of ``sysconfig.get_paths()["stdlib"]`` in file-name order (about 4.7 MB on CPython 3.11;
  every CPython install has it). Tabs become four spaces and characters outside printable ASCII
  become ``?``, so the vocabulary is ASCII (about 96 characters). Every tenth file (the 10th,
  20th, ... in name order) is held out: bits per character are measured on modules the model
  never saw, drawn from the whole library rather than from its end of the alphabet.
- :func:`read_text`: any UTF-8 text file (``colcomb study --text FILE``), as it is.
- the embedded text of :mod:`colcomb.train.corpus` stays the ``text`` dataset (tests).

:func:`split_corpus` cuts any other text into training and held-out characters: the held-out part
is the end of the text, so bits per character measure generalization, not memory.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from colcomb.core.errors import ColcombError
from colcomb.train.datasets import TextData

MIN_CHARS = 200  # shortest text worth splitting into training and held-out parts


def stdlib_files() -> list[Path]:
    """The standard library's top-level modules, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.glob("*.py") if p.is_file())


def ascii_fold(text: str) -> str:
    """Tabs to four spaces; anything but newline and printable ASCII to ``?``."""
    text = text.replace("\t", "    ").replace("\r\n", "\n")
    return "".join(c if c == "\n" or " " <= c <= "~" else "?" for c in text)


def stdlib_corpus() -> tuple[str, str]:
    """The ASCII-folded standard library source as (training text, held-out text): every tenth
    file in name order is held out (see the module docstring)."""
    files = stdlib_files()
    if len(files) < 10:
        raise ColcombError(
            f"no Python source under {sysconfig.get_paths()['stdlib']} for the default corpus; "
            "give a text file with --text FILE"
        )
    texts = [ascii_fold(p.read_text(encoding="utf-8", errors="replace")) for p in files]
    train = "".join(t for i, t in enumerate(texts) if i % 10 != 9)
    test = "".join(t for i, t in enumerate(texts) if i % 10 == 9)
    return train, test


MAX_TEXT_BYTES = 256 << 20  # a corpus file: 50 times the default corpus


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file's characters; one ColcombError for a missing, unreadable, binary or
    too-short file."""
    p = Path(path)
    if not p.exists():
        raise ColcombError(f"--text {p}: no such file; give an existing UTF-8 text file")
    if not p.is_file():
        raise ColcombError(f"--text {p}: not a regular file; give a UTF-8 text file")
    if p.stat().st_size > MAX_TEXT_BYTES:
        raise ColcombError(f"--text {p}: {p.stat().st_size:,} bytes, more than the {MAX_TEXT_BYTES:,} a corpus may "
                           f"hold; give a shorter text (the default corpus is 4.7 MB)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ColcombError(f"--text {p}: cannot read it ({exc.strerror}); check its permissions") from None
    if b"\0" in data:
        raise ColcombError(f"--text {p}: holds NUL bytes, so it is not a text file; give a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ColcombError(
            f"--text {p}: not UTF-8 (byte {exc.start}); convert it, e.g. iconv -t utf-8"
        ) from None
    if len(text) < MIN_CHARS:
        raise ColcombError(f"--text {p}: {len(text)} characters, too few; give at least {MIN_CHARS}")
    return text


def split_corpus(name: str, text: str, test_fraction: float = 0.1) -> tuple[str, str]:
    """(training text, held-out text): the first ``1 - test_fraction`` and the rest."""
    if len(text) < MIN_CHARS:
        raise ColcombError(f"corpus {name!r} has {len(text)} characters, too few; give at least {MIN_CHARS}")
    cut = int(len(text) * (1.0 - test_fraction))
    return text[:cut], text[cut:]


def text_data(name: str, train: str, test: str, test_chars: int | None = None) -> TextData:
    """A :class:`TextData` over the vocabulary of both parts, the held-out part cut to
    ``test_chars`` characters."""
    return TextData(name, train, test[:test_chars] if test_chars else test, "".join(sorted(set(train + test))))
