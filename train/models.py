"""Built-in models, each an ``nn.Sequential`` of modules the integer flow knows how to run.

- ``lenet5``: LeNet-5 style CNN: conv 5x5 (6) - BN - ReLU - max-pool 2 - conv 5x5 (16) - BN - ReLU
  - max-pool 2 - fc 120 - ReLU - fc 84 - ReLU - fc classes.
- ``mlp``: fully connected layers with ReLU (``hidden`` widths, default 300, 100).
- ``shiftcnn``: the paper's style of CNN: a 3x3 conv, then blocks of a :class:`Shift` (each channel
  moved by one of the nine 3x3 offsets, zero fill) followed by a 1x1 conv, BN and ReLU, with
  max-pooling; the 1x1 convs are plain matrix products, which is what column combining packs.
- ``charlstm``: character-level language model: one-hot characters - LSTM - fc to the vocabulary.

Layer names are the module names (``conv1``, ``fc1``, ...); the manifest uses the same names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.train.catalog import MODELS

__all__ = ["MODELS", "CharLSTM", "Shift", "build_model", "lenet5", "mlp", "shiftcnn"]


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


def build_model(name: str, input_shape: Sequence[int] | None, classes: int, **kwargs) -> nn.Module:
    """A built-in model for inputs of ``input_shape`` (C, H, W) and ``classes`` outputs.

    ``kwargs``: ``hidden`` (mlp widths, or the charlstm's units), ``widths`` (shiftcnn)."""
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
    return shiftcnn(input_shape, classes, kwargs.get("widths") or (32, 64, 64))
