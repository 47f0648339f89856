"""Relation losses: similarity-preserving (SP) and relational KD (RKD distance and angle).

They compare how samples relate *within* a batch, so student and teacher features may have
any (different) widths. ``student``/``teacher`` name captured features; ``None`` uses the logits.
Features are flattened to (N, D). Pass e.g. ``"classifier:input"`` to use the embedding that
feeds the classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from slimkit.distillation.losses.base import DistillLoss, Outputs, check_batch, non_negative
from slimkit.errors import ConfigError


class SPLoss(DistillLoss):
    """Similarity-preserving KD (Tung & Mori 2019).

    ``G = normalize_rows(F F^T)`` for the flattened batch features F; the loss is
    ``||G_t - G_s||_F^2 / b^2``. The paper weights it with gamma = 3000.

    >>> x = Outputs(torch.randn(4, 3))
    >>> float(SPLoss()(x, x))
    0.0
    """

    name = "sp"

    def __init__(self, student: str | None = None, teacher: str | None = None) -> None:
        super().__init__()
        self.student_key, self.teacher_key = student, teacher

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student).flatten(1), self.teacher_tensor(teacher).flatten(1)
        check_batch(s, t, self.name)
        g_s = F.normalize(s @ s.t(), dim=1)
        g_t = F.normalize(t @ t.t(), dim=1)
        return (g_t - g_s).pow(2).sum() / s.shape[0] ** 2


def pairwise_distances(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances between the rows of ``x`` with a zero diagonal.

    Distances are clamped at ``sqrt(eps)`` before the diagonal is zeroed so that the square
    root never sees 0, whose gradient is infinite.

    >>> pairwise_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]])).tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """
    sq = x.pow(2).sum(dim=1)
    d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * x @ x.t()).clamp(min=eps)
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return d2.sqrt().masked_fill(eye, 0.0)


def _normalized_distances(x: Tensor) -> Tensor:
    d = pairwise_distances(x)
    positive = d[d > 0]
    # A batch of identical samples has no positive distance; leave the zeros as they are.
    return d / positive.mean() if positive.numel() else d


def _angles(x: Tensor) -> Tensor:
    """cos of the angle at j between i and k for every triplet, flattened (N^3)."""
    diff = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)


class RKDLoss(DistillLoss):
    """Relational KD (Park et al., CVPR 2019): distance and angle terms.

    Distance: pairwise distances, each divided by the batch's mean positive distance, compared
    with smooth L1 (Huber). Angle: cosines of the angles formed by every triplet, compared with
    smooth L1. Returns ``distance_weight * distance + angle_weight * angle``; the defaults 1
    and 2 are the authors' code defaults. Memory grows as N^2 * D for the angle term.

    >>> x = Outputs(torch.randn(4, 3))
    >>> float(RKDLoss()(x, x))
    0.0
    """

    name = "rkd"

    def __init__(
        self,
        student: str | None = None,
        teacher: str | None = None,
        *,
        distance_weight: float = 1.0,
        angle_weight: float = 2.0,
    ) -> None:
        super().__init__()
        self.student_key, self.teacher_key = student, teacher
        self.distance_weight = non_negative(distance_weight, "distance_weight", self.name)
        self.angle_weight = non_negative(angle_weight, "angle_weight", self.name)
        if self.distance_weight == 0 and self.angle_weight == 0:
            raise ConfigError("loss 'rkd': distance_weight and angle_weight cannot both be 0")

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student).flatten(1), self.teacher_tensor(teacher).flatten(1)
        check_batch(s, t, self.name)
        total = s.new_zeros(())
        if self.distance_weight:
            dist = F.smooth_l1_loss(_normalized_distances(s), _normalized_distances(t))
            total = total + self.distance_weight * dist
        if self.angle_weight:
            total = total + self.angle_weight * F.smooth_l1_loss(_angles(s), _angles(t))
        return total

    def extra_repr(self) -> str:
        return f"distance_weight={self.distance_weight}, angle_weight={self.angle_weight}"
