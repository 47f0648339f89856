"""Tiny synthetic data and models for the training tests (no dependency on slimkit.data/models)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

FEATURES, CLASSES = 8, 3


def make_data(n: int = 128, *, seed: int = 0, extra: bool = False) -> TensorDataset:
    """A learnable 3-class problem: labels are the arg-max of a fixed linear map of x."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=gen)
    y = (x @ torch.randn(FEATURES, CLASSES, generator=torch.Generator().manual_seed(99))).argmax(dim=1)
    tensors = (x, y, torch.arange(n)) if extra else (x, y)
    return TensorDataset(*tensors)


def make_loaders(n: int = 128, batch_size: int = 16, *, extra: bool = False) -> tuple[DataLoader, DataLoader]:
    # The train loader shuffles with the global RNG, as slimkit.data's does, so per-epoch seeding matters.
    train = DataLoader(make_data(n, seed=0, extra=extra), batch_size=batch_size, shuffle=True)
    val = DataLoader(make_data(64, seed=1), batch_size=32)
    return train, val


def make_model(seed: int = 0) -> nn.Module:
    """Has BatchNorm (buffers) and Dropout (uses the RNG), which exact-resume must both respect."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(FEATURES, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, CLASSES)
    )


@pytest.fixture
def loaders() -> tuple[DataLoader, DataLoader]:
    return make_loaders()


@pytest.fixture
def model_factory() -> Callable[..., nn.Module]:
    return make_model


@pytest.fixture
def loader_factory() -> Callable[..., tuple[DataLoader, DataLoader]]:
    return make_loaders
