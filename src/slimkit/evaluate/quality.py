"""Quality metrics on logits: accuracy, top-k, macro P/R/F1, ROC-AUC, PR-AUC, ECE, confusion.

Conventions, so that numbers from different models line up:

- ``logits`` is (N, C) and ``targets`` (N,) of class indices; C comes from the logits.
- ROC-AUC and PR-AUC are one-vs-rest and macro-averaged over the classes **present in the
  targets**. A class absent from the targets has no positives, so its AUC/AP is undefined;
  averaging it in as 0 or 1 would be a guess. With fewer than two classes present the AUCs
  are NaN (``quality`` lists the absent classes under ``absent_classes``). When every class is
  present this equals sklearn's ``roc_auc_score(multi_class="ovr", average="macro")``.
- Macro precision/recall/F1 follow sklearn's default label set (classes seen in the targets or
  the predictions) with ``zero_division=0``.
- Per-class accuracy (the per-class recall) is NaN for a class absent from the targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from slimkit.errors import DataError


def _skm():
    # sklearn takes about a second to import; load it on first use so importing slimkit stays cheap.
    from sklearn import metrics

    return metrics

__all__ = [
    "accuracy",
    "confusion",
    "ece",
    "per_class_accuracy",
    "pr_auc",
    "precision_recall_f1",
    "quality",
    "roc_auc",
    "topk_accuracy",
]


def _check(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    logits = torch.as_tensor(logits).detach().float().cpu()
    targets = torch.as_tensor(targets).detach().long().cpu().reshape(-1)
    if logits.dim() != 2 or logits.shape[0] != targets.shape[0] or logits.shape[0] == 0:
        raise DataError(
            f"expected logits (N, C) and targets (N,) with N > 0, got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}",
            hint="pass Predictions.logits and Predictions.targets from slimkit.evaluate.predict",
        )
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise DataError(
            f"targets must lie in [0, {logits.shape[1] - 1}] for {logits.shape[1]} logit columns, "
            f"got range [{int(targets.min())}, {int(targets.max())}]",
            hint="the model's number of classes must match the dataset's",
        )
    return logits, targets


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Share of samples whose argmax equals the target.

    >>> accuracy(torch.tensor([[2., 1.], [0., 1.], [3., 0.]]), torch.tensor([0, 1, 1]))
    0.6666666666666666
    """
    logits, targets = _check(logits, targets)
    return float((logits.argmax(1) == targets).double().mean())


def topk_accuracy(logits: Tensor, targets: Tensor, k: int) -> float:
    """Share of samples whose target is among the ``k`` highest logits (k is capped at C,
    where top-k is trivially 1.0).

    >>> topk_accuracy(torch.tensor([[3., 2., 1.], [3., 2., 1.]]), torch.tensor([1, 2]), 2)
    0.5
    """
    logits, targets = _check(logits, targets)
    k = max(1, min(int(k), logits.shape[1]))
    top = logits.topk(k, dim=1).indices
    return float((top == targets[:, None]).any(1).double().mean())


