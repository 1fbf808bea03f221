"""Hostile and careless inputs: one clear error (or the exact result), and nothing lost.

Every test snapshots the files that exist before the command and checks afterwards that each one
is still there, byte for byte: colcomb removes only what it can prove it wrote.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colcomb.cli import main
from colcomb.core import outdir
from colcomb.core.errors import ColcombError
from colcomb.hdl.config import HardwareConfig
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import MANIFEST, load_manifest, name_problem, seal_manifest, write_manifest
from colcomb.packer.pack import PackOptions, pack_layer
from colcomb.packer.sources import layer_name, read_matrices

HYPO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` with its bytes (links and FIFOs by their kind)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            mode = os.lstat(p).st_mode
            out[rel] = p.read_bytes() if stat.S_ISREG(mode) else f"<{stat.S_IFMT(mode)}>".encode()
    return out


def unchanged(before: dict[str, bytes], root: Path) -> None:
    after = snapshot(root)
    for rel, data in before.items():
        assert rel in after, f"{rel} was removed"
        assert after[rel] == data, f"{rel} was changed"


def one_error(capsys, message: str) -> str:
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err, err
    assert message in err, err
    return err


@pytest.fixture
def weights(tmp_path, rng) -> Path:
    w = rng.standard_normal((8, 16)) * (rng.random((8, 16)) < 0.4)
    np.save(tmp_path / "w.npy", w)
    return tmp_path / "w.npy"


@pytest.fixture
def packed(tmp_path, weights) -> Path:
    assert main(["pack", str(weights), "--alpha", "4", "--out", str(tmp_path / "p")]) == 0
    return tmp_path / "p"


# -- data loss ------------------------------------------------------------------------------------

def test_a_folder_with_some_manifest_json_is_not_an_output(tmp_path, weights, capsys):
    app = tmp_path / "app"
    app.mkdir()
    (app / MANIFEST).write_text("{}")
    (app / "main.js").write_text("code")
    before = snapshot(tmp_path)
    assert main(["pack", str(weights), "--alpha", "4", "--out", str(app)]) == 2
    one_error(capsys, "colcomb did not write it")
    unchanged(before, tmp_path)
    assert snapshot(tmp_path) == before  # and nothing added: no staging folder, no lock file


def test_repacking_into_an_earlier_output_keeps_the_input(packed, tmp_path, weights, capsys):
    (packed / "w.npy").write_bytes(weights.read_bytes())
    before = snapshot(tmp_path)
    assert main(["pack", str(packed / "w.npy"), "--out", str(packed)]) == 2
    one_error(capsys, "holds the input")
    unchanged(before, tmp_path)


def test_an_earlier_output_with_a_foreign_file_is_refused(packed, tmp_path, weights, capsys):
    (packed / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert main(["pack", str(weights), "--out", str(packed)]) == 2
    one_error(capsys, "notes.txt")
    unchanged(before, tmp_path)


@pytest.mark.parametrize("command", ["generate", "report"])
def test_every_folder_command_refuses_a_foreign_folder(packed, tmp_path, command, capsys):
    foreign = tmp_path / "work"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    args = {"generate": ["generate", str(packed), "--rows", "4", "--cols", "4", "--no-lint"],
            "report": ["report", str(packed), "--no-synth"]}[command]
    before = snapshot(tmp_path)
    assert main([*args, "--out", str(foreign)]) == 2
    one_error(capsys, "colcomb did not write it")
    unchanged(before, tmp_path)


def test_generate_into_its_own_manifest_folder_is_refused(packed, tmp_path, capsys):
    before = snapshot(tmp_path)
    assert main(["generate", str(packed), "--rows", "4", "--cols", "4", "--no-lint", "--out", str(packed)]) == 2
    one_error(capsys, "holds the input")
    unchanged(before, tmp_path)


@pytest.mark.parametrize("name", ["x.npy", "p/y.npy", "y.txt"])
def test_golden_out_never_overwrites_an_input(packed, tmp_path, capsys, name):
    np.save(tmp_path / "x.npy", np.zeros((1, 16), np.int64))
    before = snapshot(tmp_path)
    assert main(["golden", str(packed), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / name)]) == 2
    one_error(capsys, "--out")
    unchanged(before, tmp_path)


def test_replacing_an_output_keeps_mode_leaves_no_strays_and_records_its_files(packed, tmp_path, weights):
    old = os.umask(0o027)
    try:
        assert main(["pack", str(weights), "--alpha", "2", "--out", str(packed)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(packed.stat().st_mode) == 0o750  # the umask's mode, not mkdtemp's 0700
    assert stat.S_IMODE((packed / MANIFEST).stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "w.npy"]  # no *.old.*, no lock file
    record = json.loads((packed / outdir.RECORD).read_text())
    assert sorted(record["files"]) == sorted(p.name for p in packed.iterdir() if p.name != outdir.RECORD)
    assert load_manifest(packed).layers[0].alpha == 2


def test_readers_never_see_the_folder_missing(packed, weights):
    layers = load_manifest(packed).layers
    if not outdir.exchange(packed, packed):  # exchanging a path with itself is a no-op where supported
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here; the fallback has a short gap")
    missing = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            if not (packed / MANIFEST).exists():
                missing.append(1)

    t = threading.Thread(target=watch)
    t.start()
    try:
        for _ in range(30):
            write_manifest(layers, packed)
    finally:
        done.set()
        t.join()
    assert not missing


@pytest.mark.parametrize("how", ["exchange fails", "no exchange, second rename fails"])
def test_a_failed_swap_leaves_the_old_output_and_no_strays(packed, tmp_path, monkeypatch, how):
    layers = load_manifest(packed).layers
    before = snapshot(tmp_path)
    if how == "exchange fails":
        def boom(a, b):
            raise OSError(5, "Input/output error")
        monkeypatch.setattr(outdir, "exchange", boom)
    else:
        monkeypatch.setattr(outdir, "exchange", lambda a, b: False)
        real = os.rename

        def rename(src, dst):
            if ".colcomb-new." in str(src):
                raise OSError(28, "No space left on device")
            return real(src, dst)
        monkeypatch.setattr(outdir.os, "rename", rename)
    with pytest.raises(ColcombError, match="cannot write"):
        write_manifest(layers, packed)
    assert snapshot(tmp_path) == before


def test_a_file_that_appears_during_the_swap_is_kept(packed, tmp_path, monkeypatch):
    layers = load_manifest(packed).layers
    real = outdir.exchange
    calls = []

    def late_writer(a, b):
        if not calls:
            (packed / "late.txt").write_text("written by someone else just now")
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(outdir, "exchange", late_writer)
    if not real(packed, packed):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    before = snapshot(tmp_path)
    with pytest.raises(ColcombError, match="files appeared"):
        write_manifest(layers[:1], packed, meta={"run": 2})
    assert snapshot(tmp_path) == {**before, "p/late.txt": b"written by someone else just now"}


def test_staging_left_by_a_killed_run_is_removed_by_the_next(packed, tmp_path, weights):
    stale = tmp_path / ".p.colcomb-new.abc123"
    stale.mkdir()
    (stale / "manifest.json").write_text("half written")
    assert main(["pack", str(weights), "--out", str(packed)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "w.npy"]


def test_the_rename_fallback_replaces_the_output(packed, tmp_path, monkeypatch):
    layers = load_manifest(packed).layers
    monkeypatch.setattr(outdir, "exchange", lambda a, b: False)
    write_manifest(layers[:1], packed, meta={"run": 2})
    assert load_manifest(packed).meta == {"run": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "w.npy"]


def test_a_second_writer_fails_loudly(packed, tmp_path, weights, capsys):
    before = snapshot(tmp_path)
    with outdir.OutputFolder(packed, command="test") as first:
        assert main(["pack", str(weights), "--out", str(packed)]) == 2
        one_error(capsys, "another colcomb is writing")
        (first.path / "a.txt").write_text("first")
        first.commit()
    assert sorted(p.name for p in packed.iterdir()) == [outdir.RECORD, "a.txt"]  # the first one won
    assert not any(p.name.endswith(".colcomb-lock") for p in tmp_path.iterdir())
    assert "w.npy" in before and snapshot(tmp_path)["w.npy"] == before["w.npy"]


# -- silently wrong results: the manifest digest ----------------------------------------------------

def _edit(folder: Path, fn) -> None:
    doc = json.loads((folder / MANIFEST).read_text())
    fn(doc)
    (folder / MANIFEST).write_text(json.dumps(doc, indent=1))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["layers"][0]["requant"]["bias"].__setitem__(0, d["layers"][0]["requant"]["bias"][0] + 1),
        lambda d: d["layers"][0]["requant"]["multiplier"].__setitem__(1, 1),
        lambda d: d["layers"][0]["requant"].__setitem__("shift", 3),
        lambda d: d["layers"][0]["requant"].__setitem__("clamp", [0, 5]),
        lambda d: d["layers"][0]["requant"].__setitem__("activation", "relu"),
        lambda d: d["layers"][0]["blocks"][0].__setitem__("scale", 1.0),
        lambda d: d["meta"].__setitem__("source", "elsewhere"),
        lambda d: d.pop("digest"),
    ],
)
def test_any_manifest_edit_is_refused_until_sealed(packed, tmp_path, capsys, edit):
    _edit(packed, edit)
    np.save(tmp_path / "x.npy", np.ones((1, 16), np.int64))
    before = snapshot(tmp_path)
    assert main(["golden", str(packed), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 2
    one_error(capsys, f"colcomb seal {packed}")
    unchanged(before, tmp_path)
    assert not (tmp_path / "y.npy").exists()


def test_seal_accepts_an_edit_on_purpose_and_refuses_an_invalid_one(packed, tmp_path, capsys):
    _edit(packed, lambda d: d["layers"][0]["requant"].__setitem__("clamp", [0, 5]))
    assert main(["seal", str(packed)]) == 0
    assert load_manifest(packed).layers[0].requant.clamp == (0, 5)
    _edit(packed, lambda d: d["layers"][0]["requant"].__setitem__("clamp", [5, 0]))
    before = snapshot(tmp_path)
    assert main(["seal", str(packed)]) == 2
    one_error(capsys, "clamp [5, 0]")
    unchanged(before, tmp_path)  # the refused seal left the file as it was


def _reference(folder: Path, x: np.ndarray) -> np.ndarray:
    """Plain numpy from the manifest's JSON and arrays (not the golden model): one layer."""
    doc = json.loads((folder / MANIFEST).read_text())
    lj = doc["layers"][0]
    rows, cols = lj["shape"]
    w = np.zeros((rows, cols), np.int64)
    for bj in lj["blocks"]:
        q = np.load(folder / bj["weights"]).astype(np.int64)
        s = np.load(folder / bj["selects"]).astype(np.int64)
        r0 = bj["rows"][0]
        for r in range(q.shape[0]):
            for g, group in enumerate(bj["groups"]):
                if q[r, g]:
                    w[r0 + r, group[s[r, g]]] = q[r, g]
    rq = lj["requant"]
    acc = [[sum(int(a) * int(b) for a, b in zip(w[r], xv, strict=True)) + rq["bias"][r] for r in range(rows)]
           for xv in x]
    shifts = np.broadcast_to(np.asarray(rq["shift"], dtype=object), (rows,))
    out = [[(v * m + ((1 << sh) >> 1)) >> sh for v, m, sh in zip(row, rq["multiplier"], shifts, strict=True)]
           for row in acc]
    lo, hi = rq["clamp"]
    return np.clip(np.array(out, dtype=object), lo, hi).astype(np.int64)


