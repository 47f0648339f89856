"""Resize a dataset's images, so a model trained on one input size can transfer to another."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from slimkit.data import DatasetSplits
from slimkit.errors import ConfigError


def _resized(dataset: Dataset, size: int, channels: int) -> TensorDataset:
    if len(dataset) == 0:  # type: ignore[arg-type]
        return TensorDataset(torch.zeros(0, channels, size, size), torch.zeros(0, dtype=torch.long))
    xs, ys = zip(*(dataset[i][:2] for i in range(len(dataset))))  # type: ignore[arg-type]
    x = torch.stack(list(xs)).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return TensorDataset(x, torch.stack([torch.as_tensor(y) for y in ys]).long())


def resize_splits(splits: DatasetSplits, size: int) -> DatasetSplits:
    """Every split's images bilinearly resized to ``size`` x ``size`` (held in memory).

    >>> from slimkit.data import load_dataset
    >>> s = load_dataset("synthetic", num_classes=2, shape=(1, 4, 4), size=10)
    >>> resize_splits(s, 8).input_shape, resize_splits(s, 8).train[0][0].shape
    ((1, 8, 8), torch.Size([1, 8, 8]))
    """
    if size < 1:
        raise ConfigError(f"resize must be a positive image size, got {size}")
    channels = splits.input_shape[0]
    return dataclasses.replace(
        splits, train=_resized(splits.train, size, channels), val=_resized(splits.val, size, channels),
        test=_resized(splits.test, size, channels),
        input_shape=(channels, size, size), meta={**splits.meta, "resized_from": list(splits.input_shape)},
    )
