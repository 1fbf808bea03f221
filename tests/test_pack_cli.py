"""`colcomb pack` and `colcomb golden` end to end on the three input kinds, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colcomb.cli import main
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import load_manifest
from colcomb.packer.sources import read_matrices


def _sparse(rng, shape, density):
    return rng.standard_normal(shape) * (rng.random(shape) < density)


def test_pack_npy(tmp_path, rng, capsys):
    w = _sparse(rng, (32, 64), 0.15)
    np.save(tmp_path / "fc.npy", w)
    assert main(["pack", str(tmp_path / "fc.npy"), "--alpha", "8", "--gamma", "0.25",
                 "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "util before" in out and "fc" in out
    layer = load_manifest(tmp_path / "out").layers[0]
    assert layer.shape == (32, 64) and layer.alpha == 8
    assert layer.packed_columns < int((w != 0).any(axis=0).sum())
    # every kept weight is an original weight within half a step
    kept = layer.dense_int() != 0
    step = np.broadcast_to(layer.row_scales()[:, None], w.shape)
    assert (np.abs(layer.dense() - w)[kept] <= step[kept] / 2 + 1e-12).all()


def test_pack_npz_with_bias_and_golden_command(tmp_path, rng):
    w1, w2 = _sparse(rng, (16, 40), 0.3), _sparse(rng, (10, 16), 0.4)
    np.savez(tmp_path / "net.npz", fc1=w1, fc2=w2, **{"fc1.bias": rng.standard_normal(16) * 0.1})
    assert main(["pack", str(tmp_path / "net.npz"), "--alpha", "4", "--row-block", "8",
                 "--section", "16", "--quant", "block", "--activation", "relu",
                 "--out", str(tmp_path / "out")]) == 0
    m = load_manifest(tmp_path / "out")
    assert [x.name for x in m.layers] == ["fc1", "fc2"]
    assert m.layers[0].requant.bias.any() and not m.layers[1].requant.bias.any()
    x = rng.integers(-128, 128, (7, 40))
    np.save(tmp_path / "x.npy", x)
    assert main(["golden", str(tmp_path / "out"), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), run_network(m.layers, x))


def test_pack_torch_checkpoint_flattens_convs(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10),
    )
    torch.save(model.state_dict(), tmp_path / "m.pt")
    mats = read_matrices(tmp_path / "m.pt")
    assert [(m.name, m.weights.shape) for m in mats] == [("0", (8, 27)), ("4", (10, 128))]
    assert np.allclose(mats[0].weights, model[0].weight.detach().numpy().reshape(8, 27))
    assert mats[0].kernel == (8, 3, 3, 3)
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "ck.pth")
    assert main(["pack", str(tmp_path / "ck.pth"), "--alpha", "2", "--out", str(tmp_path / "o")]) == 0
    assert [x.shape for x in load_manifest(tmp_path / "o").layers] == [(8, 27), (10, 128)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.save(p / "in.npy", np.array([[1.0, np.nan]])), "NaN"),
        (lambda p: np.save(p / "in.npy", np.ones(5)), "must be 2-D"),
        (lambda p: (p / "in.npy").write_bytes(b"garbage"), "cannot read"),
        (lambda p: np.save(p / "in.npy", np.array([[np.inf]])), "infinite"),
    ],
)
def test_bad_input_gets_one_clear_error_and_no_output(tmp_path, capsys, make, message):
    make(tmp_path)
    assert main(["pack", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_unknown_file_type_and_missing_file(tmp_path, capsys):
    (tmp_path / "w.csv").write_text("1,2")
    assert main(["pack", str(tmp_path / "w.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "unknown file type .csv" in capsys.readouterr().err
    assert main(["pack", str(tmp_path / "none.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_alpha_below_one_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pack", "x.npy", "--alpha", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "--alpha: 0 must be from 1 to" in capsys.readouterr().err


def test_golden_rejects_a_wrong_input_shape(tmp_path, rng, capsys):
    np.save(tmp_path / "w.npy", _sparse(rng, (4, 6), 0.5))
    main(["pack", str(tmp_path / "w.npy"), "--out", str(tmp_path / "o")])
    np.save(tmp_path / "x.npy", np.zeros((2, 5), np.int64))
    assert main(["golden", str(tmp_path / "o"), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 2
    assert "vectors of 6 inputs" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()


def test_checkpoint_without_weights(tmp_path, capsys):
    torch.save({"step": torch.tensor(3)}, tmp_path / "empty.pt")
    assert main(["pack", str(tmp_path / "empty.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "no Conv2d, Linear or LSTM weight" in capsys.readouterr().err


def test_lstm_matrices_are_read_with_their_biases(tmp_path):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 4)
    torch.save(lstm.state_dict(), tmp_path / "lstm.pt")
    mats = {m.name: m for m in read_matrices(tmp_path / "lstm.pt")}
    assert sorted(mats) == ["weight_hh_l0", "weight_ih_l0"]
    assert mats["weight_ih_l0"].weights.shape == (16, 5)
    assert np.allclose(mats["weight_hh_l0"].bias, lstm.bias_hh_l0.detach().numpy())


def test_golden_chains_the_layers_named(tmp_path, rng, capsys):
    """`golden --layer A --layer B` runs A then B on A's outputs (as simulate and generate
    chain them); one --layer runs that layer alone; layers that do not chain are refused."""
    npz = {"a": rng.standard_normal((6, 9)) * (rng.random((6, 9)) < 0.5),
           "b": rng.standard_normal((4, 6)) * (rng.random((4, 6)) < 0.5),
           "c": rng.standard_normal((5, 7)) * (rng.random((5, 7)) < 0.5)}
    np.savez(tmp_path / "net.npz", **npz)
    assert main(["pack", str(tmp_path / "net.npz"), "--alpha", "2", "--activation", "relu",
                 "--out", str(tmp_path / "net")]) == 0
    layers = {x.name: x for x in load_manifest(tmp_path / "net").layers}
    x = rng.integers(-128, 128, (5, 9))
    np.save(tmp_path / "x.npy", x)
    assert main(["golden", str(tmp_path / "net"), "--input", str(tmp_path / "x.npy"),
                 "--layer", "a", "--layer", "b", "--out", str(tmp_path / "ab.npy")]) == 0
    hidden = run_network([layers["a"]], x)
    assert np.array_equal(np.load(tmp_path / "ab.npy"), run_network([layers["b"]], hidden))
    assert "a .. b: 5 vector(s)" in capsys.readouterr().out
    np.save(tmp_path / "x7.npy", x[:, :7])
    assert main(["golden", str(tmp_path / "net"), "--input", str(tmp_path / "x7.npy"),
                 "--layer", "c", "--out", str(tmp_path / "c.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "c.npy"), run_network([layers["c"]], x[:, :7]))
    assert main(["golden", str(tmp_path / "net"), "--input", str(tmp_path / "x.npy"),
                 "--layer", "a", "--layer", "c", "--out", str(tmp_path / "ac.npy")]) == 2
    assert "layer 'c' takes 7 inputs but 'a' gives 6 outputs" in capsys.readouterr().err
