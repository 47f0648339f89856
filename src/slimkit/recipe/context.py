"""What a stage gets from the runner: its input model, the original, the data, its folder, and
helpers that train with checkpoints (so an interrupted stage resumes from its last epoch)."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from slimkit import modelio
from slimkit.config import derive_seed
from slimkit.data import DataConfig, Loaders
from slimkit.distillation.recovery import RecoveryConfig
from slimkit.errors import ConfigError
from slimkit.imports import Trust
from slimkit.recipe.schema import ModelSource, Recipe
from slimkit.train import Callback, TrainConfig, Trainer, TrainResult


@dataclass(frozen=True)
class DataState:
    """The data stages work on: a DataConfig, and the image size inputs are resized to (transfer)."""

    config: DataConfig
    resize: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "resize": self.resize}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataState:
        return cls(DataConfig.from_dict(data["config"]), data.get("resize"))

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class LoaderCache:
    """Loaders per DataState, built once per process (datasets are held in memory)."""

    def __init__(self) -> None:
        self._cache: dict[str, Loaders] = {}

    def get(self, state: DataState) -> Loaders:
        key = state.key()
        if key not in self._cache:
            from slimkit.data import load_data, make_loaders

            loaders = load_data(state.config)
            if state.resize is not None and loaders.splits.input_shape[-1] != state.resize:
                from slimkit.recipe.resize import resize_splits

                loaders = make_loaders(resize_splits(loaders.splits, state.resize), batch_size=state.config.batch_size,
                                       eval_batch_size=state.config.eval_batch_size, workers=state.config.workers,
                                       augment=state.config.augment)
            self._cache[key] = loaders
        return self._cache[key]


class LogCallback(Callback):
    """Writes each epoch's metrics to the stage's log."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in metrics.items()}
        self.ctx.log(f"epoch {epoch}: {json.dumps(shown, sort_keys=True, default=str)}")


@dataclass
class StageContext:
    """Everything a stage's run function may use. ``model`` is the stage's own copy of its input."""

    recipe: Recipe
    number: int
    folder: Path
    model: nn.Module
    original: nn.Module | None
    data: DataState
    source: ModelSource
    cache: LoaderCache
    artifact: Path | None = None
    callbacks: Sequence[Callback] = ()
    trust: Trust = field(default_factory=Trust)
    input: nn.Module = field(init=False)

    def __post_init__(self) -> None:
        self.input = copy.deepcopy(self.model)  # stages change ``model`` in place; recovery may need the input
        self.folder.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ data and models
    @property
    def seed(self) -> int:
        return derive_seed(self.recipe.seed, self.number)

    def loaders(self, data: DataState | None = None) -> Loaders:
        return self.cache.get(data or self.data)

    def example_input(self, data: DataState | None = None) -> Tensor:
        """Two samples of the evaluation split (a batch of two keeps BatchNorm tracing happy)."""
        return next(iter(self.loaders(data).test))[0][:2]

    def build(self, source: ModelSource, data: DataState | None = None) -> nn.Module:
        from slimkit.recipe.models import build_source

        return build_source(source, self.loaders(data).splits, seed=self.seed, trust=self.trust)

    def log(self, message: str) -> None:
        """Append a timestamped line to the stage's ``log.txt`` (append-only: a log, not state)."""
        with open(self.folder / "log.txt", "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    # ------------------------------------------------------------------ training
    def train_config(self, config: TrainConfig) -> TrainConfig:
        """The stage's TrainConfig as run: the recipe seed added, the runner's progress display instead."""
        return config.replace(seed=derive_seed(config.seed, self.recipe.seed), progress=False)  # type: ignore[return-value]

    def _callbacks(self) -> list[Callback]:
        return [*self.callbacks, LogCallback(self)]

    def _out(self, sub: str) -> tuple[Path, bool]:
        out = self.folder / sub
        resume = (out / "last.pt").is_file()  # a checkpoint here means an interrupted attempt: resume it
        if resume and _distributed():
            # ranks would start from different epochs (only rank 0 has checkpoints): retrain the stage
            self.log(f"data-parallel: {out / 'last.pt'} ignored, the stage's training starts over")
            resume = False
        return out, resume

    def fit(self, model: nn.Module, config: TrainConfig, *, loaders: Loaders | None = None,
            sub: str = "train") -> TrainResult:
        """Train ``model`` with checkpoints under ``folder/sub``, resuming from them if present
        (data-parallel over the process group under torchrun: the Trainer's own backend)."""
        loaders = loaders or self.loaders()
        out, resume = self._out(sub)
        trainer = Trainer(model, self.train_config(config), callbacks=self._callbacks(), out_dir=out)
        return trainer.fit(loaders.train, loaders.val, resume=resume)

    def distill(self, student: nn.Module, teacher: nn.Module | Sequence[nn.Module], config: Any, *,
                sub: str = "train") -> Any:
        """``slimkit.distillation.distill`` with checkpoints under ``folder/sub`` (resumable)."""
        from slimkit.distillation import run_distillation

        config = config.replace(train=self.train_config(config.train))
        for one in teacher if isinstance(teacher, (list, tuple)) else [teacher]:
            one.eval().requires_grad_(False)  # a teacher never trains; freezing here avoids distill's warning
        loaders = self.loaders()
        out, resume = self._out(sub)
        return run_distillation(student, teacher, loaders.train, config, val_loader=loaders.val, out_dir=out,
                       callbacks=self._callbacks(), resume=resume)

    def teacher(self, which: str) -> nn.Module | None:
        """The recovery teacher named by RecoveryConfig.distill_from."""
        if which == "none":
            return None
        teacher = self.original if which == "original" else self.input
        if teacher is None:
            raise ConfigError(f"stage {self.number}: distill_from: {which}, but there is no {which} model yet",
                              hint="use distill_from: input or none")
        return teacher

    def finetune(self, model: nn.Module, config: RecoveryConfig, *, sub: str = "finetune") -> list[dict[str, Any]]:
        """Recover ``model`` in place as ``config`` says; returns the epoch history."""
        if config.epochs == 0:
            return []
        train = config.train_config(seed=self.number)
        teacher = self.teacher(config.distill_from)
        if teacher is None:
            return self.fit(model, train, sub=sub).history
        _check_classes(model, teacher, self.example_input(), config.distill_from, self.number)
        from slimkit.distillation import DistillConfig

        return self.distill(model, teacher, DistillConfig(losses=config.losses(), train=train), sub=sub).history


def _distributed() -> bool:
    """Whether this process is one of several in a joined process group (``slimkit run --nproc``)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _check_classes(model: nn.Module, teacher: nn.Module, example: Tensor, which: str, number: int) -> None:
    with torch.no_grad():
        was = model.training, teacher.training
        model.eval(), teacher.eval()
        a, b = modelio.forward_logits(model, example).shape[-1], modelio.forward_logits(teacher, example).shape[-1]
        model.train(was[0]), teacher.train(was[1])
    if a != b:
        raise ConfigError(f"stage {number}: the model predicts {a} classes but the {which} model {b}, so it cannot teach",
                          hint="after a transfer stage, recover with distill_from: input or none")
