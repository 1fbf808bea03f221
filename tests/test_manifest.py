"""The manifest contract: round trip, and one clear error for every kind of damage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colcomb.core.errors import ColcombError
from colcomb.packer import rom
from colcomb.packer.manifest import MANIFEST, _sha256, load_manifest, manifest_digest, write_manifest
from colcomb.packer.pack import PackOptions, pack_layer


@pytest.fixture
def layers(rng):
    w1 = rng.standard_normal((20, 30)) * (rng.random((20, 30)) < 0.3)
    w2 = rng.standard_normal((6, 20)) * (rng.random((6, 20)) < 0.5)
    return [
        pack_layer("features.0", w1, PackOptions(alpha=4, gamma=0.2, row_block=8, quant="row",
                                                  activation="relu"), rng.standard_normal(20)),
        pack_layer("fc", w2, PackOptions(alpha=3)),
    ]


@pytest.fixture
def packed_dir(layers, tmp_path) -> Path:
    write_manifest(layers, tmp_path / "out")
    return tmp_path / "out"


def _same(a, b):
    assert (a.name, a.shape, a.alpha, a.gamma, a.bits, a.data_bits, a.acc_bits) == (
        b.name, b.shape, b.alpha, b.gamma, b.bits, b.data_bits, b.acc_bits)
    for x, y in zip(a.blocks, b.blocks, strict=True):
        assert (x.row_start, x.row_stop, x.groups) == (y.row_start, y.row_stop, y.groups)
        assert np.array_equal(x.weights, y.weights) and np.array_equal(x.selects, y.selects)
        assert np.array_equal(x.scale, y.scale)
    for f in ("bias", "multiplier", "shift"):
        assert np.array_equal(getattr(a.requant, f), getattr(b.requant, f))
    assert (a.requant.clamp, a.requant.activation) == (b.requant.clamp, b.requant.activation)


def test_round_trip(layers, packed_dir):
    loaded = load_manifest(packed_dir)
    assert [x.name for x in loaded.layers] == ["features.0", "fc"]
    for a, b in zip(layers, loaded.layers, strict=True):
        _same(a, b)
        assert np.array_equal(a.dense_int(), b.dense_int())


def test_rom_images_decode_to_the_arrays(layers, packed_dir):
    doc = json.loads((packed_dir / MANIFEST).read_text())
    for layer, lj in zip(layers, doc["layers"], strict=True):
        for block, bj in zip(layer.blocks, lj["blocks"], strict=True):
            width = bj["rom"]["cell_word_bits"]
            words = rom.parse_hex((packed_dir / bj["rom"]["cells"]).read_text(), width, "cells")
            w, s = rom.decode_cells(words, layer.bits, block.rows, block.packed_columns)
            assert np.array_equal(w, block.weights) and np.array_equal(s, block.selects)
            lanes = rom.parse_hex((packed_dir / bj["rom"]["lanes"]).read_text(),
                                  bj["rom"]["lane_word_bits"], "lanes")
            table = lanes.reshape(block.packed_columns, layer.alpha)
            for g, group in enumerate(block.groups):
                assert table[g, : len(group)].tolist() == list(group)
                assert (table[g, len(group):] == layer.cols).all()


def _edit(packed_dir: Path, fn) -> None:
    """Change the manifest and re-seal it (as `colcomb seal` would): the loader's other checks run."""
    path = packed_dir / MANIFEST
    doc = json.loads(path.read_text())
    fn(doc)
    doc["digest"] = manifest_digest(doc)
    path.write_text(json.dumps(doc))


def _rehash(packed_dir: Path, name: str) -> None:
    _edit(packed_dir, lambda d: d["files"].__setitem__(name, _sha256((packed_dir / name).read_bytes())))


def test_changed_rom_image_fails_its_hash(packed_dir):
    hexfile = packed_dir / "fc.b0.cells.hex"
    lines = hexfile.read_text().splitlines()
    lines[0] = format(int(lines[0], 16) ^ 1, f"0{len(lines[0])}x")
    hexfile.write_text("\n".join(lines) + "\n")
    with pytest.raises(ColcombError, match=r"fc\.b0\.cells\.hex does not match its sha256"):
        load_manifest(packed_dir)


def test_changed_rom_image_with_forged_hash_disagrees_with_arrays(packed_dir):
    hexfile = packed_dir / "fc.b0.cells.hex"
    lines = hexfile.read_text().splitlines()
    lines[1] = format(int(lines[1], 16) ^ 0x3, f"0{len(lines[1])}x")
    hexfile.write_text("\n".join(lines) + "\n")
    _rehash(packed_dir, "fc.b0.cells.hex")
    with pytest.raises(ColcombError, match="disagrees with"):
        load_manifest(packed_dir)


def test_non_hex_rom_word(packed_dir):
    (packed_dir / "fc.b0.lanes.hex").write_text("zz\n")
    _rehash(packed_dir, "fc.b0.lanes.hex")
    with pytest.raises(ColcombError, match="not a hexadecimal word"):
        load_manifest(packed_dir)


