"""Shared fixtures for quantization tests: one thread, tiny synthetic data, a tiny trained CNN."""

from __future__ import annotations

import pytest
import torch

from slimkit.data import load_dataset, make_loaders
from slimkit.models import build_model
from slimkit.train import TrainConfig, Trainer


@pytest.fixture(scope="package")
def loaders():
    """Synthetic 3 classes 1x8x8 (as the tiny_splits fixture, less noisy: easy data), batches of 32."""
    splits = load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=240, test_size=60, noise=0.3)
    return make_loaders(splits, batch_size=32)


@pytest.fixture(scope="package")
def trained_cnn(loaders):
    """A tiny CNN trained to near-perfect accuracy on the easy synthetic data (BN included)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = build_model("cnn", channels=[4, 8], hidden=16, input_size=8, num_classes=3)
    Trainer(model, TrainConfig(epochs=5, lr=3e-3, progress=False, seed=0)).fit(loaders.train)
    torch.set_num_threads(before)
    return model.eval()


@pytest.fixture(scope="package")
def test_batch(loaders):
    return torch.cat([x for x, _ in loaders.test])
