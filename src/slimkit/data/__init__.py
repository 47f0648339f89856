"""Datasets by name (fashion-mnist, mnist, digits, synthetic), the user's own data (image folders,
.npz files, arrays, Datasets), and loaders.

>>> from slimkit.data import DATASETS
>>> DATASETS.names()
['digits', 'fashion-mnist', 'mnist', 'synthetic']
"""

from slimkit.data import builtin as _builtin  # noqa: F401  (registers the built-in datasets)
from slimkit.data.augment import Augment, AugmentCollate
from slimkit.data.catalog import (
    DATASETS,
    DatasetSplits,
    RawData,
    build_splits,
    load_dataset,
)
from slimkit.data.config import dataset_config
from slimkit.data.custom import dataset_from_arrays, load_npz, splits_from_datasets
from slimkit.data.folder import load_image_folder
from slimkit.data.idx import parse_idx, read_idx, read_idx_pair
from slimkit.data.loaders import (
    DataConfig,
    Loaders,
    load_data,
    load_splits,
    make_loaders,
)
from slimkit.data.sources import (
    IDX_SOURCES,
    cache_dir,
    download_idx,
    locate_idx,
    search_dirs,
)
from slimkit.data.splits import split_train_val

__all__ = [
    "DATASETS",
    "IDX_SOURCES",
    "Augment",
    "AugmentCollate",
    "DataConfig",
    "DatasetSplits",
    "Loaders",
    "RawData",
    "build_splits",
    "cache_dir",
    "dataset_config",
    "dataset_from_arrays",
    "download_idx",
    "load_data",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_splits",
    "locate_idx",
    "make_loaders",
    "parse_idx",
    "read_idx",
    "read_idx_pair",
    "search_dirs",
    "split_train_val",
    "splits_from_datasets",
]
