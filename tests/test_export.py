"""Export: BN folding, quantization, manifest round trip, integer evaluation (packer/export.py,
packer/integer.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import run_network
from colcomb.packer.manifest import load_manifest, write_manifest
from colcomb.train.export import build_graph, export_model, fold_batchnorm
from colcomb.train.integer import im2col, lstm_bits_per_char, maxpool, quantize_input, run_graph, shift
from colcomb.train.joint import JointOptions, Schedule, bits_per_char, fit_classifier, joint_optimize
from colcomb.train.models import CharLSTM, Shift


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        Shift(4), nn.Conv2d(4, 6, 1, bias=True), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 5, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(5 * 2 * 2, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3),
    )


def test_batchnorm_folding_is_equivalent():
    model = _cnn().eval()
    _randomize_bn(model)
    x = torch.rand(5, 2, 8, 8)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    # the original is untouched
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_folding_refuses_a_lone_batchnorm():
    with pytest.raises(ColcombError, match="batch norm"):
        fold_batchnorm(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))


def test_graph_rejects_unknown_modules():
    with pytest.raises(ColcombError, match="Sigmoid"):
        build_graph(nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()))


def test_im2col_matches_torch_unfold():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 5, (2, 3, 7, 6))
    cols, oh, ow = im2col(x, (3, 2), (2, 1), (1, 0))
    ref = nn.functional.unfold(torch.from_numpy(x).double(), (3, 2), padding=(1, 0), stride=(2, 1))
    ref = ref.transpose(1, 2).reshape(-1, 3 * 3 * 2).numpy()
    assert (oh, ow) == (4, 5)
    assert np.array_equal(cols, ref.astype(np.int64))


def test_maxpool_and_shift_match_torch():
    rng = np.random.default_rng(1)
    x = rng.integers(-100, 100, (2, 9, 6, 6))
    ref = nn.functional.max_pool2d(torch.from_numpy(x).double(), 3, 2, 1).numpy()
    assert np.array_equal(maxpool(x, (3, 3), (2, 2), (1, 1)), ref)
    sh = Shift(9)
    assert np.array_equal(shift(x, sh.shifts), sh(torch.from_numpy(x).double()).numpy())


def _int_reference(layers, graph, x):
    """Independent integer evaluation: direct convolution loops on the dense integer matrices and
    the requantization formula written out (no golden model, no im2col)."""
    by = {layer.name: layer for layer in layers}

    def requant(layer, acc):
        rq = layer.requant
        y = (acc + rq.bias) * rq.multiplier
        y = np.floor_divide(y + ((1 << rq.shift) >> 1), 1 << rq.shift)
        return np.clip(y, *rq.clamp)

    h = x.astype(np.int64)
    for step in graph:
        if step["op"] == "conv":
            layer = by[step["layer"]]
            kh, kw = step["kernel"]
            w = layer.dense_int().reshape(layer.rows, -1, kh, kw)
            (sh, sw), (ph, pw) = step["stride"], step["padding"]
            xp = np.pad(h, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            oh = (xp.shape[2] - kh) // sh + 1
            ow = (xp.shape[3] - kw) // sw + 1
            acc = np.zeros((h.shape[0], layer.rows, oh, ow), np.int64)
            for i in range(oh):
                for j in range(ow):
                    patch = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    acc[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
            h = requant(layer, acc.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        elif step["op"] == "linear":
            layer = by[step["layer"]]
            h = requant(layer, h @ layer.dense_int().T)
        elif step["op"] == "maxpool":
            h = nn.functional.max_pool2d(torch.from_numpy(h).double(), step["kernel"], step["stride"],
                                         step["padding"]).numpy().astype(np.int64)
        elif step["op"] == "flatten":
            h = h.reshape(len(h), -1)
        elif step["op"] == "shift":
            h = Shift(h.shape[1])(torch.from_numpy(h).double()).numpy().astype(np.int64)
    return h


def _trained_cnn(tmp_path):
    model = _cnn()
    rng = np.random.default_rng(0)
    x = rng.random((64, 2, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    fit_classifier(model, x, y, epochs=1, lr=1e-2, batch_size=16)
    opts = JointOptions(alpha=4, gamma=0.25, schedule=Schedule(rounds=1, sparsity=0.5, retrain_epochs=1,
                                                               final_epochs=0))
    res = joint_optimize(model, opts,
                         lambda e, m: fit_classifier(model, x, y, e, lr=1e-2, batch_size=16, masks=m),
                         log=lambda _m: None)
    layers, meta = export_model(model, x, res.groups, res.alphas, 0.25, input_shape=(2, 8, 8))
    write_manifest(layers, tmp_path / "packed", meta)
    return model, x, res, load_manifest(tmp_path / "packed")


def test_export_roundtrip_integer_eval_matches_independent_reference(tmp_path):
    _, x, res, manifest = _trained_cnn(tmp_path)
    meta = manifest.meta
    assert [s["op"] for s in meta["graph"]] == [
        "conv", "maxpool", "shift", "conv", "conv", "flatten", "linear", "linear"]
    assert [s.get("activation") for s in meta["graph"] if "layer" in s] == ["relu"] * 4 + ["none"]
    # combined layers keep their training groups; the first layer is packed uncombined
    by = {layer.name: layer for layer in manifest.layers}
    assert by["0"].alpha == 1
    for name, blocks in res.groups.items():
        assert [list(map(list, b.groups)) for b in by[name].blocks] == [g for _, _, g in blocks]
    xi = quantize_input(x[:10], meta["input_scale"], meta["data_bits"])
    out = run_graph(manifest.layers, meta["graph"], xi, chunk=3)
    assert np.array_equal(out, _int_reference(manifest.layers, meta["graph"], xi))


def test_integer_outputs_track_the_float_model(tmp_path):
    model, x, _, manifest = _trained_cnn(tmp_path)
    meta = manifest.meta
    out = run_graph(manifest.layers, meta["graph"], quantize_input(x, meta["input_scale"], 8))
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    approx = out * meta["output_scale"]
    span = np.abs(ref).max()
    assert np.abs(approx - ref).max() < 0.1 * span
    assert np.mean(approx.argmax(1) == ref.argmax(1)) >= 0.9


def test_mlp_integer_eval_is_exactly_the_golden_network(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))
    x = np.random.default_rng(2).random((30, 1, 4, 4)).astype(np.float32) * 2 - 1
    layers, meta = export_model(model, x)
    write_manifest(layers, tmp_path / "m", meta)
    m = load_manifest(tmp_path / "m")
    xi = quantize_input(x, meta["input_scale"], 8)
    assert xi.min() < 0  # signed inputs survive
    out = run_graph(m.layers, m.meta["graph"], xi)
    assert np.array_equal(out, run_network(m.layers, xi.reshape(30, -1)))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(out * meta["output_scale"] - ref).max() < 0.05 * np.abs(ref).max() + 0.02


def test_lstm_integer_bits_per_char_tracks_float():
    torch.manual_seed(0)
    model = CharLSTM(6, 8).eval()
    ids = np.random.default_rng(0).integers(0, 6, 80)
    layers, meta = export_model(model, ids)
    assert [layer.name for layer in layers] == ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc"]
    flt = bits_per_char(model, ids)
    intg = lstm_bits_per_char(layers, meta["graph"], ids)
    assert abs(flt - intg) < 0.05 * flt