def precision_recall_f1(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """Macro precision, recall and F1 (sklearn, ``zero_division=0``).

    >>> r = precision_recall_f1(torch.eye(2), torch.tensor([0, 1]))
    >>> r["precision"], r["recall"], r["f1"]
    (1.0, 1.0, 1.0)
    """
    logits, targets = _check(logits, targets)
    p, r, f, _ = _skm().precision_recall_fscore_support(
        targets.numpy(), logits.argmax(1).numpy(), average="macro", zero_division=0
    )
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def _present_onehot(logits: Tensor, targets: Tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """One-hot targets and softmax scores restricted to the classes present in ``targets``."""
    logits, targets = _check(logits, targets)
    present = torch.unique(targets)
    if present.numel() < 2:
        return None
    probs = logits.double().softmax(1)
    onehot = torch.nn.functional.one_hot(targets, logits.shape[1])
    return onehot[:, present].numpy(), probs[:, present].numpy()


def roc_auc(logits: Tensor, targets: Tensor) -> float:
    """One-vs-rest ROC-AUC of the softmax scores, macro over classes present in the targets;
    NaN when fewer than two classes are present.

    >>> roc_auc(torch.tensor([[2., 0.], [0., 2.], [1., 0.]]), torch.tensor([0, 1, 0]))
    1.0
    """
    data = _present_onehot(logits, targets)
    if data is None:
        return math.nan
    return float(_skm().roc_auc_score(data[0], data[1], average="macro"))


def pr_auc(logits: Tensor, targets: Tensor) -> float:
    """Macro average precision (area under the PR curve, one-vs-rest) over classes present in
    the targets; NaN when fewer than two classes are present.

    >>> pr_auc(torch.tensor([[2., 0.], [0., 2.]]), torch.tensor([0, 1]))
    1.0
    """
    data = _present_onehot(logits, targets)
    if data is None:
        return math.nan
    return float(_skm().average_precision_score(data[0], data[1], average="macro"))


def ece(logits: Tensor, targets: Tensor, *, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins.

    Confidence is the top softmax probability; bin m holds confidences in
    ((m-1)/M, m/M]; ECE = sum over bins of |B|/N * |accuracy(B) - mean confidence(B)|.

    >>> ece(torch.tensor([[0., 0.], [0., 0.]]), torch.tensor([0, 1]))  # conf 0.5, acc 0.5
    0.0
    """
    logits, targets = _check(logits, targets)
    probs = logits.double().softmax(1)
    conf, pred = probs.max(1)
    correct = (pred == targets).double()
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    total = 0.0
    for b in torch.unique(bins):
        in_bin = bins == b
        gap = (correct[in_bin].mean() - conf[in_bin].mean()).abs()
        total += float(in_bin.double().mean() * gap)
    return total


def per_class_accuracy(logits: Tensor, targets: Tensor) -> list[float]:
    """Accuracy within each true class (its recall); NaN for a class absent from the targets.

    >>> per_class_accuracy(torch.tensor([[1., 0., 0.], [1., 0., 0.]]), torch.tensor([0, 1]))
    [1.0, 0.0, nan]
    """
    logits, targets = _check(logits, targets)
    correct = (logits.argmax(1) == targets).double()
    out = []
    for c in range(logits.shape[1]):
        mask = targets == c
        out.append(float(correct[mask].mean()) if mask.any() else math.nan)
    return out


def confusion(logits: Tensor, targets: Tensor) -> list[list[int]]:
    """Confusion matrix (rows: true class, columns: predicted class) over all C classes.

    >>> confusion(torch.tensor([[1., 0.], [1., 0.]]), torch.tensor([0, 1]))
    [[1, 0], [1, 0]]
    """
    logits, targets = _check(logits, targets)
    labels = list(range(logits.shape[1]))
    matrix = _skm().confusion_matrix(targets.numpy(), logits.argmax(1).numpy(), labels=labels)
    return matrix.astype(int).tolist()


def quality(
    logits: Tensor, targets: Tensor, *, topk: Sequence[int] = (1, 5), n_bins: int = 15
) -> dict:
    """Every quality metric in one dict.

    Keys: ``accuracy``, ``top{k}`` for each k in ``topk``, ``precision``, ``recall``, ``f1``
    (macro), ``roc_auc``, ``pr_auc``, ``ece``, ``nll`` (mean cross-entropy),
    ``per_class_accuracy``, ``confusion``, ``num_samples``, ``num_classes`` and
    ``absent_classes`` (classes with no target sample, left out of the AUCs).

    >>> q = quality(torch.eye(3) * 5, torch.tensor([0, 1, 2]), topk=(1, 2))
    >>> q["accuracy"], q["top2"], q["roc_auc"], q["absent_classes"]
    (1.0, 1.0, 1.0, [])
    """
    logits, targets = _check(logits, targets)
    present = set(torch.unique(targets).tolist())
    result: dict = {"accuracy": accuracy(logits, targets)}
    for k in topk:
        result[f"top{k}"] = topk_accuracy(logits, targets, k)
    result.update(precision_recall_f1(logits, targets))
    result["roc_auc"] = roc_auc(logits, targets)
    result["pr_auc"] = pr_auc(logits, targets)
    result["ece"] = ece(logits, targets, n_bins=n_bins)
    result["nll"] = float(torch.nn.functional.cross_entropy(logits.double(), targets))
    result["per_class_accuracy"] = per_class_accuracy(logits, targets)
    result["confusion"] = confusion(logits, targets)
    result["num_samples"] = int(targets.shape[0])
    result["num_classes"] = int(logits.shape[1])
    result["absent_classes"] = [c for c in range(logits.shape[1]) if c not in present]
    return result
