"""The ``distill`` verb: offline KD from one or more frozen teachers, cached when it is safe.

``distill(model, config, loader, teacher=...)`` trains ``model`` and returns it, recording what
happened (epochs, cache use) in its history. ``run_distillation`` does the work and returns a
:class:`DistillResult` for callers that want those details directly. It wires a
``DistillationLoss`` into the Trainer: it decides whether the teachers'
outputs can be cached (see ``DistillConfig``), builds the caches, creates the loss's adapters on
one batch before the optimizer exists, and trains the student on its own input view.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.distillation.augment import AugmentedLoader, BatchAugmenter
from slimkit.distillation.batches import augments, with_indices
from slimkit.distillation.config import DistillConfig
from slimkit.distillation.core import DistillationLoss, Teachers, as_teachers, freeze_teacher
from slimkit.distillation.teacher_cache import TeacherCache, build_cache, compute_outputs
from slimkit.distillation.teachers import TemperatureScaled, accelerated_teacher, calibrated_teacher, init_from_teacher
from slimkit.distillation.views import Identity, View, Viewed, build_view
from slimkit.errors import ConfigError
from slimkit.export.serialize import record_report
from slimkit.modelio import to_device
from slimkit.registry import Dispatch
from slimkit.train import Callback, Trainer, resolve_device

log = logging.getLogger("slimkit.distillation")


@dataclass
class DistillResult:
    """What ``distill`` returns: the trained student (last epoch), its training history, and how
    the teachers were served: ``cache`` is "off", "memory" or "disk"; ``cache_hit`` is True when
    every teacher's outputs were read back from a disk cache instead of being computed.
    ``teacher`` records how the teachers were prepared (runtime, calibration temperature, student
    initialization, augmentation)."""

    student: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_val_acc: float | None
    stopped_early: bool
    cache: str
    cache_hit: bool
    teacher: dict[str, Any] = field(default_factory=dict)


#: ``distill``'s implementations by config type.
DISTILL: Dispatch = Dispatch("distill", modules=("slimkit.distillation.chain",))


def distill(
    model: nn.Module,
    config: DistillConfig | None = None,
    loader: Iterable[Any] | None = None,
    *,
    teacher: Teachers,
    val_loader: Iterable[Any] | None = None,
    out_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> nn.Module:
    """Train ``model`` (the student, in place) to imitate ``teacher`` (a model or a list of them)
    on ``loader`` as ``config`` says, and return it. ``report_of(model, "distill")`` holds the
    epoch history and how the teachers were served (see :class:`DistillResult`).

    >>> from torch.utils.data import TensorDataset
    >>> from slimkit.export import report_of
    >>> from slimkit.models import build_model
    >>> from slimkit.train import TrainConfig
    >>> _ = torch.manual_seed(0); x = torch.randn(32, 1, 4, 4); y = (x.mean((1, 2, 3)) > 0).long()
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    >>> teacher = build_model("mlp", input_size=4, hidden=[16], num_classes=2).eval().requires_grad_(False)
    >>> student = distill(build_model("mlp", input_size=4, hidden=[4], num_classes=2),
    ...                   DistillConfig(train=TrainConfig(epochs=1, progress=False)), loader, teacher=teacher)
    >>> report_of(student, "distill")["cache"], len(report_of(student, "distill")["history"])
    ('memory', 1)
    """
    config = config if config is not None else DistillConfig()
    if loader is None:
        raise ConfigError("distill needs a training loader", hint="distill(student, config, train_loader, teacher=t)")
    return DISTILL.lookup(config)(model, config, loader, teacher=teacher, val_loader=val_loader, out_dir=out_dir,
                                  callbacks=callbacks, resume=resume)


@DISTILL.register(DistillConfig)
def _offline(model: nn.Module, config: DistillConfig, loader: Any, *, teacher: Teachers, **options: Any) -> nn.Module:
    result = run_distillation(model, teacher, loader, config, **options)
    record_report(model, "distill", report_fields(result))
    return model


def report_fields(result: DistillResult) -> dict[str, Any]:
    """What the model history records about a distillation run."""
    return {"history": result.history, "best_epoch": result.best_epoch, "best_val_acc": result.best_val_acc,
            "stopped_early": result.stopped_early, "cache": result.cache, "cache_hit": result.cache_hit,
            **result.teacher}


def run_distillation(
    student: nn.Module,
    teacher_or_teachers: Teachers,
    train_loader: DataLoader,
    config: DistillConfig | None = None,
    *,
    val_loader: Iterable[Any] | None = None,
    out_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> DistillResult:
    """Train ``student`` (in place) to imitate the teacher(s) on ``train_loader``.

    Teachers are frozen (eval mode, no gradients; a warning if they were not). With several
    teachers their logits are combined by ``config.teacher_weighting``. The student sees
    ``config.student_view`` of each input, in training and in validation; the teachers see
    ``config.teacher_view``. ``out_dir`` gets the Trainer's checkpoints and metrics (and the disk
    cache under ``teacher_cache/`` when ``cache_teacher="disk"`` without a ``cache_dir``).

    >>> from torch.utils.data import TensorDataset
    >>> from slimkit.models import build_model
    >>> from slimkit.train import TrainConfig
    >>> _ = torch.manual_seed(0); x = torch.randn(32, 1, 4, 4); y = (x.mean((1, 2, 3)) > 0).long()
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    >>> teacher = build_model("mlp", input_size=4, hidden=[16], num_classes=2).eval().requires_grad_(False)
    >>> student = build_model("mlp", input_size=4, hidden=[4], num_classes=2)
    >>> result = run_distillation(student, teacher, loader, DistillConfig(train=TrainConfig(epochs=1, progress=False)))
    >>> result.cache, len(result.history)
    ('memory', 1)
    """
    config = config if config is not None else DistillConfig()
    if not isinstance(config, DistillConfig):
        raise ConfigError(f"distill needs a DistillConfig, got {type(config).__name__}", hint="DistillConfig.from_dict(data)")
    teachers = as_teachers(teacher_or_teachers)
    device = resolve_device(config.train.device)
    for teacher in teachers:
        teacher.to(device)
    student.to(device)
    original = teachers[0]
    teachers, prepared = prepare_teachers(teachers, config, train_loader, val_loader)
    if config.init == "teacher" and not resume:  # a resumed run reads its weights from the checkpoint
        init_from_teacher(student, original, train_loader)
    student_view, teacher_view = build_view(config.student_view), build_view(config.teacher_view)
    model: nn.Module = student if isinstance(student_view, Identity) else Viewed(student, student_view)
    loss = DistillationLoss(
        student, teachers, config.losses, teacher_view=teacher_view, weighting=config.teacher_weighting,
        teacher_weights=config.teacher_weights, confidence=config.confidence,
        confidence_temperature=config.confidence_temperature,
    )
    try:
        caches, mode = teacher_caches(loss, train_loader, config, out_dir=out_dir, device=device)
        loader: Any = train_loader
        if caches is not None:
            loss.use_cache(caches)
            loader = with_indices(train_loader)
        # The first batch only provides shapes; forking the RNG keeps the run's randomness
        # independent of it, and seeding makes the adapters' initial weights reproducible.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train.seed)
            loss.prepare(model, to_device(next(iter(loader)), device))
        augmenter = None
        if config.augment.active:
            augmenter = BatchAugmenter(config.augment, num_classes=loss.num_classes)
            loader = AugmentedLoader(loader, augmenter)
        trainer = Trainer(model, config.train, loss_fn=loss, callbacks=callbacks, out_dir=out_dir)
        result = trainer.fit(loader, val_loader, resume=resume)
    finally:
        loss.close()
    if augmenter is not None:
        prepared["augment"] = config.augment.model_dump()
        if augmenter.skipped:
            prepared["augment_skipped"] = augmenter.skipped
    return DistillResult(
        student=student, history=result.history, best_epoch=result.best_epoch, best_val_acc=result.best_val_acc,
        stopped_early=result.stopped_early, cache=mode, cache_hit=caches is not None and all(c.hit for c in caches),
        teacher=prepared,
    )


def prepare_teachers(teachers: tuple[nn.Module, ...], config: DistillConfig, train_loader: Any,
                     val_loader: Iterable[Any] | None) -> tuple[tuple[nn.Module, ...], dict[str, Any]]:
    """The teachers as distillation will run them: temperature-calibrated on the validation data
    and/or as int8 ONNX Runtime modules, as ``config`` says; and a record of what was done."""
    record: dict[str, Any] = {"init": config.init, "teacher_runtime": config.teacher_runtime}
    temperatures: list[float | None] = [None] * len(teachers)
    if config.calibrate_teacher:
        for teacher in teachers:
            freeze_teacher(teacher)
        temperatures = [calibrated_teacher(t, val_loader).temperature for t in teachers]
        record["teacher_temperature"] = temperatures if len(teachers) > 1 else temperatures[0]
    if config.teacher_runtime == "eager" and not config.calibrate_teacher:
        return teachers, record  # the user's own modules: DistillationLoss freezes them (and says so)
    ready = []
    for teacher, temperature in zip(teachers, temperatures):
        freeze_teacher(teacher)
        if config.teacher_runtime == "int8":
            teacher = accelerated_teacher(teacher, train_loader)
        if temperature is not None:
            teacher = TemperatureScaled(teacher, temperature)
        ready.append(teacher.eval().requires_grad_(False))
    return tuple(ready), record


def teacher_caches(
    loss: DistillationLoss,
    loader: DataLoader,
    config: DistillConfig,
    *,
    out_dir: str | Path | None = None,
    device: torch.device | None = None,
) -> tuple[list[TeacherCache] | None, str]:
    """One ``TeacherCache`` per teacher of ``loss`` when ``config.cache_teacher`` allows it, else
    None; and where they live: "memory", "disk" or "off".

    The rule for ``"auto"`` is in ``DistillConfig``'s docstring; ``"memory"`` and ``"disk"``
    raise ConfigError where caching would feed the losses outputs for inputs the student does
    not see (augmented data, a random teacher view).
    """
    mode = config.cache_teacher
    if mode == "off":
        return None, "off"
    reason = "augment is on (the teachers must see every augmented batch)" if config.augment.active \
        else _uncacheable(loader, loss.teacher_view)
    if reason is not None:
        if mode == "auto":
            log.info("teachers run online: %s", reason)
            return None, "off"
        raise ConfigError(
            f"cache_teacher='{mode}' but {reason}, so cached teacher outputs would not match the student's inputs",
            hint="set cache_teacher='auto' (caches only when it is safe) or 'off'",
        )
    folder: Path | None = Path(config.cache_dir) if config.cache_dir else None
    if mode == "disk" and folder is None:
        if out_dir is None:
            raise ConfigError("cache_teacher='disk' needs a place for the files",
                              hint="set cache_dir in the DistillConfig, or pass out_dir to distill")
        folder = Path(out_dir) / "teacher_cache"
    if mode == "auto" and folder is None:
        budget = config.cache_max_mb * 2**20
        needed = _estimate_bytes(loss, loader, device)
        if needed > budget:
            log.info("teachers run online: their cached outputs would take %.0f MB > cache_max_mb=%g",
                     needed / 2**20, config.cache_max_mb)
            return None, "off"
    caches = []
    for k, teacher in enumerate(loss.teachers):
        caches.append(build_cache(teacher, k, loader, loss.ensemble.paths(k), view=loss.teacher_view,
                                  device=device, folder=folder))
    return caches, "memory" if folder is None else "disk"


def _uncacheable(loader: DataLoader, view: View) -> str | None:
    if not isinstance(loader, DataLoader):
        return f"the train loader is a {type(loader).__name__}, not a torch DataLoader"
    if not getattr(view, "deterministic", True):
        return f"the teacher view {view.spec()} is random"
    if augments(loader):
        return "the train loader augments its inputs (they differ from epoch to epoch)"
    return None


def _estimate_bytes(loss: DistillationLoss, loader: DataLoader, device: torch.device | None) -> float:
    """Bytes the cached outputs of every teacher would take, from one sample's outputs."""
    dataset = loader.dataset
    n = len(dataset)  # type: ignore[arg-type]
    probe = DataLoader(torch.utils.data.Subset(dataset, [0]), batch_size=1, collate_fn=loader.collate_fn)
    total = 0.0
    for k, teacher in enumerate(loss.teachers):
        one = compute_outputs(teacher, probe, loss.ensemble.paths(k), view=loss.teacher_view, device=device)
        total += one.nbytes * n
    return total
