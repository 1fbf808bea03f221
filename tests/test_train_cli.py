"""`colcomb train / evaluate / sweep / demo` end to end on small data, and their error messages."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from colcomb.cli import main
from colcomb.core.errors import ColcombError

FAST = ["--epochs", "3", "--rounds", "1", "--retrain-epochs", "1", "--final-epochs", "0", "--lr", "0.01",
        "--sparsity", "0.5"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mlp"
    code = main(["train", "--dataset", "digits", "--model", "mlp", "--hidden", "24", "--alpha", "4",
                 "--gamma", "0.25", "--include-first", "--data-fraction", "0.5", *FAST, "--out", str(out)])
    assert code == 0
    return out


def _metric(text, label):
    m = re.search(rf"^{label} accuracy: (\d\.\d{{4}})$", text, re.M)
    assert m, text
    return float(m.group(1))


def test_train_writes_checkpoint_and_manifest(run_dir):
    from colcomb.packer.manifest import load_manifest

    assert (run_dir / "model.pt").is_file() and (run_dir / "report.json").is_file()
    m = load_manifest(run_dir / "packed")
    assert [layer.name for layer in m.layers] == ["fc1", "fc2"]
    assert m.meta["combined_layers"] == ["fc1", "fc2"]
    assert all(layer.alpha == 4 for layer in m.layers)
    assert m.layers[0].packed_columns < 64


def test_evaluate_prints_float_and_integer_accuracy(run_dir, capsys):
    from colcomb.packer.golden import run_network
    from colcomb.packer.manifest import load_manifest
    from colcomb.train.datasets import load_dataset
    from colcomb.train.integer import quantize_input

    code, out, _ = _run(capsys, "evaluate", run_dir)
    assert code == 0
    flt, intg = _metric(out, "float"), _metric(out, "integer")
    assert flt > 0.5 and intg > 0.5
    # the printed integer accuracy is the golden model's on the test split
    m = load_manifest(run_dir / "packed")
    d = load_dataset("digits")
    x = quantize_input(d.x_test, m.meta["input_scale"], 8).reshape(len(d.x_test), -1)
    acc = np.mean(run_network(m.layers, x).argmax(1) == d.y_test)
    assert intg == pytest.approx(acc, abs=5e-5)
    assert re.search(r"^fc1 +24x64 +yes +4 +64 +\d+", out, re.M)
    assert "combined layers: 88 columns ->" in out


def test_evaluate_rejects_a_checkpoint_of_the_wrong_shape(run_dir, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    ck = torch.load(bad / "model.pt", weights_only=True)
    ck["state_dict"]["fc1.weight"] = torch.zeros(5, 64)
    torch.save(ck, bad / "model.pt")
    code, _, err = _run(capsys, "evaluate", bad)
    assert code == 2
    assert "does not fit the mlp model" in err and "fc1.weight" in err


def test_evaluate_errors(tmp_path, capsys):
    code, _, err = _run(capsys, "evaluate", tmp_path / "missing")
    assert code == 2 and "no such folder" in err
    code, _, err = _run(capsys, "evaluate", tmp_path)
    assert code == 2 and "no checkpoint" in err
    (tmp_path / "model.pt").write_bytes(b"junk")
    code, _, err = _run(capsys, "evaluate", tmp_path)
    assert code == 2 and "not a readable colcomb checkpoint" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "imagenet", "--model", "mlp"], "unknown dataset 'imagenet'; choose one of mnist5k"),
        (["--dataset", "digits", "--model", "resnet"], "unknown model 'resnet'; choose one of lenet5, mlp"),
        (["--dataset", "mnist", "--model", "mlp"], "name it with --data-dir"),
        (["--dataset", "mnist", "--model", "mlp", "--data-dir", "/nonexistent/x"], "no such folder"),
        (["--dataset", "digits", "--model", "charlstm"], "charlstm model needs --dataset text"),
        (["--dataset", "text", "--model", "mlp"], "text dataset needs --model charlstm"),
        (["--dataset", "digits", "--model", "mlp", "--data-fraction", "0"], "--data-fraction"),
        (["--dataset", "digits", "--model", "mlp", "--layer-alpha", "conv9=2"], "conv9"),
    ],
)
def test_train_errors(tmp_path, capsys, args, message):
    code, _, err = _run(capsys, "train", *args, *FAST, "--out", tmp_path / "o")
    assert code == 2
    assert err.count("error:") == 1 and message in err, err


def test_cli_choice_lists_match_the_code():
    from colcomb.train import catalog, joint, models

    assert catalog.MODELS == models.MODELS and catalog.RAMPS == joint.RAMPS


def test_train_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    code, _, err = _run(capsys, "train", "--dataset", "digits", "--model", "mlp", *FAST, "--out", tmp_path)
    assert code == 2 and "not empty" in err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_train_lenet_per_feature_map_and_charlstm(tmp_path, capsys):
    code, out, _ = _run(capsys, "train", "--dataset", "digits", "--model", "lenet5", "--per-feature-map",
                        *FAST, "--out", tmp_path / "lenet")
    assert code == 0 and _metric(out, "integer") > 0.2
    code, out, _ = _run(capsys, "train", "--dataset", "text", "--model", "charlstm", "--hidden", "16",
                        *FAST, "--out", tmp_path / "lstm")
    assert code == 0
    flt = float(re.search(r"^float bits/char: (\S+)$", out, re.M).group(1))
    intg = float(re.search(r"^integer bits/char: (\S+)$", out, re.M).group(1))
    assert 0 < flt < 7 and abs(flt - intg) < 0.2


def test_sweep_writes_csv_and_png(tmp_path, capsys):
    code, out, _ = _run(capsys, "sweep", "--dataset", "digits", "--model", "mlp", "--hidden", "16",
                        "--gammas", "0,0.5", "--alphas", "4", "--epochs", "1", "--rounds", "1",
                        "--retrain-epochs", "1", "--final-epochs", "0", "--out", tmp_path)
    assert code == 0
    assert out.count("integer accuracy: ") == 2
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [r["mode"] for r in rows] == ["conflict-free", "conflict-permitted"]
    for r in rows:
        assert 0 <= float(r["integer_accuracy"]) <= 1
        assert int(r["packed_columns"]) <= int(r["columns"])
    # conflict-permitted combining packs at least as tightly as conflict-free
    assert int(rows[1]["packed_columns"]) <= int(rows[0]["packed_columns"])
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_checks_hardware_against_golden(tmp_path):
    from colcomb.demo import run_demo
    from colcomb.packer.golden import run_network
    from colcomb.packer.manifest import load_manifest

    seen = {}

    def fake_hw(folder, x):
        seen["x"] = x
        return {"outputs": run_network(load_manifest(folder).layers, x), "cycles": 10, "dense_cycles": 40}

    kw = dict(dataset="digits", hidden=(16,), epochs=1, rounds=1, images=5, log=lambda _m: None)
    report = run_demo(tmp_path / "a", hardware=fake_hw, **kw)
    assert report["hardware"]["matches_golden"] and report["hardware"]["images"] == 5
    assert seen["x"].shape == (5, 64) and seen["x"].dtype == np.int64

    def wrong_hw(folder, x):
        out = run_network(load_manifest(folder).layers, x)
        out[2, 0] += 1
        return {"outputs": out}

    with pytest.raises(ColcombError, match="differ from the golden model on 1 of 5"):
        run_demo(tmp_path / "b", hardware=wrong_hw, **kw)
    # a simulator that checks itself reports a verdict instead of outputs
    with pytest.raises(ColcombError, match="differ from the golden model on 5 of 5 images: boom"):
        run_demo(tmp_path / "c", hardware=lambda f, x: {"matches_golden": False, "summary": "boom"}, **kw)


def test_dense_layers_compute_the_same_network(run_dir):
    from colcomb.packer.golden import run_network
    from colcomb.packer.manifest import load_manifest
    from colcomb.packer.packed import dense_equivalent

    layers = load_manifest(run_dir / "packed").layers
    dense = [dense_equivalent(la) for la in layers]
    for d, p in zip(dense, layers, strict=True):
        d.validate()
        assert d.packed_columns == p.cols and np.array_equal(d.dense_int(), p.dense_int())
    x = np.random.default_rng(0).integers(-128, 128, (20, layers[0].cols))
    assert np.array_equal(run_network(dense, x), run_network(layers, x))
