import numpy as np
import pytest
import torch

from slimkit.distillation.losses import Outputs, PKTLoss

rng = np.random.default_rng(2)
S = rng.normal(size=(5, 3))
T = rng.normal(size=(5, 8))


def conditionals(x, eps=1e-7):
    n = len(x)
    cos = np.array([[x[i] @ x[j] / ((np.linalg.norm(x[i]) + eps) * (np.linalg.norm(x[j]) + eps))
                     for j in range(n)] for i in range(n)])
    sim = (cos + 1) / 2
    return sim / sim.sum(axis=1, keepdims=True)


def test_pkt_matches_hand_computed_value():
    p, q, eps = conditionals(T), conditionals(S), 1e-7
    expected = np.mean(p * np.log((p + eps) / (q + eps)))
    loss = PKTLoss()(Outputs(torch.tensor(S)), Outputs(torch.tensor(T)))
    assert float(loss) == pytest.approx(expected, rel=1e-9)


def test_pkt_zero_for_equal_directions_and_positive_otherwise():
    assert float(PKTLoss()(Outputs(torch.tensor(S)), Outputs(torch.tensor(2 * S)))) == pytest.approx(0, abs=1e-12)
    assert float(PKTLoss()(Outputs(torch.tensor(S)), Outputs(torch.tensor(T)))) > 0


def test_pkt_handles_all_zero_rows():
    s = torch.tensor(np.vstack([S, np.zeros((1, 3))]), requires_grad=True)
    loss = PKTLoss()(Outputs(s), Outputs(torch.tensor(np.vstack([T, T[:1]]))))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
