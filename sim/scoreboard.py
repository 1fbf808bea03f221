"""The reference model and the checker of the cocotb bench, kept apart from the stimulus.

The model is the golden model run on the layers of the manifest (loaded and validated by
:func:`colcomb.packer.manifest.load_manifest`), never on what the hardware was built from: a
hardware ROM that differs from the manifest shows up as mismatches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from colcomb.hdl.framing import batch_last_flags, beat_words
from colcomb.hdl.network import image_network
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import load_manifest, select_layers

__all__ = ["ReferenceModel", "Scoreboard"]


class ReferenceModel:
    """Integer-exact expected outputs of the manifest's network."""

    def __init__(self, manifest_dir: str | os.PathLike, layers: Sequence[str] | None = None):
        self.manifest = load_manifest(manifest_dir)
        # a CNN's graph with no layers picked runs whole (image words in), as the flow builds it
        self.network = image_network(self.manifest, layers)
        self.layers = self.network.layers if self.network else select_layers(self.manifest, layers)

    @property
    def in_words(self) -> int:
        return self.network.in_words if self.network else self.layers[0].cols

    @property
    def out_words(self) -> int:
        return self.layers[-1].rows

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(vectors, out_words) outputs for (vectors, in_words) inputs."""
        if self.network:
            return self.network.predict(x)
        return np.asarray(run_network(self.layers, x))


@dataclass
class Scoreboard:
    """Compares received output words with the expected ones, vector by vector."""

    expected: np.ndarray  # (vectors, out_words)
    limit: int = 100  # mismatches kept in detail
    mismatches: list[dict] = field(default_factory=list)
    mismatch_count: int = 0
    checked: int = 0
    protocol_errors: list[str] = field(default_factory=list)

    def check(self, words: list[int], lasts: list[bool], batch: int, *, beat: int = 1,
              padding: Sequence[int] = ()) -> None:
        """Check every received word (all that arrived, including any after the expected
        count); ``lasts``, one per beat of ``beat`` words, must mark exactly the final beat of each
        batch of ``batch`` vectors, no word may follow the final one, and the ``padding`` words of
        each vector's last beat must be zero."""
        vectors, width = self.expected.shape
        if len(words) > vectors * width:
            extra = len(words) - vectors * width
            self.protocol_errors.append(
                f"{extra} output word(s) after the final word of the last batch (received "
                f"{len(words)}, expected {vectors * width}): nothing may follow the final 'last'"
            )
        elif len(words) < vectors * width:
            self.protocol_errors.append(
                f"received {len(words)} output words, expected {vectors * width}"
            )
        n = min(len(words), vectors * width)
        got = np.asarray(words[:n], np.int64)
        exp = self.expected.reshape(-1)[:n]
        self.checked = n
        bad = np.flatnonzero(got != exp)
        self.mismatch_count = int(bad.size)
        for i in bad[: self.limit]:
            self.mismatches.append(
                {"vector": int(i // width), "index": int(i % width),
                 "got": int(got[i]), "expected": int(exp[i])}
            )
        expect_last = np.array(batch_last_flags(vectors, beat_words(width, beat), batch), bool)
        got_last = np.asarray(lasts[:expect_last.size], bool)
        wrong = np.flatnonzero(got_last != expect_last[:got_last.size])
        unit = "words" if beat == 1 else "beats"
        if wrong.size:
            self.protocol_errors.append(
                f"'last' wrong on {wrong.size} output {unit} (first at {unit[:-1]} {int(wrong[0])})"
            )
        if any(padding):
            self.protocol_errors.append(
                f"{sum(1 for p in padding if p)} padding words of the vectors' last beats are not zero"
            )

    @property
    def passed(self) -> bool:
        return self.mismatch_count == 0 and not self.protocol_errors and self.checked > 0

    def summary(self) -> str:
        if self.passed:
            return f"all {self.checked} output words equal the golden model"
        parts = [f"{self.mismatch_count} of {self.checked} output words differ"]
        parts += [f"{'first' if k == 0 else 'then'} at vector {m['vector']}, word {m['index']}: hardware "
                  f"{m['got']}, golden model {m['expected']}" for k, m in enumerate(self.mismatches[:3])]
        return "; ".join(parts + self.protocol_errors)