@HYPO
@given(data=st.data())
def test_random_requant_edits_are_refused_or_exact_once_sealed(packed, tmp_path, data):
    pristine = (packed / MANIFEST).read_bytes()
    try:
        doc = json.loads(pristine)
        rq = doc["layers"][0]["requant"]
        key = data.draw(st.sampled_from(["bias", "multiplier", "shift", "clamp"]))
        original = json.dumps(rq[key])
        if isinstance(rq[key], list):
            i = data.draw(st.integers(0, len(rq[key]) - 1))
            rq[key][i] = data.draw(st.integers(-(2**40), 2**40))
        else:
            rq[key] = data.draw(st.integers(-4, 70))
        (packed / MANIFEST).write_text(json.dumps(doc))  # other formatting, same content: still sealed
        if json.dumps(rq[key]) == original:
            load_manifest(packed)
            return
        with pytest.raises(ColcombError, match="colcomb seal"):
            load_manifest(packed)
        try:
            seal_manifest(packed)
        except ColcombError:
            assert (packed / MANIFEST).read_text() == json.dumps(doc)  # a refused seal changes nothing
            return
        x = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-128, 128, (3, 16))
        try:
            got = run_network(load_manifest(packed).layers, x)
        except ColcombError as exc:
            assert "accumulator" in str(exc)
            return
        assert np.array_equal(got, _reference(packed, x))
    finally:
        (packed / MANIFEST).write_bytes(pristine)


