"""Export a trained (pruned, combined) torch model to packed layers and a manifest.

Steps: fold batch norm into the conv/linear before it; walk the model into a *graph* of host
steps (conv, linear, max-pool, flatten, shift, lstm) that :mod:`colcomb.train.integer` runs;
calibrate activation scales on sample inputs; quantize weights per row; build one
:class:`~colcomb.packer.packed.PackedLayer` per conv/linear (per LSTM weight matrix) whose
:class:`~colcomb.packer.packed.Requant` maps accumulators to the next layer's integers.

Scales (symmetric, zero point 0): an activation integer ``a`` means ``a * s``. The network input
scale is ``1 / qmax`` (inputs in [0, 1] or [-1, 1]); every layer's output scale ``s_out`` comes
from calibration (the ``percentile`` of |activation|, divided by qmax) and is the next layer's
input scale ``s_in``. Row r's requantization multiplies by ``s_w[r] * s_in / s_out`` and its
bias enters in accumulator units ``b[r] / (s_w[r] * s_in)``. ReLU after a layer becomes the
layer's clamp (ReLU commutes with max-pooling, flattening and shifting).

Conv layers run as matrix products on im2col patch vectors (columns in torch's
(channel, kh, kw) order); the graph in the manifest's ``meta`` holds kernel, stride, padding,
pooling and the scales the host needs.

The input scale is ``max(1, largest |calibration input|) / qmax``: inputs in [0, 1] or [-1, 1]
keep ``1 / qmax``; normalized inputs (CIFAR-10's per-channel mean and deviation) get the range
they need.

Residual blocks (:class:`~colcomb.train.models.Residual`) become one ``residual`` step holding two
sub-graphs, ``body`` and ``shortcut`` (empty for the identity), and the integer add that joins
them: with ``a`` the body's output at scale ``s_a``, ``b`` the shortcut's at ``s_b`` and the block
output calibrated to ``s_out``, ``out = clamp((a * m_a + b * m_b + 2^(shift-1)) >> shift)``
(round half up, as the golden model's requantization), ``m_a / 2^shift ~ s_a / s_out`` and
``m_b / 2^shift ~ s_b / s_out`` unsigned 16-bit, the clamp the ReLU's ``[0, qmax]``. Global average
pooling (``AdaptiveAvgPool2d(1)``) is an ``avgpool`` step: the rounded mean
``floor((sum + n // 2) / n)`` over the ``n`` positions of each channel (round half up), its scale
unchanged.

LSTM (``CharLSTM``): ``weight_ih`` and ``weight_hh`` become two layers with no clamp and one
shared output scale (the gate pre-activations); the host adds their integer outputs and applies
sigmoid/tanh in floating point, then quantizes h at scale 1/qmax for the next step.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.packer.combine import combine
from colcomb.packer.packed import PackedBlock, PackedLayer, activation_clamp
from colcomb.packer.quantize import fixed_point_shared, make_requant, quantize_values, row_scales
from colcomb.train.prune import Groups

GRAPH_VERSION = 1


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


# -- batch norm folding --------------------------------------------------------------------------

def _fold_pair(layer: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn`` (eval statistics) into ``layer`` in place, giving it a bias."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gain = bn.weight / std if bn.affine else 1.0 / std
    shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * gain
    w = layer.weight.data
    shape = (-1,) + (1,) * (w.dim() - 1)
    old_bias = layer.bias.data if layer.bias is not None else torch.zeros(w.shape[0])
    new_w = w * gain.reshape(shape)
    new_b = old_bias * gain + shift
    layer.weight = nn.Parameter(new_w.detach().clone())
    layer.bias = nn.Parameter(new_b.detach().clone())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of a model with every BatchNorm folded into the Conv2d/Linear registered right before
    it in the same container (and replaced by Identity), in ``nn.Sequential`` models and the
    residual blocks inside them. A CharLSTM is returned as a copy unchanged."""
    from colcomb.train.models import CharLSTM

    out = copy.deepcopy(model).eval()
    if isinstance(out, CharLSTM):
        return out
    _fold_children(out)
    return out


def _fold_children(container: nn.Module) -> None:
    names = list(container._modules)
    if names and isinstance(container._modules[names[0]], (nn.BatchNorm1d, nn.BatchNorm2d)):
        raise ColcombError("a batch norm as the model's first module cannot be folded")
    for prev, name in itertools.pairwise(names):
        mod = container._modules[name]
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            before = container._modules[prev]
            if not isinstance(before, (nn.Conv2d, nn.Linear)):
                raise ColcombError(
                    f"batch norm {name!r} follows {type(before).__name__} {prev!r}; only a batch "
                    f"norm right after a Conv2d or Linear can be folded"
                )
            with torch.no_grad():
                _fold_pair(before, mod)
            container._modules[name] = nn.Identity()
    for mod in container.children():
        if len(mod._modules):
            _fold_children(mod)


