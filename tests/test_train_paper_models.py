"""The paper's CIFAR-10 networks: VGG-16, ResNet-20 and their shift forms; batch-norm folding,
residual adds and global average pooling in the integer graph; CIFAR-10 normalization and
augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cifar_files import write_cifar
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.packer.golden import run_layer
from colcomb.train.datasets import load_dataset
from colcomb.train.export import build_graph, export_model, fold_batchnorm, walk
from colcomb.train.integer import global_avgpool, quantize_input, residual_add, run_graph
from colcomb.train.joint import augment_batch
from colcomb.train.models import Residual, Shift, build_model
from colcomb.train.prune import find_targets

PAPER = ("vgg16", "vgg16-shift", "resnet20", "resnet20-shift")


def _randomize_bn(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


@pytest.mark.parametrize("name", PAPER)
def test_paper_models_have_the_published_structure(name):
    model = build_model(name, (3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    shifts = [m for m in model.modules() if isinstance(m, Shift)]
    targets = [t.name for t in find_targets(model)]
    # every Conv2d and Linear is a combining target
    assert len(targets) == len(convs) + len(linears)
    if name.startswith("vgg16"):
        assert len(convs) == 13 and len(linears) == 1
        assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    else:
        blocks = [m for m in model.modules() if isinstance(m, Residual)]
        assert len(blocks) == 9 and sum(b.projects for b in blocks) == 2
        assert len(convs) == 1 + 18 + 2 and len(linears) == 1  # 20 weight layers + 2 projections
        assert [b.conv2.out_channels for b in blocks] == [16] * 3 + [32] * 3 + [64] * 3
    if name.endswith("-shift"):
        # every conv but the first is 1x1 behind a Shift (the projections are 1x1 anyway)
        assert convs[0].kernel_size == (3, 3)
        assert all(c.kernel_size == (1, 1) for c in convs[1:])
        assert len(shifts) == len(convs) - 1 - (2 if name.startswith("resnet") else 0)
    else:
        assert not shifts
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_width_scales_channels_and_vgg_refuses_small_images():
    m = build_model("resnet20", (3, 32, 32), 10, width=4)
    assert [c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)][:2] == [4, 4]
    assert m.fc.in_features == 16
    with pytest.raises(ColcombError, match="32x32"):
        build_model("vgg16", (1, 8, 8), 10)
    with pytest.raises(ColcombError, match="width"):
        build_model("resnet20", (3, 32, 32), 10, width=0)


@pytest.mark.parametrize("name", ["resnet20", "vgg16-shift"])
def test_batchnorm_folds_inside_residual_blocks(name):
    torch.manual_seed(0)
    model = build_model(name, (3, 32, 32), 10, width=4).eval()
    _randomize_bn(model)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_avgpool_is_the_rounded_mean():
    rng = np.random.default_rng(0)
    for hw in ((8, 8), (3, 3), (1, 5)):
        x = rng.integers(-128, 128, (4, 5, *hw))
        exact = x.mean(axis=(2, 3), keepdims=True)
        got = global_avgpool(x)
        assert np.all(np.abs(got - exact) <= 0.5)
        assert np.array_equal(got, np.floor(exact + 0.5).astype(np.int64))  # ties round up


def test_residual_add_semantics():
    a = np.array([[10, -3, 120, 5]])
    b = np.array([[4, 7, 127, -9]])
    # multipliers 3/4 and 1/2 at shift 2: (3a + 2b + 2) >> 2, clamped to [0, 127]
    got = residual_add(a, b, [3, 2], 2, [0, 127])
    want = np.clip(np.floor((3 * a + 2 * b + 2) / 4), 0, 127)
    assert np.array_equal(got, want) and got[0, 2] == 127 and got[0, 3] == 0
    with pytest.raises(ColcombError, match="shapes"):
        residual_add(a, b[:, :3], [1, 1], 0, [0, 127])


def _graph_reference(layers, graph, x):
    """Independent integer evaluation: each layer as a dense integer matrix with its requantization
    written out; direct loops for convolutions; the residual add and pooling from their formulas."""
    by = {layer.name: layer for layer in layers}

    def requant(layer, acc):
        rq = layer.requant
        y = (acc + rq.bias) * rq.multiplier
        y = np.floor_divide(y + ((1 << rq.shift) >> 1), 1 << rq.shift)
        return np.clip(y, *rq.clamp)

    def run(steps, h):
        for step in steps:
            op = step["op"]
            if op == "conv":
                layer = by[step["layer"]]
                kh, kw = step["kernel"]
                w = layer.dense_int().reshape(layer.rows, -1, kh, kw)
                (sh, sw), (ph, pw) = step["stride"], step["padding"]
                xp = np.pad(h, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
                oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
                acc = np.zeros((h.shape[0], layer.rows, oh, ow), np.int64)
                for i in range(oh):
                    for j in range(ow):
                        patch = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
                        acc[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
                h = requant(layer, acc.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            elif op == "linear":
                h = requant(by[step["layer"]], h @ by[step["layer"]].dense_int().T)
            elif op == "maxpool":
                h = nn.functional.max_pool2d(torch.from_numpy(h).double(), step["kernel"], step["stride"],
                                             step["padding"]).numpy().astype(np.int64)
            elif op == "avgpool":
                n = h.shape[2] * h.shape[3]
                h = np.floor(h.sum(axis=(2, 3), keepdims=True) / n + 0.5).astype(np.int64)
            elif op == "flatten":
                h = h.reshape(len(h), -1)
            elif op == "shift":
                h = Shift(h.shape[1])(torch.from_numpy(h).double()).numpy().astype(np.int64)
            elif op == "residual":
                a = run(step["body"], h)
                b = run(step["shortcut"], h) if step["shortcut"] else h
                ma, mb = step["multipliers"]
                y = np.floor((a * ma + b * mb) / 2.0 ** step["shift"] + 0.5)
                h = np.clip(y, *step["clamp"]).astype(np.int64)
        return h

    return run(graph, x)


@pytest.mark.parametrize("name", ["resnet20", "resnet20-shift"])
def test_resnet_integer_graph_is_exact_and_tracks_the_float_model(name, tmp_path, monkeypatch):
    import colcomb.packer.graph as graph_module
    from colcomb.packer.manifest import load_manifest, write_manifest

    torch.manual_seed(0)
    model = build_model(name, (3, 32, 32), 10, width=4).eval()
    _randomize_bn(model)
    x = (np.random.default_rng(0).random((24, 3, 32, 32)).astype(np.float32) - 0.5) * 3  # normalized-like
    layers, meta = export_model(model, x, input_shape=(3, 32, 32))
    write_manifest(layers, tmp_path / "m", meta)
    m = load_manifest(tmp_path / "m")
    graph = m.meta["graph"]
    ops = [s["op"] for s in graph]
    assert ops.count("residual") == 9 and "avgpool" in ops
    assert sum(1 for s in walk(graph) if s.get("layer", "").endswith(".proj")) == 2
    assert meta["input_scale"] == pytest.approx(np.abs(x).max() / 127)  # inputs beyond [-1, 1] keep their range
    xi = quantize_input(x, m.meta["input_scale"], 8)
    used = set()

    def golden(layer, v):
        used.add(layer.name)
        return run_layer(layer, v)

    monkeypatch.setattr(graph_module, "run_layer", golden)
    out = run_graph(m.layers, graph, xi, chunk=7)
    # every conv/linear ran through the golden model
    assert used == {layer.name for layer in m.layers}
    # bit-exact against an independent integer implementation
    assert np.array_equal(out, _graph_reference(m.layers, graph, xi))
    # and within quantization error of the float network
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    approx = out * m.meta["output_scale"]
    assert np.abs(approx - ref).max() < 0.08 * np.abs(ref).max()
    assert np.mean(approx.argmax(1) == ref.argmax(1)) >= 0.9


def test_cifar10_is_normalized_per_channel(tmp_path):
    write_cifar(tmp_path, train=60, test=20)
    d = load_dataset("cifar10", tmp_path)
    assert d.augment == "crop-flip" and d.normalization is not None
    np.testing.assert_allclose(d.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(d.x_train.std(axis=(0, 2, 3)), 1, atol=1e-3)
    mean, std = d.normalization
    raw = load_dataset("cifar10", tmp_path)  # the same files read again
    assert np.allclose(raw.x_test, d.x_test)
    from colcomb.train.datasets import load_cifar10_folder

    plain = load_cifar10_folder(tmp_path)
    want = (plain.x_test - np.array(mean, np.float32)[None, :, None, None]) / np.array(std, np.float32)[
        None, :, None, None]
    np.testing.assert_allclose(d.x_test, want, rtol=1e-5, atol=1e-5)


def test_augmentation_crops_padded_images_and_flips():
    x = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).reshape(2, 3, 6, 5) + 1
    seen_flip = seen_shift = False
    for seed in range(20):
        out = augment_batch(x, torch.Generator().manual_seed(seed), pad=2)
        assert out.shape == x.shape
        for n in range(2):
            xp = nn.functional.pad(x[n], (2, 2, 2, 2))
            # the output is some 6x5 window of the padded image, maybe mirrored left to right
            hits = [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)
                    if torch.equal(out[n], (xp[:, dy:dy + 6, dx:dx + 5].flip(2) if f else xp[:, dy:dy + 6, dx:dx + 5]))]
            assert hits, (seed, n)
            seen_flip |= any(f for _, _, f in hits)
            seen_shift |= any((dy, dx) != (2, 2) for dy, dx, _ in hits)
    assert seen_flip and seen_shift
    # the same generator state gives the same batch
    a = augment_batch(x, torch.Generator().manual_seed(3))
    b = augment_batch(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_paper_benchmark_counts_each_layers_output_positions():
    """benchmarks/paper.py feeds each layer its output positions per image to the cycle model."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("paper", Path(__file__).parents[1] / "benchmarks" / "paper.py")
    paper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper)
    for name in ("resnet20-shift", "vgg16"):
        model = build_model(name, (3, 32, 32), 10, width=2).eval()
        graph = build_graph(fold_batchnorm(model))
        seen = {}
        hooks = [m.register_forward_hook(lambda _m, _i, y, n=n, s=seen: s.__setitem__(n, y[0, 0].numel()))
                 for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
        for h in hooks:
            h.remove()
        assert paper.layer_positions(graph, [3, 32, 32]) == seen
