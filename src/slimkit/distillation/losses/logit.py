"""Logit losses: Hinton KD, hard-label cross-entropy, decoupled KD, logit standardization, DIST.

Soft (KD) and hard (CE) terms are separate modules; Hinton's alpha mixing is
``WeightedSumLoss({"kd": (alpha, KDLoss()), "ce": (1 - alpha, HardLabelLoss())})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from slimkit.distillation.losses.base import (
    DistillLoss,
    Outputs,
    check_logits,
    class_targets,
    non_negative,
    positive,
    targets,
)
from slimkit.errors import ConfigError


def soft_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``KL(softmax(t/T) || softmax(s/T)) * T^2``, averaged over the batch.

    The T^2 factor keeps gradient magnitudes comparable across temperatures (Hinton et al. 2015).

    >>> x = torch.tensor([[1.0, 2.0, 3.0]])
    >>> float(soft_kl(x, x, 4.0))
    0.0
    """
    log_s = F.log_softmax(student / temperature, dim=1)
    log_t = F.log_softmax(teacher / temperature, dim=1)
    return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * temperature**2


def standardize(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """Per-sample z-score of logits, as in Sun et al. (2024): ``(z - mean) / (eps + std)``.

    ``std`` is the unbiased (Bessel-corrected) one, matching the authors' code.

    >>> [round(v, 4) for v in standardize(torch.tensor([[1.0, 2.0, 3.0]]))[0].tolist()]
    [-1.0, 0.0, 1.0]
    """
    mean = logits.mean(dim=1, keepdim=True)
    std = logits.std(dim=1, keepdim=True)
    return (logits - mean) / (eps + std)


class KDLoss(DistillLoss):
    """Hinton KD soft term: ``KL(softmax(t/T) || softmax(s/T)) * T^2`` (batch mean).

    >>> s, t = Outputs(torch.tensor([[0.0, 1.0]])), Outputs(torch.tensor([[0.0, 1.0]]))
    >>> float(KDLoss(temperature=4)(s, t))
    0.0
    """

    name = "kd"

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = positive(temperature, "temperature", self.name)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        check_logits(s, t, self.name)
        return soft_kl(s, t, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class HardLabelLoss(DistillLoss):
    """Cross-entropy of the student's logits with the batch's labels: class indices, or class
    probabilities (N, C) when mixup or cutmix mixed the batch.

    >>> s = Outputs(torch.tensor([[0.0, 0.0]]))
    >>> round(float(HardLabelLoss()(s, s, (None, torch.tensor([1])))), 4)
    0.6931
    """

    name = "ce"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        smoothing = non_negative(label_smoothing, "label_smoothing", self.name)
        if smoothing >= 1:
            raise ConfigError(f"loss 'ce': label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = smoothing

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        y = targets(batch, self.name)
        return F.cross_entropy(self.student_tensor(student), y, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


class DKDLoss(DistillLoss):
    """Decoupled KD (Zhao et al., CVPR 2022): ``alpha * TCKD + beta * NCKD``.

    TCKD is the KL between the binary (target, all non-targets) distributions; NCKD is the KL
    between the distributions over non-target classes only. As in the authors' code the target
    class is masked out of NCKD by subtracting 1000 from its tempered logit, and both terms are
    scaled by T^2. ``standardize=True`` z-scores logits first (Sun et al. 2024). The authors also
    ramp the loss in over the first 20 epochs; schedule this term's weight for that.

    >>> x = Outputs(torch.tensor([[2.0, 0.5, -1.0]]))
    >>> float(DKDLoss()(x, x, (None, torch.tensor([0]))))
    0.0
    """

    name = "dkd"

    def __init__(
        self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0, standardize: bool = False
    ) -> None:
        super().__init__()
        self.alpha = non_negative(alpha, "alpha", self.name)
        self.beta = non_negative(beta, "beta", self.name)
        self.temperature = positive(temperature, "temperature", self.name)
        self.standardize = bool(standardize)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        check_logits(s, t, self.name)
        y = class_targets(batch, self.name).reshape(-1, 1)
        if self.standardize:
            s, t = standardize(s), standardize(t)
        temp = self.temperature
        log_s = F.log_softmax(s / temp, dim=1)
        log_t = F.log_softmax(t / temp, dim=1)
        tckd = F.kl_div(_binary(log_s, y), _binary(log_t, y), reduction="batchmean", log_target=True)
        gt = torch.zeros_like(s).scatter_(1, y, 1.0)
        nckd = F.kl_div(
            F.log_softmax(s / temp - 1000.0 * gt, dim=1),
            F.log_softmax(t / temp - 1000.0 * gt, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        return (self.alpha * tckd + self.beta * nckd) * temp**2

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, "
            f"standardize={self.standardize}"
        )


def _binary(log_probs: Tensor, y: Tensor) -> Tensor:
    """Log of (p_target, 1 - p_target), computed in log space so it never takes log(0)."""
    log_target = log_probs.gather(1, y)
    log_rest = torch.logsumexp(log_probs.scatter(1, y, float("-inf")), dim=1, keepdim=True)
    return torch.cat([log_target, log_rest], dim=1)


class LogitStandardKDLoss(DistillLoss):
    """KD on per-sample z-scored logits (Sun et al., CVPR 2024), scaled by T^2.

    Standardizing removes the need for the student to match the teacher's logit range, so a
    low base temperature works; the authors use T=2 with this term weighted 9 and CE 0.1 on
    CIFAR-100.

    >>> s, t = Outputs(torch.tensor([[1.0, 2.0, 3.0]])), Outputs(torch.tensor([[10.0, 20.0, 30.0]]))
    >>> float(LogitStandardKDLoss()(s, t)) < 1e-6
    True
    """

    name = "logit_std"

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = positive(temperature, "temperature", self.name)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        check_logits(s, t, self.name)
        if s.shape[1] < 2:
            raise ConfigError("loss 'logit_std' needs at least 2 classes to standardize logits")
        return soft_kl(standardize(s), standardize(t), self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


def pearson_distance(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``1 - Pearson correlation`` between the rows of ``a`` and ``b`` (one value per row).

    >>> x = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    >>> [abs(round(v, 4)) for v in pearson_distance(x, x).tolist()], round(float(pearson_distance(x[:1], x[1:])), 4)
    ([0.0, 0.0], 2.0)
    """
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return 1 - (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


class DISTLoss(DistillLoss):
    """DIST (Huang et al., NeurIPS 2022, "Knowledge distillation from a stronger teacher").

    Matches *relations* rather than exact probabilities, which tolerates the large
    teacher-student gaps where KL matching fails: ``inter`` is the Pearson distance between each
    sample's student and teacher class probabilities (``softmax(z / T)``), ``intra`` the Pearson
    distance between each class's probabilities across the batch. The loss is
    ``T^2 * (beta * inter + gamma * intra)``; the authors add it to cross-entropy with
    beta = gamma = 1 (ImageNet, T=1) or 2 (CIFAR-100, T=4).

    >>> x = Outputs(torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]]))
    >>> round(float(DISTLoss()(x, x)), 6)
    0.0
    """

    name = "dist"

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.beta = non_negative(beta, "beta", self.name)
        self.gamma = non_negative(gamma, "gamma", self.name)
        self.temperature = positive(temperature, "temperature", self.name)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        check_logits(s, t, self.name)
        temp = self.temperature
        p_s, p_t = F.softmax(s / temp, dim=1), F.softmax(t / temp, dim=1)
        inter = pearson_distance(p_s, p_t).mean()
        intra = pearson_distance(p_s.t(), p_t.t()).mean() if s.shape[0] > 1 else s.new_zeros(())
        return temp**2 * (self.beta * inter + self.gamma * intra)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, temperature={self.temperature}"