# -- graph ---------------------------------------------------------------------------------------

def _pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def build_graph(model: nn.Module) -> list[dict]:
    """Host steps of a folded ``nn.Sequential`` (see the module docstring)."""
    from colcomb.train.models import CharLSTM

    if isinstance(model, CharLSTM):
        lstm = model.lstm
        if lstm.num_layers != 1 or lstm.bidirectional or not lstm.batch_first:
            raise ColcombError("only a one-layer, one-direction, batch-first LSTM can be exported")
        return [
            {"op": "lstm", "ih": "lstm.weight_ih_l0", "hh": "lstm.weight_hh_l0",
             "vocab": model.vocab, "hidden": model.hidden},
            {"op": "linear", "layer": "fc", "activation": "none"},
        ]
    if not isinstance(model, nn.Sequential):
        raise ColcombError(
            f"export needs an nn.Sequential (or the built-in charlstm), got {type(model).__name__}"
        )
    steps = _steps(list(model.named_children()), "")
    if not any(s["op"] in ("conv", "linear", "residual") for s in steps):
        raise ColcombError("the model has no Conv2d or Linear layer to export")
    return steps


def _steps(children: list[tuple[str, nn.Module]], prefix: str) -> list[dict]:
    from colcomb.train.models import Residual, Shift

    steps: list[dict] = []
    last_matrix: dict | None = None
    for short, mod in children:
        name = prefix + short
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1 or _pair(mod.dilation) != [1, 1] or mod.padding_mode != "zeros":
                raise ColcombError(f"conv {name!r}: only groups=1, dilation 1, zero padding export")
            if isinstance(mod.padding, str):
                raise ColcombError(f"conv {name!r}: give padding as numbers, not {mod.padding!r}")
            last_matrix = {"op": "conv", "layer": name, "in_channels": mod.in_channels,
                           "out_channels": mod.out_channels, "kernel": _pair(mod.kernel_size),
                           "stride": _pair(mod.stride), "padding": _pair(mod.padding),
                           "activation": "none"}
            steps.append(last_matrix)
        elif isinstance(mod, nn.Linear):
            last_matrix = {"op": "linear", "layer": name, "activation": "none"}
            steps.append(last_matrix)
        elif isinstance(mod, nn.ReLU):
            if last_matrix is None or last_matrix["activation"] != "none":
                raise ColcombError(f"ReLU {name!r} has no conv/linear before it to clamp")
            last_matrix["activation"] = "relu"
        elif isinstance(mod, nn.MaxPool2d):
            if mod.ceil_mode or _pair(mod.dilation) != [1, 1]:
                raise ColcombError(f"max-pool {name!r}: ceil_mode and dilation are not supported")
            stride = mod.stride if mod.stride is not None else mod.kernel_size
            steps.append({"op": "maxpool", "kernel": _pair(mod.kernel_size),
                          "stride": _pair(stride), "padding": _pair(mod.padding)})
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            if _pair(mod.output_size) != [1, 1]:
                raise ColcombError(f"average pool {name!r}: only global pooling (output size 1) exports")
            steps.append({"op": "avgpool"})
            last_matrix = None
        elif isinstance(mod, nn.Flatten):
            if mod.start_dim != 1 or mod.end_dim != -1:
                raise ColcombError(f"flatten {name!r}: only start_dim=1, end_dim=-1 exports")
            steps.append({"op": "flatten"})
        elif isinstance(mod, Shift):
            steps.append({"op": "shift", "shifts": [list(s) for s in mod.shifts]})
        elif isinstance(mod, Residual):
            sub = dict(mod.named_children())
            steps.append({"op": "residual", "name": name, "activation": "relu",
                          "body": _steps([(n, sub[n]) for n in mod.body()], name + "."),
                          "shortcut": _steps([(n, sub[n]) for n in mod.shortcut()], name + ".")})
            last_matrix = None
        elif isinstance(mod, (nn.Identity, nn.Dropout)):
            continue
        else:
            raise ColcombError(
                f"module {name!r} ({type(mod).__name__}) has no integer implementation; the flow "
                f"exports Conv2d, Linear, BatchNorm (folded), ReLU, MaxPool2d, global AdaptiveAvgPool2d, "
                f"Flatten, Shift, Residual, Dropout"
            )
    return steps


