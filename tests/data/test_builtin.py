"""The built-in dataset factories: digits and synthetic details (IDX sets: test_catalog/test_sources)."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.data import load_dataset
from slimkit.data.builtin import digits, synthetic
from slimkit.errors import ConfigError


def test_digits_is_sklearns_8x8_digits():
    raw = digits()
    assert raw.x_train.shape[1:] == (1, 8, 8)
    assert len(raw.y_train) + len(raw.y_test) == 1797 and len(raw.y_test) == 360
    assert raw.scale == 16.0 and raw.x_train.max() == 16
    assert np.array_equal(raw.x_test, digits().x_test)  # fixed test split


def test_synthetic_is_seeded_and_configurable():
    a = synthetic(num_classes=3, shape=(2, 5, 7), size=30, test_size=9, noise=0.5, data_seed=1)
    b = synthetic(num_classes=3, shape=(2, 5, 7), size=30, test_size=9, noise=0.5, data_seed=1)
    c = synthetic(num_classes=3, shape=(2, 5, 7), size=30, test_size=9, noise=0.5, data_seed=2)
    assert a.x_train.shape == (30, 2, 5, 7) and a.x_test.shape == (9, 2, 5, 7)
    assert np.bincount(a.y_train).tolist() == [10, 10, 10]
    assert np.array_equal(a.x_train, b.x_train) and not np.array_equal(a.x_train, c.x_train)
    assert a.class_names == ["class 0", "class 1", "class 2"]


def test_synthetic_is_learnable():
    # A nearest-class-mean classifier fitted on train should score well on test.
    d = load_dataset("synthetic", num_classes=5, shape=(1, 8, 8), size=200, test_size=100)
    x, y = d.train.tensors
    xt, yt = d.test.tensors
    means = np.stack([x[y == k].mean(0).numpy().ravel() for k in range(5)])
    dist = ((xt.numpy().reshape(len(xt), 1, -1) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == yt.numpy()).mean() > 0.9


def test_synthetic_noise_zero_means_identical_class_samples():
    raw = synthetic(num_classes=2, shape=(3, 3), size=4, noise=0.0)
    same = raw.x_train[raw.y_train == 0]
    assert np.array_equal(same[0], same[1])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"shape": (1, 2, 3, 4)}, "shape must be"),
        ({"shape": (0, 4)}, "shape must be"),
        ({"num_classes": 1}, "num_classes must be at least 2"),
        ({"size": 3}, r"size \(3\) must be at least num_classes \(10\)"),
        ({"noise": -1.0}, r"noise must be in 0..1e6"),
        ({"test_size": 0}, "test_size must be positive"),
    ],
)
def test_synthetic_rejects_bad_options(kw, match):
    with pytest.raises(ConfigError, match=f"synthetic: {match}"):
        synthetic(**kw)
