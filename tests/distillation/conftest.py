"""Tiny models and loaders shared by the distillation strategy tests (synthetic 3-class 1x8x8)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.data import DatasetSplits
from slimkit.models import build_model
from slimkit.train import TrainConfig


def tiny_cnn(seed: int = 0, **knobs) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("cnn", **{"input_size": 8, "num_classes": 3, "channels": [4, 8], "hidden": 8, **knobs})


def count_forwards(model: nn.Module) -> list[int]:
    """A one-item list counting ``model``'s forward calls (a forward hook that stays registered)."""
    calls = [0]

    def hook(*_):
        calls[0] += 1

    model.register_forward_hook(hook)
    return calls


@pytest.fixture
def loaders(tiny_splits: DatasetSplits) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(tiny_splits.train, batch_size=16, shuffle=True)
    val = DataLoader(tiny_splits.val, batch_size=64)
    return train, val


@pytest.fixture(scope="session")
def trained_teacher() -> nn.Module:
    """A small CNN trained for a few epochs on the tiny synthetic data (built once per session)."""
    from slimkit.data import load_dataset
    from slimkit.train import train

    torch.set_num_threads(1)  # session fixtures run before the per-test thread setting
    splits = load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=120, test_size=30)
    teacher = tiny_cnn(1, channels=[8, 16], hidden=16)
    train(teacher, DataLoader(splits.train, batch_size=16, shuffle=True),
          config=TrainConfig(epochs=3, lr=3e-3, progress=False))
    return teacher.eval().requires_grad_(False)


@pytest.fixture
def quick() -> TrainConfig:
    return TrainConfig(epochs=1, lr=3e-3, progress=False, device="cpu")