# -- pack writes only manifests its loader accepts --------------------------------------------------

def test_npz_keys_that_are_paths_become_loadable_names(tmp_path, rng, capsys):
    w = rng.standard_normal((4, 4))
    np.savez(tmp_path / "m.npz", **{"../x": w, ".hidden": w, "a/b": w})
    before = snapshot(tmp_path)
    assert main(["pack", str(tmp_path / "m.npz"), "--out", str(tmp_path / "o")]) == 0
    unchanged(before, tmp_path)
    names = [layer.name for layer in load_manifest(tmp_path / "o").layers]
    assert names == ["_x", "hidden", "a_b"]
    assert not (tmp_path.parent / "x.b0.weights.npy").exists()


def test_npz_keys_that_collide_once_cleaned_are_refused(tmp_path, rng, capsys):
    w = rng.standard_normal((4, 4))
    np.savez(tmp_path / "m.npz", **{"a/b": w, "a_b": w})
    before = snapshot(tmp_path)
    assert main(["pack", str(tmp_path / "m.npz"), "--out", str(tmp_path / "o")]) == 2
    one_error(capsys, "rename one of them")
    assert snapshot(tmp_path) == before


@HYPO
@given(name=st.text(min_size=0, max_size=12))
def test_any_layer_name_round_trips_or_is_refused_by_the_writer(tmp_path, name):
    cleaned = layer_name(name)
    assert name_problem(cleaned) is None  # what sources make is always writable
    layer = pack_layer(cleaned, np.eye(3), PackOptions(alpha=2))
    out = tmp_path / "rt"
    write_manifest([layer], out)
    assert [x.name for x in load_manifest(out).layers] == [cleaned]
    raw = pack_layer(name or "x", np.eye(3), PackOptions(alpha=2)) if name else None
    if raw is not None and name_problem(name) is not None:
        with pytest.raises(ColcombError, match="rename the layer"):
            write_manifest([raw], tmp_path / "refused")
        assert not (tmp_path / "refused").exists()


