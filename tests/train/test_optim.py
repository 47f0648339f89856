"""Optimizers x schedules: the learning rate each step uses follows the schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from slimkit.train import Callback, TrainConfig, Trainer
from slimkit.train.optim import (
    WARMUP_START_FACTOR,
    build_optimizer,
    build_scheduler,
    fast_forward,
    param_groups,
)


class RecordLR(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_step_end(self, trainer, logs):
        self.lrs.append(logs["lr"])


def expected_lrs(schedule: str, lr: float, total: int) -> list[float] | None:
    if schedule == "constant":
        return [lr] * total
    if schedule == "cosine":
        return [lr * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    return None  # onecycle: shape checked separately


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_schedule_followed_per_batch_and_model_learns(optimizer, schedule, loaders, model_factory):
    lr = 0.05 if optimizer == "sgd" else 0.02
    config = TrainConfig(epochs=3, optimizer=optimizer, schedule=schedule, lr=lr, progress=False, threads=1)
    record = RecordLR()
    trainer = Trainer(model_factory(), config, callbacks=[record])
    result = trainer.fit(*loaders)

    total = 3 * len(loaders[0])
    assert len(record.lrs) == total == trainer.global_step
    assert type(trainer.optimizer).__name__ == {"adamw": "AdamW", "sgd": "SGD"}[optimizer]
    expected = expected_lrs(schedule, lr, total)
    if expected is not None:
        assert record.lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)
    else:
        peak = max(range(total), key=record.lrs.__getitem__)
        assert record.lrs[0] == pytest.approx(lr / 25)  # OneCycleLR's default div_factor
        assert record.lrs[peak] == pytest.approx(lr, rel=0.01)  # the peak falls between two steps
        assert abs(peak - (0.3 * total - 1)) <= 1  # OneCycleLR peaks at step pct_start * total - 1
        assert record.lrs[-1] < lr / 100
    # the epoch's "lr" is the rate its last step used
    assert [m["lr"] for m in result.history] == pytest.approx([record.lrs[i * total // 3 - 1] for i in (1, 2, 3)])
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["val_acc"] > 0.5  # chance is 1/3


def test_warmup_ramps_linearly_then_cosine():
    opt = build_optimizer([nn.Linear(2, 2)], TrainConfig(lr=0.1))
    sched = build_scheduler(opt, TrainConfig(lr=0.1, epochs=3, warmup_epochs=1, schedule="cosine"), steps_per_epoch=4)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ramp = [0.1 * (WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * t / 4) for t in range(4)]
    cosine = [0.1 * (1 + math.cos(math.pi * t / 8)) / 2 for t in range(8)]
    assert lrs == pytest.approx(ramp + cosine)


def test_onecycle_warmup_sets_rise_fraction():
    opt = build_optimizer([nn.Linear(2, 2)], TrainConfig())
    sched = build_scheduler(opt, TrainConfig(lr=0.1, epochs=4, warmup_epochs=1, schedule="onecycle"), steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(range(20), key=lrs.__getitem__) == 4  # peak after 1 epoch of 5 steps


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_fast_forward_matches_continuous_schedule(schedule):
    config = TrainConfig(lr=0.1, epochs=3, schedule=schedule, warmup_epochs=0.5)
    opt = build_optimizer([nn.Linear(2, 2)], config)
    sched = build_scheduler(opt, config, steps_per_epoch=6)
    for _ in range(7):
        opt.step()
        sched.step()
    other = build_optimizer([nn.Linear(2, 2)], config)
    fast_forward(other, config, steps_per_epoch=6, steps=7)
    assert other.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_param_groups_decay_only_matrices_and_dedupe_shared():
    linear, norm = nn.Linear(3, 3), nn.BatchNorm1d(3)
    groups = param_groups([nn.Sequential(linear, norm), linear], weight_decay=0.1)
    assert [(g["weight_decay"], len(g["params"])) for g in groups] == [(0.1, 1), (0.0, 3)]
    assert groups[0]["params"][0] is linear.weight


def test_frozen_parameters_are_not_optimized():
    model = nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    opt = build_optimizer([model], TrainConfig(optimizer="sgd", momentum=0.5))
    assert [p for g in opt.param_groups for p in g["params"]] == [model.weight]
    assert opt.param_groups[0]["momentum"] == 0.5


def test_adamw_beta1_is_momentum():
    opt = build_optimizer([nn.Linear(2, 2)], TrainConfig(momentum=0.8))
    assert opt.param_groups[0]["betas"] == (0.8, 0.999)
    assert isinstance(opt, torch.optim.AdamW)
