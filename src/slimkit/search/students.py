"""``search_students``: run student search (in this process or in K workers), write its Pareto
front, and ``train_student``: train the chosen candidate fully."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from slimkit.data import DataConfig, Loaders
from slimkit.errors import ConfigError
from slimkit.search.nas import (
    NASConfig,
    StudentObjective,
)
from slimkit.search.outcome import FrontWriter, StudentSearch, make_objective, summarize
from slimkit.search.workers import (
    create_study,
    finished_trials,
    run_workers,
    storage_url,
)

if TYPE_CHECKING:

    from slimkit.distillation import DistillResult

__all__ = ["FrontWriter", "StudentSearch", "search_students", "summarize", "train_student"]

class _WorkerTarget:
    """Loads the data and the saved teacher in a spawned worker and builds its objective."""

    def __init__(self, data: DataConfig, teacher: str, config: NASConfig, out_dir: Path) -> None:
        self.data, self.teacher, self.config, self.out_dir = data, teacher, config, out_dir

    def __call__(self, index: int) -> tuple[StudentObjective, list[Any]]:
        from slimkit.data import load_data
        from slimkit.export import load_model

        objective = make_objective(load_model(self.teacher), load_data(self.data), self.config, self.out_dir)
        return objective, [FrontWriter(self.out_dir, self.config)]


def search_students(teacher: nn.Module | str | Path, data: DataConfig | Loaders, config: NASConfig | None = None,
                    out_dir: str | Path = "runs/search", *, n_trials: int | None = 20, timeout: float | None = None,
                    workers: int = 1, storage: str | None = None, study_name: str = "students",
                    threads: int | None = None) -> StudentSearch:
    """Search student architectures for ``teacher`` on ``data``; see slimkit.search.nas.

    ``teacher`` is a model or a saved-model folder. With ``workers`` > 1, ``data`` must be a
    DataConfig (each worker loads it) and a teacher given as a model is saved to
    ``out_dir/teacher`` first. The study lives in ``storage`` (default ``out_dir/search.db``) and
    ``n_trials`` counts its finished trials, earlier runs included: rerunning resumes.
    """
    from slimkit.data import load_data
    from slimkit.export import load_model

    config = config or NASConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaders = data if isinstance(data, Loaders) else load_data(data)
    model = teacher if isinstance(teacher, nn.Module) else load_model(teacher)
    if config.strategy in ("rl", "darts"):  # strategies beyond Optuna's samplers
        from slimkit.search.strategies import run_strategy

        return run_strategy(model, loaders, config, out, n_trials=n_trials, timeout=timeout, workers=workers,
                            storage=storage, study_name=study_name, threads=threads)
    local = make_objective(model, loaders, config, out)
    url = storage_url(storage, out)
    study = create_study(url, study_name, list(config.directions().values()), sampler=config.sampler)
    if config.include_default:
        study.enqueue_trial(config.space.default_choices(), skip_if_exists=True)
    remaining = None if n_trials is None else max(0, n_trials - len(finished_trials(study)))
    if remaining != 0:
        if workers == 1:
            target: Any = lambda index: (local, [FrontWriter(out, config)])
        else:
            if not isinstance(data, DataConfig):
                raise ConfigError("search workers load their own data, so they need a DataConfig, not loaders",
                                  hint="pass data=DataConfig(...) or use workers=1")
            path = str(teacher) if not isinstance(teacher, nn.Module) else _save_teacher(teacher, out)
            target = _WorkerTarget(data, path, config, out)
        run_workers(target, storage=url, study_name=study_name, workers=workers, n_trials=remaining,
                    timeout=timeout, sampler=config.sampler, threads=threads)
    return summarize(study, local, config, out, url)


def _save_teacher(teacher: nn.Module, out: Path) -> str:
    from slimkit.export.serialize import save_model

    return str(save_model(teacher, out / "teacher"))


def train_student(knobs: dict[str, Any], teacher: nn.Module, loaders: Loaders, config: NASConfig | None = None, *,
                  out_dir: str | Path | None = None, seed: int | None = None, resume: bool = False) -> tuple[nn.Module, DistillResult]:
    """Build the searchnet (a ``dartsnet`` for ``strategy: darts``) ``knobs`` describes and
    distill it fully (``config.final``)."""
    from slimkit.distillation import run_distillation
    from slimkit.models import build_model
    from slimkit.search.darts_space import DARTS_FAMILY
    from slimkit.search.space import FAMILY

    config = config or NASConfig()
    family = DARTS_FAMILY if config.strategy == "darts" else FAMILY
    seed = config.seed if seed is None else seed
    splits = loaders.splits
    torch.manual_seed(seed)
    student = build_model(family, in_channels=splits.input_shape[0], num_classes=splits.num_classes,
                          input_size=splits.input_shape[-1], **copy.deepcopy(knobs))
    final = config.final.replace(train=config.final.train.replace(seed=seed))
    result = run_distillation(student, teacher.eval().requires_grad_(False), loaders.train, final, val_loader=loaders.val,
                     out_dir=out_dir, resume=resume)
    return student, result

