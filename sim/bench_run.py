"""What both cocotb benches share around a run: the runner's configuration, the reference
outputs, and the result files they leave (:mod:`colcomb.sim.bench`, :mod:`colcomb.sim.fast_bench`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colcomb.hdl.framing import beat_words, pack_beats, unpack_beats
from colcomb.sim.scoreboard import ReferenceModel, Scoreboard

__all__ = ["BenchRun", "load_run", "write_result"]


@dataclass
class BenchRun:
    """One run: its configuration JSON (keys in :mod:`colcomb.sim.bench`), the design JSON, the
    input vectors and the golden model's outputs."""

    cfg: dict
    design: dict
    x: np.ndarray
    expected: np.ndarray

    @property
    def vectors(self) -> int:
        return int(self.x.shape[0])

    @property
    def batch(self) -> int:
        return self.design["batch"]

    @property
    def data_bits(self) -> int:
        return self.design["data_bits"]

    @property
    def in_words(self) -> int:
        return self.design["in_words"]

    @property
    def beat(self) -> int:
        """Words per stream beat."""
        return self.design.get("beat", 1)

    @property
    def in_beats(self) -> int:
        return beat_words(self.in_words, self.beat)

    @property
    def out_beats(self) -> int:
        return beat_words(self.out_words, self.beat)

    @property
    def payload_bits(self) -> int:
        """Data bits of a beat's payload."""
        return self.beat * self.data_bits

    def input_beats(self) -> list[int]:
        """The input vectors as the data of their beats (:func:`colcomb.hdl.framing.pack_beats`)."""
        return pack_beats(self.x, self.data_bits, self.beat)

    def output_words(self, beats) -> tuple[list[int], list[int]]:
        """The received beats' data -> (the output words in order, the padding words)."""
        return unpack_beats(beats, self.data_bits, self.beat, self.out_words)

    @property
    def out_words(self) -> int:
        return self.design["out_words"]


def load_run() -> BenchRun:
    """Read the configuration named by ``COLCOMB_BENCH`` and compute the reference outputs; the
    design and the manifest's network must agree on the words per vector."""
    path = os.environ.get("COLCOMB_BENCH")
    if not path:
        raise RuntimeError("COLCOMB_BENCH is not set; run this bench through colcomb.sim.runner")
    cfg = json.loads(Path(path).read_text())
    design = json.loads(Path(cfg["design"]).read_text())
    model = ReferenceModel(cfg["manifest"], cfg.get("layers"))
    in_words, out_words = design["in_words"], design["out_words"]
    assert model.in_words == in_words and model.out_words == out_words, (
        f"the design takes {in_words} and gives {out_words} words per vector, the manifest's "
        f"network {model.in_words} and {model.out_words}"
    )
    x = np.load(cfg["inputs"])
    return BenchRun(cfg, design, x, model.predict(x))


def write_result(run: BenchRun, board: Scoreboard, outputs: np.ndarray, *, wall: float,
                 sim_cycles: float, timing: dict, **extra) -> None:
    """Write ``outputs.npy`` (every word received, in order) and the result JSON beside it."""
    result = {
        **extra,
        "passed": board.passed,
        "vectors": run.vectors,
        "checked": board.checked,
        "mismatch_count": board.mismatch_count,
        "mismatches": board.mismatches,
        "protocol_errors": board.protocol_errors,
        "summary": board.summary(),
        "sim_wall_s": wall,
        "sim_cycles": sim_cycles,
        **timing,
    }
    result_path = Path(run.cfg["result"])
    np.save(result_path.with_name("outputs.npy"), np.asarray(outputs, np.int64))
    result_path.write_text(json.dumps(result, indent=1) + "\n")
