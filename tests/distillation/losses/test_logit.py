"""Logit losses against values written out with numpy, independently of the implementation."""

import numpy as np
import pytest
import torch

from slimkit.distillation.losses import (
    DKDLoss,
    HardLabelLoss,
    KDLoss,
    LogitStandardKDLoss,
    Outputs,
)
from slimkit.errors import ConfigError, DataError, ModelError

S = np.array([[1.0, 2.0, 0.5, -1.0], [0.0, -1.0, 3.0, 0.2], [0.3, 0.1, -0.4, 2.2]])
T = np.array([[2.0, 1.0, 0.0, -2.0], [0.5, 0.5, 2.0, 1.0], [-1.0, 0.6, 0.2, 3.0]])
Y = np.array([1, 2, 0])


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def kl_rows(p, q):
    return np.array([sum(pi * np.log(pi / qi) for pi, qi in zip(pr, qr)) for pr, qr in zip(p, q)])


def outs(s=S, t=T):
    return Outputs(torch.tensor(s)), Outputs(torch.tensor(t))


def batch(y=Y):
    return (None, torch.tensor(y))


def test_kd_matches_hand_computed_value():
    temp = 2.0
    expected = kl_rows(softmax(T / temp), softmax(S / temp)).mean() * temp**2
    assert float(KDLoss(temperature=temp)(*outs())) == pytest.approx(expected, rel=1e-10)


def test_ce_with_label_smoothing_matches_hand_computed_value():
    eps, classes = 0.1, S.shape[1]
    logp = np.log(softmax(S))
    per_row = [-(1 - eps) * logp[i, Y[i]] - eps / classes * logp[i].sum() for i in range(len(Y))]
    loss = HardLabelLoss(label_smoothing=eps)(*outs(), batch())
    assert float(loss) == pytest.approx(np.mean(per_row), rel=1e-10)


def dkd_reference(s, t, y, alpha, beta, temp):
    """TCKD and NCKD from their definitions (Zhao et al. 2022), one sample at a time."""
    ps, pt = softmax(s / temp), softmax(t / temp)
    total = 0.0
    for i, yi in enumerate(y):
        bs = np.array([ps[i, yi], 1 - ps[i, yi]])
        bt = np.array([pt[i, yi], 1 - pt[i, yi]])
        tckd = np.sum(bt * np.log(bt / bs))
        others = [k for k in range(s.shape[1]) if k != yi]
        qs = ps[i, others] / ps[i, others].sum()
        qt = pt[i, others] / pt[i, others].sum()
        nckd = np.sum(qt * np.log(qt / qs))
        total += (alpha * tckd + beta * nckd) * temp**2
    return total / len(y)


@pytest.mark.parametrize("alpha, beta, temp", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0)])
def test_dkd_matches_hand_computed_value(alpha, beta, temp):
    loss = DKDLoss(alpha=alpha, beta=beta, temperature=temp)(*outs(), batch())
    assert float(loss) == pytest.approx(dkd_reference(S, T, Y, alpha, beta, temp), rel=1e-9)


def zscore(z):
    return (z - z.mean(axis=1, keepdims=True)) / (1e-7 + z.std(axis=1, ddof=1, keepdims=True))


def test_dkd_with_standardized_logits():
    loss = DKDLoss(standardize=True)(*outs(), batch())
    assert float(loss) == pytest.approx(dkd_reference(zscore(S), zscore(T), Y, 1.0, 8.0, 4.0), rel=1e-9)


def test_dkd_defaults_follow_the_paper():
    loss = DKDLoss()
    assert (loss.alpha, loss.beta, loss.temperature) == (1.0, 8.0, 4.0)


def test_logit_standardization_matches_hand_computed_value():
    temp = 2.0
    expected = kl_rows(softmax(zscore(T) / temp), softmax(zscore(S) / temp)).mean() * temp**2
    assert float(LogitStandardKDLoss(temperature=temp)(*outs())) == pytest.approx(expected, rel=1e-9)


def test_logit_standardization_ignores_scale_and_shift():
    assert float(LogitStandardKDLoss()(*outs(S, 5 * S + 3))) == pytest.approx(0.0, abs=1e-10)
    assert float(KDLoss()(*outs(S, 5 * S + 3))) > 0.1  # plain KD does not


@pytest.mark.parametrize("loss", [KDLoss(), DKDLoss(), LogitStandardKDLoss()], ids=lambda m: m.name)
def test_zero_when_student_equals_teacher(loss):
    assert float(loss(*outs(S, S), batch())) == pytest.approx(0.0, abs=1e-12)


def test_dkd_is_stable_for_confident_logits():
    s = np.array([[60.0, -60.0, 0.0]])
    loss = DKDLoss(temperature=1.0)(*outs(s, -s), batch(np.array([0])))
    assert torch.isfinite(loss)


def test_errors_name_the_loss_and_the_fix():
    with pytest.raises(ConfigError, match="temperature must be a number > 0"):
        KDLoss(temperature=0)
    with pytest.raises(ConfigError, match="label_smoothing"):
        HardLabelLoss(label_smoothing=1.0)
    with pytest.raises(ModelError, match="student has 4 classes but teacher has 3"):
        KDLoss()(*outs(S, T[:, :3]))
    with pytest.raises(DataError, match="'dkd' needs hard labels"):
        DKDLoss()(*outs())
