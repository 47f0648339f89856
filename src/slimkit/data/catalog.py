"""The dataset registry and the one path from raw arrays to normalized train/val/test splits.

A dataset factory returns :class:`RawData` (unnormalized arrays, test split included).
:func:`load_dataset` then carves validation out of train from the seed, applies ``limit``,
and normalizes with the dataset's mean/std, so every dataset (built-in, registered by a
user, or read from an .npz file) gets the same splitting and normalization.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from slimkit.data.splits import (
    check_fraction,
    check_limit,
    fixed_subset,
    limit_indices,
    split_train_val,
)
from slimkit.errors import ConfigError, DataError
from slimkit.registry import Registry, did_you_mean

DATASETS: Registry[Callable[..., RawData]] = Registry("dataset")
"""Dataset factories by name. A factory is ``f(*, root, download, **options) -> RawData``;
metadata: ``doc``, ``mean``/``std`` (per channel, after ``RawData.scale``; computed from the
training data when absent), ``hflip`` (whether horizontal flips keep the label right)."""


@dataclass
class RawData:
    """Unnormalized arrays as a factory returns them.

    ``x_*`` are (N, C, H, W) arrays of any numeric dtype (uint8 images stay uint8 until a
    subset is chosen, which keeps ``limit=`` runs cheap); values are divided by ``scale``
    before normalization. ``per_feature`` normalizes each element separately (tabular data)
    instead of each channel.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    scale: float = 1.0
    per_feature: bool = False


@dataclass
class DatasetSplits:
    """Train/val/test datasets in memory, normalized, yielding ``(x float32 CxHxW, y int64)``."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: list[str]
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    hflip: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Number of samples per split, e.g. ``{"train": 54000, "val": 6000, "test": 10000}``."""
        return {k: len(getattr(self, k)) for k in ("train", "val", "test")}  # type: ignore[arg-type]


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = True,
    **options: Any,
) -> DatasetSplits:
    """Load a registered dataset as normalized train/val/test splits.

    ``limit`` caps every split's size (quick runs). Validation is carved out of train,
    stratified, from ``seed``; the test set never depends on ``seed``. ``options`` go to the
    factory (synthetic: ``num_classes``, ``shape``, ``size``, ``test_size``, ``noise``,
    ``data_seed``). ``root`` and ``download`` matter to IDX datasets only.

    >>> d = load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=60, limit=20)
    >>> d.sizes(), d.input_shape, d.train[0][0].dtype, d.train[0][1].dtype
    ({'train': 20, 'val': 6, 'test': 12}, (1, 8, 8), torch.float32, torch.int64)
    """
    factory = DATASETS.get(name)
    meta = DATASETS.meta(name)
    check_factory_options(name, factory, options)
    check_fraction(val_fraction, "val_fraction")
    check_limit(limit)
    raw = factory(root=root, download=download, **options)
    return build_splits(
        raw, name=name, limit=limit, val_fraction=val_fraction, seed=seed,
        mean=meta.get("mean"), std=meta.get("std"), hflip=bool(meta.get("hflip", False)),
    )


def check_factory_options(name: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    """Raise ConfigError naming the dataset and its valid options for an unknown option."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in ("root", "download")]
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"dataset '{name}' has no option '{key}'.{did_you_mean(key, valid)}",
                hint=f"options of '{name}': {', '.join(valid)}" if valid else f"'{name}' takes no options",
            )


def build_splits(
    raw: RawData,
    *,
    name: str,
    limit: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    hflip: bool = False,
) -> DatasetSplits:
    """Split, subset and normalize ``raw``; mean/std are computed from train when not given."""
    check_raw(raw, name)
    train_idx, val_idx = split_train_val(raw.y_train, val_fraction, seed)
    train_idx, val_idx = limit_indices(train_idx, limit), limit_indices(val_idx, limit)
    test_idx = fixed_subset(len(raw.y_test), limit)
    axes = (0,) if raw.per_feature else (0, 2, 3)
    stat_shape = raw.x_train.shape[1:] if raw.per_feature else (raw.x_train.shape[1], 1, 1)
    if mean is None or std is None:
        # Statistics of the whole training pool (val included), so they do not move with seed.
        mean_arr, std_arr = _stats(raw.x_train, raw.scale, axes)
    else:
        mean_arr, std_arr = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    mean_t = torch.tensor(mean_arr, dtype=torch.float32).reshape(stat_shape)
    std_t = torch.tensor(std_arr, dtype=torch.float32).reshape(stat_shape)

    def make(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> TensorDataset:
        xs = torch.from_numpy(np.ascontiguousarray(x[idx])).to(torch.float32)
        xs = xs.div_(raw.scale).sub_(mean_t).div_(std_t)
        return TensorDataset(xs, torch.from_numpy(np.asarray(y[idx], dtype=np.int64)))

    c, h, w = (int(s) for s in raw.x_train.shape[1:])
    return DatasetSplits(
        name=name,
        train=make(raw.x_train, raw.y_train, train_idx),
        val=make(raw.x_train, raw.y_train, val_idx),
        test=make(raw.x_test, raw.y_test, test_idx),
        num_classes=len(raw.class_names),
        input_shape=(c, h, w),
        class_names=list(raw.class_names),
        mean=tuple(float(v) for v in mean_arr.ravel()),
        std=tuple(float(v) for v in std_arr.ravel()),
        hflip=hflip,
        meta={"seed": seed, "val_fraction": val_fraction, "limit": limit},
    )


def _stats(x: np.ndarray, scale: float, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=axes, dtype=np.float64) / scale
    std = x.std(axis=axes, dtype=np.float64) / scale
    # A constant channel or feature (e.g. an always-blank border pixel) would divide by zero.
    return mean, np.where(std < 1e-8, 1.0, std)


def check_raw(raw: RawData, name: str) -> None:
    """Raise DataError when the arrays of ``raw`` do not fit together."""
    for part in ("train", "test"):
        x, y = getattr(raw, f"x_{part}"), getattr(raw, f"y_{part}")
        if x.ndim != 4:
            raise DataError(f"{name}: x_{part} must be (N, C, H, W), got shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"{name}: {part} has {len(x)} inputs but labels of shape {y.shape}; "
                "expected one label per input",
            )
        if len(y) and (y.min() < 0 or y.max() >= len(raw.class_names)):
            raise DataError(
                f"{name}: {part} labels span {int(y.min())}..{int(y.max())} but there are "
                f"{len(raw.class_names)} classes",
                hint="labels must be integers 0..num_classes-1",
            )
    if raw.x_train.shape[1:] != raw.x_test.shape[1:]:
        raise DataError(
            f"{name}: train inputs have shape {raw.x_train.shape[1:]} but test inputs "
            f"{raw.x_test.shape[1:]}",
        )
    if len(raw.y_train) == 0:
        raise DataError(f"{name}: the training set is empty")
