"""Built-in models, each an ``nn.Sequential`` of modules the integer flow knows how to run.

- ``lenet5``: LeNet-5 style CNN: conv 5x5 (6) - BN - ReLU - max-pool 2 - conv 5x5 (16) - BN - ReLU
  - max-pool 2 - fc 120 - ReLU - fc 84 - ReLU - fc classes.
- ``mlp``: fully connected layers with ReLU (``hidden`` widths, default 300, 100).
- ``shiftcnn``: the paper's style of CNN: a 3x3 conv, then blocks of a :class:`Shift` (each channel
  moved by one of the nine 3x3 offsets, zero fill) followed by a 1x1 conv, BN and ReLU, with
  max-pooling; the 1x1 convs are plain matrix products, which is what column combining packs.
- ``charlstm``: character-level language model: one-hot characters - LSTM - fc to the vocabulary.
- ``vgg16``: VGG-16 in its CIFAR-10 form: 13 3x3 convs (64, 64, M, 128, 128, M, 256 x3, M, 512 x3,
  M, 512 x3, M), each with BN and ReLU, then one fc layer on the 512 features of a 32x32 image.
- ``resnet20``: ResNet-20 for CIFAR-10 (He et al. 2016): a 3x3 conv (16), three stages of three
  :class:`Residual` blocks (16, 32, 64 channels; stride 2 entering stages 2 and 3, where a 1x1
  conv + BN projects the shortcut), global average pooling, one fc layer.
- ``vgg16-shift`` / ``resnet20-shift``: the paper's shift-convolution forms: every 3x3 conv but the
  first becomes a :class:`Shift` followed by a 1x1 conv (the same stride), as in ``shiftcnn``.

``width`` scales the VGG / ResNet channel counts (the first stage's channels: 64 and 16 by
default); smaller widths train in seconds for tests and smoke runs.

Layer names are the module names (``conv1``, ``fc1``, ...); the manifest uses the same names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.train.catalog import MODELS

__all__ = [
    "MODELS", "CharLSTM", "Residual", "Shift", "build_model", "lenet5", "mlp", "resnet20", "shiftcnn", "vgg16",
]


class Shift(nn.Module):
    """Moves each channel by a fixed (dy, dx) in {-1, 0, 1}^2 with zero fill:
    ``out[c, y, x] = in[c, y + dy, x + dx]`` (0 outside the image). Channels are dealt to the nine
    offsets in turn. No weights: in hardware it is only an addressing pattern."""

    OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.shifts = [self.OFFSETS[c % 9] for c in range(channels)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = nn.functional.pad(x, (1, 1, 1, 1))
        out = torch.empty_like(x)
        for k, (dy, dx) in enumerate(self.OFFSETS):
            ch = list(range(k, self.channels, 9))
            if ch:
                out[:, ch] = p[:, ch, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class CharLSTM(nn.Module):
    """One-hot characters -> LSTM (``hidden`` units) -> linear layer to next-character logits."""

    def __init__(self, vocab: int, hidden: int = 128):
        super().__init__()
        self.vocab = vocab
        self.hidden = hidden
        self.lstm = nn.LSTM(vocab, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, idx: torch.Tensor, state=None):
        x = nn.functional.one_hot(idx, self.vocab).float()
        out, state = self.lstm(x, state)
        return self.fc(out), state


def _flat_size(features: nn.Module, input_shape: Sequence[int]) -> int:
    with torch.no_grad():
        out = features(torch.zeros(1, *input_shape))
    if out.numel() == 0:
        raise ColcombError(f"input shape {list(input_shape)} is too small for this model")
    return int(out.numel())


def lenet5(input_shape: Sequence[int], classes: int) -> nn.Sequential:
    c, h, _ = input_shape
    pad2 = 2 if h < 16 else 0  # keep 8x8 digits alive through the second conv
    features = [
        ("conv1", nn.Conv2d(c, 6, 5, padding=2, bias=False)),
        ("bn1", nn.BatchNorm2d(6)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5, padding=pad2, bias=False)),
        ("bn2", nn.BatchNorm2d(16)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
    ]
    flat = _flat_size(nn.Sequential(OrderedDict(features)), input_shape)
    head = [
        ("fc1", nn.Linear(flat, 120)),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)),
        ("relu4", nn.ReLU()),
        ("fc3", nn.Linear(84, classes)),
    ]
    return nn.Sequential(OrderedDict(features + head))


def mlp(input_shape: Sequence[int], classes: int, hidden: Sequence[int] = (300, 100)) -> nn.Sequential:
    size = 1
    for s in input_shape:
        size *= int(s)
    mods: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    prev = size
    for i, width in enumerate(hidden, 1):
        mods += [(f"fc{i}", nn.Linear(prev, int(width))), (f"relu{i}", nn.ReLU())]
        prev = int(width)
    mods.append((f"fc{len(hidden) + 1}", nn.Linear(prev, classes)))
    return nn.Sequential(OrderedDict(mods))


def shiftcnn(input_shape: Sequence[int], classes: int, widths: Sequence[int] = (32, 64, 64)) -> nn.Sequential:
    c = input_shape[0]
    w0 = int(widths[0])
    mods: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(c, w0, 3, padding=1, bias=False)),
        ("bn1", nn.BatchNorm2d(w0)),
        ("relu1", nn.ReLU()),
    ]
    prev = w0
    for i, width in enumerate(widths, 2):
        mods += [
            (f"shift{i}", Shift(prev)),
            (f"conv{i}", nn.Conv2d(prev, int(width), 1, bias=False)),
            (f"bn{i}", nn.BatchNorm2d(int(width))),
            (f"relu{i}", nn.ReLU()),
            (f"pool{i}", nn.MaxPool2d(2)),
        ]
        prev = int(width)
    mods.append(("flatten", nn.Flatten()))
    flat = _flat_size(nn.Sequential(OrderedDict(mods)), input_shape)
    mods.append(("fc", nn.Linear(flat, classes)))
    return nn.Sequential(OrderedDict(mods))


VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _conv_block(i: int, cin: int, cout: int, stride: int, shift: bool) -> list[tuple[str, nn.Module]]:
    """conv{i} (3x3, or shift{i} + 1x1 when ``shift``), bn{i}, relu{i}."""
    if shift:
        conv: list[tuple[str, nn.Module]] = [
            (f"shift{i}", Shift(cin)), (f"conv{i}", nn.Conv2d(cin, cout, 1, stride=stride, bias=False))]
    else:
        conv = [(f"conv{i}", nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False))]
    return [*conv, (f"bn{i}", nn.BatchNorm2d(cout)), (f"relu{i}", nn.ReLU())]


def _check_width(width: int) -> int:
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ColcombError(f"width must be a positive integer, got {width!r}")
    return width


def vgg16(input_shape: Sequence[int], classes: int, width: int = 64, shift: bool = False) -> nn.Sequential:
    c, h, w = input_shape
    if h < 32 or w < 32:
        raise ColcombError(f"vgg16 pools five times and needs images of at least 32x32, got {h}x{w}")
    scale = _check_width(width)
    mods: list[tuple[str, nn.Module]] = []
    prev, i, p = c, 0, 0
    for item in VGG16_PLAN:
        if item == "M":
            p += 1
            mods.append((f"pool{p}", nn.MaxPool2d(2)))
            continue
        i += 1
        out = max(1, int(item) * scale // 64)
        mods += _conv_block(i, prev, out, 1, shift and i > 1)
        prev = out
    mods.append(("flatten", nn.Flatten()))
    flat = _flat_size(nn.Sequential(OrderedDict(mods)), input_shape)
    mods.append(("fc", nn.Linear(flat, classes)))
    return nn.Sequential(OrderedDict(mods))


class Residual(nn.Module):
    """A basic residual block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, the
    shortcut the identity or, when the stride or width changes, ``proj_bn(proj(x))`` (1x1 conv).
    With ``shift`` each 3x3 conv is a :class:`Shift` then a 1x1 conv.

    :meth:`body` and :meth:`shortcut` name the children of each branch in order (the export walks
    them); the sum is followed by a ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, shift: bool = False):
        super().__init__()
        self.shift = shift
        for k, (a, b, s) in enumerate(((cin, cout, stride), (cout, cout, 1)), 1):
            if shift:
                self.add_module(f"shift{k}", Shift(a))
                self.add_module(f"conv{k}", nn.Conv2d(a, b, 1, stride=s, bias=False))
            else:
                self.add_module(f"conv{k}", nn.Conv2d(a, b, 3, stride=s, padding=1, bias=False))
            self.add_module(f"bn{k}", nn.BatchNorm2d(b))
            if k == 1:
                self.add_module("relu1", nn.ReLU())
        self.projects = stride != 1 or cin != cout
        if self.projects:
            self.proj = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.proj_bn = nn.BatchNorm2d(cout)

    def body(self) -> list[str]:
        names = ["shift1", "conv1", "bn1", "relu1", "shift2", "conv2", "bn2"]
        return [n for n in names if n in self._modules]

    def shortcut(self) -> list[str]:
        return ["proj", "proj_bn"] if self.projects else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for name in self.body():
            h = self._modules[name](h)
        s = x
        for name in self.shortcut():
            s = self._modules[name](s)
        return torch.relu(h + s)


