"""load_dataset over every registered dataset: shapes, types, splits, limit, normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimkit.data import DATASETS, load_dataset, read_idx
from slimkit.errors import ConfigError

# Small options per dataset so every case stays fast; IDX sets come from the fake_idx_data fixture.
SMALL = {"synthetic": {"size": 200, "shape": (1, 12, 12), "num_classes": 4}}
EXPECTED_SHAPE = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "digits": (1, 8, 8), "synthetic": (1, 12, 12)}


def _load(name, **kw):
    return load_dataset(name, download=False, **{**SMALL.get(name, {}), **kw})


def test_registry_names():
    assert DATASETS.names() == ["digits", "fashion-mnist", "mnist", "synthetic"]
    assert all(DATASETS.meta(n)["doc"] for n in DATASETS)


@pytest.mark.usefixtures("fake_idx_data")
@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_loads_as_tensors(name):
    d = _load(name)
    assert d.name == name
    assert d.input_shape == EXPECTED_SHAPE[name]
    assert d.num_classes == len(d.class_names) >= 2
    for part in (d.train, d.val, d.test):
        assert len(part) > 0
        x, y = part[0]
        assert x.dtype == torch.float32 and tuple(x.shape) == d.input_shape
        assert y.dtype == torch.int64 and y.ndim == 0
        ys = torch.stack([part[i][1] for i in range(len(part))])
        assert 0 <= int(ys.min()) and int(ys.max()) < d.num_classes


@pytest.mark.usefixtures("fake_idx_data")
@pytest.mark.parametrize("name", DATASETS.names())
def test_split_is_deterministic_and_depends_on_seed(name):
    a, b, c = _load(name, seed=1), _load(name, seed=1), _load(name, seed=2)
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(a, part).tensors[0], getattr(b, part).tensors[0])
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])
    assert torch.equal(a.test.tensors[0], c.test.tensors[0])  # the test set ignores the seed


@pytest.mark.usefixtures("fake_idx_data")
@pytest.mark.parametrize("name", DATASETS.names())
def test_val_is_carved_out_of_train_disjointly(name):
    full = _load(name, val_fraction=0.0)
    d = _load(name, val_fraction=0.25)
    assert len(full.val) == 0
    assert len(d.train) + len(d.val) == len(full.train)
    assert len(d.val) == round(len(full.train) * 0.25)
    key = lambda t: {row.numpy().tobytes() for row in t}
    train, val, pool = key(d.train.tensors[0]), key(d.val.tensors[0]), key(full.train.tensors[0])
    assert not train & val
    assert train | val == pool


@pytest.mark.usefixtures("fake_idx_data")
@pytest.mark.parametrize("name", DATASETS.names())
def test_limit_caps_every_split(name):
    d = _load(name, limit=5)
    assert d.sizes() == {"train": 5, "val": 5, "test": 5}
    assert torch.equal(d.train.tensors[0], _load(name, seed=0).train.tensors[0][:5])


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_computed_normalization_gives_zero_mean_unit_std(name):
    d = _load(name, val_fraction=0.0)
    x = d.train.tensors[0]
    assert abs(float(x.mean())) < 1e-4
    assert abs(float(x.std()) - 1.0) < 1e-2
    assert len(d.mean) == len(d.std) == d.input_shape[0]


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_normalization_uses_published_stats(fake_idx_data, name):
    d = _load(name, val_fraction=0.0)
    raw = read_idx(fake_idx_data / name / "t10k-images-idx3-ubyte.gz")
    mean, std = DATASETS.meta(name)["mean"][0], DATASETS.meta(name)["std"][0]
    expected = (torch.from_numpy(raw.astype(np.float32)) / 255 - mean) / std
    assert torch.allclose(d.test.tensors[0][:, 0], expected, atol=1e-5)
    assert d.mean == (mean,) and d.std == (std,)


def test_hflip_only_where_it_makes_sense():
    assert {n: DATASETS.meta(n)["hflip"] for n in DATASETS} == {
        "digits": False, "fashion-mnist": True, "mnist": False, "synthetic": False,
    }


def test_unknown_name_lists_known_names_with_did_you_mean():
    with pytest.raises(ConfigError, match="unknown dataset 'fashion_mnist'. Did you mean 'fashion-mnist'") as info:
        load_dataset("fashion_mnist")
    assert "digits, fashion-mnist, mnist, synthetic" in info.value.hint


def test_unknown_option_names_dataset_and_valid_options():
    with pytest.raises(ConfigError, match="dataset 'synthetic' has no option 'num_class'. Did you mean 'num_classes'") as info:
        load_dataset("synthetic", num_class=3)
    assert "noise" in info.value.hint
    with pytest.raises(ConfigError, match="'digits' takes no options"):
        load_dataset("digits", size=3)


@pytest.mark.parametrize(("kw", "match"), [({"val_fraction": 1.0}, "val_fraction"), ({"limit": 0}, "limit")])
def test_bad_arguments(kw, match):
    with pytest.raises(ConfigError, match=match):
        load_dataset("synthetic", **kw)


@pytest.mark.data
def test_real_fashion_mnist(require_fashion_mnist):
    from slimkit.data import read_idx_pair

    files = require_fashion_mnist
    x, y = read_idx_pair(files["train_images"], files["train_labels"], num_classes=10)
    xt, yt = read_idx_pair(files["test_images"], files["test_labels"], num_classes=10)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert abs(x.mean() / 255 - DATASETS.meta("fashion-mnist")["mean"][0]) < 1e-3
    d = load_dataset("fashion-mnist", root=files["train_images"].parent, download=False, limit=100)
    assert d.sizes() == {"train": 100, "val": 100, "test": 100}
    assert d.input_shape == (1, 28, 28) and d.class_names[0] == "T-shirt/top"
