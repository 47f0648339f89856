"""DataConfig, make_loaders and load_data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from slimkit.data import DataConfig, load_data, make_loaders
from slimkit.errors import ConfigError

SYN = {"size": 100, "shape": [1, 8, 8], "num_classes": 4}


def _epoch_labels(loader) -> list[int]:
    return torch.cat([y for _, y in loader]).tolist()


def test_config_defaults_and_round_trip():
    cfg = DataConfig()
    assert (cfg.name, cfg.batch_size, cfg.eval_batch_size, cfg.workers, cfg.augment) == ("fashion-mnist", 128, 512, 0, False)
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert DataConfig().options == {} and DataConfig().options is not DataConfig().options


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"name": "minst"}, "unknown dataset 'minst'. Did you mean 'mnist'"),
        ({"name": "nope"}, "Known datasets: digits, fashion-mnist, mnist, synthetic"),
        ({"batch_size": 0}, "batch_size"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"limit": 0}, "limit"),
        ({"batch_sise": 4}, "Did you mean 'batch_size'"),
    ],
)
def test_config_rejects_bad_fields(data, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig.from_dict(data, source="recipe.yaml")


def test_load_data_from_config():
    loaders = load_data(DataConfig(name="synthetic", batch_size=16, eval_batch_size=50, limit=40, options=SYN))
    assert loaders.splits.sizes() == {"train": 40, "val": 10, "test": 20}
    x, y = next(iter(loaders.train))
    assert x.shape == (16, 1, 8, 8) and y.dtype == torch.int64
    assert [len(b[0]) for b in loaders.val] == [10]


def test_keyword_overrides_config():
    loaders = make_loaders(DataConfig(name="synthetic", batch_size=16, options=SYN), batch_size=5)
    assert loaders.train.batch_size == 5 and loaders.val.batch_size == 512


def test_train_order_follows_torch_seed_and_eval_order_is_fixed(tiny_splits):
    loaders = make_loaders(tiny_splits, batch_size=10)
    torch.manual_seed(1)
    a = _epoch_labels(loaders.train)
    torch.manual_seed(1)
    b = _epoch_labels(loaders.train)
    torch.manual_seed(2)
    c = _epoch_labels(loaders.train)
    assert a == b and a != c
    assert sorted(a) == sorted(tiny_splits.train.tensors[1].tolist())
    assert _epoch_labels(loaders.test) == tiny_splits.test.tensors[1].tolist()
    assert _epoch_labels(loaders.val) == tiny_splits.val.tensors[1].tolist()


def test_augment_applies_to_train_only_and_is_reproducible(tiny_splits):
    loaders = make_loaders(tiny_splits, batch_size=200, augment=True)
    torch.manual_seed(0)
    xa, ya = next(iter(loaders.train))
    torch.manual_seed(0)
    xb, _ = next(iter(loaders.train))
    assert torch.equal(xa, xb)
    torch.manual_seed(0)
    plain_x, plain_y = next(iter(make_loaders(tiny_splits, batch_size=200).train))
    assert torch.equal(ya, plain_y) and not torch.equal(xa, plain_x)
    assert torch.equal(next(iter(loaders.test))[0], tiny_splits.test.tensors[0])


def test_augment_refused_for_feature_vectors():
    ds = TensorDataset(torch.randn(30, 1, 1, 5), torch.arange(30) % 2)
    with pytest.raises(ConfigError, match=r"augment needs images larger than 4x4, got input shape \(1, 1, 5\)"):
        make_loaders(ds, augment=True)


def test_last_batch_of_one_is_dropped_for_batchnorm():
    ds = TensorDataset(torch.randn(21, 1, 4, 4), torch.arange(21) % 2)
    loaders = make_loaders((ds, ds), batch_size=10, val_fraction=0.0)
    assert [len(x) for x, _ in loaders.train] == [10, 10]
    assert [len(x) for x, _ in make_loaders((ds, ds), batch_size=8, val_fraction=0.0).train] == [8, 8, 5]


def test_accepts_user_datasets():
    train = TensorDataset(torch.randn(50, 1, 6, 6), torch.arange(50) % 5)
    val = TensorDataset(torch.randn(7, 1, 6, 6), torch.arange(7) % 5)
    test = TensorDataset(torch.randn(9, 1, 6, 6), torch.arange(9) % 5)
    three = make_loaders((train, val, test), batch_size=4)
    assert three.splits.sizes() == {"train": 50, "val": 7, "test": 9}
    assert three.splits.num_classes == 5 and three.splits.input_shape == (1, 6, 6)
    two = make_loaders([train, test], val_fraction=0.2, seed=3)
    assert two.splits.sizes() == {"train": 40, "val": 10, "test": 9}


def test_rejects_other_inputs():
    with pytest.raises(ConfigError, match="cannot make loaders from ndarray"):
        make_loaders(np.zeros(3))
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        make_loaders(TensorDataset(torch.zeros(4, 2), torch.zeros(4)), batch_size=0)


def test_workers_deliver_the_same_batches(tiny_splits):
    plain = make_loaders(tiny_splits, batch_size=500, workers=0)
    worker = make_loaders(tiny_splits, batch_size=500, workers=1)
    torch.manual_seed(0)
    a = next(iter(plain.train))
    torch.manual_seed(0)
    b = next(iter(worker.train))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
