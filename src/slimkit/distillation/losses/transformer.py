"""Token-level distillation losses for transformers, registered in ``LOSSES``.

- ``hidden``: hidden states (N, L, D) of a student layer against a teacher layer, through a
  learned linear adapter over the width when the widths differ (TinyBERT's ``W_h``);
- ``attention``: the self-attention distributions ``softmax(q k^T / sqrt(d))`` of a student
  attention against a teacher's, per head (TinyBERT, MiniLM), from the captured query and key
  projections; a batch's ``attention_mask`` masks padding keys;
- ``relation``: MiniLM-v2's self-attention *relations* ``softmax(x x^T / sqrt(d_r))`` of one
  captured (N, L, D) feature (the query, key or value projection) split into ``heads`` relation
  heads, so student and teacher may differ in width and in head count;
- ``deit``: DeiT's distillation through a distillation token: the student's distillation head
  learns the teacher's hard decision (``hard=True``, DeiT's best) or its softened logits, while
  its class head learns the labels; each half weighs 0.5.

Feature paths are module paths (``bert.encoder.layer.3``,
``vit.encoder.layer.1.attention.attention.query``): see
:func:`slimkit.distillation.layers.transformer_losses`, which writes them for a student and a
teacher.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from slimkit.distillation.adapters import LazyAdapter
from slimkit.distillation.losses.base import DistillLoss, Outputs, check_batch, pick, positive, targets
from slimkit.distillation.losses.combine import LOSSES
from slimkit.distillation.losses.logit import soft_kl
from slimkit.errors import ConfigError, ModelError


def _tokens(x: Tensor, loss: str, role: str) -> Tensor:
    if x.dim() != 3:
        raise ModelError(f"loss '{loss}': the {role} feature must be (batch, tokens, width), got {tuple(x.shape)}",
                         hint="capture a transformer layer or an attention projection (their outputs are per token)")
    return x


def _same_tokens(s: Tensor, t: Tensor, loss: str) -> None:
    check_batch(s, t, loss)
    if s.shape[1] != t.shape[1]:
        raise ModelError(f"loss '{loss}': student and teacher features have {s.shape[1]} and {t.shape[1]} tokens",
                         hint="distill layers that see the same tokens (same patch size and sequence length)")


def _key_mask(batch: Any, tokens: int, device: torch.device) -> Tensor | None:
    """(N, 1, 1, L) True where a key is padding, from the batch's named ``attention_mask``: in its
    inputs, whether the batch is ``(inputs, labels)`` or one mapping with a ``labels`` key.

    >>> ids = {"input_ids": torch.zeros(1, 3), "attention_mask": torch.tensor([[1, 1, 0]])}
    >>> _key_mask({**ids, "labels": torch.tensor([0])}, 3, torch.device("cpu")).flatten().tolist()
    [False, False, True]
    >>> _key_mask((ids, torch.tensor([0])), 3, torch.device("cpu")).flatten().tolist()
    [False, False, True]
    """
    from slimkit.modelio import split

    inputs = split(batch).inputs if isinstance(batch, (Mapping, tuple, list)) and len(batch) else None
    if not isinstance(inputs, Mapping) or "attention_mask" not in inputs:
        return None
    mask = inputs["attention_mask"]
    if not isinstance(mask, Tensor) or mask.dim() != 2 or mask.shape[1] != tokens:
        return None
    return (mask.to(device) == 0)[:, None, None, :]


def _log_attention(q: Tensor, k: Tensor, heads: int, padding: Tensor | None) -> Tensor:
    n, length, width = q.shape
    size = width // heads
    q = q.view(n, length, heads, size).transpose(1, 2)
    k = k.view(n, k.shape[1], heads, size).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(size)
    if padding is not None:
        scores = scores.masked_fill(padding, float("-inf"))
    return F.log_softmax(scores.float(), dim=-1)


def _kl_rows(log_s: Tensor, log_t: Tensor) -> Tensor:
    """KL(teacher || student) of each attention row, averaged over rows, heads and batch."""
    p_t = log_t.exp()
    terms = p_t * (log_t - log_s)
    return torch.nan_to_num(terms, nan=0.0, posinf=0.0, neginf=0.0).sum(-1).mean()


class HiddenStateLoss(DistillLoss):
    """Mean squared error between a student layer's hidden states and a teacher layer's.

    Features are (N, L, D) per token (or (N, D)); when the widths differ a linear adapter maps
    the student's D_s to the teacher's D_t, learned with the student (create it before the
    optimizer: ``materialize``). ``adapter=False`` needs equal widths.

    >>> s = Outputs(torch.zeros(2, 3), {"s": torch.ones(2, 5, 4)})
    >>> t = Outputs(torch.zeros(2, 3), {"t": torch.ones(2, 5, 4)})
    >>> float(HiddenStateLoss("s", "t", adapter=False)(s, t))
    0.0
    """

    name = "hidden"

    def __init__(self, student: str, teacher: str, *, adapter: bool = True) -> None:
        super().__init__()
        self.student_key, self.teacher_key = _path(student, "student"), _path(teacher, "teacher")
        self.adapter = LazyAdapter() if adapter else None

    def _flat(self, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        if s.dim() != t.dim() or s.dim() not in (2, 3):
            raise ModelError(f"loss 'hidden': features must both be (N, L, D) or (N, D), got student {tuple(s.shape)} "
                             f"and teacher {tuple(t.shape)}", hint="capture layers of the same kind in both models")
        if s.dim() == 3:
            _same_tokens(s, t, self.name)
        return s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1])

    def materialize(self, student: Outputs, teacher: Outputs) -> None:
        if self.adapter is not None:
            self.adapter.materialize(*self._flat(self.student_tensor(student), self.teacher_tensor(teacher)))

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s, t = self.student_tensor(student), self.teacher_tensor(teacher)
        flat_s, flat_t = self._flat(s, t)
        if self.adapter is not None:
            flat_s = self.adapter(flat_s, flat_t)
        elif flat_s.shape[-1] != flat_t.shape[-1]:
            raise ModelError(f"loss 'hidden': widths differ ({flat_s.shape[-1]} vs {flat_t.shape[-1]}) and adapter "
                             "is off", hint="set adapter: true to learn a projection")
        return F.mse_loss(flat_s, flat_t)

    def extra_repr(self) -> str:
        return f"student={self.student_key!r}, teacher={self.teacher_key!r}"


class _Feature(DistillLoss):
    """A second captured feature a loss reads (``required_features`` finds its keys)."""

    def __init__(self, student: str | None, teacher: str | None) -> None:
        super().__init__()
        self.student_key, self.teacher_key = student, teacher


class AttentionLoss(DistillLoss):
    """Self-attention distribution transfer (TinyBERT, MiniLM): ``KL(A_t || A_s)`` per head and
    query, with ``A = softmax(q k^T / sqrt(d))`` recomputed from the captured query and key
    projections (``student_query``/``student_key``, ``teacher_query``/``teacher_key``). Both
    attentions need the same number of ``heads`` (their widths may differ).

    >>> q = torch.randn(2, 4, 8)
    >>> s = Outputs(torch.zeros(2, 3), {"q": q, "k": q})
    >>> float(AttentionLoss("q", "k", "q", "k", heads=2)(s, s)) == 0.0
    True
    """

    name = "attention"

    def __init__(self, student_query: str, student_key: str, teacher_query: str, teacher_key: str, *,
                 heads: int, teacher_heads: int | None = None) -> None:
        super().__init__()
        self.heads = int(positive(heads, "heads", self.name))
        if teacher_heads is not None and teacher_heads != heads:
            raise ConfigError(f"loss 'attention': the student has {heads} heads and the teacher {teacher_heads}; "
                              "attention maps compare head by head",
                              hint="use the 'relation' loss (MiniLM-v2), which takes any head counts")
        self.student_key, self.teacher_key = _path(student_query, "student"), _path(teacher_query, "teacher")
        self.keys = _Feature(_path(student_key, "student"), _path(teacher_key, "teacher"))

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        q_s, q_t = _tokens(self.student_tensor(student), self.name, "student"), _tokens(self.teacher_tensor(teacher),
                                                                                           self.name, "teacher")
        k_s = pick(student, self.keys.student_key, role="student", loss=self.name)
        k_t = pick(teacher, self.keys.teacher_key, role="teacher", loss=self.name).detach()
        _same_tokens(q_s, q_t, self.name)
        for x in (q_s, q_t):
            if x.shape[-1] % self.heads:
                raise ModelError(f"loss 'attention': width {x.shape[-1]} does not split into {self.heads} heads")
        padding = _key_mask(batch, q_s.shape[1], q_s.device)
        return _kl_rows(_log_attention(q_s, k_s, self.heads, padding), _log_attention(q_t, k_t, self.heads, padding))

    def extra_repr(self) -> str:
        return f"student={self.student_key!r}, teacher={self.teacher_key!r}, heads={self.heads}"


class RelationLoss(DistillLoss):
    """MiniLM-v2 self-attention relation distillation (Wang et al. 2021): the captured (N, L, D)
    feature (a query, key or value projection) is split into ``heads`` relation heads, each
    gives ``softmax(x x^T / sqrt(D / heads))`` over the tokens, and the student's relations learn
    the teacher's (KL). Widths and attention head counts may differ; ``heads`` must divide both widths.

    >>> x = Outputs(torch.zeros(2, 3), {"v": torch.randn(2, 5, 8)})
    >>> float(RelationLoss("v", "v", heads=4)(x, x)) == 0.0
    True
    """

    name = "relation"

    def __init__(self, student: str, teacher: str, *, heads: int = 1) -> None:
        super().__init__()
        self.student_key, self.teacher_key = _path(student, "student"), _path(teacher, "teacher")
        self.heads = int(positive(heads, "heads", self.name))

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        s = _tokens(self.student_tensor(student), self.name, "student")
        t = _tokens(self.teacher_tensor(teacher), self.name, "teacher")
        _same_tokens(s, t, self.name)
        for role, x in (("student", s), ("teacher", t)):
            if x.shape[-1] % self.heads:
                raise ModelError(f"loss 'relation': the {role} width {x.shape[-1]} does not split into {self.heads} "
                                 "relation heads", hint="choose heads dividing both widths")
        padding = _key_mask(batch, s.shape[1], s.device)
        return _kl_rows(_log_attention(s, s, self.heads, padding), _log_attention(t, t, self.heads, padding))

    def extra_repr(self) -> str:
        return f"student={self.student_key!r}, teacher={self.teacher_key!r}, heads={self.heads}"


class DeiTLoss(DistillLoss):
    """DeiT (Touvron et al. 2021): the student's distillation head (output of module
    ``distillation``, e.g. ``distillation_classifier``) learns the teacher, its class head
    (``cls``, e.g. ``cls_classifier``) the labels: ``0.5 CE(cls, y) + 0.5 CE(dist, argmax teacher)``
    with ``hard=True``; with ``hard=False`` the second half is Hinton's KD at ``temperature``.
    The teacher may be any model (DeiT's best teacher is a convnet); at inference the student
    averages its two heads.

    >>> s = Outputs(torch.zeros(2, 3), {"d": torch.tensor([[9.0, 0, 0], [9.0, 0, 0]]),
    ...                                 "c": torch.tensor([[0, 9.0, 0], [0, 9.0, 0]])})
    >>> t = Outputs(torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]))
    >>> round(float(DeiTLoss("c", "d")(s, t, (None, torch.tensor([1, 1])))), 3)
    0.0
    """

    name = "deit"

    def __init__(self, cls: str = "cls_classifier", distillation: str = "distillation_classifier", *,
                 hard: bool = True, temperature: float = 3.0) -> None:
        super().__init__()
        self.student_key = _path(distillation, "student")
        self.heads = _Feature(_path(cls, "student"), None)
        self.hard, self.temperature = bool(hard), positive(temperature, "temperature", self.name)

    def forward(self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None) -> Tensor:
        dist = self.student_tensor(student)
        cls = pick(student, self.heads.student_key, role="student", loss=self.name)
        t = teacher.logits.detach()
        if dist.shape != t.shape or cls.shape != t.shape:
            raise ModelError(f"loss 'deit': the student's heads give {tuple(cls.shape)} and {tuple(dist.shape)}, the "
                             f"teacher {tuple(t.shape)}", hint="name the student's class and distillation heads")
        labels = targets(batch, self.name)
        if self.hard:
            taught = F.cross_entropy(dist, t.argmax(-1))
        else:
            taught = soft_kl(dist, t, self.temperature)
        return 0.5 * F.cross_entropy(cls, labels) + 0.5 * taught

    def extra_repr(self) -> str:
        return f"cls={self.heads.student_key!r}, distillation={self.student_key!r}, hard={self.hard}"


def _path(value: str, role: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"transformer losses need the {role} feature's module path as a string, got {value!r}",
                          hint="for example 'bert.encoder.layer.1' (a name from model.named_modules())")
    return value


for _name, _cls, _needs in (
    ("hidden", HiddenStateLoss, "features (N, L, D)"),
    ("attention", AttentionLoss, "query and key features"),
    ("relation", RelationLoss, "features (N, L, D)"),
    ("deit", DeiTLoss, "two student heads, teacher logits, labels"),
):
    if _name not in LOSSES:
        LOSSES.add(_name, _cls, doc=(_cls.__doc__ or "").strip().splitlines()[0], needs=_needs)
