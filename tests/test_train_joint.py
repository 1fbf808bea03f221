"""Pruning masks and the joint optimization loop (packer/prune.py, packer/train.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from colcomb.core.errors import ColcombError
from colcomb.train.joint import JointOptions, Schedule, fit_classifier, joint_optimize
from colcomb.train.prune import (
    Masks,
    channel_matrix,
    check_groups,
    expand_groups,
    find_targets,
    magnitude_mask,
)


def _data(n=96, shape=(1, 6, 6), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(),
                         nn.Linear(16, 3))


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 3))


def test_magnitude_mask_reaches_sparsity_and_keeps_old_zeros():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((10, 20))
    keep = rng.random((10, 20)) > 0.1
    m = magnitude_mask(w, keep, 0.6)
    assert m.sum() == int(np.ceil(200 * 0.4))
    assert not (m & ~keep).any()
    # every kept weight is at least as large as every pruned weight that was alive
    pruned_alive = keep & ~m
    assert np.abs(w[m]).min() >= np.abs(w[pruned_alive]).max()


def test_magnitude_mask_rejects_bad_sparsity():
    with pytest.raises(ColcombError, match="sparsity"):
        magnitude_mask(np.ones((2, 2)), np.ones((2, 2), bool), 1.0)


def test_masks_keep_pruned_weights_zero_through_training():
    model = _mlp()
    targets = find_targets(model)
    masks = Masks(targets)
    rng = np.random.default_rng(1)
    for t in targets:
        masks.set(t.name, torch.from_numpy(rng.random(tuple(t.weight.shape)) > 0.7))
    masks.apply()
    before = {t.name: t.weight.detach().clone() for t in targets}
    x, y = _data()
    fit_classifier(model, x, y, epochs=2, lr=1e-2, batch_size=16, masks=masks)
    for t in targets:
        w = t.weight.detach()
        m = masks.masks[t.name]
        assert torch.all(w[~m] == 0), t.name
        assert not torch.equal(w[m], before[t.name][m]), f"{t.name}: kept weights did not train"


def test_mask_of_wrong_shape_is_refused():
    model = _mlp()
    masks = Masks(find_targets(model))
    with pytest.raises(ColcombError, match="shape"):
        masks.set("1", torch.ones(3, 3, dtype=torch.bool))


def _fast_opts(**kw):
    sched = Schedule(rounds=2, sparsity=0.6, retrain_epochs=1, final_epochs=0)
    return JointOptions(schedule=sched, **kw)


def _retrainer(model, x, y, calls):
    def retrain(epochs, masks):
        fit_classifier(model, x, y, epochs, lr=1e-2, batch_size=16, masks=masks)
        calls.append(epochs)
        return None

    return retrain


def test_joint_optimization_group_invariants_and_layer_alpha():
    model = _mlp()
    x, y = _data()
    calls = []
    opts = _fast_opts(alpha=4, gamma=0.25, layer_alpha={"3": 2})
    res = joint_optimize(model, opts, _retrainer(model, x, y, calls), log=lambda _m: None)
    assert calls == [1, 1]
    assert [t.name for t in res.targets] == ["3", "5"]  # the first layer is excluded by default
    assert res.alphas == {"3": 2, "5": 4}
    for t in res.targets:
        w = t.matrix()
        # after retraining under the masks, the groups are still valid for the trained weights
        check_groups(w, res.groups[t.name], res.alphas[t.name])
        assert np.all(w[~res.masks.masks[t.name].numpy()] == 0)
        assert res.packed_columns(t.name) < w.shape[1]
    assert len(res.history) == 2
    assert res.history[-1]["packed_columns"] == sum(res.packed_columns(t.name) for t in res.targets)


def test_joint_optimization_row_blocks_and_first_layer():
    model = _mlp()
    x, y = _data()
    opts = _fast_opts(alpha=3, gamma=0.0, exclude_first=False, row_block=8)
    res = joint_optimize(model, opts, _retrainer(model, x, y, []), log=lambda _m: None)
    assert res.targets[0].name == "1"
    blocks = res.groups["1"]
    assert [(r0, r1) for r0, r1, _ in blocks] == [(0, 8), (8, 16), (16, 24)]
    check_groups(res.targets[0].matrix(), blocks, 3)


def test_unknown_layer_alpha_is_refused():
    model = _mlp()
    with pytest.raises(ColcombError, match="fc9"):
        joint_optimize(model, _fast_opts(layer_alpha={"fc9": 2}), lambda e, m: None, log=lambda _m: None)


def test_per_feature_map_combining_moves_whole_channels():
    model = _cnn()
    x, y = _data()
    opts = _fast_opts(alpha=4, gamma=0.5, per_feature_map=True)
    res = joint_optimize(model, opts, _retrainer(model, x, y, []), log=lambda _m: None)
    conv = res.targets[0]
    assert conv.is_conv and conv.name == "2"
    w4 = conv.weight.detach().numpy()
    (_, _, groups), = res.groups["2"]
    check_groups(conv.matrix(), res.groups["2"], 4)
    # flattened groups come in runs of kh*kw, one per kernel position, with the same channels
    k = 9
    assert len(groups) % k == 0
    assert len(groups) < 4 * k  # whole feature maps did combine (4 input channels, alpha 4)
    for i in range(0, len(groups), k):
        channels = [c // k for c in groups[i]]
        for p in range(k):
            assert groups[i + p] == [c * k + p for c in channels]
        # each filter keeps at most one weight per kernel position across the group's channels
        alive = w4[:, channels] != 0  # (filters, group channels, kh, kw)
        assert (alive.sum(axis=1) <= 1).all()


def test_channel_matrix_and_expand_groups():
    w = np.arange(2 * 3 * 4, dtype=float).reshape(2, 12) - 10
    cm = channel_matrix(w, 4)
    assert cm.shape == (2, 3)
    assert cm[0, 1] == np.abs(w[0, 4:8]).sum()
    assert expand_groups([[0, 2], [1]], 4) == [[0, 8], [1, 9], [2, 10], [3, 11], [4], [5], [6], [7]]


def test_check_groups_catches_a_conflict():
    w = np.array([[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ColcombError, match="two weights"):
        check_groups(w, [(0, 2, [[0, 1]])], 2)
    with pytest.raises(ColcombError, match="no group"):
        check_groups(w, [(0, 2, [[0]])], 2)


def test_schedule_ramp():
    s = Schedule(rounds=4, sparsity=0.8)
    vals = [s.sparsity_at(k) for k in range(1, 5)]
    assert vals == sorted(vals) and vals[-1] == pytest.approx(0.8)
    assert Schedule(rounds=2, sparsity=0.8, ramp="linear").sparsity_at(1) == pytest.approx(0.4)
    with pytest.raises(ColcombError):
        Schedule(ramp="exp").validate()


def test_lstm_targets():
    from colcomb.train.models import CharLSTM

    names = [t.name for t in find_targets(CharLSTM(10, 8))]
    assert names == ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc"]


def test_kernel_row_combining_says_what_the_chip_will_refuse():
    """A one-channel conv combined per kernel row reads row runs on chip only as the first layer
    and with alpha of at least its kernel width: colcomb train says so before training."""
    from colcomb.train.prune import find_targets

    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Conv2d(4, 1, 3), nn.ReLU(), nn.Conv2d(1, 2, 3))
    targets = find_targets(model)
    narrow = JointOptions(alpha=4, per_feature_map=True, exclude_first=False).kernel_row_notes(targets, first=True)
    assert len(narrow) == 2 and "use --alpha 5 (or --layer-alpha 0=5)" in narrow[0]
    assert narrow[1].startswith("4 (one input channel) is combined per kernel row, but on chip only the first layer")
    wide = JointOptions(alpha=8, per_feature_map=True, exclude_first=False).kernel_row_notes(targets, first=True)
    assert len(wide) == 1 and wide[0].startswith("4 ")
    assert JointOptions(alpha=4, per_feature_map=False).kernel_row_notes(targets, first=True) == []
