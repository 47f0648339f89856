"""Recovery: win back accuracy after compression by distilling from the model as it was before.

Pruning, factorization, lightweight conversion, weight sharing, QAT, Deep Compression and every
recipe stage recover the same way, from one :class:`RecoveryConfig`: fine-tune on
``kd_weight * KD(temperature) + (1 - kd_weight) * CE`` with the uncompressed model as a frozen
teacher (``distill_from: none`` fine-tunes on cross-entropy alone). Its defaults are the only
copy of these constants in slimkit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn

from slimkit.config import Config, Seed
from slimkit.errors import ConfigError
from slimkit.train import Callback, TrainConfig, Trainer


class RecoveryConfig(Config):
    """A short fine-tune after a compression step.

    - ``epochs`` (0 skips recovery), ``lr``, ``weight_decay``, ``schedule``: the fine-tune;
    - ``distill_from``: the teacher. ``original`` is the model before compression (in a recipe:
      the recipe's original, e.g. the trained teacher), ``input`` the model as this step received
      it (the same thing outside recipes), ``none`` plain cross-entropy;
    - ``temperature`` and ``kd_weight``: the KD term; hard-label CE gets ``1 - kd_weight``.

    ``alpha`` is read as ``kd_weight`` (its old name).

    >>> RecoveryConfig(alpha=0.5).kd_weight, RecoveryConfig().kd
    (0.5, True)
    """

    epochs: int = Field(1, ge=0)
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    distill_from: Literal["original", "input", "none"] = "original"
    temperature: float = Field(4.0, gt=0)
    kd_weight: float = Field(0.9, ge=0, le=1)
    seed: Seed = 0
    renamed: ClassVar[dict[str, str]] = {"alpha": "kd_weight"}

    @property
    def kd(self) -> bool:
        """Whether recovery distills (``distill_from`` is not ``none``)."""
        return self.distill_from != "none"

    def train_config(self, *, threads: int | None = None, seed: int | None = None) -> TrainConfig:
        """The TrainConfig the fine-tune runs with (no progress bar: recovery is a sub-step)."""
        return TrainConfig(epochs=max(self.epochs, 1), lr=self.lr, weight_decay=self.weight_decay,
                           schedule=self.schedule, seed=self.seed if seed is None else seed, threads=threads,
                           progress=False)

    def losses(self) -> list[dict[str, Any]]:
        """The distillation loss terms: KD at ``temperature`` and CE, weighted."""
        return [{"name": "kd", "weight": self.kd_weight, "temperature": self.temperature},
                {"name": "ce", "weight": 1.0 - self.kd_weight}]


def recover(
    model: nn.Module,
    teacher: nn.Module | None,
    train_loader: Iterable[Any],
    config: RecoveryConfig | None = None,
    *,
    val_loader: Iterable[Any] | None = None,
    callbacks: Sequence[Callback] = (),
    out_dir: str | Path | None = None,
    resume: bool = False,
    threads: int | None = None,
) -> nn.Module:
    """Fine-tune ``model`` in place as ``config`` says (KD from ``teacher`` + CE, or CE alone when
    ``teacher`` is None or ``config.distill_from`` is ``none``); return ``model``.

    ``teacher`` serves frozen for the duration and gets its training mode, device and
    ``requires_grad`` flags back afterwards. Its outputs are cached when the loader does not
    augment, so an epoch costs about as much as plain fine-tuning.

    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0); x = torch.randn(16, 4); y = (x[:, 0] > 0).long()
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=8)
    >>> teacher = nn.Linear(4, 2)
    >>> recover(nn.Linear(4, 2), teacher, loader).weight.shape, teacher.training
    (torch.Size([2, 4]), True)
    """
    config = config if config is not None else RecoveryConfig()
    if not isinstance(config, RecoveryConfig):
        raise ConfigError(f"recover needs a RecoveryConfig, got {type(config).__name__}",
                          hint="RecoveryConfig(epochs=1, lr=5e-4)")
    if config.epochs == 0:
        return model
    train = config.train_config(threads=threads)
    if teacher is None or not config.kd:
        Trainer(model, train, callbacks=callbacks, out_dir=out_dir).fit(train_loader, val_loader, resume=resume)
        return model
    from slimkit.distillation.config import DistillConfig
    from slimkit.distillation.offline import run_distillation

    training, first = teacher.training, next(teacher.parameters(), None)
    grads = [p.requires_grad for p in teacher.parameters()]
    teacher.eval().requires_grad_(False)  # frozen on purpose here: no warning
    try:
        run_distillation(model, teacher, train_loader, DistillConfig(losses=config.losses(), train=train),
                         val_loader=val_loader, out_dir=out_dir, callbacks=callbacks, resume=resume)
    finally:
        teacher.train(training)
        if first is not None:
            teacher.to(first.device)
        for param, flag in zip(teacher.parameters(), grads):
            param.requires_grad_(flag)
    return model
