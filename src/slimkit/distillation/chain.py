"""Teacher-assistant distillation (TAKD, Mirzadeh et al. 2020): bridge a large capacity gap with
intermediate models, each distilled from the previous one, the student from the last.

``distill_chain(student, teacher, assistants, loader, config)`` takes the assistants as modules
(any architecture); ``distill(student, TAKD(assistants=[...]), loader, teacher=t)`` builds them
from specs, either registry models (``{"name": "cnn", "kwargs": {...}}``, the data's shape taken
from the teacher's spec) or multipliers of the teacher (``{"width": 0.5}``, see
``derive_student``). Every step uses the same distillation settings (losses, augmentation,
runtime, init); ``assistant_epochs`` can give the assistants their own schedule length.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from torch import nn

from slimkit.distillation.config import DistillConfig
from slimkit.distillation.core import Teachers, as_teachers
from slimkit.distillation.offline import DISTILL, DistillResult, report_fields, run_distillation
from slimkit.errors import ConfigError
from slimkit.export.serialize import record_report
from slimkit.train import Callback

_DATA_KNOBS = ("in_channels", "num_classes", "input_size")


class TAKD(DistillConfig):
    """Distill through teacher assistants: teacher -> assistants[0] -> ... -> student.

    ``assistants`` lists specs, largest first: ``{"name": <registry model>, "kwargs": {...}}`` or
    ``{"width": w, "depth": d}`` (the teacher scaled, as ``derive_student`` does). Every other
    field is a DistillConfig field and applies to every step; ``assistant_epochs`` (default:
    ``train.epochs``) sets how long each assistant trains.

    >>> TAKD(assistants=[{"width": 0.75}]).assistants
    [{'width': 0.75}]
    >>> TAKD(assistants=[{"name": "cnm"}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: TAKD: field 'assistants': ... unknown model 'cnm'...
    """

    assistants: list[dict[str, Any]] = Field(min_length=1)
    assistant_epochs: int | None = Field(None, ge=1)

    @field_validator("assistants")
    @classmethod
    def _specs(cls, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return check_assistants(specs)


def check_assistants(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``specs`` if each is a registry spec or width/depth multipliers (see :class:`TAKD`); else a
    ValueError naming the bad one (pydantic validators turn it into a ConfigError)."""
    from slimkit.models import MODELS
    from slimkit.registry import did_you_mean

    for spec in specs:
        keys = set(spec)
        if "name" in keys:
            if not keys <= {"name", "kwargs"} or not isinstance(spec.get("kwargs", {}), Mapping):
                raise ValueError(f"assistant {spec}: a registry assistant is {{'name': ..., 'kwargs': {{...}}}}")
            if spec["name"] not in MODELS:
                raise ValueError(f"unknown model '{spec['name']}'.{did_you_mean(str(spec['name']), MODELS.names())}")
        elif not keys or not keys <= {"width", "depth"}:
            raise ValueError(f"assistant {spec}: give {{'name': ..., 'kwargs': ...}} or {{'width': w, 'depth': d}}")
    return specs


def build_assistant(spec: Mapping[str, Any], teacher: nn.Module) -> nn.Module:
    """An untrained assistant from its spec (see :class:`TAKD`), shaped for the teacher's data."""
    from slimkit.distillation.derive import derive_student
    from slimkit.models import build_model

    if "name" in spec:
        kwargs = dict(spec.get("kwargs", {}))
        known = getattr(teacher, "slimkit_spec", None) or {}
        for knob in _DATA_KNOBS:  # the data's shape, as the teacher was built for it
            if knob not in kwargs and knob in known.get("kwargs", {}):
                kwargs[knob] = known["kwargs"][knob]
        return build_model(str(spec["name"]), **kwargs)
    name, kwargs = derive_student(teacher, width=float(spec.get("width", 1.0)), depth=float(spec.get("depth", 1.0)))
    return build_model(name, **kwargs)


def distill_chain(
    student: nn.Module,
    teacher: Teachers,
    assistants: Sequence[nn.Module],
    loader: Iterable[Any],
    config: DistillConfig,
    *,
    assistant_config: DistillConfig | None = None,
    val_loader: Iterable[Any] | None = None,
    out_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> tuple[DistillResult, list[DistillResult]]:
    """Distill ``teacher`` into ``assistants[0]``, that into ``assistants[1]``, ..., the last into
    ``student`` (all trained in place). ``assistant_config`` (default ``config``) trains the
    assistants. Returns the student's result and each assistant's. With ``out_dir``, step k
    checkpoints under ``assistant{k}/`` and the student under ``student/``, so a resumed chain
    skips the steps already done."""
    if not assistants:
        raise ConfigError("a teacher-assistant chain needs at least one assistant",
                          hint="pass assistants=[model], or distill the student directly")
    current: Teachers = teacher
    done = []
    for k, assistant in enumerate(assistants):
        folder = None if out_dir is None else Path(out_dir) / f"assistant{k}"
        done.append(run_distillation(assistant, current, loader, assistant_config or config, val_loader=val_loader,
                                     out_dir=folder, callbacks=callbacks, resume=resume))
        current = assistant.eval().requires_grad_(False)
    folder = None if out_dir is None else Path(out_dir) / "student"
    result = run_distillation(student, current, loader, config, val_loader=val_loader, out_dir=folder,
                              callbacks=callbacks, resume=resume)
    for assistant in assistants:
        assistant.train().requires_grad_(True)  # given back as they came: trainable modules
    return result, done


@DISTILL.register(TAKD)
def _takd(model: nn.Module, config: TAKD, loader: Any, *, teacher: Teachers, **options: Any) -> nn.Module:
    teachers = as_teachers(teacher)
    assistants = [build_assistant(spec, teachers[0]) for spec in config.assistants]
    base = DistillConfig(**{name: getattr(config, name) for name in DistillConfig.model_fields})
    steps = base if config.assistant_epochs is None else \
        base.replace(train=base.train.replace(epochs=config.assistant_epochs))
    result, done = distill_chain(model, teacher, assistants, loader, base, assistant_config=steps, **options)
    record_report(model, "distill", {**report_fields(result), "assistants": [
        {"spec": spec, "params": sum(p.numel() for p in a.parameters()), "best_val_acc": r.best_val_acc,
         "history": r.history} for spec, a, r in zip(config.assistants, assistants, done)]})
    return model
