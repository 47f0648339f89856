"""How two models' predictions differ on the same samples: agreement, flips, per-class deltas,
and the fidelity of B to A as Stanton et al. (2021, "Does knowledge distillation really work?")
measure it: top-1 agreement and the mean predictive KL divergence ``KL(p_A || p_B)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from slimkit.errors import DataError
from slimkit.evaluate.quality import per_class_accuracy

__all__ = ["agreement", "fidelity"]


def _labels(scores: Tensor) -> Tensor:
    scores = torch.as_tensor(scores).detach().cpu()
    return scores.argmax(1) if scores.dim() == 2 else scores.long().reshape(-1)


def agreement(logits_a: Tensor, logits_b: Tensor, targets: Tensor) -> dict:
    """Compare model B's predictions against model A's on the same samples.

    ``logits_a``/``logits_b`` are (N, C) logits or (N,) predicted labels. Returns
    ``agreement`` (share of identical predictions) and ``agree_count``;
    ``right_to_wrong`` / ``wrong_to_right`` (counts of samples A got right and B wrong, and the
    reverse) with their shares ``right_to_wrong_rate`` / ``wrong_to_right_rate``;
    ``per_class_delta`` (B's minus A's per-class accuracy, NaN for classes absent from the
    targets; only with 2-D logits) and ``num_samples``.

    >>> a = torch.tensor([[1., 0.], [1., 0.], [0., 1.]])
    >>> b = torch.tensor([[1., 0.], [0., 1.], [1., 0.]])
    >>> r = agreement(a, b, torch.tensor([0, 0, 0]))
    >>> r["agreement"], r["right_to_wrong"], r["wrong_to_right"]
    (0.3333333333333333, 1, 1)
    """
    pred_a, pred_b = _labels(logits_a), _labels(logits_b)
    targets = torch.as_tensor(targets).detach().long().cpu().reshape(-1)
    if not (pred_a.shape == pred_b.shape == targets.shape) or targets.numel() == 0:
        raise DataError(
            f"agreement needs predictions of the same N samples, got {tuple(pred_a.shape)}, "
            f"{tuple(pred_b.shape)} and targets {tuple(targets.shape)}",
            hint="predict both models on the same unshuffled loader",
        )
    n = targets.numel()
    right_a, right_b = pred_a == targets, pred_b == targets
    same = int((pred_a == pred_b).sum())
    r2w = int((right_a & ~right_b).sum())
    w2r = int((~right_a & right_b).sum())
    result: dict = {
        "agreement": same / n,
        "agree_count": same,
        "right_to_wrong": r2w,
        "wrong_to_right": w2r,
        "right_to_wrong_rate": r2w / n,
        "wrong_to_right_rate": w2r / n,
        "num_samples": n,
    }
    la, lb = torch.as_tensor(logits_a), torch.as_tensor(logits_b)
    if la.dim() == 2 and lb.dim() == 2 and la.shape == lb.shape:
        acc_a = per_class_accuracy(la, targets)
        acc_b = per_class_accuracy(lb, targets)
        result["per_class_delta"] = [b - a for a, b in zip(acc_a, acc_b)]
        result.update(fidelity(la, lb))
    return result


def fidelity(logits_a: Tensor, logits_b: Tensor, *, temperature: float = 1.0) -> dict[str, float]:
    """How faithfully B reproduces A's predictive distribution on the same samples (Stanton et
    al. 2021): ``kl`` = mean over samples of ``KL(softmax(a/T) || softmax(b/T))`` in nats (0 when
    B matches A exactly, the quantity KD minimizes), ``kl_reverse`` = ``KL(p_B || p_A)``, and
    ``top1_agreement`` (the share of samples whose arg-max classes agree).

    >>> a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> r = fidelity(a, a)
    >>> r["kl"], r["top1_agreement"]
    (0.0, 1.0)
    >>> fidelity(a, torch.zeros(2, 2))["kl"] > 0
    True
    """
    a = torch.as_tensor(logits_a).detach().double().cpu()
    b = torch.as_tensor(logits_b).detach().double().cpu()
    if a.dim() != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise DataError(f"fidelity needs (N, C) logits of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}",
                        hint="predict both models on the same unshuffled loader")
    if not temperature > 0:
        raise DataError(f"fidelity: temperature must be > 0, got {temperature!r}")
    log_a, log_b = F.log_softmax(a / temperature, dim=1), F.log_softmax(b / temperature, dim=1)
    kl = F.kl_div(log_b, log_a, reduction="batchmean", log_target=True)
    kl_reverse = F.kl_div(log_a, log_b, reduction="batchmean", log_target=True)
    return {"kl": max(0.0, float(kl)), "kl_reverse": max(0.0, float(kl_reverse)),
            "top1_agreement": float((a.argmax(1) == b.argmax(1)).double().mean())}
