"""recover(): KD + CE fine-tuning of a damaged (compressed) model towards its original."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.distillation import RecoveryConfig, recover
from slimkit.errors import ConfigError
from slimkit.evaluate import predict


def damaged(model):
    """A crude compression: zero the 70% smallest weights of every conv and linear layer."""
    model = copy.deepcopy(model).train().requires_grad_(True)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p[p.abs() < p.abs().flatten().quantile(0.7)] = 0
    return model


def agreement(a, b, loader):
    return float((predict(a, loader).labels == predict(b, loader).labels).float().mean())


def test_recover_brings_the_model_back_towards_the_original(trained_teacher, tiny_splits, loaders):
    original = copy.deepcopy(trained_teacher).train().requires_grad_(True)  # as a caller might hand it over
    test = DataLoader(tiny_splits.test, batch_size=64)
    model = damaged(trained_teacher)
    before = agreement(model, original, test)
    returned = recover(model, original, loaders[0], RecoveryConfig(epochs=3, lr=3e-3), val_loader=loaders[1])
    assert returned is model
    assert agreement(model, original, test) >= before + 0.15
    assert original.training and all(p.requires_grad for p in original.parameters())  # restored


def test_recovery_config_checks_the_kd_weight_under_its_old_name_too():
    with pytest.raises(ConfigError, match="kd_weight"):
        RecoveryConfig(alpha=1.2)
    with pytest.raises(ConfigError, match="not both"):
        RecoveryConfig(alpha=0.5, kd_weight=0.5)
    with pytest.raises(ConfigError, match="RecoveryConfig"):
        recover(nn.Linear(2, 2), None, [], {"epochs": 1})


def test_recover_writes_checkpoints_and_calls_callbacks(trained_teacher, loaders, tmp_path):
    from slimkit.train import Callback

    class Count(Callback):
        epochs = 0

        def on_epoch_end(self, trainer, epoch, metrics):
            Count.epochs += 1

    recover(damaged(trained_teacher), trained_teacher, loaders[0], RecoveryConfig(epochs=1), callbacks=[Count()],
            out_dir=tmp_path)
    assert Count.epochs == 1 and (tmp_path / "last.pt").is_file()
