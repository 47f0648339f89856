"""Device choice, autocast, seeding and thread count."""

from __future__ import annotations

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.train import resolve_device
from slimkit.train.runtime import autocast, num_threads, seed_everything


def test_resolve_device_auto_and_explicit():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_cuda_missing():
    with pytest.raises(ConfigError, match="CUDA is not available") as info:
        resolve_device("cuda")
    assert 'use device "auto"' in str(info.value)


def test_resolve_device_bad_name():
    with pytest.raises(ConfigError, match="'gpu0' is not a torch device"):
        resolve_device("gpu0")


def test_autocast_only_when_enabled():
    a, b = torch.ones(2, 2), torch.ones(2, 2)
    with autocast(torch.device("cpu"), False):
        assert (a @ b).dtype == torch.float32
    with autocast(torch.device("cpu"), True):
        assert (a @ b).dtype == torch.bfloat16


def test_seed_everything_repeats_all_generators():
    import random

    import numpy as np

    seed_everything(5)
    first = (torch.rand(2).tolist(), np.random.rand(), random.random())
    seed_everything(5)
    assert (torch.rand(2).tolist(), np.random.rand(), random.random()) == first


def test_num_threads_restores_even_after_errors():
    before = torch.get_num_threads()
    with pytest.raises(KeyboardInterrupt), num_threads(1):
        assert torch.get_num_threads() == 1
        raise KeyboardInterrupt
    assert torch.get_num_threads() == before
    with num_threads(None):
        assert torch.get_num_threads() == before
