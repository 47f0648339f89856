import numpy as np
import pytest
import torch
from torch import nn

from slimkit.distillation.losses import ATLoss, FitNetLoss, Outputs, materialize
from slimkit.errors import ConfigError, ModelError

rng = np.random.default_rng(0)
FS = rng.normal(size=(2, 3, 4, 4))  # student feature
FT = rng.normal(size=(2, 5, 2, 2))  # teacher feature, more channels, smaller


def outs(fs, ft):
    s = Outputs(torch.zeros(len(fs), 2), {"s": torch.tensor(fs)})
    t = Outputs(torch.zeros(len(ft), 2), {"t": torch.tensor(ft)})
    return s, t


def smooth_l1(d):
    d = np.abs(d)
    return np.where(d < 1, 0.5 * d**2, d - 0.5).mean()


@pytest.mark.parametrize("kind", ["mse", "smooth_l1"])
def test_fitnet_with_adapter_matches_hand_computed_value(kind):
    s, t = outs(FS, FT)
    loss = FitNetLoss("s", "t", loss=kind)
    assert materialize(loss, s, t) == ["adapter.proj.weight", "adapter.proj.bias"]
    w = loss.adapter.proj.weight.detach().numpy()[:, :, 0, 0]
    b = loss.adapter.proj.bias.detach().numpy()
    proj = np.einsum("oc,nchw->nohw", w, FS) + b[None, :, None, None]
    pooled = proj.reshape(2, 5, 2, 2, 2, 2).mean(axis=(3, 5))
    diff = pooled - FT
    expected = (diff**2).mean() if kind == "mse" else smooth_l1(diff)
    assert float(loss(s, t).detach()) == pytest.approx(expected, rel=1e-10)


def test_fitnet_linear_adapter_and_gradients_reach_student_and_adapter_only():
    fs = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    ft = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    s, t = Outputs(fs, {"s": fs * 2}), Outputs(ft, {"t": ft})
    loss = FitNetLoss("s", "t")
    loss.materialize(s, t)
    assert isinstance(loss.adapter.proj, nn.Linear)
    loss(s, t).backward()
    assert fs.grad is not None and fs.grad.abs().sum() > 0
    assert loss.adapter.proj.weight.grad is not None
    assert ft.grad is None


def test_fitnet_without_adapter_is_zero_for_equal_features_and_checks_channels():
    s, t = outs(FS, FS)
    loss = FitNetLoss("s", "t", adapter=False)
    assert float(loss(s, t)) == 0.0 and list(loss.parameters()) == []
    with pytest.raises(ModelError, match="set adapter=True"):
        loss(*outs(FS, FT))


def test_fitnet_bad_arguments():
    with pytest.raises(ConfigError, match="'mse' or 'smooth_l1'"):
        FitNetLoss("s", "t", loss="l3")
    with pytest.raises(ConfigError, match="module path"):
        FitNetLoss("", "t")


def at_map(f, p=2):
    a = (np.abs(f) ** p).mean(axis=1).reshape(len(f), -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_at_matches_hand_computed_value():
    ft = rng.normal(size=(2, 7, 4, 4))  # channel counts may differ
    expected = ((at_map(FS) - at_map(ft)) ** 2).mean()
    assert float(ATLoss("s", "t")(*outs(FS, ft))) == pytest.approx(expected, rel=1e-10)


def test_at_resizes_the_student_map_to_the_teacher_size():
    a = (FS**2).mean(axis=1).reshape(2, 2, 2, 2, 2).mean(axis=(2, 4)).reshape(2, -1)  # pooled map
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    expected = ((a - at_map(FT)) ** 2).mean()
    assert float(ATLoss("s", "t")(*outs(FS, FT))) == pytest.approx(expected, rel=1e-10)


def test_at_zero_for_equal_features_and_rejects_2d():
    assert float(ATLoss("s", "t")(*outs(FS, FS))) == 0.0
    with pytest.raises(ModelError, match=r"\(N, C, H, W\)"):
        ATLoss("s", "t")(*outs(FS[:, :, 0, 0], FS[:, :, 0, 0]))