def test_widths_that_can_overflow_are_refused_by_pack(weights, tmp_path, capsys):
    before = snapshot(tmp_path)
    argv = ["pack", str(weights), "--bits", "32", "--data-bits", "32", "--acc-bits", "40", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    one_error(capsys, "accumulator could overflow")
    w = np.full((2, 4000), 1.0)
    np.save(tmp_path / "long.npy", w)
    before = snapshot(tmp_path)
    argv = ["pack", str(tmp_path / "long.npy"), "--bits", "16", "--acc-bits", "24", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    one_error(capsys, "beyond the 24-bit accumulator")
    assert snapshot(tmp_path) == before


def test_relu_with_a_negative_clamp_is_refused(packed, tmp_path):
    import dataclasses

    layer = load_manifest(packed).layers[0]
    bad = dataclasses.replace(layer, requant=dataclasses.replace(layer.requant, activation="relu", clamp=(-5, 127)))
    with pytest.raises(ColcombError, match="activation relu clamps at 0"):
        write_manifest([bad], tmp_path / "o")
    assert not (tmp_path / "o").exists()
    _edit(packed, lambda d: d["layers"][0]["requant"].update(activation="relu", clamp=[-5, 127]))
    with pytest.raises(ColcombError, match="activation relu clamps at 0"):
        seal_manifest(packed)


# -- file reads in the loader ------------------------------------------------------------------------

def _first_weights(folder: Path) -> Path:
    return folder / json.loads((folder / MANIFEST).read_text())["layers"][0]["blocks"][0]["weights"]


@pytest.mark.parametrize("kind", ["link out", "link to /dev/zero", "fifo", "folder", "oversized"])
def test_manifest_files_must_be_regular_files_inside_the_folder(packed, tmp_path, kind):
    target = _first_weights(packed)
    outside = tmp_path / "outside.npy"
    outside.write_bytes(target.read_bytes())  # the same bytes: the hash alone would accept them
    target.unlink()
    if kind == "link out":
        target.symlink_to(outside)
    elif kind == "link to /dev/zero":
        target.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.write_bytes(outside.read_bytes() + b"\0" * (1 << 20))
    before = snapshot(tmp_path)
    message = {"link out": "symbolic link", "link to /dev/zero": "symbolic link", "fifo": "not a regular file",
               "folder": "not a regular file", "oversized": "its manifest allows"}[kind]
    with pytest.raises(ColcombError, match=message):
        load_manifest(packed)
    unchanged(before, tmp_path)


def test_a_manifest_json_that_is_a_fifo_does_not_hang(tmp_path):
    (tmp_path / "m").mkdir()
    os.mkfifo(tmp_path / "m" / MANIFEST)
    with pytest.raises(ColcombError, match="not a regular file"):
        load_manifest(tmp_path / "m")


# -- load_manifest: every malformed input gives one ColcombError ---------------------------------------

def _sealed(doc: dict) -> str:
    from colcomb.packer.manifest import manifest_digest

    doc["digest"] = manifest_digest(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "colcomb-manifest", "version": 1, "x": ' + "9" * 5000 + "}", "JSON cannot carry"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ('{"a": "\\u0000"}', "not a colcomb manifest"),
        ("\xff\xfe", "not UTF-8|not valid JSON"),
    ],
)
def test_malformed_json(packed, text, message):
    if text.startswith("\xff"):
        (packed / MANIFEST).write_bytes(b"\xff\xfe{")
    else:
        (packed / MANIFEST).write_text(text)
    with pytest.raises(ColcombError, match=message):
        load_manifest(packed)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["layers"][0].update(name="a\x00b"), "control characters"),
        (lambda d: d["layers"][0].update(name="../up"), "must not hold"),
        (lambda d: d["layers"][0].update(shape=[8, 2**40]), "exceeds"),
        (lambda d: d["layers"][0]["blocks"][0].update(rows=[0, 2**40]), "outside the layer"),
        (lambda d: d["layers"][0]["blocks"][0].update(weights="a\x00b.npy"), "plain file name"),
        (lambda d: d["layers"][0].update(acc_bits=10**30), "acc_bits"),
    ],
)
def test_sealed_but_absurd_manifests_give_one_error(packed, edit, message):
    doc = json.loads((packed / MANIFEST).read_text())
    edit(doc)
    (packed / MANIFEST).write_text(_sealed(doc))
    with pytest.raises(ColcombError, match=message):
        load_manifest(packed)


@HYPO
@given(data=st.data())
def test_random_damage_to_manifest_json_gives_a_colcomb_error_or_the_same_manifest(packed, data):
    pristine = (packed / MANIFEST).read_bytes()
    try:
        raw = bytearray(pristine)
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        (packed / MANIFEST).write_bytes(bytes(raw))
        try:
            loaded = load_manifest(packed)
        except ColcombError:
            return
        (packed / MANIFEST).write_bytes(pristine)  # damage that loads changed nothing meaningful
        ref = load_manifest(packed)
        x = np.arange(-8, 8)[None, :]
        assert np.array_equal(run_network(loaded.layers, x), run_network(ref.layers, x))
    finally:
        (packed / MANIFEST).write_bytes(pristine)


# -- checkpoints ------------------------------------------------------------------------------------

