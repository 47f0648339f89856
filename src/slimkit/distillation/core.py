"""DistillationLoss: the whole distillation objective as one ``nn.Module`` loss function.

``loss(student_logits, batch) -> (loss, logs)`` is exactly the Trainer's ``LossFn``, so the
same object serves ``slimkit.distillation.distill`` and a hand-written training loop. It reads the
student's features through hooks, gets the teachers' outputs (online under ``no_grad``, or from
a ``TeacherCache`` by the sample indices at the end of the batch), combines several teachers,
and sums the weighted loss terms. Its parameters are the loss terms' adapters.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import torch
from torch import Tensor, nn

from slimkit.distillation.batches import sample_indices
from slimkit.distillation.config import DEFAULT_LOSSES
from slimkit.distillation.hooks import FeatureCapture
from slimkit.distillation.losses import Outputs, build_losses, materialize, required_features
from slimkit.distillation.multi_teacher import TeacherEnsemble
from slimkit.distillation.teacher_cache import TeacherCache, input_shapes, run_teacher
from slimkit.distillation.views import Identity, View, Viewed, build_view
from slimkit.errors import ConfigError, ModelError
from slimkit.modelio import call, logits_of, map_floats, split, tensors, to_device

Teachers = nn.Module | Sequence[nn.Module]


def as_teachers(teachers: Teachers) -> tuple[nn.Module, ...]:
    """One teacher or a sequence of them, as a tuple (an error for anything else)."""
    found = (teachers,) if isinstance(teachers, nn.Module) else tuple(teachers)
    if not found or not all(isinstance(t, nn.Module) for t in found):
        raise ConfigError(
            f"teachers must be an nn.Module or a non-empty list of them, got {type(teachers).__name__}",
            hint="pass the trained teacher model (or [teacher_a, teacher_b])",
        )
    return found


def freeze_teacher(teacher: nn.Module, name: str = "teacher") -> nn.Module:
    """Put ``teacher`` in eval mode without gradients, warning if it was not already so.

    A teacher in training mode would update its BatchNorm statistics and use dropout while
    teaching; one with ``requires_grad`` would waste memory on gradients that are never used.
    """
    training = teacher.training
    trainable = any(p.requires_grad for p in teacher.parameters())
    if training or trainable:
        what = " and ".join(w for w, on in (("was in training mode", training), ("had requires_grad=True", trainable)) if on)
        warnings.warn(f"{name} {what}; distillation froze it (eval mode, no gradients)", UserWarning, stacklevel=3)
    teacher.eval().requires_grad_(False)
    return teacher


def num_classes_of(model: nn.Module) -> int | None:
    """The class count recorded in a registry model's spec, if there is one."""
    spec = getattr(model, "slimkit_spec", None)
    value = spec.get("kwargs", {}).get("num_classes") if isinstance(spec, Mapping) else None
    return value if isinstance(value, int) else None


