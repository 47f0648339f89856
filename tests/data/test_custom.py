"""The user's data: arrays, .npz files (good and bad), and plain torch Datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from slimkit.data import (
    DataConfig,
    dataset_from_arrays,
    load_data,
    load_npz,
    splits_from_datasets,
)
from slimkit.errors import ConfigError, DataError


@pytest.mark.parametrize(
    ("shape", "input_shape"),
    [((40, 6, 6), (1, 6, 6)), ((40, 3, 5, 5), (3, 5, 5)), ((40, 7), (1, 1, 7))],
)
def test_npz_shapes(tmp_path, shape, input_shape):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).random(shape, dtype=np.float32), y=np.arange(40) % 4)
    d = load_npz(path)
    assert d.input_shape == input_shape and d.num_classes == 4
    assert d.sizes() == {"train": 29, "val": 3, "test": 8}
    x, y = d.train[0]
    assert tuple(x.shape) == input_shape and x.dtype == torch.float32 and y.dtype == torch.int64


def test_features_are_standardized_per_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[0.0, 100.0, -5.0], scale=[1.0, 50.0, 0.1], size=(300, 3))
    d = dataset_from_arrays(x, np.arange(300) % 2, val_fraction=0.0, test_fraction=0.0)
    feats = d.train.tensors[0][:, 0, 0, :]
    assert torch.allclose(feats.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(feats.std(0), torch.ones(3), atol=1e-2)
    assert len(d.mean) == 3


def test_uint8_images_are_scaled_and_normalized():
    x = np.random.default_rng(0).integers(0, 256, (50, 4, 4), dtype=np.uint8)
    d = dataset_from_arrays(x, np.arange(50) % 2, val_fraction=0.0, test_fraction=0.0)
    assert abs(d.mean[0] - x.mean() / 255) < 1e-6
    assert abs(float(d.train.tensors[0].mean())) < 1e-5


def test_string_labels_and_explicit_test_set(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 4, 4)), y=np.array(["cat", "dog"] * 3),
             x_test=np.ones((2, 4, 4)), y_test=np.array(["dog", "cat"]))
    d = load_npz(path, val_fraction=0.0)
    assert d.class_names == ["cat", "dog"]
    assert d.test.tensors[1].tolist() == [1, 0] and d.sizes()["test"] == 2


def test_class_names_from_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((10, 4, 4)), y=np.arange(10) % 2, class_names=np.array(["no", "yes"]))
    assert load_npz(path).class_names == ["no", "yes"]


def test_npz_through_data_config(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.random.default_rng(0).random((60, 8, 8)), y=np.arange(60) % 3)
    loaders = load_data(DataConfig(name=str(path), batch_size=8, limit=20))
    assert loaders.splits.sizes() == {"train": 20, "val": 5, "test": 12}
    assert next(iter(loaders.train))[0].shape == (8, 1, 8, 8)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((4, 3, 3))}, r"missing array\(s\) 'y'; found \['x'\]"),
        ({"inputs": np.zeros(3), "labels": np.zeros(3)}, r"missing array\(s\) 'x', 'y'"),
        ({"x": np.zeros((4, 3, 3)), "y": np.zeros(5)}, "x has 4 inputs but y has 5 labels"),
        ({"x": np.zeros((4, 3, 3)), "y": np.zeros((4, 2))}, "y must be 1-D"),
        ({"x": np.zeros(4), "y": np.zeros(4)}, r"x must be \(N, H, W\).*got shape \(4,\)"),
        ({"x": np.array(["a"] * 4), "y": np.zeros(4)}, "x must be numeric"),
        ({"x": np.zeros((4, 3)), "y": np.array([0.5, 1, 2, 3])}, "labels must be integers or strings"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4), "x_test": np.zeros((2, 3))}, "give both x_test and y_test"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4), "x_test": np.zeros((2, 3)), "y_test": np.zeros(3)},
         "x_test has 2 inputs but y_test has 3 labels"),
        ({"x": np.zeros((4, 3)), "y": np.zeros(4), "x_test": np.zeros((2, 5)), "y_test": np.zeros(2)},
         "train inputs have shape"),
    ],
)
def test_bad_npz_names_file_and_fault(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match) as info:
        load_npz(path)
    assert str(path) in str(info.value)


def test_npz_not_a_zip_missing_or_pickled(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz file"):
        load_npz(junk)
    with pytest.raises(DataError, match="absent.npz: no such file"):
        load_npz(tmp_path / "absent.npz")
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x=np.array([object()] * 3, dtype=object), y=np.zeros(3))
    with pytest.raises(DataError, match="obj.npz: x.npy: holds Python objects, which slimkit never unpickles"):
        load_npz(pickled)


def test_dataset_from_arrays_is_deterministic_and_test_ignores_seed():
    x = np.random.default_rng(0).random((100, 5, 5))
    y = np.arange(100) % 4
    a, b = dataset_from_arrays(x, y, seed=1), dataset_from_arrays(x, y, seed=2)
    assert torch.equal(a.test.tensors[0], b.test.tensors[0])
    assert not torch.equal(a.val.tensors[0], b.val.tensors[0])
    assert np.bincount(a.test.tensors[1].numpy()).tolist() == [5, 5, 5, 5]  # stratified


class _Squares(Dataset):
    def __len__(self) -> int:
        return 30

    def __getitem__(self, i: int):
        return torch.full((2, 3), float(i)), i % 3


def test_splits_from_plain_dataset_infer_shape_and_classes():
    s = splits_from_datasets(_Squares(), seed=1)
    assert s.input_shape == (1, 2, 3) and s.num_classes == 3
    assert s.sizes() == {"train": 22, "val": 2, "test": 6}
    seen = {int(s.train[i][0][0, 0]) for i in range(22)} | {int(s.val[i][0][0, 0]) for i in range(2)}
    seen |= {int(s.test[i][0][0, 0]) for i in range(6)}
    assert seen == set(range(30))
    assert splits_from_datasets(_Squares(), num_classes=7).num_classes == 7


def test_splits_from_iterable_dataset_refused():
    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.zeros(2), 0

    with pytest.raises(ConfigError, match="Stream has no length"):
        splits_from_datasets(Stream())


def test_empty_dataset_refused():
    with pytest.raises(DataError, match="training dataset is empty"):
        splits_from_datasets(TensorDataset(torch.zeros(0, 2), torch.zeros(0)))