def test_half_precision_checkpoints_are_converted(tmp_path, rng):
    import torch

    w = torch.tensor(rng.standard_normal((4, 6)), dtype=torch.float32)
    torch.save({"a.weight": w.to(torch.bfloat16), "b.weight": w.half(), "c.weight": w}, tmp_path / "m.pt")
    mats = {m.name: m.weights for m in read_matrices(tmp_path / "m.pt")}
    assert np.array_equal(mats["a"], w.to(torch.bfloat16).float().numpy().astype(np.float64))
    assert np.array_equal(mats["b"], w.half().float().numpy().astype(np.float64))
    assert mats["a"].dtype == np.float64


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: t.to(__import__("torch").float8_e4m3fn), "torch.float8_e4m3fn"),
        (lambda t: t.to_sparse(), "a sparse tensor"),
        (lambda t: t.to(__import__("torch").complex64), "complex"),
        (lambda t: __import__("torch").empty(t.shape, device="meta"), "a meta tensor"),
    ],
)
def test_unreadable_tensors_are_refused_by_name(tmp_path, rng, capsys, make, message):
    import torch

    t = torch.tensor(rng.standard_normal((4, 6)), dtype=torch.float32)
    torch.save({"fc.weight": make(t)}, tmp_path / "m.pt")
    before = snapshot(tmp_path)
    assert main(["pack", str(tmp_path / "m.pt"), "--out", str(tmp_path / "o")]) == 2
    one_error(capsys, f"fc.weight is {message}")
    assert snapshot(tmp_path) == before


# -- weights the quantizer cannot express --------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [(1e-320, "subnormal"), (1e30, "too large for the requantization")])
def test_extreme_weights_get_a_clear_error(tmp_path, capsys, value, message):
    w = np.zeros((4, 6))
    w[0, 1] = w[2, 3] = value
    np.save(tmp_path / "w.npy", w)
    before = snapshot(tmp_path)
    assert main(["pack", str(tmp_path / "w.npy"), "--out", str(tmp_path / "o")]) == 2
    one_error(capsys, message)
    assert snapshot(tmp_path) == before


# -- golden and simulate arguments ---------------------------------------------------------------

def test_golden_input_npz_is_a_clear_error(packed, tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 16), np.int64))
    before = snapshot(tmp_path)
    assert main(["golden", str(packed), "--input", str(tmp_path / "x.npz"), "--out", str(tmp_path / "y.npy")]) == 2
    one_error(capsys, "is an .npz archive (arrays: x)")
    assert snapshot(tmp_path) == before


