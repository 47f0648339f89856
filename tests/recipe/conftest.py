"""A tiny recipe (synthetic 1x8x8 data, 3 classes, a 4-8 channel CNN) and one torch thread.

One thread keeps these tests fast and steady on a shared 2-core machine (two OpenMP threads
stall badly when the other core is busy).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "name": "tiny",
    "data": {"name": "synthetic", "batch_size": 16,
             "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 96, "test_size": 24}},
    "model": {"registry": "cnn", "knobs": {"channels": [4, 8], "hidden": 8}},
    "evaluation": {"batch_sizes": [1, 4], "repeats": 1, "warmup": 0, "final_repeats": 1},
    "stages": [
        {"type": "train", "name": "teacher", "epochs": 1},
        {"type": "distill", "student": {"registry": "cnn", "knobs": {"channels": [2, 4], "hidden": 4}},
         "train": {"epochs": 2}},
        {"type": "prune", "structured": {"ratio": 0.25}, "finetune": {"epochs": 1}},
    ],
}


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh copy of the tiny recipe as plain data."""
    return copy.deepcopy(TINY)
