"""Choose how to distill on the validation split, within a time budget.

``choose_distillation(make_student, teacher, train_loader, val_loader, base, budget_s=...)``
trains a fresh student with each candidate setting on a share of the training data (the full
schedule, ``fraction`` of the samples), scores it on the validation split, and returns the
winner as a DistillConfig with the record of every trial. The test split is never touched.
Candidates run in order and the search stops before one that would not fit in what is left of
the budget (estimated from the trials so far), so a tight budget simply keeps the first one.

Default candidates (:func:`default_candidates`), best-first from what measured well on
Fashion-MNIST: the student initialized from the teacher (when it is a narrower copy), the
configuration as given, DIST instead of KL, and, for long schedules only (``LONG_SCHEDULE``
epochs or more), function matching on augmented batches: on the recipe's 61K student it lost
1.1 points to plain training at 12 epochs, as Beyer et al. warn ("patient" means long).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from slimkit.distillation.config import DistillConfig
from slimkit.errors import ConfigError, SlimkitError
from slimkit.modelio import split, tensors

log = logging.getLogger("slimkit.distillation")

#: Function matching as measured: shifts of 2 pixels and mixup or cutmix on every batch.
FUNCTION_MATCHING: dict[str, Any] = {"shift": 2, "mixup": 1.0, "cutmix": 1.0}
#: The schedule length (epochs) from which function matching is worth a trial.
LONG_SCHEDULE = 24


@dataclass
class Trial:
    """One candidate's short run: its name, the config fields it changes, its validation accuracy
    (None if it failed or was skipped), seconds, and why it failed or was skipped."""

    name: str
    changes: dict[str, Any]
    val_acc: float | None = None
    seconds: float = 0.0
    note: str = ""


@dataclass
class Choice:
    """What :func:`choose_distillation` returns: the chosen config, its name, and every trial."""

    config: DistillConfig
    name: str
    trials: list[Trial] = field(default_factory=list)
    fraction: float = 1.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.name, "fraction": self.fraction, "seconds": round(self.seconds, 1),
                "trials": [asdict(t) for t in self.trials]}


def default_candidates(base: DistillConfig, student: nn.Module, teacher: nn.Module,
                       loader: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    """The candidates worth trying for this pair, best-first (see the module docstring)."""
    from slimkit.distillation.teachers import init_from_teacher

    found: list[tuple[str, dict[str, Any]]] = []
    if base.init != "teacher":
        try:
            init_from_teacher(copy.deepcopy(student), teacher, loader)
            found.append(("init from teacher", {"init": "teacher"}))
        except SlimkitError as exc:
            log.info("auto: init from teacher skipped: %s", str(exc).splitlines()[0])
    found.append(("as configured", {}))
    if not any(spec.get("name") == "dist" for spec in base.losses):
        found.append(("DIST", {"losses": [{"name": "dist", "weight": 2.0}, {"name": "ce", "weight": 1.0}]}))
    if not base.augment.active and base.train.epochs >= LONG_SCHEDULE and _has_images(loader):
        found.append(("function matching", {"augment": FUNCTION_MATCHING, "teacher_runtime": "int8"
                                            if _logit_losses_only(base) else base.teacher_runtime}))
    return found


def choose_distillation(
    make_student: Callable[[], nn.Module],
    teacher: nn.Module,
    train_loader: DataLoader,
    val_loader: Iterable[Any],
    base: DistillConfig,
    *,
    budget_s: float,
    fraction: float = 0.25,
    candidates: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
    seed: int = 0,
) -> Choice:
    """Try each candidate (default: :func:`default_candidates`) on ``fraction`` of the training
    samples with ``base``'s schedule, and return the one with the best validation accuracy."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"search fraction must be in (0, 1], got {fraction!r}")
    started = time.perf_counter()
    if candidates is None:
        candidates = default_candidates(base, make_student(), teacher, train_loader)
    if not candidates:
        raise ConfigError("the distillation search got no candidates", hint="give at least one, e.g. [('as configured', {})]")
    subset = subset_loader(train_loader, fraction, seed)
    trials: list[Trial] = []
    for name, changes in candidates:
        spent = time.perf_counter() - started
        done = [t.seconds for t in trials if t.val_acc is not None]
        expected = max(done) if done else 0.0
        if trials and spent + expected > budget_s:
            trials.append(Trial(name, dict(changes), note=f"skipped: the {budget_s:.0f}s search budget was spent"))
            continue
        trials.append(_trial(name, changes, make_student, teacher, subset, val_loader, base))
    scored = [t for t in trials if t.val_acc is not None]
    if not scored:
        raise ConfigError(f"every distillation candidate failed: {trials[0].note}",
                          hint="check the configured losses on this model, or turn auto off")
    best = max(scored, key=lambda t: t.val_acc)  # type: ignore[arg-type,return-value]  # first wins ties
    config = base.replace(**best.changes) if best.changes else base
    choice = Choice(config, best.name, trials, fraction, time.perf_counter() - started)  # type: ignore[arg-type]
    log.info("auto: chose %s (%s)", best.name, ", ".join(f"{t.name} {t.val_acc}" for t in trials))
    return choice


def _trial(name: str, changes: Mapping[str, Any], make_student: Callable[[], nn.Module], teacher: nn.Module,
           loader: DataLoader, val_loader: Iterable[Any], base: DistillConfig) -> Trial:
    from slimkit.distillation.offline import run_distillation

    started = time.perf_counter()
    try:
        config = base.replace(**changes) if changes else base
        result = run_distillation(make_student(), teacher, loader, config, val_loader=val_loader)
        accuracy = result.history[-1]["val_acc"]
        return Trial(name, dict(changes), accuracy, time.perf_counter() - started)
    except SlimkitError as exc:
        return Trial(name, dict(changes), None, time.perf_counter() - started, f"failed: {str(exc).splitlines()[0]}")


def subset_loader(loader: DataLoader, fraction: float, seed: int = 0) -> DataLoader:
    """A loader over a seeded random ``fraction`` of ``loader``'s samples (same batching and
    collate); ``loader`` itself when ``fraction`` is 1."""
    if fraction >= 1:
        return loader
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise ConfigError("searching on a share of the training data needs a map-style DataLoader with a batch_size",
                          hint="set search_fraction: 1")
    n = len(loader.dataset)  # type: ignore[arg-type]
    keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: max(1, round(n * fraction))]
    return DataLoader(Subset(loader.dataset, sorted(keep.tolist())), batch_size=loader.batch_size, shuffle=True,
                      collate_fn=loader.collate_fn, num_workers=loader.num_workers)


def _has_images(loader: Iterable[Any]) -> bool:
    try:
        inputs = split(next(iter(loader))).inputs
    except StopIteration:
        return False
    return any(t.is_floating_point() and t.dim() == 4 for _, t in tensors(inputs))


def _logit_losses_only(config: DistillConfig) -> bool:
    from slimkit.distillation.losses import build_losses, required_features

    return not required_features(build_losses(config.losses))[1]
