"""A tiny trained teacher and loaders (synthetic 3-class 1x8x8), shared by a test module."""

import pytest
import torch

from slimkit.data import load_dataset, make_loaders
from slimkit.models import build_model
from slimkit.train import train


@pytest.fixture(scope="module")
def teacher_and_data():
    """(teacher, loaders): a 4-8 channel CNN trained for 2 epochs on the tiny synthetic data."""
    torch.set_num_threads(1)
    loaders = make_loaders(load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=120, test_size=30), batch_size=16)
    torch.manual_seed(0)
    teacher = build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8)
    train(teacher, loaders.train, epochs=2, progress=False)
    return teacher.eval(), loaders
