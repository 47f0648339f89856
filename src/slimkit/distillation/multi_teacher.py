"""Several teachers as one: combine their logits (mean, fixed weights, or per-sample confidence)
and route feature keys (``"1/features.2"`` = teacher 1's ``features.2``) to the right teacher.

Logits are combined as a weighted mean of logits, which keeps ``Outputs.logits`` a logit tensor
every loss understands; teachers may have any architectures as long as their class counts agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from slimkit.distillation.losses.base import Outputs
from slimkit.errors import ConfigError, ModelError


def split_teacher_key(key: str, num_teachers: int) -> tuple[int, str]:
    """``"1/features.2"`` -> ``(1, "features.2")``; a bare path belongs to teacher 0.

    >>> split_teacher_key("1/features.2", 2), split_teacher_key("features.0", 2)
    ((1, 'features.2'), (0, 'features.0'))
    """
    head, sep, path = key.partition("/")
    if not sep:
        return 0, key
    if not head.isdigit() or int(head) >= num_teachers:
        raise ConfigError(
            f"teacher feature '{key}' names teacher {head!r}, but there are {num_teachers} teacher(s)",
            hint=f"write 'K/module.path' with K in 0..{num_teachers - 1}",
        )
    return int(head), path


def teacher_weights(
    logits: Sequence[Tensor],
    weighting: str = "mean",
    weights: Sequence[float] | None = None,
    *,
    confidence: str = "entropy",
    temperature: float = 1.0,
) -> Tensor:
    """Per-sample weights (N, K) of K teachers, each row summing to 1.

    ``"mean"``: 1/K. ``"weighted"``: ``weights`` normalized. ``"confidence"``: softmax over the
    teachers of their confidence in each sample, the negative entropy of their prediction
    (``confidence="entropy"``) or its max probability (``"maxprob"``), divided by
    ``temperature`` (smaller = sharper preference for the confident teacher).

    >>> sure, unsure = torch.tensor([[9.0, 0.0, 0.0]]), torch.zeros(1, 3)
    >>> teacher_weights([sure, unsure], "confidence")[0, 0] > 0.7
    tensor(True)
    >>> teacher_weights([sure, unsure], "weighted", [3, 1]).tolist()
    [[0.75, 0.25]]
    """
    k, n = len(logits), logits[0].shape[0]
    device, dtype = logits[0].device, logits[0].dtype
    if weighting == "mean":
        return torch.full((n, k), 1.0 / k, device=device, dtype=dtype)
    if weighting == "weighted":
        if weights is None or len(weights) != k:
            raise ConfigError(
                f"teacher_weights has {0 if weights is None else len(weights)} entries for {k} teachers",
                hint="give one weight per teacher, in the order the teachers were passed",
            )
        w = torch.tensor([float(v) for v in weights], device=device, dtype=dtype)
        return (w / w.sum()).expand(n, k).clone()
    if weighting == "confidence":
        scores = []
        for z in logits:
            log_p = F.log_softmax(z.float(), dim=1)
            if confidence == "entropy":
                scores.append((log_p.exp() * log_p).sum(dim=1))  # = -entropy
            elif confidence == "maxprob":
                scores.append(log_p.exp().max(dim=1).values)
            else:
                raise ConfigError(f"confidence must be 'entropy' or 'maxprob', got {confidence!r}")
        return F.softmax(torch.stack(scores, dim=1) / temperature, dim=1).to(dtype)
    raise ConfigError(f"teacher_weighting must be 'mean', 'weighted' or 'confidence', got {weighting!r}")


def combine_logits(logits: Sequence[Tensor], weights: Tensor) -> Tensor:
    """``sum_k weights[:, k] * logits[k]``: the ensemble's logits, sample by sample.

    >>> combine_logits([torch.ones(1, 2), torch.zeros(1, 2)], torch.tensor([[0.25, 0.75]])).tolist()
    [[0.25, 0.25]]
    """
    shapes = {tuple(z.shape) for z in logits}
    if len(shapes) != 1:
        raise ModelError(
            f"teachers disagree on the logits' shape: {sorted(shapes)}",
            hint="every teacher must predict the same classes (same num_classes)",
        )
    stacked = torch.stack(list(logits), dim=1)  # (N, K, C)
    return (weights.unsqueeze(-1).to(stacked.dtype) * stacked).sum(dim=1)


class TeacherEnsemble:
    """Turn per-teacher ``Outputs`` into the one ``Outputs`` the losses read.

    ``keys`` are the teacher feature keys the losses ask for; each is routed to its teacher.

    >>> ens = TeacherEnsemble(2, ["1/f"])
    >>> a, b = Outputs(torch.zeros(1, 2)), Outputs(torch.ones(1, 2), {"f": torch.ones(1, 3)})
    >>> out = ens([a, b]); out.logits.tolist(), list(out.features)
    ([[0.5, 0.5]], ['1/f'])
    """

    def __init__(
        self,
        num_teachers: int,
        keys: Sequence[str] = (),
        *,
        weighting: str = "mean",
        weights: Sequence[float] | None = None,
        confidence: str = "entropy",
        temperature: float = 1.0,
    ) -> None:
        if num_teachers < 1:
            raise ConfigError("distillation needs at least one teacher")
        if weighting == "weighted" and (weights is None or len(weights) != num_teachers):
            raise ConfigError(
                f"teacher_weights has {0 if weights is None else len(weights)} entries for {num_teachers} teachers",
                hint="give one weight per teacher, in the order the teachers were passed",
            )
        self.num_teachers = num_teachers
        self.routes = {key: split_teacher_key(key, num_teachers) for key in keys}
        self.weighting, self.weights = weighting, list(weights) if weights is not None else None
        self.confidence, self.temperature = confidence, temperature
        self.last_weights: Tensor | None = None

    def paths(self, teacher: int) -> list[str]:
        """The module paths to capture from teacher ``teacher``."""
        return list(dict.fromkeys(p for k, p in self.routes.values() if k == teacher))

    def __call__(self, outputs: Sequence[Outputs]) -> Outputs:
        if len(outputs) != self.num_teachers:
            raise ModelError(f"expected outputs of {self.num_teachers} teachers, got {len(outputs)}")
        features = {key: outputs[k].features[path] for key, (k, path) in self.routes.items()}
        if self.num_teachers == 1:
            return Outputs(outputs[0].logits, features)
        logits = [o.logits for o in outputs]
        w = teacher_weights(logits, self.weighting, self.weights, confidence=self.confidence,
                            temperature=self.temperature)
        self.last_weights = w.detach()
        return Outputs(combine_logits(logits, w), features)
