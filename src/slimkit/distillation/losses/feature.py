"""Feature losses: FitNets hints (with a learned adapter) and attention transfer (AT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor

from slimkit.distillation.adapters import LazyAdapter, match_spatial
from slimkit.distillation.losses.base import DistillLoss, Outputs, check_batch, positive
from slimkit.errors import ConfigError, ModelError


class FitNetLoss(DistillLoss):
    """FitNets hint loss (Romero et al. 2015) between a student and a teacher feature.

    The student feature goes through a ``LazyAdapter`` (1x1 conv for 4-D, linear for 2-D,
    built from the first batch's shapes) and is resized to the teacher's spatial size, then
    compared by mean squared error (``loss="mse"``) or smooth L1. Call
    ``slimkit.distillation.losses.materialize`` before building the optimizer so it sees the
    adapter. With ``adapter=False`` the channels must already match.

    >>> import torch
    >>> s = Outputs(torch.zeros(2, 3), {"s": torch.ones(2, 4, 4, 4)})
    >>> t = Outputs(torch.zeros(2, 3), {"t": torch.ones(2, 4, 2, 2)})
    >>> float(FitNetLoss("s", "t", adapter=False)(s, t))
    0.0
    """

    name = "fitnet"

    def __init__(
        self,
        student: str,
        teacher: str,
        *,
        loss: Literal["mse", "smooth_l1"] = "mse",
        adapter: bool = True,
    ) -> None:
        super().__init__()
        if loss not in ("mse", "smooth_l1"):
            raise ConfigError(f"loss 'fitnet': loss must be 'mse' or 'smooth_l1', got {loss!r}")
        self.student_key, self.teacher_key = _key(student, "student"), _key(teacher, "teacher")
        self.loss = loss
        self.adapter = LazyAdapter() if adapter else None

    def materialize(self, student: Outputs, teacher: Outputs) -> None:
        if self.adapter is not None:
            self.adapter.materialize(self.student_tensor(student), self.teacher_tensor(teacher))

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        check_batch(s, t, self.name)
        if self.adapter is not None:
            s = self.adapter(s, t)
        else:
            if s.dim() != t.dim() or s.shape[1] != t.shape[1]:
                raise ModelError(
                    f"loss 'fitnet': student feature {tuple(s.shape)} and teacher feature "
                    f"{tuple(t.shape)} differ in rank or channels",
                    hint="set adapter=True to learn a projection",
                )
            if s.dim() == 4:
                s = match_spatial(s, t.shape[-2:])
        if self.loss == "mse":
            return F.mse_loss(s, t)
        return F.smooth_l1_loss(s, t)

    def extra_repr(self) -> str:
        return f"student={self.student_key!r}, teacher={self.teacher_key!r}, loss={self.loss!r}"


def attention_map(feature: Tensor, p: float = 2.0) -> Tensor:
    """Spatial attention ``mean_c |f|^p`` of an (N, C, H, W) feature, as (N, H, W).

    >>> import torch
    >>> attention_map(torch.full((1, 2, 1, 1), 3.0)).tolist()
    [[[9.0]]]
    """
    if feature.dim() != 4:
        raise ModelError(f"attention transfer needs (N, C, H, W) features, got {tuple(feature.shape)}")
    return feature.abs().pow(p).mean(dim=1)


class ATLoss(DistillLoss):
    """Attention transfer (Zagoruyko & Komodakis 2017).

    Each feature becomes a spatial attention map ``mean_c |f|^p`` (p=2), flattened and
    L2-normalized per sample; the loss is the mean squared difference of the two maps. The
    student's map is resized to the teacher's when spatial sizes differ; channel counts may
    differ freely. The paper weights the sum over layer pairs by beta/2 = 500.

    >>> import torch
    >>> f = Outputs(torch.zeros(1, 2), {"x": torch.randn(1, 3, 4, 4)})
    >>> float(ATLoss("x", "x")(f, f))
    0.0
    """

    name = "at"

    def __init__(self, student: str, teacher: str, *, p: float = 2.0) -> None:
        super().__init__()
        self.student_key, self.teacher_key = _key(student, "student"), _key(teacher, "teacher")
        self.p = positive(p, "p", self.name)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        check_batch(s, t, self.name)
        a_s, a_t = attention_map(s, self.p), attention_map(t, self.p)
        if a_s.shape[-2:] != a_t.shape[-2:]:
            a_s = match_spatial(a_s.unsqueeze(1), a_t.shape[-2:]).squeeze(1)
        a_s = F.normalize(a_s.flatten(1), dim=1)
        a_t = F.normalize(a_t.flatten(1), dim=1)
        return (a_s - a_t).pow(2).mean()

    def extra_repr(self) -> str:
        return f"student={self.student_key!r}, teacher={self.teacher_key!r}, p={self.p}"


def _key(value: str, role: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"feature losses need the {role} feature's module path as a string, got {value!r}",
            hint="for example 'features.3' (a name from model.named_modules())",
        )
    return value
