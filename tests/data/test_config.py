"""DataConfig: name or path, typed image-folder options, and range-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from slimkit.config import MAX_SEED
from slimkit.data import DataConfig, dataset_config, load_dataset, split_train_val
from slimkit.errors import ConfigError


def test_path_alone_replaces_the_default_name_and_round_trips():
    config = DataConfig(path="photos", resize=32, color="rgb", mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    assert config.name is None and config.resize == (32, 32) and config.source == "photos"
    assert DataConfig.from_dict(config.to_dict()) == config
    assert DataConfig().name == "fashion-mnist" and DataConfig().source == "fashion-mnist"
    assert DataConfig(path="d.npz", mean=[0.0], std=[1.0]).mean == (0.0,)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"name": "digits", "path": "photos"}, "give exactly one of 'name'"),
        ({"name": None}, "give 'name' .* or 'path'"),
        ({"name": "digits", "resize": 32}, "'resize' applies to image folders only"),
        ({"name": "digits", "mean": [0.1], "std": [0.2]}, "'mean' applies to image folders and .npz files only"),
        ({"path": "photos", "root": "/data"}, "'root' applies to registered datasets only"),
        ({"path": "photos", "options": {"size": 3}}, "'options' applies to registered datasets only"),
        ({"path": "d.npz", "color": "rgb"}, "'color' applies to image folders only"),
        ({"path": "photos", "color": "sepia"}, "color"),
        ({"path": "photos", "resize": [0, 4]}, "resize"),
        ({"path": "photos", "resize": 10**6}, "resize"),
        ({"path": "photos", "mean": [0.5]}, "give both 'mean' and 'std'"),
        ({"path": "photos", "mean": [0.5], "std": [0.0]}, "'std' value must be positive"),
        ({"path": "photos", "mean": [0.5, 0.5], "std": [0.1]}, "'mean' has 2 values but 'std' has 1"),
        ({"path": "photos", "mean": [float("nan")], "std": [0.1]}, "mean"),
        ({"path": ""}, "path"),
        ({"seed": 2**70}, "seed"),
        ({"seed": -1}, "seed"),
        ({"batch_size": 2**40}, "batch_size"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"workers": 10**6}, "workers"),
        ({"limit": 2**70}, "limit"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"val_fraction": float("nan")}, "val_fraction"),
    ],
)
def test_bad_combinations_and_out_of_range_numbers_are_config_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig.from_dict(data, source="recipe.yaml")


def test_the_largest_seed_works_everywhere_a_seed_goes():
    config = DataConfig(name="synthetic", seed=MAX_SEED, options={"size": 40, "shape": [1, 4, 4], "num_classes": 4})
    assert config.seed == 2**32 - 1
    split_train_val(np.arange(40) % 4, 0.2, config.seed)  # scikit-learn's limit
    np.random.seed(config.seed)  # numpy's legacy limit
    with pytest.raises(ConfigError, match=r"seed must be an integer in 0..4294967295"):
        split_train_val(np.arange(4), 0.5, MAX_SEED + 1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"size": 10**12}, "spans 10\\^14 elements"),
        ({"shape": [1, 10**6, 10**6]}, "elements; at most"),
        ({"num_classes": 10**9, "size": 10**9}, "num_classes must be at most"),
        ({"size": "many"}, "size must be an integer"),
        ({"noise": float("inf")}, "noise must be a finite number"),
        ({"shape": "28x28"}, "shape must be a list of integers"),
        ({"data_seed": 2**64}, "data_seed must be in"),
    ],
)
def test_synthetic_options_are_checked_before_allocating(options, match):
    with pytest.raises(ConfigError, match=match):
        load_dataset("synthetic", **options)


def test_dataset_config_reads_what_a_user_typed(tmp_path):
    assert dataset_config("digits", limit=5).name == "digits"
    assert dataset_config(str(tmp_path)).path == str(tmp_path)
    assert dataset_config("data.npz").path == "data.npz"
    with pytest.raises(ConfigError, match="Did you mean 'mnist'"):
        dataset_config("minst")


def test_a_validation_share_that_leaves_no_training_data_is_refused():
    # Found by the fuzz tests: val_fraction=0.99999 left an empty training set without a word.
    from slimkit.data import load_splits
    from slimkit.errors import DataError

    with pytest.raises(DataError, match="val_fraction 0.99999 leaves no training samples out of 1000"):
        load_splits(DataConfig(name="synthetic", val_fraction=0.99999))


def test_kind_says_how_the_data_is_read():
    assert DataConfig().kind == "registered"
    assert DataConfig(path="photos").kind == "folder"
    assert DataConfig(path="d.npz").kind == "npz" and DataConfig(name="d.npz").kind == "npz"
