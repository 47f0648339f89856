"""Batches that carry sample indices, and the augmentation probe behind cache_teacher='auto'."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from slimkit.data import Augment, AugmentCollate
from slimkit.distillation.batches import (
    INDEX_KEY,
    IndexedDataset,
    augments,
    sample_indices,
    with_indices,
)
from slimkit.errors import ConfigError, DataError


def data(n=20):
    return TensorDataset(torch.randn(n, 1, 8, 8), torch.arange(n) % 3)


def test_with_indices_keeps_the_shuffled_order_and_labels():
    ds = data()
    loader = DataLoader(ds, batch_size=6, shuffle=True)
    torch.manual_seed(3)
    plain = list(loader)
    torch.manual_seed(3)
    indexed = list(with_indices(loader))
    for (x, y), (xi, yi, meta) in zip(plain, indexed):
        assert torch.equal(x, xi) and torch.equal(y, yi)
        assert torch.equal(ds.tensors[0][meta[INDEX_KEY]], x)
    twice = with_indices(with_indices(loader))  # wrapping is idempotent
    assert isinstance(twice.dataset, IndexedDataset) and twice.dataset.dataset is ds


def test_sample_indices_are_never_confused_with_labels():
    x, y = torch.zeros(2, 3), torch.tensor([0, 1])
    assert sample_indices((x, y, {INDEX_KEY: torch.tensor([7, 8])})).tolist() == [7, 8]
    with pytest.raises(DataError, match="with_indices"):
        sample_indices((x, y))


def test_with_indices_needs_a_map_style_dataset():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield torch.zeros(2), 0

    with pytest.raises(ConfigError, match="map-style"):
        with_indices(DataLoader(Stream(), batch_size=2))


def test_augments_sees_collate_and_dataset_randomness():
    ds = data()
    assert not augments(DataLoader(ds, batch_size=4, shuffle=True))
    assert augments(DataLoader(ds, batch_size=4, collate_fn=AugmentCollate(Augment(max_shift=2))))

    class Noisy(Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, i):
            return ds[i][0] + 0.1 * torch.randn(1, 8, 8), ds[i][1]

    state = torch.get_rng_state()
    assert augments(DataLoader(Noisy(), batch_size=4))
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state is untouched
