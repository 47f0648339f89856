"""Adversarial distillation: a discriminator tells teacher outputs from student ones, the student
learns to fool it.

One optimizer does both sides thanks to a gradient-reversal layer (Ganin & Lempitsky 2015)
between the student's outputs and the discriminator: the discriminator minimises its binary
cross-entropy, and the student, receiving the negated gradient of that same loss, maximises it.
The discriminator lives inside the loss module, so a Trainer (or any optimizer built over the
loss's parameters) updates it with the student. Use it as a term next to KD, e.g.
``[{"name": "kd", "weight": 0.9}, {"name": "ce", "weight": 0.1}, {"name": "adversarial", "weight": 0.1}]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.distillation.losses.base import (
    DistillLoss,
    Outputs,
    check_batch,
    non_negative,
    positive,
)
from slimkit.distillation.losses.combine import LOSSES
from slimkit.errors import ConfigError, ModelError


class GradientReversal(torch.autograd.Function):
    """Identity on the way forward; multiplies the gradient by ``-scale`` on the way back."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def grad_reverse(x: Tensor, scale: float = 1.0) -> Tensor:
    """``x`` unchanged, but gradients flowing back through it are negated and scaled.

    >>> x = torch.ones(2, requires_grad=True)
    >>> grad_reverse(x, 0.5).sum().backward()
    >>> x.grad.tolist()
    [-0.5, -0.5]
    """
    return GradientReversal.apply(x, scale)


class AdversarialLoss(DistillLoss):
    """Adversarial term: a discriminator learns teacher from student outputs; the student fools it.

    The value is the BCE of a small MLP discriminator (teacher = 1, student = 0) on softened
    probabilities or pooled features, with the student's side behind a gradient-reversal layer.

    ``student_key``/``teacher_key`` pick captured features (None = logits, fed as
    ``softmax(z / temperature)``; 4-D features are global-average-pooled). The discriminator
    (``hidden`` units, one hidden layer) is built from the first batch's width: call
    ``materialize`` before building the optimizer. The value rises towards ``2 ln 2`` as the
    student becomes indistinguishable from the teacher.

    >>> loss = AdversarialLoss(hidden=8)
    >>> s, t = Outputs(torch.randn(4, 3)), Outputs(torch.randn(4, 3))
    >>> loss.materialize(s, t); float(loss(s, t).detach()) > 0
    True
    """

    name = "adversarial"

    def __init__(
        self,
        hidden: int = 64,
        temperature: float = 1.0,
        reverse_scale: float = 1.0,
        student_key: str | None = None,
        teacher_key: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"loss 'adversarial': hidden must be an integer >= 1, got {hidden!r}")
        if (student_key is None) != (teacher_key is None):
            raise ConfigError(
                "loss 'adversarial': give both student_key and teacher_key (features) or neither (logits)"
            )
        self.hidden = hidden
        self.temperature = positive(temperature, "temperature", self.name)
        self.reverse_scale = non_negative(reverse_scale, "reverse_scale", self.name)
        self.student_key, self.teacher_key = student_key, teacher_key
        self.discriminator: nn.Sequential | None = None

    def embed(self, x: Tensor) -> Tensor:
        """What the discriminator sees: softened probabilities, or a pooled feature vector."""
        if self.student_key is None:
            return F.softmax(x / self.temperature, dim=1)
        if x.dim() == 4:
            x = F.adaptive_avg_pool2d(x, 1)
        return x.flatten(1)

    def materialize(self, student: Outputs, teacher: Outputs) -> None:
        s = self.embed(self.student_tensor(student))
        t = self.embed(self.teacher_tensor(teacher))
        if s.shape[1] != t.shape[1]:
            raise ModelError(
                f"loss 'adversarial': student gives {s.shape[1]} values per sample but teacher {t.shape[1]}; "
                "one discriminator must read both",
                hint="use logits (no keys), or features of equal channel count",
            )
        if self.discriminator is None:
            self.discriminator = self._build(s.shape[1]).to(device=s.device, dtype=s.dtype)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        check_batch(s, t, self.name)
        if self.discriminator is None:
            self.materialize(student, teacher)
            if self.training and torch.is_grad_enabled():
                warnings.warn(
                    "AdversarialLoss built its discriminator inside a training step; an optimizer built "
                    "earlier will not update it. Call materialize() with one batch first.",
                    stacklevel=2,
                )
        assert self.discriminator is not None
        fake = self.discriminator(grad_reverse(self.embed(s), self.reverse_scale))
        real = self.discriminator(self.embed(t))
        return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
            fake, torch.zeros_like(fake)
        )

    def _build(self, width: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(width, self.hidden), nn.LeakyReLU(0.2), nn.Linear(self.hidden, 1))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Rebuild the discriminator from the saved shapes so a fresh loss can resume a checkpoint.
        weight = state_dict.get(prefix + "discriminator.0.weight")
        if self.discriminator is None and weight is not None:
            self.hidden = int(weight.shape[0])
            self.discriminator = self._build(int(weight.shape[1])).to(device=weight.device, dtype=weight.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        keys = f", student_key={self.student_key!r}, teacher_key={self.teacher_key!r}" if self.student_key else ""
        return f"hidden={self.hidden}, temperature={self.temperature}, reverse_scale={self.reverse_scale}{keys}"


LOSSES.add(
    "adversarial",
    AdversarialLoss,
    doc=(AdversarialLoss.__doc__ or "").strip().splitlines()[0],
    needs="logits or features",
)
