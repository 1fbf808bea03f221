"""Every flow step's JSON names the manifest it came from (path and sha256 of manifest.json) and
its parameters, so a report can be traced back to its weights."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hw_layers import random_layer

from colcomb.core.errors import ColcombError
from colcomb.fpga.synth import prepare_design
from colcomb.hdl.config import HardwareConfig
from colcomb.hdl.generate import generate
from colcomb.packer.manifest import load_manifest, provenance, write_manifest


def _manifest(tmp_path, seed, name="net"):
    rng = np.random.default_rng(seed)
    layers = [random_layer(rng, 6, 10, 2, name="a"), random_layer(rng, 4, 6, 2, name="b")]
    return write_manifest(layers, tmp_path / name).parent


def _digest(folder) -> str:
    return hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()


def test_generate_records_the_manifest_and_its_parameters(tmp_path):
    folder = _manifest(tmp_path, 1)
    design = generate(folder, HardwareConfig(rows=3, cols=2, batch=4), tmp_path / "rtl", lint=False, layers=["a"])
    origin = json.loads(design.info.read_text())["provenance"]
    assert origin["manifest"] == str((folder / "manifest.json").resolve())
    assert origin["manifest_sha256"] == _digest(folder)
    assert origin["layers"] == ["a"]
    params = origin["parameters"]
    assert (params["rows"], params["cols"], params["batch"], params["top"]) == (3, 2, 4,
                                                                                 "colcomb_top")


def test_other_weights_give_another_digest(tmp_path):
    one, two = _manifest(tmp_path, 1, "one"), _manifest(tmp_path, 2, "two")
    a = provenance(one, None, {})
    b = provenance(two, None, {})
    assert a["layers"] == b["layers"] == ["a", "b"]
    assert a["manifest_sha256"] != b["manifest_sha256"]
    assert a["manifest_sha256"] == load_manifest(one).sha256 == _digest(one)
    # a changed file changes the digest the next step records
    (one / "manifest.json").write_text((one / "manifest.json").read_text() + " ")
    assert provenance(one, None, {})["manifest_sha256"] == _digest(one) != a["manifest_sha256"]


def test_synthesis_design_records_the_manifest(tmp_path):
    folder = _manifest(tmp_path, 3)
    design = prepare_design(folder, HardwareConfig(rows=3, cols=2, batch=4), vectors=2, seed=7)
    origin = design.provenance
    assert origin["manifest_sha256"] == _digest(folder)
    assert origin["layers"] == ["a", "b"]
    assert origin["parameters"] == {"rows": 3, "cols": 2, "batch": 4, "vectors": 2, "seed": 7,
                                    "inputs": None, "labelled": False}


def test_provenance_of_a_missing_manifest_is_refused(tmp_path):
    with pytest.raises(ColcombError, match="cannot read"):
        provenance(tmp_path / "nothing", None, {})
