"""Index splits: deterministic, disjoint, stratified where possible."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.data.splits import (
    check_limit,
    fixed_subset,
    limit_indices,
    split_train_val,
)
from slimkit.errors import ConfigError


def test_split_is_a_deterministic_partition():
    y = np.arange(100) % 5
    train, val = split_train_val(y, 0.2, seed=3)
    again = split_train_val(y, 0.2, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert len(val) == 20 and not set(train) & set(val)
    assert sorted([*train, *val]) == list(range(100))
    assert not np.array_equal(val, split_train_val(y, 0.2, seed=4)[1])


def test_split_is_stratified():
    y = np.array([0] * 90 + [1] * 10)
    _, val = split_train_val(y, 0.2, seed=0)
    assert np.bincount(y[val]).tolist() == [18, 2]


def test_split_falls_back_to_shuffle_when_stratifying_is_impossible():
    y = np.array([0, 0, 0, 0, 1])  # class 1 has one sample
    train, val = split_train_val(y, 0.4, seed=0)
    assert len(val) == 2 and sorted([*train, *val]) == [0, 1, 2, 3, 4]


def test_zero_fraction_keeps_everything_in_train():
    train, val = split_train_val(np.zeros(10), 0.0, seed=0)
    assert len(val) == 0 and sorted(train) == list(range(10))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_fraction(fraction):
    with pytest.raises(ConfigError, match=r"val_fraction must be in \[0, 1\)"):
        split_train_val(np.zeros(10), fraction, seed=0)


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit(limit):
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        check_limit(limit)


def test_limit_and_fixed_subset():
    assert limit_indices(np.array([5, 3, 1]), None).tolist() == [5, 3, 1]
    assert limit_indices(np.array([5, 3, 1]), 10).tolist() == [5, 3, 1]
    sub = fixed_subset(1000, 50)
    assert len(sub) == 50 and len(set(sub)) == 50 and np.all(np.diff(sub) > 0)
    assert np.array_equal(sub, fixed_subset(1000, 50))
    assert fixed_subset(4, 10).tolist() == [0, 1, 2, 3]
