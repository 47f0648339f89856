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

# Dtypes torch.from_numpy wraps exactly; others are widened to float64 first.
_TORCH_DTYPES = {np.dtype(t) for t in (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64,
                                        np.float16, np.float32, np.float64)}

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
    val_from: int | None = None,
) -> DatasetSplits:
    """Split, subset and normalize ``raw``; mean/std are computed from train when not given.

    ``val_from`` marks an explicit validation set: samples ``val_from:`` of the training
    arrays are validation as they are, and nothing is carved out of the rest.
    """
    check_raw(raw, name)
    if val_from is None:
        train_idx, val_idx = split_train_val(raw.y_train, val_fraction, seed)
    else:
        train_idx = np.random.default_rng(seed).permutation(val_from)
        val_idx = np.arange(val_from, len(raw.y_train))
    if len(train_idx) == 0:
        raise DataError(f"{name}: val_fraction {val_fraction} leaves no training samples out of {len(raw.y_train)}",
                        hint="lower val_fraction")
    train_idx, val_idx = limit_indices(train_idx, limit), limit_indices(val_idx, limit)
    test_idx = fixed_subset(len(raw.y_test), limit)
    axes = (0,) if raw.per_feature else (0, 2, 3)
    stat_shape = raw.x_train.shape[1:] if raw.per_feature else (raw.x_train.shape[1], 1, 1)
    if mean is None or std is None:
        # Statistics of the whole training pool (val included), so they do not move with seed.
        mean_arr, std_arr = _stats(raw.x_train, raw.scale, axes)
        if not (np.isfinite(mean_arr).all() and np.isfinite(std_arr).all()):
            raise DataError(f"{name}: input values are too large to normalize (their mean or spread overflows)",
                            hint="rescale the inputs, or give mean and std")
    else:
        mean_arr, std_arr = _given_stats(mean, std, int(np.prod(stat_shape)), name)
    mean_t = torch.tensor(mean_arr, dtype=torch.float32).reshape(stat_shape)
    std_t = torch.tensor(std_arr, dtype=torch.float32).reshape(stat_shape)

    def make(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> TensorDataset:
        picked = x[idx]
        if picked.dtype not in _TORCH_DTYPES:  # e.g. uint32: torch cannot wrap it, so widen first
            picked = picked.astype(np.float64)
        xs = torch.from_numpy(np.ascontiguousarray(picked)).to(torch.float32)
        xs = xs.div_(raw.scale).sub_(mean_t).div_(std_t)
        # Float inputs beyond float32's range become inf, then NaN (integers cannot: mean/std are bounded).
        rows = max(1, 2**20 // max(1, xs[0].numel())) if len(xs) else 1
        if picked.dtype.kind == "f" and not all(bool(torch.isfinite(c).all()) for c in xs.split(rows)):
            raise DataError(f"{name}: input values are too large to normalize in float32",
                            hint="rescale the inputs, or give mean and std")
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


def _given_stats(mean: Sequence[float], std: Sequence[float], size: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Given mean/std as arrays of ``size`` values (one value is repeated for every channel)."""
    arrays = []
    for label, values in (("mean", mean), ("std", std)):
        arr = np.asarray(values, np.float64).reshape(-1)
        if arr.size == 1:
            arr = np.repeat(arr, size)
        if arr.size != size:
            raise ConfigError(f"{name}: {label} has {arr.size} values but the inputs have {size} channels",
                              hint=f"give one {label} value, or one per channel")
        arrays.append(arr)
    if not (np.isfinite(arrays[0]).all() and np.isfinite(arrays[1]).all()) or arrays[1].min() <= 0:
        raise ConfigError(f"{name}: mean must be finite and std positive, got mean {list(mean)}, std {list(std)}")
    return arrays[0], arrays[1]


_STAT_CHUNK = 2**22  # elements per chunk: float64 temporaries stay near 32 MiB, whatever the data size


def _stats(x: np.ndarray, scale: float, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    # Two passes over sample chunks (numpy's own formula within a chunk), so a large uint8
    # dataset never gets a float64 copy of itself.
    n = len(x)
    step = max(1, _STAT_CHUNK // max(1, int(np.prod(x.shape[1:]))))
    count = n * int(np.prod([x.shape[a] for a in axes if a != 0]))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by the caller
        total = sum(x[i:i + step].sum(axis=axes, dtype=np.float64, keepdims=True) for i in range(0, n, step))
        mean = total / count
        squares = sum(np.square(x[i:i + step] - mean).sum(axis=axes, dtype=np.float64, keepdims=True)
                      for i in range(0, n, step))
        std = np.sqrt(squares / count) / scale
    mean, std = mean.reshape(-1) / scale, std.reshape(-1)
    # A constant channel or feature (e.g. an always-blank border pixel) would divide by zero.
    return mean, np.where(std < 1e-8, 1.0, std)


def check_raw(raw: RawData, name: str) -> None:
    """Raise DataError when the arrays of ``raw`` do not fit together."""
    for part in ("train", "test"):
        x, y = getattr(raw, f"x_{part}"), getattr(raw, f"y_{part}")
        if x.ndim != 4:
            raise DataError(f"{name}: x_{part} must be (N, C, H, W), got shape {x.shape}")
        if 0 in x.shape[1:]:
            raise DataError(f"{name}: x_{part} has shape {x.shape}; every input needs at least one value")
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