def test_select_out_of_range_is_caught(packed_dir, layers):
    block = layers[1].blocks[0]
    selects = block.selects.copy()
    selects[0, 0] = 7  # alpha is 3
    np.save(packed_dir / "fc.b0.selects.npy", selects.astype(np.int32))
    _rehash(packed_dir, "fc.b0.selects.npy")
    with pytest.raises(ColcombError):
        load_manifest(packed_dir)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=99), "manifest version 99"),
        (lambda d: d.update(format="other"), "not a colcomb manifest"),
        (lambda d: d["layers"][0].pop("alpha"), "lacks the field 'alpha'"),
        (lambda d: d["layers"][0].update(alpha="4"), r"alpha must be int"),
        (lambda d: d["layers"][0].update(alpha=0), "alpha 0 must be at least 1"),
        (lambda d: d["layers"][0].update(shape=[20]), "shape must be"),
        (lambda d: d["layers"][1]["blocks"][0].update(rows=[0, 5]), "has shape"),
        (lambda d: d["layers"][1]["blocks"][0].update(weights="../x.npy"), "plain file name"),
        (lambda d: d["layers"][1]["blocks"][0].update(weights="nope.npy"), "no sha256"),
        (lambda d: d["layers"][1]["requant"].update(shift=-1), "shift -1"),
        (lambda d: d["layers"][1]["requant"].update(clamp=[5, 1]), "clamp"),
        (lambda d: d["layers"][1]["requant"].update(bias=[1]), "one per output row"),
        (lambda d: d["layers"][1].update(name="features.0"), "names repeat"),
        (lambda d: d["layers"][1]["blocks"][0]["groups"][0].append(10**6), "disagrees|outside"),
        (lambda d: d.update(layers=[]), "lists no layers"),
    ],
)
def test_malformed_manifest_gives_one_clear_error(packed_dir, edit, message):
    _edit(packed_dir, edit)
    with pytest.raises(ColcombError, match=message):
        load_manifest(packed_dir)


def test_missing_file_and_bad_json(packed_dir, tmp_path):
    (packed_dir / "fc.b0.weights.npy").unlink()
    with pytest.raises(ColcombError, match="cannot read"):
        load_manifest(packed_dir)
    (packed_dir / MANIFEST).write_text("{not json")
    with pytest.raises(ColcombError, match="not valid JSON"):
        load_manifest(packed_dir)
    with pytest.raises(ColcombError, match="no manifest"):
        load_manifest(tmp_path / "nowhere")


def test_writing_replaces_a_manifest_folder_but_not_other_folders(layers, packed_dir, tmp_path):
    write_manifest(layers[1:], packed_dir)
    assert [x.name for x in load_manifest(packed_dir).layers] == ["fc"]
    assert not (packed_dir / "features.0.b0.weights.npy").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(ColcombError, match="colcomb did not write it"):
        write_manifest(layers, other)
    assert sorted(p.name for p in other.iterdir()) == ["thesis.tex"]


def test_a_failing_write_leaves_nothing_behind(layers, tmp_path):
    import dataclasses

    bad = dataclasses.replace(layers[1], alpha=1)  # groups hold 3 columns: invalid
    with pytest.raises(ColcombError, match=r"must be 1\.\.alpha=1"):
        write_manifest([layers[0], bad], tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def _huge_alpha(d):
    layer = d["layers"][1]
    layer["alpha"] = 2**40
    for block in layer["blocks"]:
        block["rom"]["cell_word_bits"] = rom.cell_word_bits(layer["bits"], 2**40)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["layers"][1]["requant"]["bias"].__setitem__(0, 2**70), "64-bit range"),
        (lambda d: d["layers"][1]["requant"]["multiplier"].__setitem__(0, -(2**70)), "64-bit range"),
        (lambda d: d["layers"][1]["blocks"][0]["groups"][0].__setitem__(0, 2**70), "64-bit range"),
        (lambda d: d["layers"][1]["requant"]["bias"].__setitem__(0, 2**40), "does not fit the 32-bit"),
        (lambda d: d["layers"][0]["blocks"][0].update(scale=["x"] * 8), r"scale\[0\] must be a number"),
        (lambda d: d["layers"][0]["blocks"][0].update(scale=[{}] * 8), r"scale\[0\] must be a number"),
        (lambda d: d["layers"][0]["blocks"][0].update(scale=[True] * 8), r"scale\[0\] must be a number"),
        (lambda d: d["layers"][0]["blocks"][0].update(scale=[[1.0]] * 8), r"scale\[0\] must be a number"),
        (lambda d: d["layers"][1].update(gamma=10**400), "gamma .* too large"),
        (_huge_alpha, "at most 1024"),
        (lambda d: d.update(version=True), "manifest version True"),
    ],
)
def test_tampered_values_give_one_clear_error(packed_dir, edit, message):
    _edit(packed_dir, edit)
    with pytest.raises(ColcombError, match=message):
        load_manifest(packed_dir)


@pytest.mark.parametrize("word", ["0x1", "-1", "+1", "0_1"])
def test_rom_words_are_plain_hex_digits(word):
    with pytest.raises(ColcombError, match="not a hexadecimal word"):
        rom.parse_hex(f"{word}\n", 8, "x.hex")


def test_write_into_a_path_under_a_file_is_a_clear_error(layers, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ColcombError, match="cannot create"):
        write_manifest(layers, tmp_path / "afile" / "out")


def test_missing_manifest_names_the_folder_to_pack_into(tmp_path):
    with pytest.raises(ColcombError, match=r"--out \S*nowhere` first"):
        load_manifest(tmp_path / "nowhere")
