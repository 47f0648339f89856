import math

import pytest
import torch

from slimkit.errors import DataError
from slimkit.evaluate import agreement


def test_agreement_and_flips_on_hand_made_logits():
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    pred_a = torch.tensor([0, 1, 2, 1, 1, 0])  # right: 0,1,2,4
    pred_b = torch.tensor([0, 2, 2, 0, 0, 0])  # right: 0,2,3
    a = torch.nn.functional.one_hot(pred_a, 4).float()
    b = torch.nn.functional.one_hot(pred_b, 4).float()
    r = agreement(a, b, targets)
    assert r["agree_count"] == 3 and r["agreement"] == pytest.approx(0.5)
    assert r["right_to_wrong"] == 2  # samples 1 and 4
    assert r["wrong_to_right"] == 1  # sample 3
    assert r["right_to_wrong_rate"] == pytest.approx(2 / 6)
    assert r["wrong_to_right_rate"] == pytest.approx(1 / 6)
    delta = r["per_class_delta"]
    assert delta[:3] == pytest.approx([1.0 - 0.5, 0.0 - 1.0, 0.5 - 0.5])
    assert math.isnan(delta[3])  # class 3 absent from targets


def test_agreement_accepts_labels_and_checks_shapes():
    t = torch.tensor([0, 1])
    r = agreement(t, t, t)
    assert r["agreement"] == 1.0 and r["right_to_wrong"] == r["wrong_to_right"] == 0
    assert "per_class_delta" not in r
    with pytest.raises(DataError, match="same N samples"):
        agreement(t, torch.tensor([0, 1, 1]), t)


def test_fidelity_kl_matches_a_hand_computed_divergence():
    from slimkit.evaluate.agreement import fidelity

    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    pa, pb = a.softmax(1), b.softmax(1)
    expected = float((pa * (pa.log() - pb.log())).sum(1).mean())
    r = fidelity(a, b)
    assert r["kl"] == pytest.approx(expected, rel=1e-6) and r["kl"] > 0
    assert r["kl_reverse"] == pytest.approx(float((pb * (pb.log() - pa.log())).sum(1).mean()), rel=1e-6)
    assert r["top1_agreement"] == 1.0  # sample 0 ties in a: argmax picks class 0 in both


def test_agreement_reports_fidelity_only_for_logits():
    targets = torch.tensor([0, 1, 1])
    a, b = torch.randn(3, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(3, 3)
    r = agreement(a, b, targets)
    assert r["kl"] > 0 and r["kl_reverse"] > 0
    assert agreement(a, a, targets)["kl"] == pytest.approx(0.0, abs=1e-12)
    assert "kl" not in agreement(targets, targets, targets)
    with pytest.raises(DataError, match="same shape"):
        from slimkit.evaluate.agreement import fidelity

        fidelity(a, torch.zeros(3, 2))
