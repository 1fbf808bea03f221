"""`colcomb study` (train/study.py, train/corpora.py): every arm on a tiny run, --text, refusals."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from colcomb.cli import main
from colcomb.core.errors import ColcombError
from colcomb.train.corpora import read_text, stdlib_corpus, stdlib_files
from colcomb.train.joint import bits_per_char
from colcomb.train.models import CharLSTM
from colcomb.train.study import heldout_bpc

PNG = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(path):
    return list(csv.DictReader(path.open()))


def test_quick_study_writes_every_arm(tmp_path, capsys):
    out = tmp_path / "study"
    code, log, err = _run(capsys, "study", "--quick", "--out", out)
    assert code == 0, err
    rows = _rows(out / "study.csv")
    arms = {(r["model"], r["arm"]) for r in rows}
    common = {"dense", "cc", "cpcc-0.25", "cpcc-0.5", "block-cc", "quant-layer", "quant-block", "quant-row"}
    assert arms == {("cnn", a) for a in common | {"fm-cc"}} | {("lstm", a) for a in common}
    for r in rows:
        cols, packed = int(r["columns"]), int(r["packed_columns"])
        assert 0 < packed <= cols
        value = float(r["value"])
        if r["model"] == "cnn":
            assert r["metric"] == "accuracy" and 0.0 <= value <= 1.0
        else:  # a character model: positive, and not far above a uniform guess over the vocabulary
            assert r["metric"] == "bpc" and 0.0 < value < math.log2(60) + 2
        if r["arm"] == "dense":
            assert packed == cols
        if r["arm"].startswith("cpcc") or r["arm"] == "fm-cc":
            assert packed < cols  # conflict-permitted arms combine something
    by = {(r["model"], r["arm"]): r for r in rows}
    assert int(by["cnn", "block-cc"]["columns"]) > int(by["cnn", "cc"]["columns"])  # columns x row blocks
    layers = _rows(out / "layers.csv")
    conv2 = {r["arm"]: r for r in layers if r["model"] == "cnn" and r["layer"] == "conv2"}
    assert int(conv2["fm-cc"]["packed_columns"]) < int(conv2["fm-cc"]["columns"]) == 150
    for name in ("study.png", "heatmap_cnn.png", "heatmap_lstm.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert "wrote" in log


def test_study_reads_text_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "zeta\n"]
    text = " ".join(rng.choice(words, 800))
    src = tmp_path / "corpus.txt"
    src.write_text(text, encoding="utf-8")
    code, log, err = _run(capsys, "study", "--quick", "--models", "lstm", "--text", src, "--out", tmp_path / "s")
    assert code == 0, err
    assert f"on corpus.txt: {int(len(text) * 0.9)} training characters" in log
    assert f"vocabulary {len(set(text))}" in log
    assert {r["model"] for r in _rows(tmp_path / "s" / "study.csv")} == {"lstm"}
    assert src.read_text(encoding="utf-8") == text  # the input is left alone


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.txt", "no such file"),
    (lambda p: p, "not a regular file"),
    (lambda p: (p / "bin.dat").write_bytes(b"ab\0cd" * 100) and p / "bin.dat", "NUL bytes"),
    (lambda p: (p / "latin.txt").write_bytes(b"caf\xe9 " * 100) and p / "latin.txt", "not UTF-8"),
    (lambda p: (p / "short.txt").write_text("tiny") and p / "short.txt", "too few"),
])
def test_bad_text_is_refused_before_any_work(tmp_path, capsys, make, message):
    src = make(tmp_path)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "study", "--quick", "--models", "lstm", "--text", src, "--out", out)
    assert code == 2 and message in err and err.startswith("colcomb study: error: --text")
    assert not out.exists()


def test_bad_options_are_refused(tmp_path, capsys):
    code, _, err = _run(capsys, "study", "--quick", "--models", "cnn,rnn", "--out", tmp_path / "o")
    assert code == 2 and "--models" in err
    code, _, err = _run(capsys, "study", "--quick", "--gammas", "0", "--out", tmp_path / "o")
    assert code == 2 and "(0, 1]" in err
    assert not (tmp_path / "o").exists()


def test_a_folder_colcomb_did_not_write_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    code, _, err = _run(capsys, "study", "--quick", "--models", "lstm", "--out", out)
    assert code == 2 and "colcomb study: error:" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep"


def test_heldout_bpc_matches_one_stream_reading():
    torch.manual_seed(0)
    model = CharLSTM(7, 8)
    ids = np.random.default_rng(1).integers(0, 7, 301)
    assert heldout_bpc(model, ids, streams=1) == pytest.approx(bits_per_char(model, ids), rel=1e-5)
    # several streams read from empty states: a different figure, of the same size
    assert abs(heldout_bpc(model, ids, streams=10) - bits_per_char(model, ids)) < 0.2


def test_stdlib_corpus_holds_out_every_tenth_module():
    files = stdlib_files()
    train, test = stdlib_corpus()
    assert len(train) + len(test) >= 1_000_000
    assert set(train + test) <= {chr(c) for c in range(32, 127)} | {"\n"}
    held = files[9].read_text(encoding="utf-8", errors="replace")[:2000].replace("\t", "    ")
    assert held in test and held not in train


def test_read_text_names_the_file(tmp_path):
    with pytest.raises(ColcombError, match=r"nothing\.txt"):
        read_text(tmp_path / "nothing.txt")


def test_block_gamma_gets_its_one_block_arm(tmp_path, capsys):
    out = tmp_path / "s"
    code, _, err = _run(capsys, "study", "--quick", "--models", "lstm", "--gammas", "0.25", "--gamma", "0.75",
                        "--out", out)
    assert code == 0, err
    arms = [r["arm"] for r in _rows(out / "study.csv")]
    assert arms[:4] == ["dense", "cc", "cpcc-0.25", "cpcc-0.75"] and "block-cc" in arms
    assert (out / "heatmap_lstm.png").read_bytes()[:8] == PNG


def test_lstm_budget_override_applies_to_every_lstm_arm_alike(tmp_path, capsys, monkeypatch):
    """--lstm-retrain-epochs / --lstm-final-epochs: every LSTM arm, dense included, trains the same
    epochs after pretraining (counted at the training call, not from the config); the CNN keeps the
    study-wide budget."""
    from colcomb.train import study

    calls: list[tuple[str, int, bool]] = []
    fit = study._Task.fit

    def counting(self, model, epochs, lr, masks=None, seed=0, offset=0):
        calls.append((self.kind, epochs, model is self.model))
        return fit(self, model, epochs, lr, masks=masks, seed=seed, offset=offset)

    monkeypatch.setattr(study._Task, "fit", counting)
    code, _, err = _run(capsys, "study", "--quick", "--gammas", "0.5", "--rounds", "2",
                        "--lstm-retrain-epochs", "2", "--lstm-final-epochs", "1", "--out", tmp_path / "s")
    assert code == 0, err
    for kind, per_arm in (("lstm", 2 * 2 + 1), ("cnn", 2 * 1 + 0)):
        arm_calls = [e for k, e, pretrain in calls if k == kind and not pretrain]
        # dense trains its budget in one call; each combining arm spreads the same over the rounds
        arms = len([r for r in _rows(tmp_path / "s" / "study.csv") if r["model"] == kind and not r["quant"]])
        assert sum(arm_calls) == per_arm * arms
        assert arm_calls[0] == per_arm  # the dense arm
