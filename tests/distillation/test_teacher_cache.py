"""Teacher caches: built once, validated by version, digests, shapes and checksum, else recomputed."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from slimkit.distillation import teacher_cache as tc
from slimkit.distillation.teacher_cache import TeacherCache, build_cache, data_digest, digest
from slimkit.distillation.views import Downsample, Identity
from slimkit.errors import DataError

from .conftest import count_forwards, tiny_cnn

PATHS = ["features.0"]


@pytest.fixture
def setup(tiny_splits):
    teacher = tiny_cnn(1).eval().requires_grad_(False)
    return teacher, DataLoader(tiny_splits.train, batch_size=32, shuffle=True)


def build(teacher, loader, folder, view=None):
    return build_cache(teacher, 0, loader, PATHS, view=view or Identity(), folder=folder)


def test_cache_holds_each_samples_outputs_in_dataset_order(setup):
    teacher, loader = setup
    cache = build(teacher, loader, None)
    x = torch.stack([loader.dataset[i][0] for i in (5, 0, 7)])
    out = cache.lookup(torch.tensor([5, 0, 7]))
    torch.testing.assert_close(out.logits, teacher(x))
    assert out.features["features.0"].shape == (3, 4, 4, 4)
    assert cache.nbytes == len(cache) * (3 + 4 * 4 * 4) * 4
    assert not cache.hit


def test_disk_cache_round_trips_and_skips_the_teacher(setup, tmp_path, caplog):
    teacher, loader = setup
    first = build(teacher, loader, tmp_path)
    calls = count_forwards(teacher)
    with caplog.at_level(logging.INFO, "slimkit.distillation"):
        second = build(teacher, loader, tmp_path)
    assert second.hit and calls[0] == 0 and "read from cache" in caplog.text
    torch.testing.assert_close(first.logits, second.logits)
    torch.testing.assert_close(first.features, second.features)


@pytest.mark.parametrize("change, reason", [
    ("teacher", "the teacher's weights changed"),
    ("data", "the training data changed"),
    ("version", "the cache format version changed"),
    ("corrupt", "checksum does not match"),
    ("truncate", "cannot be read"),
])
def test_stale_or_broken_cache_is_recomputed_with_a_log_message(setup, tmp_path, caplog, monkeypatch, change, reason):
    teacher, loader = setup
    build(teacher, loader, tmp_path)
    (file,) = tmp_path.glob("*.safetensors")
    if change == "teacher":
        teacher = copy.deepcopy(teacher)
        with torch.no_grad():
            teacher.classifier.out.bias.add_(1.0)
    elif change == "data":
        x, y = loader.dataset.tensors
        loader = DataLoader(TensorDataset(x.flip(0), y), batch_size=32)
    elif change == "version":
        monkeypatch.setattr(tc, "CACHE_VERSION", tc.CACHE_VERSION + 1)
    elif change == "corrupt":
        raw = bytearray(file.read_bytes())
        raw[-1] ^= 0xFF  # flip bits in the last stored float
        file.write_bytes(bytes(raw))
    else:
        file.write_bytes(file.read_bytes()[:-10])
    calls = count_forwards(teacher)
    with caplog.at_level(logging.INFO, "slimkit.distillation"):
        cache = build(teacher, loader, tmp_path)
    assert not cache.hit and calls[0] > 0
    assert reason in caplog.text and "recomputing" in caplog.text
    again = build(teacher, loader, tmp_path)  # the rewritten file is valid again
    assert again.hit and len(list(tmp_path.glob("*.safetensors"))) == 1


def test_other_paths_or_view_use_another_file(setup, tmp_path):
    teacher, loader = setup
    build(teacher, loader, tmp_path)
    assert not build_cache(teacher, 0, loader, ["features.1"], view=Identity(), folder=tmp_path).hit
    assert not build(teacher, loader, tmp_path, view=Downsample(size=8)).hit
    assert len(list(tmp_path.glob("teacher0-*.safetensors"))) == 3


def test_lookup_rejects_bad_indices(setup):
    cache = build(*setup, None)
    with pytest.raises(DataError, match="outside the teacher cache"):
        cache.lookup(torch.tensor([len(cache)]))
    with pytest.raises(DataError, match="1-D integer tensor"):
        cache.lookup(torch.tensor([0.5]))


def test_digests_see_every_tensor_change():
    x = torch.zeros(4, 2)
    base = data_digest(TensorDataset(x, torch.arange(4)))
    y = x.clone()
    y[3, 1] = 1e-6
    assert data_digest(TensorDataset(y, torch.arange(4))) != base
    assert data_digest(TensorDataset(x, torch.arange(4))) == base
    assert digest([("a", torch.tensor(3))]) != digest([("a", torch.tensor([3]))])  # shapes count


def test_subset_and_plain_datasets_are_digested():
    x = torch.arange(12.0).reshape(6, 2)
    full = TensorDataset(x, torch.arange(6))
    sub = torch.utils.data.Subset(full, [1, 2])
    assert data_digest(sub) != data_digest(torch.utils.data.Subset(full, [2, 1]))

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return x[i], i

    assert data_digest(Plain()) == data_digest(Plain())


def test_cache_save_is_atomic_and_loads_back(tmp_path):
    cache = TeacherCache(torch.randn(5, 3), {"f": torch.randn(5, 2)}, meta={"version": "1"})
    path = cache.save(tmp_path / "c.safetensors")
    loaded = TeacherCache.load(path, {"version": "1"}, samples=5, paths=["f"])
    assert loaded is not None and loaded.hit
    torch.testing.assert_close(loaded.logits, cache.logits)
    assert TeacherCache.load(path, {"version": "1"}, samples=6, paths=["f"]) is None  # shapes checked
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left
