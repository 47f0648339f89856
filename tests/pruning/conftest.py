"""Tiny data and models for the pruning tests (8x8 inputs, a few dozen samples)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset


@pytest.fixture
def tiny_loader() -> DataLoader:
    """48 random 1x8x8 images with 10 classes, batches of 16 (no shuffling: deterministic)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (48,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=16)


@pytest.fixture
def example() -> torch.Tensor:
    return torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
