"""Probabilistic knowledge transfer (PKT, Passalis & Tefas, ECCV 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from slimkit.distillation.losses.base import DistillLoss, Outputs, check_batch, positive


def cosine_conditionals(x: Tensor, eps: float = 1e-7) -> Tensor:
    """Row-stochastic matrix of ``(cos(x_i, x_j) + 1) / 2``, normalized over j.

    >>> [[round(v, 4) for v in row] for row in cosine_conditionals(torch.eye(2)).tolist()]
    [[0.6667, 0.3333], [0.3333, 0.6667]]
    """
    x = x / (x.norm(dim=1, keepdim=True) + eps)
    # All-zero rows would give 0/0; the authors' code zeroes such NaNs.
    x = torch.nan_to_num(x, nan=0.0)
    sim = (x @ x.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


class PKTLoss(DistillLoss):
    """PKT: KL divergence between the teacher's and the student's cosine-similarity
    conditional probabilities over the batch, ``mean_ij p_ij log((p_ij + eps) / (q_ij + eps))``.

    Widths may differ. ``None`` keys use the logits; features are flattened to (N, D).

    >>> x = Outputs(torch.randn(4, 3))
    >>> abs(float(PKTLoss()(x, x))) < 1e-7
    True
    """

    name = "pkt"

    def __init__(self, student: str | None = None, teacher: str | None = None, *, eps: float = 1e-7) -> None:
        super().__init__()
        self.student_key, self.teacher_key = student, teacher
        self.eps = positive(eps, "eps", self.name)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student).flatten(1), self.teacher_tensor(teacher).flatten(1)
        check_batch(s, t, self.name)
        q = cosine_conditionals(s, self.eps)
        p = cosine_conditionals(t, self.eps)
        return (p * torch.log((p + self.eps) / (q + self.eps))).mean()
