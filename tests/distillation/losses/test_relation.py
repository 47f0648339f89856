import itertools

import numpy as np
import pytest
import torch

from slimkit.distillation.losses import Outputs, RKDLoss, SPLoss
from slimkit.errors import ConfigError

rng = np.random.default_rng(1)
S = rng.normal(size=(4, 3))
T = rng.normal(size=(4, 6))


def outs(s=S, t=T):
    return Outputs(torch.tensor(s)), Outputs(torch.tensor(t))


def smooth_l1(d):
    d = np.abs(d)
    return np.where(d < 1, 0.5 * d**2, d - 0.5).mean()


def test_sp_matches_hand_computed_value():
    def gram(f):
        g = f @ f.T
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    expected = ((gram(T) - gram(S)) ** 2).sum() / len(S) ** 2
    assert float(SPLoss()(*outs())) == pytest.approx(expected, rel=1e-10)


def test_sp_reads_and_flattens_features():
    fs, ft = rng.normal(size=(3, 2, 2, 2)), rng.normal(size=(3, 5))
    s = Outputs(torch.zeros(3, 2), {"block": torch.tensor(fs)})
    t = Outputs(torch.zeros(3, 2), {"fc": torch.tensor(ft)})
    flat = fs.reshape(3, -1)
    gs = flat @ flat.T
    gs = gs / np.linalg.norm(gs, axis=1, keepdims=True)
    gt = ft @ ft.T
    gt = gt / np.linalg.norm(gt, axis=1, keepdims=True)
    assert float(SPLoss("block", "fc")(s, t)) == pytest.approx(((gt - gs) ** 2).sum() / 9, rel=1e-10)


def rkd_distance(x):
    n = len(x)
    d = np.array([[np.linalg.norm(x[i] - x[j]) for j in range(n)] for i in range(n)])
    return d / d[~np.eye(n, dtype=bool)].mean()


def rkd_angle(x):
    n = len(x)
    out = np.zeros((n, n, n))
    for a, b, c in itertools.product(range(n), repeat=3):
        u, v = x[b] - x[a], x[c] - x[a]
        nu, nv = np.linalg.norm(u), np.linalg.norm(v)
        out[a, b, c] = 0.0 if nu == 0 or nv == 0 else u @ v / (nu * nv)
    return out


def test_rkd_distance_matches_hand_computed_value():
    expected = smooth_l1(rkd_distance(S) - rkd_distance(T))
    assert float(RKDLoss(angle_weight=0)(*outs())) == pytest.approx(expected, rel=1e-9)


def test_rkd_angle_matches_hand_computed_value():
    expected = smooth_l1(rkd_angle(S) - rkd_angle(T))
    assert float(RKDLoss(distance_weight=0, angle_weight=1)(*outs())) == pytest.approx(expected, rel=1e-9)


def test_rkd_combines_distance_and_angle_with_weights():
    expected = 1.0 * smooth_l1(rkd_distance(S) - rkd_distance(T)) + 2.0 * smooth_l1(rkd_angle(S) - rkd_angle(T))
    assert float(RKDLoss()(*outs())) == pytest.approx(expected, rel=1e-9)


def test_relation_losses_are_zero_for_equal_inputs_and_invariant_to_scale():
    assert float(SPLoss()(*outs(S, S))) == pytest.approx(0.0, abs=1e-12)
    assert float(RKDLoss()(*outs(S, 3 * S))) == pytest.approx(0.0, abs=1e-12)


def test_rkd_gradients_are_finite_with_duplicate_samples():
    s = torch.tensor(np.vstack([S, S[:1]]), requires_grad=True)
    loss = RKDLoss()(Outputs(s), Outputs(torch.tensor(np.vstack([T, T[:1]]))))
    loss.backward()
    assert torch.isfinite(s.grad).all()


def test_rkd_needs_a_term():
    with pytest.raises(ConfigError, match="cannot both be 0"):
        RKDLoss(distance_weight=0, angle_weight=0)
