"""Tiny trained CNNs and loaders for the dynamic-inference tests (synthetic 3-class 1x8x8)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from slimkit.models import build_model
from slimkit.train import TrainConfig, train


@pytest.fixture
def loaders(tiny_splits):
    """(train, val, test) loaders over the tiny synthetic splits."""
    return (DataLoader(tiny_splits.train, batch_size=16, shuffle=True), DataLoader(tiny_splits.val, batch_size=16),
            DataLoader(tiny_splits.test, batch_size=16))


@pytest.fixture
def trained(loaders):
    """A 3-stage CNN trained for a few epochs on the tiny data."""
    torch.manual_seed(0)
    net = build_model("cnn", channels=[4, 8, 16], hidden=8, input_size=8, num_classes=3)
    train(net, loaders[0], config=TrainConfig(epochs=4, progress=False))
    return net.eval()
