"""The checker can fail: a hardware ROM that differs from the manifest is reported, and a
tampered manifest is refused before anything is built."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hw_layers import random_layer

from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import load_manifest, manifest_digest, write_manifest
from colcomb.sim.runner import SimulationMismatch, random_inputs, simulate

ROOT = Path(os.environ.get("COLCOMB_SIM_BUILD", Path(__file__).parents[1] / "build" / "sim"))


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(17)
    layer = random_layer(rng, 3, 6, 2, name="small")
    folder = tmp_path / "m"
    write_manifest([layer], folder)
    return folder, layer


def _cells_file(folder: Path) -> tuple[dict, str]:
    doc = json.loads((folder / "manifest.json").read_text())
    return doc, doc["layers"][0]["blocks"][0]["rom"]["cells"]


def _flip_first_word(folder: Path, name: str) -> None:
    path = folder / name
    lines = path.read_text().splitlines()
    lines[0] = f"{int(lines[0], 16) ^ 1:0{len(lines[0])}x}"
    path.write_text("\n".join(lines) + "\n")


def test_rom_changed_with_its_sha_is_refused(small):
    folder, _ = small
    doc, name = _cells_file(folder)
    _flip_first_word(folder, name)
    doc["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    doc["digest"] = manifest_digest(doc)  # a forger who also re-seals is still caught
    (folder / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ColcombError, match="disagrees with"):
        load_manifest(folder)
    with pytest.raises(ColcombError, match="disagrees with"):
        simulate(folder, HardwareConfig(rows=2, cols=2), vectors=2, root=ROOT)


def test_rom_changed_without_its_sha_is_refused(small):
    folder, _ = small
    _, name = _cells_file(folder)
    _flip_first_word(folder, name)
    with pytest.raises(ColcombError, match="sha256"):
        simulate(folder, HardwareConfig(rows=2, cols=2), vectors=2, root=ROOT)


@pytest.mark.rtl
def test_hardware_with_a_different_weight_rom_fails_the_check(small):
    folder, layer = small
    block = layer.blocks[0]
    r, g = np.argwhere(block.weights != 0)[0]
    weights = block.weights.copy()
    weights[r, g] = -weights[r, g] if weights[r, g] != -128 else 127
    wrong = dataclasses.replace(layer, blocks=(dataclasses.replace(block, weights=weights),))
    x = random_inputs(layer, 8, seed=3)
    assert not np.array_equal(run_network([wrong], x), run_network([layer], x))

    res = simulate(folder, HardwareConfig(rows=2, cols=2, batch=4), inputs=x, root=ROOT, hardware_layers=[wrong],
        check=False)
    assert not res.passed
    assert res.mismatch_count > 0 and res.mismatches[0]["index"] == r
    expect = run_network([layer], x)
    first = res.mismatches[0]
    assert first["expected"] == expect[first["vector"], first["index"]]
    assert first["got"] == run_network([wrong], x)[first["vector"], first["index"]]

    with pytest.raises(SimulationMismatch, match="does not match the golden model"):
        simulate(folder, HardwareConfig(rows=2, cols=2, batch=4), inputs=x, root=ROOT, hardware_layers=[wrong])
    # and the right hardware passes on the same stimulus
    assert simulate(folder, HardwareConfig(rows=2, cols=2, batch=4), inputs=x, root=ROOT).passed


@pytest.mark.rtl
def test_layer_option_picks_a_chain_and_its_reference(tmp_path, capsys):
    """A manifest whose layers do not chain (like a CNN's) runs one --layer at a time: the
    hardware is built from that layer and the reference is the golden model of that layer."""
    from colcomb.cli import main

    rng = np.random.default_rng(5)
    a = random_layer(rng, 6, 9, 2, name="conv")
    b = random_layer(rng, 4, 7, 2, name="fc")
    write_manifest([a, b], tmp_path / "net")
    assert main(["generate", str(tmp_path / "net"), "--rows", "3", "--cols", "2",
                 "--out", str(tmp_path / "rtl")]) == 2
    assert "--layer NAME" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "net"), "--rows", "3", "--cols", "2", "--batch", "2",
                 "--layer", "fc", "--vectors", "5", "--build-dir", str(tmp_path / "sim")]) == 0
    out = capsys.readouterr().out
    assert "vectors checked: 5 (20 output words, all equal to the golden model)" in out