def test_a_relative_build_dir_is_made_absolute_before_the_build(packed, tmp_path, monkeypatch):
    import cocotb_tools.runner

    from colcomb.sim import runner

    seen = {}

    class FakeRunner:
        def build(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(cocotb_tools.runner, "get_runner", lambda name: FakeRunner())
    monkeypatch.chdir(tmp_path)
    built = runner.build(load_manifest(packed).layers, HardwareConfig(rows=4, cols=4, batch=2), root="rel/cache")
    assert built.dir.is_absolute() and built.dir.is_relative_to(tmp_path / "rel" / "cache")
    assert Path(seen["build_dir"]).is_absolute()


def test_run_folder_keeps_an_interrupted_run_resumable_and_refuses_foreign_files(tmp_path):
    """train's in-place folder: only what the run names is recorded as colcomb's, so an
    interrupted run can be resumed or replaced, a killed write's leftovers are tidied, a second
    writer fails, and a user's file is never claimed or removed."""
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        with outdir.RunFolder(out, command="train") as folder:
            folder.record("model.pt")
            (out / "model.pt").write_bytes(b"epoch 1")
            folder.record("packed", folder=True)
            (out / "packed").mkdir()
            (out / "packed" / "w.npy").write_bytes(b"w")
            (out / ".model.pt.x1y2").write_bytes(b"half")  # an atomic write cut short by the kill
            (out / ".packed.colcomb-new.abc").mkdir()  # a staged packed/ not yet swapped in
            with pytest.raises(ColcombError, match="another colcomb"):
                with outdir.RunFolder(out, command="train", resume=True):
                    pass
            raise RuntimeError("killed")
    with outdir.RunFolder(out, command="train", resume=True) as folder:  # resume: all kept, leftovers gone
        assert (out / "model.pt").read_bytes() == b"epoch 1" and (out / "packed" / "w.npy").exists()
        assert not (out / ".model.pt.x1y2").exists() and not (out / ".packed.colcomb-new.abc").exists()
        (out / "notes.txt").write_text("mine")  # the user's file, mid-run: never claimed
        folder.record("report.json")
    for resume in (False, True):
        with pytest.raises(ColcombError, match="colcomb did not write"):
            with outdir.RunFolder(out, command="train", resume=resume):
                pass
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.pt").exists()
    (out / "notes.txt").unlink()
    with outdir.RunFolder(out, command="train"):  # a new run: colcomb's old files go
        assert not (out / "model.pt").exists() and not (out / "packed").exists()


def test_a_repeated_key_in_a_manifest_is_refused_not_read_as_the_last(tmp_path, weights, capsys):
    """A second 'alpha' inside a layer would pass a digest over the parsed document."""
    out = tmp_path / "p"
    assert main(["pack", str(weights), "--alpha", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    text = (out / MANIFEST).read_text()
    doc = json.loads(text)
    alpha = doc["layers"][0]["alpha"]
    edited = text.replace(f'"alpha": {alpha},', f'"alpha": {alpha}, "alpha": 1,', 1)
    assert edited != text
    (out / MANIFEST).write_text(edited)
    before = snapshot(tmp_path)
    with pytest.raises(ColcombError, match="'alpha' appears more than once"):
        load_manifest(out)
    assert main(["report", str(out), "--no-synth", "--out", str(tmp_path / "r")]) == 2
    one_error(capsys, "appears more than once")
    unchanged(before, tmp_path)


def test_a_repeated_key_in_a_hardware_config_or_design_record_is_refused(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"format": "colcomb-hardware-config/1", "rows": 4, "rows": 8}')
    with pytest.raises(ColcombError, match="'rows' appears more than once"):
        HardwareConfig.load(cfg)


@pytest.mark.parametrize("top", ["module", "wire", "logic", "always_ff", "1top", "tôp", "a-b", "x" * 200])
def test_a_top_name_no_verilog_tool_reads_is_refused_before_any_work(packed, tmp_path, top, capsys):
    before = snapshot(tmp_path)
    assert main(["generate", str(packed), "--rows", "4", "--cols", "4", "--top", top,
                 "--out", str(tmp_path / "g")]) == 2
    one_error(capsys, "top-level name")
    unchanged(before, tmp_path)
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["generate", "{m}", "--rows", "100000", "--cols", "4"], "--rows: rows must be at most 256"),
    (["generate", "{m}", "--batch", "1000000000"], "--batch: batch must be at most 4096"),
    (["report", "{m}", "--pass-vectors", "1000000", "--no-synth"], "--pass-vectors: pass_vectors must be at most"),
    (["generate", "{m}", "--beat", "1024"], "--beat: beat must be at most 64"),
    (["generate", "{m}", "--clock", "1e9"], "--clock: clock_mhz must be a frequency"),
])
def test_sizes_beyond_the_documented_limits_are_refused_before_any_work(packed, tmp_path, capsys, args, message):
    before = snapshot(tmp_path)
    argv = [a.replace("{m}", str(packed)) for a in args] + ["--out", str(tmp_path / "o")]
    assert main(argv) == 2
    one_error(capsys, message)
    unchanged(before, tmp_path)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "option"), [
    (["simulate", "{m}", "--vectors", "1000000000000"], "--vectors"),
    (["report", "{m}", "--vectors", "1000000000000", "--out", "{o}"], "--vectors"),
    (["study", "--threads", "100000", "--out", "{o}"], "--threads"),
    (["simulate", "{m}", "--seed", "-1"], "--seed"),
    (["generate", "{m}", "--tb-vectors", "1000000000", "--out", "{o}"], "--tb-vectors"),
])
def test_counts_out_of_range_are_refused_by_the_parser(packed, tmp_path, capsys, args, option):
    argv = [a.replace("{m}", str(packed)).replace("{o}", str(tmp_path / "o")) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "must be from" in err and "Traceback" not in err


def _bomb(path: Path, elements: int = 550_000_000) -> None:
    """A few MB of zip that would expand to elements x 8 bytes of float64 zeros."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z, \
            z.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (elements,)})
        chunk = bytes(1 << 24)
        for _ in range(elements * 8 // len(chunk)):
            f.write(chunk)


@pytest.mark.slow
def test_a_compressed_archive_that_would_expand_to_gigabytes_is_refused_from_its_header(tmp_path, capsys):
    import resource
    import time

    _bomb(tmp_path / "w.npz")
    before = snapshot(tmp_path)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    assert main(["pack", str(tmp_path / "w.npz"), "--out", str(tmp_path / "p")]) == 2
    seconds = time.perf_counter() - t0
    one_error(capsys, "550,000,000 elements) is larger than")
    assert seconds < 5 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 100 * 1024
    unchanged(before, tmp_path)


def test_an_array_header_beyond_the_limit_is_refused_before_its_data(tmp_path, packed, capsys):
    """A .npy header may claim any shape; the claim is checked before a byte of data is read."""
    with open(tmp_path / "x.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": (1 << 40, 16)})
    assert main(["golden", str(packed), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 2
    one_error(capsys, "is larger than the 268,435,456 elements colcomb reads")
    assert main(["pack", str(tmp_path / "x.npy"), "--out", str(tmp_path / "p")]) == 2
    one_error(capsys, "is larger than")


def test_a_fifo_as_input_is_refused_instead_of_blocking(tmp_path, packed, capsys):
    os.mkfifo(tmp_path / "x.npy")
    before = snapshot(tmp_path)
    assert main(["golden", str(packed), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 2
    one_error(capsys, "is a FIFO; name a regular file")
    assert main(["pack", str(tmp_path / "x.npy"), "--out", str(tmp_path / "p")]) == 2
    one_error(capsys, "is not a regular file")
    unchanged(before, tmp_path)


def _pack_checkpoint(tmp_path: Path, state: dict, capsys) -> tuple[int, str, str]:
    import torch

    torch.save(state, tmp_path / "m.pt")
    code = main(["pack", str(tmp_path / "m.pt"), "--alpha", "4", "--out", str(tmp_path / "p")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_torch_prune_checkpoint_packs_the_pruned_weight_with_its_bias(tmp_path, capsys):
    import torch
    from torch.nn.utils import prune

    torch.manual_seed(0)
    fc = torch.nn.Linear(12, 6)
    prune.l1_unstructured(fc, "weight", amount=0.6)
    state = fc.state_dict()
    assert {"weight_orig", "weight_mask", "bias"} <= set(state)
    code, _, err = _pack_checkpoint(tmp_path, {f"fc.{k}": v for k, v in state.items()}, capsys)
    assert code == 0 and "warning" not in err
    layers = load_manifest(tmp_path / "p").layers
    assert [layer.name for layer in layers] == ["fc"]
    expect = (fc.weight.detach().numpy() != 0).sum()  # the pruned weight, not weight_orig
    assert layers[0].stats["nonzero_before"] == expect == int(0.4 * 72 + 0.5)
    assert np.any(layers[0].requant.bias != 0)  # the bias came along


def test_a_parametrized_weight_is_refused_by_name(tmp_path, capsys):
    import torch

    fc = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(8, 4))
    code, _, err = _pack_checkpoint(tmp_path, {f"fc.{k}": v for k, v in fc.state_dict().items()}, capsys)
    assert code == 2 and "parametrizations" in err and "remove_parametrizations" in err


def test_batch_norm_tensors_are_named_and_1d_3d_convs_packed(tmp_path, capsys):
    import torch

    torch.manual_seed(0)
    state = {f"c1.{k}": v for k, v in torch.nn.Conv1d(3, 4, 5).state_dict().items()}
    state |= {f"c3.{k}": v for k, v in torch.nn.Conv3d(2, 4, 3).state_dict().items()}
    state |= {f"bn.{k}": v for k, v in torch.nn.BatchNorm2d(4).state_dict().items()}
    code, _, err = _pack_checkpoint(tmp_path, state, capsys)
    assert code == 0
    layers = {layer.name: layer for layer in load_manifest(tmp_path / "p").layers}
    assert layers["c1"].shape == (4, 15) and layers["c3"].shape == (4, 54)
    for key in ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        assert key in err
    assert "fold batch norm" in err


def test_a_non_string_checkpoint_key_is_refused(tmp_path, capsys):
    import torch

    code, _, err = _pack_checkpoint(tmp_path, {3: torch.ones(4, 4), "fc.weight": torch.ones(4, 4)}, capsys)
    assert code == 2 and "key 3 is not a string" in err and "Traceback" not in err


def test_one_flipped_byte_in_a_zip_checkpoint_fails_its_crc(tmp_path, capsys):
    import zipfile

    import torch

    torch.manual_seed(0)
    torch.save({"fc.weight": torch.randn(16, 16)}, tmp_path / "m.pt")
    with zipfile.ZipFile(tmp_path / "m.pt") as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    raw = bytearray((tmp_path / "m.pt").read_bytes())
    name_len, extra_len = np.frombuffer(bytes(raw[info.header_offset + 26 : info.header_offset + 30]), "<u2")
    data = info.header_offset + 30 + int(name_len) + int(extra_len)
    raw[data + info.file_size // 2] ^= 0x01
    (tmp_path / "m.pt").write_bytes(bytes(raw))
    before = snapshot(tmp_path)
    assert main(["pack", str(tmp_path / "m.pt"), "--out", str(tmp_path / "p")]) == 2
    one_error(capsys, "fails its CRC check")
    unchanged(before, tmp_path)


def test_a_cnn_run_the_chip_cannot_execute_is_refused_before_training(tmp_path, capsys):
    before = snapshot(tmp_path)
    assert main(["train", "--dataset", "digits", "--model", "lenet5", "--include-first",
                 "--out", str(tmp_path / "run")]) == 2
    one_error(capsys, "add --per-feature-map")
    unchanged(before, tmp_path)
    assert not (tmp_path / "run").exists()


def test_golden_and_simulate_read_a_float_file_the_same_way(tmp_path, rng, capsys):
    """Floats are quantized with the manifest's input scale by both (golden used to read integral
    floats as activations), saturation is said, and floats without a scale are refused by both."""
    from colcomb.labelled import input_vectors, simulation_inputs
    from colcomb.train.integer import quantize_input

    w = rng.standard_normal((4, 6)) * (rng.random((4, 6)) < 0.6)
    layer = pack_layer("fc", w, PackOptions(alpha=2))
    m = write_manifest([layer], tmp_path / "m", meta={"input_scale": 0.05, "data_bits": 8})
    x = np.array([[1.0, -2.0, 3.0, 0.0, 0.5, 9.0]])  # 9.0 / 0.05 = 180: saturates to 127
    np.save(tmp_path / "x.npy", x)
    expect = quantize_input(x, 0.05, 8)
    assert main(["golden", str(m), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 0
    assert "1 of 6 values" in capsys.readouterr().err
    assert np.array_equal(np.load(tmp_path / "y.npy"), run_network([layer], expect))
    assert np.array_equal(simulation_inputs(m, inputs=tmp_path / "x.npy").x, expect)
    assert np.array_equal(input_vectors(tmp_path / "x.npy", {"input_scale": 0.05, "data_bits": 8}), expect)
    plain = write_manifest([layer], tmp_path / "plain")
    assert main(["golden", str(plain), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "z.npy")]) == 2
    one_error(capsys, "no input_scale")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("config", {"alpha": "eight"}, "config field 'alpha'"),
    ("config", {"epochs": 2.5}, "config field 'epochs'"),
    ("progress", "done", "progress, groups or masks are malformed"),
    ("groups", {"fc1": [["a", 2, []]]}, "progress, groups or masks are malformed"),
])
def test_a_checkpoint_field_of_the_wrong_type_under_resume_is_refused(tmp_path, capsys, field, value, message):
    import torch

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--hidden", "16", "--epochs", "1", "--rounds", "1",
                 "--retrain-epochs", "0", "--final-epochs", "0", "--out", str(out)]) == 0
    ck = torch.load(out / "model.pt", weights_only=True)
    ck[field] = {**ck[field], **value} if field == "config" else value
    torch.save(ck, out / "model.pt")
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert main(["train", "--resume", "--out", str(out)]) == 2
    one_error(capsys, message)
    unchanged(before, tmp_path)


def test_a_crafted_idx_header_whose_product_overflows_is_refused():
    """Four dimensions of 2^32 - 1 multiply to more than int64 holds: the count is a Python integer."""
    from colcomb.train.datasets import read_idx

    header = bytes([0, 0, 8, 4]) + (0xFFFFFFFF).to_bytes(4, "big") * 4
    with pytest.raises(ColcombError, match="IDX header promises"):
        read_idx(header + bytes(16), "crafted")
    # 2^31 x 2^31 x 4 = 2^64, which int64 wraps to 0: an empty body "matched" and reshape crashed
    wrap = bytes([0, 0, 8, 3]) + (1 << 31).to_bytes(4, "big") * 2 + (4).to_bytes(4, "big")
    with pytest.raises(ColcombError, match="IDX header promises"):
        read_idx(wrap, "crafted")


def test_a_gzipped_data_file_that_expands_beyond_the_limit_is_refused(tmp_path, monkeypatch):
    import gzip

    from colcomb.train import datasets

    monkeypatch.setattr(datasets, "MAX_DATA_FILE", 1 << 20)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(4 << 20)))
    with pytest.raises(ColcombError, match="expands to more than"):
        datasets.load_mnist_folder(tmp_path)


def test_a_users_file_inside_a_runs_packed_folder_is_never_deleted(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--model", "mlp", "--hidden", "16", "--epochs", "1", "--rounds", "1",
            "--retrain-epochs", "0", "--final-epochs", "0", "--out", str(out)]
    assert main(argv) == 0
    (out / "packed" / "notes.txt").write_text("mine")
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert main(argv) == 2  # a new run into the folder: refused, naming the file
    one_error(capsys, "notes.txt")
    w = tmp_path / "w.npy"
    np.save(w, np.eye(4))
    before = snapshot(tmp_path)
    assert main(["pack", str(w), "--out", str(out / "packed")]) == 2
    one_error(capsys, "notes.txt")
    unchanged(before, tmp_path)
    assert (out / "packed" / "notes.txt").read_text() == "mine"


def test_a_new_run_keeps_the_previous_one_until_it_is_complete(tmp_path):
    """A replacing run that fails (or is killed) leaves the last complete run in .colcomb-previous;
    one that finishes removes it; a later new run still keeps the last complete one."""
    out = tmp_path / "run"
    with outdir.RunFolder(out, command="train") as folder:  # run A, complete
        folder.record("model.pt", "report.json")
        (out / "model.pt").write_bytes(b"A")
        (out / "report.json").write_text("A")
    with pytest.raises(RuntimeError, match="diverged"):
        with outdir.RunFolder(out, command="train") as folder:  # run B fails
            assert (out / outdir.PREVIOUS / "model.pt").read_bytes() == b"A"
            folder.record("model.pt")
            (out / "model.pt").write_bytes(b"B, epoch 1")
            raise RuntimeError("diverged")
    assert (out / outdir.PREVIOUS / "model.pt").read_bytes() == b"A"
    assert (out / outdir.PREVIOUS / "report.json").read_text() == "A"
    with outdir.RunFolder(out, command="train", resume=True):  # B is still resumable
        assert (out / "model.pt").read_bytes() == b"B, epoch 1"
    assert not (out / outdir.PREVIOUS).exists()  # B completed: A goes now
    with outdir.RunFolder(out, command="train") as folder:  # run C, killed (the process dies inside)
        folder.record("model.pt")
        (out / "model.pt").write_bytes(b"C")
        folder._release()  # as a kill -9 would: no exit handling at all
        folder._lock = None
    with pytest.raises(RuntimeError):
        with outdir.RunFolder(out, command="train") as folder:  # run D: B (complete) is kept, C's file goes
            assert (out / outdir.PREVIOUS / "model.pt").read_bytes() == b"B, epoch 1"
            assert not (out / "model.pt").exists()
            raise RuntimeError("stop")


def test_a_quick_study_of_a_large_text_reads_only_its_start(tmp_path, capsys):
    """--quick promises seconds: a 5 MB text (a 50 MB one took many minutes) is cut to its start."""
    rng = np.random.default_rng(0)
    words = np.array(["alpha", "beta", "gamma", "delta", "zeta\n"])
    (tmp_path / "big.txt").write_text(" ".join(rng.choice(words, 900_000)), encoding="utf-8")
    assert main(["study", "--quick", "--models", "lstm", "--text", str(tmp_path / "big.txt"),
                 "--out", str(tmp_path / "s")]) == 0
    assert "on big.txt: 22500 training characters" in capsys.readouterr().out
