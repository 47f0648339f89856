"""What every distillation loss shares: the ``Outputs`` it reads and the ``DistillLoss`` base.

A loss is an ``nn.Module`` called as ``loss(student, teacher, batch) -> Tensor``. ``student`` and
``teacher`` are ``Outputs`` (logits plus features captured by module path); ``batch`` is what the
loader yielded (read by :mod:`slimkit.modelio`: ``(x, y, *extra)``, ``(dict, y)`` or a mapping
with a label key), and only losses that need hard labels read its targets.
Teacher tensors are always detached, so no gradient reaches the teacher even when it is a peer
being trained in the same step (mutual learning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError, DataError, ModelError
from slimkit.registry import did_you_mean


@dataclass
class Outputs:
    """A model's logits and the features captured from it, keyed by module path.

    >>> out = Outputs(torch.zeros(2, 3), {"features.0": torch.ones(2, 4)})
    >>> out.detach().features["features.0"].shape
    torch.Size([2, 4])
    """

    logits: Tensor
    features: dict[str, Tensor] = field(default_factory=dict)

    def detach(self) -> Outputs:
        """A copy whose tensors carry no autograd history (for caching teacher outputs)."""
        return Outputs(self.logits.detach(), {k: v.detach() for k, v in self.features.items()})


class DistillLoss(nn.Module):
    """Base of every distillation loss.

    ``student_key`` and ``teacher_key`` name the captured features a loss reads (``None`` means
    the logits); ``required_features`` collects them so a strategy can set up the hooks.
    """

    name: str = "loss"
    student_key: str | None = None
    teacher_key: str | None = None

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        raise NotImplementedError

    def materialize(self, student: Outputs, teacher: Outputs) -> None:
        """Create parameters that depend on feature shapes; most losses have none."""

    # --- helpers shared by the subclasses -------------------------------------------------

    def student_tensor(self, student: Outputs) -> Tensor:
        return pick(student, self.student_key, role="student", loss=self.name)

    def teacher_tensor(self, teacher: Outputs) -> Tensor:
        # Detached so that gradients never reach the teacher (or a peer acting as one).
        return pick(teacher, self.teacher_key, role="teacher", loss=self.name).detach()


def pick(outputs: Outputs, key: str | None, *, role: str, loss: str) -> Tensor:
    """The logits (``key=None``) or the captured feature ``key`` of ``outputs``."""
    if key is None:
        return outputs.logits
    try:
        return outputs.features[key]
    except KeyError:
        known = sorted(outputs.features)
        raise ConfigError(
            f"loss '{loss}': {role} feature '{key}' was not captured.{did_you_mean(key, known)}",
            hint=f"captured {role} features: {known or 'none'}; add '{key}' to the {role}'s "
            "FeatureCapture paths (see required_features(loss))",
        ) from None


def targets(batch: Any, loss: str) -> Tensor:
    """The batch's labels (``modelio.split(batch).targets``): class indices (N,), or class
    probabilities (N, C) after mixup/cutmix; an error that says what was expected if there are none.

    >>> targets({"x": torch.zeros(1), "labels": torch.tensor([2])}, "ce").tolist()
    [2]
    """
    from slimkit.modelio import split

    found = split(batch).targets if batch is not None else None
    if not isinstance(found, Tensor):
        raise DataError(
            f"loss '{loss}' needs hard labels, but the batch has none",
            hint="pass the loader's batch (x, y, ...) as the third argument",
        )
    return found


def class_targets(batch: Any, loss: str) -> Tensor:
    """The batch's labels as class indices: soft (N, C) labels (mixup/cutmix) by their arg-max.

    >>> class_targets((None, torch.tensor([[0.3, 0.7]])), "dkd").tolist()
    [1]
    """
    found = targets(batch, loss)
    return found.argmax(dim=1) if found.is_floating_point() and found.dim() == 2 else found.long()


def check_logits(student: Tensor, teacher: Tensor, loss: str) -> None:
    """Student and teacher logits must be (batch, classes) with the same shape."""
    if student.dim() != 2 or teacher.dim() != 2:
        raise ModelError(
            f"loss '{loss}' expects logits of shape (batch, classes), got student "
            f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}"
        )
    if student.shape[1] != teacher.shape[1]:
        raise ModelError(
            f"loss '{loss}': student has {student.shape[1]} classes but teacher has {teacher.shape[1]}",
            hint="build the student with the teacher's num_classes",
        )
    if student.shape[0] != teacher.shape[0]:
        raise ModelError(f"loss '{loss}': batch sizes differ ({student.shape[0]} vs {teacher.shape[0]})")


def check_batch(student: Tensor, teacher: Tensor, loss: str) -> None:
    if student.shape[0] != teacher.shape[0]:
        raise ModelError(
            f"loss '{loss}': student and teacher batch sizes differ "
            f"({student.shape[0]} vs {teacher.shape[0]})"
        )


def positive(value: float, what: str, loss: str) -> float:
    """``value`` as a float, or ConfigError if it is not a finite number > 0."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"loss '{loss}': {what} must be a number > 0, got {value!r}")
    return float(value)


def non_negative(value: float, what: str, loss: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"loss '{loss}': {what} must be a number >= 0, got {value!r}")
    return float(value)


def required_features(loss: nn.Module) -> tuple[list[str], list[str]]:
    """The (student, teacher) feature paths every ``DistillLoss`` inside ``loss`` reads.

    >>> from slimkit.distillation.losses.feature import ATLoss
    >>> required_features(ATLoss("layer1", "block2"))
    (['layer1'], ['block2'])
    """
    student: dict[str, None] = {}
    teacher: dict[str, None] = {}
    for module in loss.modules():
        if isinstance(module, DistillLoss):
            if module.student_key is not None:
                student[module.student_key] = None
            if module.teacher_key is not None:
                teacher[module.teacher_key] = None
    return list(student), list(teacher)


def materialize(loss: nn.Module, student: Outputs, teacher: Outputs) -> list[str]:
    """Create every shape-dependent parameter inside ``loss`` (e.g. FitNet adapters) now.

    Call it with the outputs of one batch *before* building the optimizer, so the optimizer
    sees the adapters' parameters. Returns the names of the parameters it created.

    >>> from slimkit.distillation.losses.feature import FitNetLoss
    >>> fit = FitNetLoss("s", "t")
    >>> s = Outputs(torch.zeros(2, 3), {"s": torch.ones(2, 4)})
    >>> t = Outputs(torch.zeros(2, 3), {"t": torch.ones(2, 6)})
    >>> materialize(fit, s, t)
    ['adapter.proj.weight', 'adapter.proj.bias']
    """
    before = {name for name, _ in loss.named_parameters()}
    with torch.no_grad():
        for module in loss.modules():
            if isinstance(module, DistillLoss):
                module.materialize(student, teacher)
    return [name for name, _ in loss.named_parameters() if name not in before]