class DistillationLoss(nn.Module):
    """Distill ``teachers`` into ``student``: ``forward(student_logits, batch) -> (loss, logs)``.

    ``losses`` is a list of loss specs (default: 0.9 KD at T=4 + 0.1 CE) or a loss module called
    as ``loss(student_outputs, teacher_outputs, batch)``. Student features the losses name are
    captured from ``student`` by hooks (so call the student first, then this loss); teachers
    are frozen and run on the batch's inputs (``slimkit.modelio``: a tensor, a tuple or a dict of
    named tensors; seen through ``teacher_view``, which changes float tensors only). Call ``prepare(student, first_batch)``
    before building the optimizer when the losses have adapters, and ``close()`` (or use
    ``with``) to remove the hooks.

    >>> from slimkit.models import build_model
    >>> _ = torch.manual_seed(0)
    >>> student = build_model("mlp", input_size=4, hidden=[8], num_classes=3)
    >>> teacher = build_model("mlp", input_size=4, hidden=[16], num_classes=3).eval().requires_grad_(False)
    >>> x, y = torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    >>> with DistillationLoss(student, teacher) as loss_fn:
    ...     loss, logs = loss_fn(student(x), (x, y))
    >>> loss.requires_grad, sorted(logs)
    (True, ['ce', 'kd'])
    """

    def __init__(
        self,
        student: nn.Module,
        teachers: Teachers,
        losses: Sequence[Mapping[str, Any]] | nn.Module | None = None,
        *,
        teacher_view: Mapping[str, Any] | View | None = None,
        weighting: str = "mean",
        teacher_weights: Sequence[float] | None = None,
        confidence: str = "entropy",
        confidence_temperature: float = 1.0,
        cache: Sequence[TeacherCache] | None = None,
    ) -> None:
        super().__init__()
        found = as_teachers(teachers)
        for k, teacher in enumerate(found):
            freeze_teacher(teacher, "teacher" if len(found) == 1 else f"teacher {k}")
        self.teachers = found  # a plain tuple: not submodules, so never optimized nor checkpointed
        if losses is None:
            losses = [dict(spec) for spec in DEFAULT_LOSSES]
        self.loss = losses if isinstance(losses, nn.Module) else build_losses(losses)
        student_paths, teacher_keys = required_features(self.loss)
        self.ensemble = TeacherEnsemble(
            len(found), teacher_keys, weighting=weighting, weights=teacher_weights,
            confidence=confidence, temperature=confidence_temperature,
        )
        self.teacher_view = build_view(teacher_view)
        self._captures: list[FeatureCapture] = []
        self._student_capture = self._capture(student, student_paths)
        self._teacher_captures = [self._capture(t, self.ensemble.paths(k)) for k, t in enumerate(found)]
        self.cache: list[TeacherCache] | None = None
        self.num_classes: int | None = None  # known after prepare()
        self.use_cache(cache)
        self._check_spec_classes(student)

    # ---------------------------------------------------------------- setup

    def _capture(self, model: nn.Module, paths: list[str]) -> FeatureCapture | None:
        if not paths:
            return None
        capture = FeatureCapture(model, paths)  # unknown paths fail here, listing the nearest ones
        self._captures.append(capture)
        return capture

    def use_cache(self, cache: Sequence[TeacherCache] | None) -> None:
        """Read teacher outputs from ``cache`` (one per teacher) instead of running the teachers.

        Batches must then end with the sample indices: see ``with_indices``.
        """
        if cache is not None and len(cache) != len(self.teachers):
            raise ConfigError(f"got {len(cache)} teacher caches for {len(self.teachers)} teachers")
        self.cache = list(cache) if cache is not None else None

    def _check_spec_classes(self, student: nn.Module) -> None:
        s = num_classes_of(student)
        for k, teacher in enumerate(self.teachers):
            t = num_classes_of(teacher)
            if s is not None and t is not None and s != t:
                raise _class_mismatch(s, t, k, len(self.teachers))

    @torch.no_grad()
    def prepare(self, model: nn.Module, batch: Sequence[Any]) -> list[str]:
        """Run ``model`` (the student, in eval mode) and the teachers on one batch, check that
        their class counts agree (kept in ``num_classes``), and create every adapter. Returns the
        names of the new parameters; build the optimizer after this."""
        was_training = model.training
        model.eval()
        inputs = split(batch).inputs
        try:
            logits = logits_of(call(model, inputs))
        except RuntimeError as exc:
            seen = map_floats(inputs, model.view) if isinstance(model, Viewed) else inputs
            raise ModelError(
                f"the student cannot take its input of shape {input_shapes(seen)}: {str(exc).splitlines()[0]}",
                hint="build the student for the input it sees (with a downsample view, input_size = the view's size)",
            ) from None
        finally:
            model.train(was_training)
        self.num_classes = int(logits.shape[-1])
        student = Outputs(logits, self._student_capture.take() if self._student_capture else {})
        return materialize(self.loss, student, self.teacher_outputs(batch, student_logits=logits))

    # ---------------------------------------------------------------- forward

    def teacher_outputs(self, batch: Sequence[Any], *, student_logits: Tensor | None = None) -> Outputs:
        """The (combined) teacher outputs for ``batch``: from the cache, or by running the teachers."""
        parts = self._cached(batch) if self.cache is not None else self._online(batch)
        if student_logits is not None:
            for k, part in enumerate(parts):
                if part.logits.shape[-1] != student_logits.shape[-1]:
                    raise _class_mismatch(student_logits.shape[-1], part.logits.shape[-1], k, len(parts))
        return self.ensemble(parts)

    def _cached(self, batch: Sequence[Any]) -> list[Outputs]:
        assert self.cache is not None
        index, device = sample_indices(batch), input_device(split(batch).inputs)
        return [cache.lookup(index, device) for cache in self.cache]

    def _online(self, batch: Sequence[Any]) -> list[Outputs]:
        inputs = split(batch).inputs
        here = input_device(inputs)
        parts = []
        with torch.no_grad():
            view = inputs if isinstance(self.teacher_view, Identity) else map_floats(inputs, self.teacher_view)
            for k, (teacher, capture) in enumerate(zip(self.teachers, self._teacher_captures)):
                device = next((p.device for p in teacher.parameters()), None)
                if device is None or getattr(teacher, "runs_on_cpu", False):
                    device = torch.device("cpu")
                name = "teacher" if len(self.teachers) == 1 else f"teacher {k}"
                logits = run_teacher(teacher, to_device(view, device), name).to(here)
                features = {k: v.to(here) for k, v in capture.take().items()} if capture else {}
                parts.append(Outputs(logits.float(), features))
        return parts

    def forward(self, student_logits: Any, batch: Sequence[Any]) -> tuple[Tensor, dict[str, float]]:
        logits = logits_of(student_logits)
        student = Outputs(logits, self._student_capture.take() if self._student_capture else {})
        teacher = self.teacher_outputs(batch, student_logits=logits)
        value = self.loss(student, teacher, batch)
        total, logs = value if isinstance(value, tuple) else (value, {})
        weights = self.ensemble.last_weights
        if weights is not None and self.ensemble.weighting == "confidence":
            logs = {**logs, **{f"teacher{k}_weight": float(w) for k, w in enumerate(weights.mean(dim=0))}}
        return total, logs

    # ---------------------------------------------------------------- hooks

    def close(self) -> None:
        """Remove every feature hook from the student and the teachers; safe to call twice."""
        for capture in self._captures:
            capture.remove()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def extra_repr(self) -> str:
        source = "cached" if self.cache is not None else "online"
        return f"teachers={len(self.teachers)} ({source}), weighting={self.ensemble.weighting!r}"


def input_device(inputs: Any) -> torch.device:
    """The device of a batch's (first) input tensor."""
    return tensors(inputs)[0][1].device


def _class_mismatch(student: int, teacher: int, index: int, count: int) -> ConfigError:
    who = "the teacher" if count == 1 else f"teacher {index}"
    return ConfigError(
        f"the student predicts {student} classes but {who} predicts {teacher}",
        hint="distill between models with the same classes: build the student with num_classes="
        f"{teacher}",
    )