def walk(steps: list[dict]):
    """Every step of a graph, depth first (residual sub-graphs after their residual step)."""
    for step in steps:
        yield step
        if step["op"] == "residual":
            yield from walk(step["body"])
            yield from walk(step["shortcut"])


def matrices(model: nn.Module) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Layer name -> (flattened float weight matrix, bias) of a folded model."""
    from colcomb.train.models import CharLSTM

    out = {}
    if isinstance(model, CharLSTM):
        lstm = model.lstm
        bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy().astype(np.float64)
        out["lstm.weight_ih_l0"] = (lstm.weight_ih_l0.detach().numpy().astype(np.float64), bias)
        out["lstm.weight_hh_l0"] = (lstm.weight_hh_l0.detach().numpy().astype(np.float64),
                                    np.zeros(4 * model.hidden))
        mods = {"fc": model.fc}
    else:
        mods = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    for name, m in mods.items():
        w = m.weight.detach().numpy().astype(np.float64)
        b = m.bias.detach().numpy().astype(np.float64) if m.bias is not None else np.zeros(w.shape[0])
        out[name] = (w.reshape(w.shape[0], -1), b)
    return out


# -- calibration ---------------------------------------------------------------------------------

def _range(t: torch.Tensor, percentile: float) -> float:
    a = t.detach().abs().flatten().numpy()
    top = float(np.percentile(a, percentile)) if percentile < 100 else float(a.max(initial=0.0))
    return top if top > 0 else float(a.max(initial=0.0)) or 1.0


@torch.no_grad()
def calibrate(model: nn.Module, x: np.ndarray, percentile: float = 99.99,
              graph: list[dict] | None = None) -> dict[str, float]:
    """Real range of each layer's output (after its ReLU, if the graph clamps it) and of each
    residual block's output on calibration inputs ``x``; for an LSTM the key ``gates`` holds the
    gate pre-activations' range."""
    from colcomb.train.models import CharLSTM

    model.eval()
    if isinstance(model, CharLSTM):
        ids = torch.as_tensor(np.asarray(x))[None, :]
        gates_all, logits = _lstm_float(model, ids)
        return {"gates": _range(gates_all, percentile), "fc": _range(logits, percentile)}
    graph = build_graph(model) if graph is None else graph
    relu = {s["layer"] for s in walk(graph) if s.get("activation") == "relu" and "layer" in s}
    watched = {s["layer"] for s in walk(graph) if "layer" in s} | {
        s["name"] for s in walk(graph) if s["op"] == "residual"}
    out: dict[str, float] = {}

    def hook(name):
        def record(_mod, _inp, y):
            out[name] = _range(y.clamp(min=0) if name in relu else y, percentile)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n in watched]
    try:
        model(torch.as_tensor(np.asarray(x, np.float32)))
    finally:
        for h in handles:
            h.remove()
    return out


