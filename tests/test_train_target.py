"""The training target on real data (slow: about a minute): LeNet-5 on MNIST 5k, alpha 8,
gamma 0.5, integer accuracy within 1.5 points of the dense network, >= 4x fewer packed columns."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_lenet5_mnist5k_target(tmp_path, capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_target.py"
    spec = importlib.util.spec_from_file_location("train_target", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    code = bench.main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "target met" in out