def resnet20(input_shape: Sequence[int], classes: int, width: int = 16, shift: bool = False) -> nn.Sequential:
    c = input_shape[0]
    w0 = _check_width(width)
    mods: list[tuple[str, nn.Module]] = _conv_block(1, c, w0, 1, False)
    prev, b = w0, 0
    for stage, mult in enumerate((1, 2, 4)):
        for k in range(3):
            b += 1
            stride = 2 if stage > 0 and k == 0 else 1
            mods.append((f"block{b}", Residual(prev, w0 * mult, stride, shift)))
            prev = w0 * mult
    mods += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(prev, classes))]
    model = nn.Sequential(OrderedDict(mods))
    _flat_size(model[:-1], input_shape)
    return model


def build_model(name: str, input_shape: Sequence[int] | None, classes: int, **kwargs) -> nn.Module:
    """A built-in model for inputs of ``input_shape`` (C, H, W) and ``classes`` outputs.

    ``kwargs``: ``hidden`` (mlp widths, or the charlstm's units), ``widths`` (shiftcnn), ``width``
    (vgg16 / resnet20 first-stage channels)."""
    if name not in MODELS:
        raise ColcombError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if name == "charlstm":
        if input_shape is not None:
            raise ColcombError("the charlstm model reads text: use it with --dataset text")
        hidden = kwargs.get("hidden") or 128
        hidden = hidden[0] if isinstance(hidden, (list, tuple)) else hidden
        return CharLSTM(classes, int(hidden))
    if input_shape is None:
        raise ColcombError(f"the {name} model classifies images; the text dataset needs --model charlstm")
    if len(input_shape) != 3:
        raise ColcombError(f"image models need inputs (channels, height, width), got {list(input_shape)}")
    if name == "lenet5":
        return lenet5(input_shape, classes)
    if name == "mlp":
        return mlp(input_shape, classes, kwargs.get("hidden") or (300, 100))
    if name in ("vgg16", "vgg16-shift"):
        width = kwargs.get("width")
        return vgg16(input_shape, classes, 64 if width is None else width, shift=name.endswith("-shift"))
    if name in ("resnet20", "resnet20-shift"):
        width = kwargs.get("width")
        return resnet20(input_shape, classes, 16 if width is None else width, shift=name.endswith("-shift"))
    return shiftcnn(input_shape, classes, kwargs.get("widths") or (32, 64, 64))
