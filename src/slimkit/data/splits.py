"""Deterministic index splits: validation carved out of train, and ``limit`` subsets."""

from __future__ import annotations

import numpy as np

from slimkit.config import MAX_SEED
from slimkit.errors import ConfigError


def check_fraction(value: float, field: str) -> None:
    """Raise ConfigError unless ``0 <= value < 1``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 <= value < 1.0:
        raise ConfigError(
            f"{field} must be in [0, 1), got {value}",
            hint=f"use e.g. {field}=0.1 to hold out 10% of the training data",
        )


def check_limit(limit: int | None) -> None:
    """Raise ConfigError unless ``limit`` is None or a positive integer."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")


def check_seed(seed: int, field: str = "seed") -> None:
    """Raise ConfigError unless ``seed`` is an integer in 0..MAX_SEED."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{field} must be an integer in 0..{MAX_SEED}, got {seed!r:.40}")


def split_train_val(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(len(labels))`` and carve out ``val_fraction`` of it, stratified.

    The same labels, fraction and seed always give the same split. Stratifying keeps every
    class represented in a small validation set; when it is impossible (a class with one
    sample, or fewer validation samples than classes) the split is a plain shuffle.

    >>> y = np.array([0, 1] * 10)
    >>> train, val = split_train_val(y, 0.2, seed=0)
    >>> len(train), len(val), sorted(y[val].tolist())
    (16, 4, [0, 0, 1, 1])
    """
    check_fraction(val_fraction, "val_fraction")
    check_seed(seed)
    labels = np.asarray(labels)
    n = len(labels)
    n_val = round(n * val_fraction)
    rng = np.random.default_rng(seed)
    if n_val == 0:
        return rng.permutation(n), np.empty(0, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() >= 2 and len(classes) <= n_val <= n - len(classes):
        from sklearn.model_selection import (
            train_test_split,  # lazy: sklearn imports slowly
        )

        train, val = train_test_split(
            np.arange(n), test_size=n_val, stratify=labels, random_state=seed, shuffle=True
        )
        return np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)
    order = rng.permutation(n)
    return order[n_val:], order[:n_val]


def limit_indices(indices: np.ndarray, limit: int | None) -> np.ndarray:
    """The first ``limit`` of already-shuffled ``indices`` (all when ``limit`` is None).

    >>> limit_indices(np.array([4, 2, 9]), 2).tolist()
    [4, 2]
    """
    check_limit(limit)
    return indices if limit is None else indices[:limit]


def fixed_subset(n: int, limit: int | None) -> np.ndarray:
    """Indices of the test subset: all of them in order, or ``limit`` of them.

    The subset does not depend on the run's seed, so runs with different seeds are scored
    on the same test images. It is sorted to keep the file order.

    >>> fixed_subset(5, None).tolist()
    [0, 1, 2, 3, 4]
    >>> len(fixed_subset(100, 10))
    10
    """
    check_limit(limit)
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).permutation(n)[:limit])
