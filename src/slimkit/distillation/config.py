"""DistillConfig: what to distill with (loss terms, teacher weighting, views) and how to train."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config
from slimkit.distillation.augment import Augmentation
from slimkit.train.config import TrainConfig

#: Hinton KD with hard labels: 0.9 * KD(T=4) + 0.1 * cross-entropy.
DEFAULT_LOSSES: tuple[dict[str, Any], ...] = (
    {"name": "kd", "weight": 0.9, "temperature": 4.0},
    {"name": "ce", "weight": 0.1},
)


class DistillConfig(Config):
    """How to distill. Every field is checked when the config is built, losses and views too.

    - ``losses``: loss specs ``{"name", "weight", "label", **arguments}`` summed with their
      weights (see ``slimkit.distillation.LOSSES``). Feature losses name module paths; with several
      teachers, ``"1/features.2"`` reads teacher 1's ``features.2`` (a bare path is teacher 0).
    - ``cache_teacher``: ``"auto"`` caches the teachers' outputs (computed once before training)
      when (1) the train loader gives the same inputs every epoch (no augmentation, checked on a
      few samples), (2) every teacher view is deterministic and (3) the outputs the losses need
      fit in ``cache_max_mb``; it keeps them in memory, or in ``cache_dir`` on disk when that is
      set. ``"memory"``/``"disk"`` insist on caching (an error if the data augments),
      ``"off"`` always runs the teachers online. A disk cache lives under ``cache_dir`` (or the
      run's ``out_dir``), is validated by fingerprint, shapes and version, and is recomputed on
      any mismatch.
    - ``teacher_weighting``: combine several teachers' logits by ``"mean"``, fixed
      ``teacher_weights``, or per sample by ``"confidence"`` (softmax over teachers of their
      negative entropy, or max probability, divided by ``confidence_temperature``).
    - ``student_view`` / ``teacher_view``: input views (``slimkit.distillation.VIEWS``) for
      cross-modal distillation, e.g. ``{"name": "downsample", "size": 14}``.
    - ``augment``: function matching (Beyer et al. 2022): every training batch is augmented once
      (shifts, flips, mixup, cutmix: :class:`~slimkit.distillation.augment.Augmentation`) and
      the teachers see exactly the student's augmented batch, so they run online.
    - ``teacher_runtime``: ``"int8"`` runs online teachers as int8 models (calibrated on a few
      training batches) on the runtime measured fastest at the training batch size (ONNX
      Runtime, or OpenVINO where installed): several times faster than ``"eager"`` fp32, for
      logit losses only (a runtime has no inner layers to hook).
    - ``calibrate_teacher``: divide the teachers' logits by the temperature that fits them best
      on the validation data (a less over-confident target; needs ``val_loader``).
    - ``init``: ``"teacher"`` starts the student from the teacher's weights, pruned to the
      student's widths (the student must be a narrower copy of the teacher), or, for a shallower
      transformer of the same width, from every other teacher layer (DistilBERT); ``"random"`` keeps
      the student's own initialization.

    >>> DistillConfig().losses[0]["name"], DistillConfig().cache_teacher
    ('kd', 'auto')
    >>> DistillConfig(losses=[{"name": "kdd"}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: DistillConfig: field 'losses': ... Did you mean 'kd'?...
    """

    losses: list[dict[str, Any]] = Field(default_factory=lambda: [dict(s) for s in DEFAULT_LOSSES])
    train: TrainConfig = Field(default_factory=TrainConfig)
    cache_teacher: Literal["auto", "memory", "disk", "off"] = "auto"
    cache_dir: str | None = None
    cache_max_mb: float = Field(1024.0, gt=0)
    teacher_weighting: Literal["mean", "weighted", "confidence"] = "mean"
    teacher_weights: list[float] | None = None
    confidence: Literal["entropy", "maxprob"] = "entropy"
    confidence_temperature: float = Field(1.0, gt=0)
    student_view: dict[str, Any] = Field(default_factory=lambda: {"name": "identity"})
    teacher_view: dict[str, Any] = Field(default_factory=lambda: {"name": "identity"})
    augment: Augmentation = Field(default_factory=Augmentation)
    teacher_runtime: Literal["eager", "int8"] = "eager"
    calibrate_teacher: bool = False
    init: Literal["random", "teacher"] = "random"

    @field_validator("losses")
    @classmethod
    def _losses_build(cls, losses: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from slimkit.distillation.losses import build_losses
        from slimkit.errors import ConfigError

        try:
            build_losses(losses)  # build once so a typo fails here, not mid-training
        except ConfigError as exc:
            raise ValueError(str(exc).replace("\n  hint:", ";")) from None
        return losses

    @field_validator("student_view", "teacher_view")
    @classmethod
    def _view_builds(cls, spec: dict[str, Any]) -> dict[str, Any]:
        from slimkit.distillation.views import build_view
        from slimkit.errors import ConfigError

        try:
            return build_view(spec).spec()
        except ConfigError as exc:
            raise ValueError(str(exc).replace("\n  hint:", ";")) from None

    @field_validator("teacher_weights")
    @classmethod
    def _weights_positive(cls, weights: list[float] | None) -> list[float] | None:
        if weights is not None and (not weights or any(w < 0 for w in weights) or sum(weights) <= 0):
            raise ValueError(f"teacher_weights must be non-negative with a positive sum, got {weights}")
        return weights

    @model_validator(mode="after")
    def _runtime_fits_the_losses(self) -> DistillConfig:
        from slimkit.distillation.losses import build_losses, required_features

        if self.teacher_runtime == "int8":
            _, teacher_paths = required_features(build_losses(self.losses))
            if teacher_paths:
                raise ValueError(f"teacher_runtime='int8' runs the teacher as an ONNX Runtime model, whose inner layers "
                                 f"cannot be hooked, but the losses read teacher features {teacher_paths}; "
                                 "use teacher_runtime='eager'")
        if self.augment.active and self.cache_teacher in ("memory", "disk"):
            raise ValueError(f"augment is on, so the teachers must see every augmented batch: cache_teacher="
                             f"'{self.cache_teacher}' cannot serve them; use cache_teacher='auto' or 'off'")
        return self

    @model_validator(mode="after")
    def _weights_match_weighting(self) -> DistillConfig:
        if self.teacher_weighting == "weighted" and self.teacher_weights is None:
            raise ValueError("teacher_weighting='weighted' needs teacher_weights, one per teacher")
        if self.teacher_weighting != "weighted" and self.teacher_weights is not None:
            raise ValueError(
                f"teacher_weights are only used with teacher_weighting='weighted' (got '{self.teacher_weighting}')"
            )
        return self
