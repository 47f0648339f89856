"""Batches that carry each sample's index, and a check that a loader's inputs are deterministic.

Both exist for cached teacher outputs: a cache is looked up by sample index, and it may only
stand in for the teacher when every epoch feeds the same inputs.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from slimkit.errors import ConfigError, DataError
from slimkit.modelio import split, tensors

#: Batches from ``with_indices`` end with ``{INDEX_KEY: indices}``: a dict, so the indices can
#: never be mistaken for labels or other extra items.
INDEX_KEY = "sample_index"


class IndexedDataset(Dataset):
    """``dataset[i]`` with its index appended as ``{"sample_index": i}``: ``(x, y, {...})``.

    A mapping item (named inputs with a label key) becomes ``(inputs, label, {...})``, which
    ``slimkit.modelio.split`` reads the same way.

    >>> from torch.utils.data import TensorDataset
    >>> ds = IndexedDataset(TensorDataset(torch.zeros(3, 2), torch.arange(3)))
    >>> ds[2][2], len(ds)
    ({'sample_index': 2}, 3)
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        item = self.dataset[index]
        if isinstance(item, Mapping):
            parts = split(item)
            return (parts.inputs, {INDEX_KEY: index}) if parts.targets is None else \
                (parts.inputs, parts.targets, {INDEX_KEY: index})
        return (*item, {INDEX_KEY: index}) if isinstance(item, (tuple, list)) else (item, {INDEX_KEY: index})


def with_indices(loader: DataLoader) -> DataLoader:
    """The same loader (same batch sampler, collate, workers) yielding
    ``(*batch, {"sample_index": indices})``, which is what cached teacher outputs are looked up by.

    Sharing the batch sampler keeps the shuffling identical to the original loader's.

    >>> from torch.utils.data import TensorDataset
    >>> loader = DataLoader(TensorDataset(torch.zeros(4, 2), torch.arange(4)), batch_size=2)
    >>> next(iter(with_indices(loader)))[2]
    {'sample_index': tensor([0, 1])}
    """
    if isinstance(loader.dataset, IndexedDataset):
        return loader
    if isinstance(loader.dataset, IterableDataset) or loader.batch_sampler is None:
        raise ConfigError(
            "cached teacher outputs need a map-style dataset batched by the DataLoader",
            hint="use a Dataset with __getitem__ and a batch_size, or set cache_teacher='off'",
        )
    return DataLoader(
        IndexedDataset(loader.dataset), batch_sampler=loader.batch_sampler, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers, generator=loader.generator,
    )


def augments(loader: DataLoader, probes: int = 8) -> bool:
    """Whether ``loader`` may give different inputs for the same sample on different epochs.

    Collates the same few samples under three different random seeds and compares the inputs
    (so random transforms in the dataset or the collate function show up); the caller's
    random state is left as it was.

    >>> from torch.utils.data import TensorDataset
    >>> loader = DataLoader(TensorDataset(torch.zeros(4, 2), torch.arange(4)), batch_size=2)
    >>> augments(loader)
    False
    """
    from slimkit.data.augment import AugmentCollate

    if isinstance(loader.collate_fn, AugmentCollate):
        return True
    dataset = loader.dataset
    n = len(dataset)  # type: ignore[arg-type]
    picks = sorted({int(i) for i in np.linspace(0, n - 1, num=min(probes, n))}) if n else []
    states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        draws = []
        for seed in (11, 22, 33):
            torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)
            draws.append([t for _, t in tensors(split(loader.collate_fn([dataset[i] for i in picks])).inputs)])
    finally:
        torch.set_rng_state(states[0]), np.random.set_state(states[1]), random.setstate(states[2])
    return any(not all(torch.equal(a, b) for a, b in zip(draws[0], d)) for d in draws[1:])


def sample_indices(batch: Sequence[Any]) -> Tensor:
    """The sample indices ``with_indices`` appended to ``batch``.

    >>> sample_indices((torch.zeros(2), {"sample_index": torch.tensor([4, 5])})).tolist()
    [4, 5]
    """
    last = batch[-1] if len(batch) else None
    if not isinstance(last, dict) or INDEX_KEY not in last:
        raise DataError(
            "cached teacher outputs are looked up by sample index, but the batch does not end with "
            f"{{'{INDEX_KEY}': indices}}",
            hint="wrap the train loader with slimkit.distillation.with_indices(loader)",
        )
    return last[INDEX_KEY]


def first_tensor(batch: Any) -> Tensor:
    """The first input tensor of a batch (see ``slimkit.modelio``)."""
    found = tensors(split(batch).inputs)
    if not found:
        raise DataError("the loader's batches hold no input tensor", hint="yield (x, y) or a mapping of named tensors")
    return found[0][1]
