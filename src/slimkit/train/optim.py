"""Optimizer and per-batch learning-rate schedule from a TrainConfig (torch's own classes)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from torch import nn
from torch.optim import SGD, AdamW, Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
)

from slimkit.train.config import TrainConfig

#: Warmup starts at this fraction of the learning rate.
WARMUP_START_FACTOR = 0.01


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """Trainable parameters of ``modules`` in two groups: decayed (matrices, kernels) and not
    (biases and normalization weights, where decay only hurts). Shared parameters appear once.

    >>> [len(g["params"]) for g in param_groups([nn.Linear(2, 2), nn.BatchNorm1d(2)], 0.1)]
    [1, 3]
    """
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for param in module.parameters():
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def build_optimizer(modules: Iterable[nn.Module], config: TrainConfig) -> Optimizer:
    """AdamW (beta1 = ``config.momentum``) or SGD over the trainable parameters of ``modules``.

    >>> type(build_optimizer([nn.Linear(2, 2)], TrainConfig(optimizer="sgd"))).__name__
    'SGD'
    """
    groups = param_groups(modules, config.weight_decay)
    if config.optimizer == "sgd":
        return SGD(groups, lr=config.lr, momentum=config.momentum)
    return AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))


def build_scheduler(optimizer: Optimizer, config: TrainConfig, steps_per_epoch: int) -> LRScheduler:
    """The schedule over ``config.epochs * steps_per_epoch`` optimizer steps, stepped per batch.

    cosine: (linear warmup then) cosine decay to 0; onecycle: torch's OneCycleLR peaking at
    ``config.lr`` (also cycling momentum); constant: (linear warmup then) ``config.lr``.

    >>> opt = build_optimizer([nn.Linear(2, 2)], TrainConfig(lr=0.1, schedule="cosine"))
    >>> sched = build_scheduler(opt, TrainConfig(lr=0.1, epochs=1, schedule="cosine"), steps_per_epoch=4)
    >>> [round(sched.get_last_lr()[0], 4)] + [round((opt.step(), sched.step(), sched.get_last_lr()[0])[2], 4) for _ in range(3)]
    [0.1, 0.0854, 0.05, 0.0146]
    """
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    if config.schedule == "onecycle":
        return OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=total,
            pct_start=warmup / total if warmup else 0.3,
            max_momentum=config.momentum,
            base_momentum=min(0.85, config.momentum),
        )
    if config.schedule == "cosine":
        main: LRScheduler = CosineAnnealingLR(optimizer, T_max=total - warmup)
    else:
        main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not warmup:
        return main
    ramp = LinearLR(optimizer, start_factor=WARMUP_START_FACTOR, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def fast_forward(optimizer: Optimizer, config: TrainConfig, steps_per_epoch: int, steps: int) -> LRScheduler:
    """A fresh schedule for the current horizon advanced by ``steps``; sets the optimizer's lr.

    Used when a run is resumed with a different number of epochs (or batches per epoch): the
    saved schedule was planned for another length, so the new plan continues from the same step.
    """
    for group in optimizer.param_groups:
        group["lr"] = config.lr
        for key in ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"):
            group.pop(key, None)  # left by the old schedule; the new one must start from config.lr
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    with warnings.catch_warnings():
        # torch warns that scheduler.step() comes without optimizer.step(): intended here.
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()
    return scheduler


def current_lr(optimizer: Optimizer) -> float:
    """The learning rate of the first parameter group.

    >>> import torch
    >>> current_lr(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5))
    0.5
    """
    return float(optimizer.param_groups[0]["lr"])
