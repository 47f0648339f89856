"""Batch helpers, the default loss and evaluate_loss_acc."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from slimkit.errors import TrainingError
from slimkit.modelio import logits_of, to_device
from slimkit.train import ClassificationLoss, evaluate_loss_acc
from slimkit.train.steps import count_correct, split_loss


def test_to_device_moves_nested_tensors_and_keeps_others():
    batch = [torch.zeros(2), (torch.ones(1), "name"), {"mask": torch.ones(1)}, 5]
    moved = to_device(batch, torch.device("meta"))
    assert isinstance(moved, tuple)
    assert moved[0].device.type == moved[1][0].device.type == moved[2]["mask"].device.type == "meta"
    assert moved[1][1] == "name" and moved[3] == 5


def test_count_correct_handles_hard_soft_and_missing_labels():
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    assert count_correct(logits, (None, torch.tensor([0, 0, 0]))) == 2
    assert count_correct((logits, "features"), (None, torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]))) == 2
    assert count_correct(logits, (None,)) is None
    assert logits_of([logits]) is logits


def test_split_loss_accepts_tensor_or_pair_and_rejects_others():
    loss = torch.tensor(2.0, requires_grad=True)
    assert split_loss(loss) == (loss, {})
    assert split_loss((loss, {"a": torch.tensor(1.5, requires_grad=True), "b": 2}))[1] == {"a": 1.5, "b": 2.0}
    with pytest.raises(TrainingError, match="loss_fn returned float"):
        split_loss(1.0)
    with pytest.raises(TrainingError, match="loss_fn returned tuple"):
        split_loss((loss, [1.0]))


def test_classification_loss_needs_labels():
    with pytest.raises(TrainingError, match="the default loss needs labels"):
        ClassificationLoss()(torch.zeros(2, 3), (torch.zeros(2, 3),))


def test_evaluate_loss_acc_matches_manual_and_restores_mode():
    torch.manual_seed(0)
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    model.train()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 16, 16, 16, 2: sample-weighted means
    loss, acc = evaluate_loss_acc(model, loader)
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    model.train()
    evaluate_loss_acc(model, loader)
    assert model.training is True


def test_evaluate_loss_acc_custom_loss_with_logs_and_tuple_outputs():
    class Pair(nn.Module):
        def forward(self, x):
            return x, "features"

    loader = DataLoader(TensorDataset(torch.eye(3), torch.tensor([0, 1, 0])), batch_size=2)
    loss, acc = evaluate_loss_acc(Pair(), loader, lambda out, batch: (out[0].sum() * 0 + 1.0, {"x": 1.0}))
    assert (loss, acc) == (1.0, pytest.approx(2 / 3))


def test_evaluate_loss_acc_empty_loader():
    with pytest.raises(TrainingError, match="yielded no samples"):
        evaluate_loss_acc(nn.Linear(2, 2), [])


def test_labels_beyond_the_models_outputs_get_one_clear_line():
    from slimkit.errors import TrainingError
    from slimkit.train.steps import ClassificationLoss

    with pytest.raises(TrainingError, match="3 logits per sample, but the data has label 9") as refused:
        ClassificationLoss()(torch.zeros(2, 3), (None, torch.tensor([0, 9])))
    assert "num_classes" in refused.value.hint
