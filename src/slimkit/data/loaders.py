"""DataLoaders from a DataConfig, DatasetSplits or plain Datasets: where datasets become batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader, Dataset

from slimkit.data.augment import Augment, AugmentCollate
from slimkit.data.catalog import DatasetSplits, load_dataset
from slimkit.data.config import DataConfig
from slimkit.data.custom import load_npz, splits_from_datasets
from slimkit.data.folder import load_image_folder
from slimkit.errors import ConfigError

MAX_SHIFT = 2  # pixels; "light" augmentation that keeps 28x28 and 8x8 images recognizable


@dataclass
class Loaders:
    """Train/val/test DataLoaders plus the splits they read."""

    train: DataLoader
    val: DataLoader
    test: DataLoader
    splits: DatasetSplits


def load_splits(config: DataConfig) -> DatasetSplits:
    """The DatasetSplits a DataConfig names: a registered dataset, an image folder or an .npz file.

    >>> load_splits(DataConfig(name="synthetic", limit=8, options={"size": 40, "shape": [1, 6, 6]})).sizes()
    {'train': 8, 'val': 4, 'test': 8}
    """
    common = {"val_fraction": config.val_fraction, "test_fraction": config.test_fraction,
              "seed": config.seed, "limit": config.limit, "mean": config.mean, "std": config.std}
    if config.kind == "folder":
        splits = load_image_folder(str(config.path), resize=config.resize, color=config.color,
                                   hflip=bool(config.hflip), **common)
    elif config.kind == "npz":
        splits = load_npz(config.source, **common)
    else:
        splits = load_dataset(
            str(config.name), root=config.root, limit=config.limit, val_fraction=config.val_fraction,
            seed=config.seed, download=config.download, **config.options,
        )
    if config.hflip is not None and splits.hflip != config.hflip:
        splits = dataclasses.replace(splits, hflip=config.hflip)
    return splits


def load_data(config: DataConfig) -> Loaders:
    """Load the dataset a DataConfig names and batch it as the config says.

    >>> cfg = DataConfig(name="synthetic", batch_size=4, options={"size": 40, "shape": [1, 6, 6]})
    >>> x, y = next(iter(load_data(cfg).train))
    >>> tuple(x.shape), tuple(y.shape)
    ((4, 1, 6, 6), (4,))
    """
    return make_loaders(config)


def make_loaders(
    data: DatasetSplits | DataConfig | Dataset | Sequence[Dataset],
    *,
    batch_size: int | None = None,
    eval_batch_size: int | None = None,
    workers: int | None = None,
    augment: bool | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> Loaders:
    """DataLoaders for DatasetSplits, a DataConfig, one Dataset, or (train, test) / (train, val, test).

    Keyword arguments left as None take the DataConfig's values (or 128, 512, 0, False).
    ``val_fraction`` and ``seed`` only matter when validation must be carved out of a plain
    Dataset. The train loader shuffles with torch's global generator, so seeding torch at each
    epoch start makes the order reproducible; val and test keep their order. ``augment``
    shifts train images by up to 2 pixels, and flips them where the dataset allows it.

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.randn(40, 1, 8, 8), torch.arange(40) % 2)
    >>> loaders = make_loaders(ds, batch_size=8)
    >>> len(loaders.train.dataset), len(loaders.val.dataset), len(loaders.test.dataset)
    (29, 3, 8)
    """
    defaults: dict[str, Any] = {"batch_size": 128, "eval_batch_size": 512, "workers": 0, "augment": False}
    if isinstance(data, DataConfig):
        defaults = {k: getattr(data, k) for k in defaults}
        splits = load_splits(data)
    elif isinstance(data, DatasetSplits):
        splits = data
    elif isinstance(data, Dataset):
        splits = splits_from_datasets(data, val_fraction=val_fraction, seed=seed)
    elif isinstance(data, (list, tuple)) and len(data) in (2, 3) and all(isinstance(d, Dataset) for d in data):
        val = data[1] if len(data) == 3 else None
        splits = splits_from_datasets(data[0], val=val, test=data[-1], val_fraction=val_fraction, seed=seed)
    else:
        raise ConfigError(
            f"make_loaders: cannot make loaders from {type(data).__name__}",
            hint="pass DatasetSplits, a DataConfig, a torch Dataset, or (train, test) / (train, val, test) datasets",
        )
    given = {"batch_size": batch_size, "eval_batch_size": eval_batch_size, "workers": workers, "augment": augment}
    opts = {k: defaults[k] if v is None else v for k, v in given.items()}
    for key in ("batch_size", "eval_batch_size"):
        if opts[key] < 1:
            raise ConfigError(f"make_loaders: {key} must be at least 1, got {opts[key]}")
    if opts["workers"] < 0:
        raise ConfigError(f"make_loaders: workers must be >= 0, got {opts['workers']}")

    collate = None
    if opts["augment"]:
        _, h, w = splits.input_shape
        if min(h, w) <= 2 * MAX_SHIFT:
            raise ConfigError(
                f"{splits.name}: augment needs images larger than {2 * MAX_SHIFT}x{2 * MAX_SHIFT}, "
                f"got input shape {splits.input_shape}",
                hint="set augment: false for feature vectors and tiny inputs",
            )
        collate = AugmentCollate(Augment(max_shift=MAX_SHIFT, hflip=splits.hflip))

    n_train = len(splits.train)  # type: ignore[arg-type]
    common: dict[str, Any] = {"num_workers": opts["workers"], "persistent_workers": opts["workers"] > 0}
    train = DataLoader(
        splits.train, batch_size=opts["batch_size"], shuffle=True, collate_fn=collate,
        # A last batch of one sample breaks BatchNorm in train mode; drop only that case.
        drop_last=n_train > 1 and n_train % opts["batch_size"] == 1, **common,
    )
    val = DataLoader(splits.val, batch_size=opts["eval_batch_size"], shuffle=False, **common)
    test = DataLoader(splits.test, batch_size=opts["eval_batch_size"], shuffle=False, **common)
    return Loaders(train=train, val=val, test=test, splits=splits)
