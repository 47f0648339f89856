import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from slimkit.errors import DataError
from slimkit.evaluate import (
    accuracy,
    confusion,
    ece,
    per_class_accuracy,
    pr_auc,
    precision_recall_f1,
    quality,
    roc_auc,
    topk_accuracy,
)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (300,), generator=g)
    logits = torch.randn(300, 5, generator=g) + 1.5 * torch.nn.functional.one_hot(targets, 5)
    return logits, targets


def test_accuracy_and_topk_hand_values():
    logits = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [0.0, 5.0, 1.0]])
    targets = torch.tensor([0, 1, 1, 2])
    assert accuracy(logits, targets) == 0.25
    assert topk_accuracy(logits, targets, 1) == 0.25
    assert topk_accuracy(logits, targets, 2) == 1.0
    assert topk_accuracy(logits, targets, 10) == 1.0  # k capped at the number of classes


def test_precision_recall_f1_match_sklearn(data):
    logits, targets = data
    p, r, f, _ = skm.precision_recall_fscore_support(targets, logits.argmax(1), average="macro")
    got = precision_recall_f1(logits, targets)
    assert got == pytest.approx({"precision": p, "recall": r, "f1": f})


def test_aucs_match_sklearn_when_all_classes_present(data):
    logits, targets = data
    probs = logits.double().softmax(1).numpy()
    assert roc_auc(logits, targets) == pytest.approx(
        skm.roc_auc_score(targets, probs, multi_class="ovr", average="macro")
    )
    onehot = np.eye(5)[targets]
    ap = np.mean([skm.average_precision_score(onehot[:, c], probs[:, c]) for c in range(5)])
    assert pr_auc(logits, targets) == pytest.approx(ap)


def test_aucs_use_present_classes_only_and_nan_below_two(data):
    logits, targets = data
    keep = targets != 3
    logits, targets = logits[keep], targets[keep]
    probs = logits.double().softmax(1).numpy()
    present = [0, 1, 2, 4]
    auc = np.mean([skm.roc_auc_score(targets == c, probs[:, c]) for c in present])
    ap = np.mean([skm.average_precision_score(targets == c, probs[:, c]) for c in present])
    assert roc_auc(logits, targets) == pytest.approx(auc)
    assert pr_auc(logits, targets) == pytest.approx(ap)
    q = quality(logits, targets)
    assert q["absent_classes"] == [3] and math.isnan(q["per_class_accuracy"][3])
    one_class = torch.zeros(4, dtype=torch.long)
    assert math.isnan(roc_auc(torch.randn(4, 3), one_class))
    assert math.isnan(pr_auc(torch.randn(4, 3), one_class))


def test_ece_hand_example():
    # confidences 0.9, 0.9 (one right) and 0.6 (right): bins (0.8667,0.9333] and (0.6-,0.6]
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    logits = p.log()
    targets = torch.tensor([0, 1, 1])
    expected = 2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1.0 - 0.6)
    assert ece(logits, targets) == pytest.approx(expected)
    # perfect calibration and overconfidence
    assert ece(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])) == pytest.approx(0.0)
    assert ece(torch.tensor([[10.0, -10.0]] * 2), torch.tensor([1, 1])) == pytest.approx(1.0)


def test_confusion_and_per_class_match_sklearn(data):
    logits, targets = data
    cm = skm.confusion_matrix(targets, logits.argmax(1), labels=range(5))
    assert confusion(logits, targets) == cm.tolist()
    recall = skm.recall_score(targets, logits.argmax(1), average=None)
    assert per_class_accuracy(logits, targets) == pytest.approx(recall.tolist())


def test_quality_dict_keys_and_values(data):
    logits, targets = data
    q = quality(logits, targets, topk=(1, 3))
    assert q["accuracy"] == accuracy(logits, targets) == q["top1"]
    assert q["top3"] == topk_accuracy(logits, targets, 3)
    assert q["nll"] == pytest.approx(skm.log_loss(targets, logits.double().softmax(1)))
    assert q["num_samples"] == 300 and q["num_classes"] == 5 and len(q["confusion"]) == 5
    for key in ("precision", "recall", "f1", "roc_auc", "pr_auc", "ece"):
        assert 0.0 <= q[key] <= 1.0


def test_bad_shapes_and_targets_raise():
    with pytest.raises(DataError, match="logits"):
        accuracy(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        accuracy(torch.zeros(2, 2), torch.tensor([0, 2]))