def _lstm_float(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate pre-activations (steps, batch, 4H) and logits of the LSTM, computed step by step."""
    lstm = model.lstm
    x = nn.functional.one_hot(ids, model.vocab).float()
    b, steps = ids.shape
    h = torch.zeros(b, model.hidden)
    c = torch.zeros(b, model.hidden)
    gates_all, hs = [], []
    for t in range(steps):
        g = x[:, t] @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        gates_all.append(g)
        i, f, gg, o = g.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs.append(h)
    return torch.stack(gates_all), model.fc(torch.stack(hs, 1))


# -- packing -------------------------------------------------------------------------------------

def singleton_groups(matrix: np.ndarray) -> Groups:
    """One block, each nonzero column its own group (an uncombined layer)."""
    cols = np.flatnonzero(np.any(np.asarray(matrix) != 0, axis=0))
    return [(0, matrix.shape[0], [[int(c)] for c in cols])]


def pack_trained(
    name: str,
    weight: np.ndarray,
    bias: np.ndarray,
    groups: Groups,
    alpha: int,
    gamma: float,
    s_in: float,
    s_out: float,
    activation: str,
    bits: int = 8,
    data_bits: int = 8,
    acc_bits: int = 32,
    quant: str = "row",
) -> PackedLayer:
    """One PackedLayer from a trained matrix, its groups, and its input and output scales."""
    w = np.asarray(weight, np.float64)
    parts = []
    for r0, r1, gs in groups:
        packed, selects = combine(w[r0:r1], gs) if gs else (np.zeros((r1 - r0, 0)), np.zeros((r1 - r0, 0), np.int64))
        parts.append((r0, r1, gs, packed, selects))
    scales = row_scales([p[3] for p in parts], bits, quant)
    blocks = tuple(
        PackedBlock(r0, r1, tuple(tuple(int(c) for c in g) for g in gs),
                    quantize_values(packed, s, bits), selects.astype(np.int64), np.asarray(s, np.float64))
        for (r0, r1, gs, packed, selects), s in zip(parts, scales, strict=True)
    )
    s_w = np.concatenate(scales)
    requant = make_requant(s_w * s_in / s_out, np.asarray(bias, np.float64) / (s_w * s_in),
                           data_bits, activation)
    layer = PackedLayer(name=name, shape=(int(w.shape[0]), int(w.shape[1])), alpha=int(alpha),
                        gamma=float(gamma), bits=bits, blocks=blocks, requant=requant,
                        data_bits=data_bits, acc_bits=acc_bits)
    layer.validate()
    nonzero = int(np.count_nonzero(w))
    kept = int(sum(np.count_nonzero(p[3]) for p in parts))
    layer.stats.update({
        "nonzero_before": nonzero,
        "pruned": nonzero - kept,
        "rounded_to_zero": kept - layer.nonzero_weights(),
        "packed_columns": layer.packed_columns,
        "utilization_before": nonzero / w.size,
        "utilization_after": layer.utilization(),
        "quant": quant,
        "in_scale": float(s_in),
        "out_scale": float(s_out),
    })
    return layer


def export_model(
    model: nn.Module,
    calib_x: np.ndarray,
    groups: dict[str, Groups] | None = None,
    alphas: dict[str, int] | None = None,
    gamma: float = 0.0,
    bits: int = 8,
    data_bits: int = 8,
    acc_bits: int = 32,
    percentile: float = 99.99,
    input_shape: Sequence[int] | None = None,
) -> tuple[list[PackedLayer], dict]:
    """Packed layers (network order) and the manifest ``meta`` the integer evaluation needs.

    ``groups``/``alphas`` come from :func:`colcomb.train.joint.joint_optimize`; a layer without
    groups is packed uncombined (alpha 1, one packed column per nonzero column)."""
    groups = groups or {}
    alphas = alphas or {}
    folded = fold_batchnorm(model)
    graph = build_graph(folded)
    mats = matrices(folded)
    ranges = calibrate(folded, calib_x, percentile, graph)
    q = qmax(data_bits)
    if isinstance(folded, nn.Sequential):
        top = float(np.abs(np.asarray(calib_x, np.float64)).max(initial=0.0))
        s_input = max(1.0, top) / q
    else:
        s_input = 1.0 / q
    layers: list[PackedLayer] = []

    def add(name: str, s_in: float, s_out: float, activation: str) -> None:
        w, b = mats[name]
        gs = groups.get(name) or singleton_groups(w)
        alpha = alphas.get(name, 1) if name in groups else 1
        layers.append(pack_trained(name, w, b, gs, alpha, gamma if name in groups else 0.0,
                                   s_in, s_out, activation, bits, data_bits, acc_bits))

    def assign(steps: list[dict], s: float) -> float:
        """Give every step its scales and pack its layers; return the output scale."""
        for step in steps:
            if step["op"] == "lstm":
                s_g = ranges["gates"] / q
                step["in_scale"] = s_input
                step["gate_scale"] = s_g
                add(step["ih"], s_input, s_g, "none")
                add(step["hh"], s_input, s_g, "none")
                s = s_input  # h is quantized at 1/qmax
            elif step["op"] in ("conv", "linear"):
                s_out = ranges[step["layer"]] / q
                step["in_scale"] = s
                step["out_scale"] = s_out
                add(step["layer"], s, s_out, step["activation"])
                s = s_out
            elif step["op"] == "residual":
                s_a = assign(step["body"], s)
                s_b = assign(step["shortcut"], s)
                s_out = ranges[step["name"]] / q
                mult, shift = fixed_point_shared(np.array([s_a / s_out, s_b / s_out]))
                lo, hi = activation_clamp(step["activation"], data_bits)
                step.update({"in_scale": s, "body_scale": s_a, "shortcut_scale": s_b, "out_scale": s_out,
                             "multipliers": [int(mult[0]), int(mult[1])], "shift": int(shift),
                             "clamp": [int(lo), int(hi)]})
                s = s_out
        return s

    s = assign(graph, s_input)
    meta = {
        "graph_version": GRAPH_VERSION,
        "graph": graph,
        "input_scale": s_input,
        "data_bits": data_bits,
        "output_scale": s,
        "calibration": {"samples": len(calib_x), "percentile": percentile},
    }
    if input_shape is not None:
        meta["input_shape"] = [int(v) for v in input_shape]
    return layers, meta
