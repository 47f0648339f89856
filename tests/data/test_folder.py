"""Image folders: layouts, splits, color and size handling, normalization, and bad files."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slimkit.data import DATASETS, DataConfig, limits, load_data, load_dataset, load_image_folder, read_idx_pair
from slimkit.data import folder as folder_module
from slimkit.data.builtin import FASHION_CLASSES
from slimkit.data.catalog import RawData, build_splits
from slimkit.errors import DataError


def write_folder(root: Path, counts: dict[str, int], *, size=(6, 5), mode="L", seed=0, suffix=".png") -> Path:
    """``counts[class]`` random images of ``size`` (width, height) per class folder under ``root``."""
    rng = np.random.default_rng(seed)
    channels = {"L": (), "RGB": (3,)}[mode]
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, size=(size[1], size[0], *channels), dtype=np.uint8)
            Image.fromarray(pixels, mode).save(root / name / f"{i:03d}{suffix}")
    return root


def tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.tensors[0], dataset.tensors[1]


def test_class_per_folder_is_split_by_seed_and_test_is_fixed(tmp_path):
    write_folder(tmp_path, {"dog": 10, "cat": 10, "ant": 10})
    a = load_image_folder(tmp_path, seed=1)
    assert a.class_names == ["ant", "cat", "dog"] and a.num_classes == 3
    assert a.input_shape == (1, 5, 6) and a.sizes() == {"train": 22, "val": 2, "test": 6}
    again, other = load_image_folder(tmp_path, seed=1), load_image_folder(tmp_path, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(tensors(a.train), tensors(again.train)))
    assert not torch.equal(tensors(a.val)[0], tensors(other.val)[0])  # the seed moves validation
    assert torch.equal(tensors(a.test)[0], tensors(other.test)[0])  # but never the test set
    assert sorted(tensors(a.test)[1].tolist()) == [0, 0, 1, 1, 2, 2]  # stratified
    assert a.meta["layout"] == "pool" and a.meta["images"] == 30


def test_explicit_train_val_test_folders_are_used_as_given(tmp_path):
    write_folder(tmp_path / "train", {"a": 6, "b": 6})
    write_folder(tmp_path / "val", {"a": 2, "b": 1}, seed=1)
    write_folder(tmp_path / "test", {"b": 3}, seed=2)  # a class may be absent from a split
    d = load_image_folder(tmp_path)
    assert d.sizes() == {"train": 12, "val": 3, "test": 3}
    assert tensors(d.val)[1].tolist() == [0, 0, 1] and tensors(d.test)[1].tolist() == [1, 1, 1]
    raw_test = np.asarray(Image.open(tmp_path / "test" / "b" / "000.png"), np.float32) / 255
    expected = (raw_test - d.mean[0]) / d.std[0]
    assert torch.allclose(tensors(d.test)[0][0, 0], torch.from_numpy(expected))


def test_train_and_test_only_carves_validation_from_train(tmp_path):
    write_folder(tmp_path / "train", {"a": 10, "b": 10})
    write_folder(tmp_path / "test", {"a": 2, "b": 2}, seed=1)
    d = load_image_folder(tmp_path, val_fraction=0.2)
    assert d.sizes() == {"train": 16, "val": 4, "test": 4}
    assert d.meta["layout"] == "train+test"


def test_train_and_val_only_reports_on_val(tmp_path):
    write_folder(tmp_path / "train", {"a": 10, "b": 10})
    write_folder(tmp_path / "val", {"a": 3, "b": 2}, seed=1)
    d = load_image_folder(tmp_path, val_fraction=0.1)
    assert d.sizes() == {"train": 18, "val": 2, "test": 5}


def test_color_follows_the_files_unless_given(tmp_path):
    write_folder(tmp_path / "gray", {"a": 3, "b": 3})
    assert load_image_folder(tmp_path / "gray").input_shape == (1, 5, 6)
    assert load_image_folder(tmp_path / "gray", color="rgb").input_shape == (3, 5, 6)
    mixed = write_folder(tmp_path / "mixed", {"a": 3})
    write_folder(mixed, {"b": 3}, mode="RGB")
    d = load_image_folder(mixed, color=None, mean=[0.0], std=[1.0], test_fraction=0.0, val_fraction=0.0)
    assert d.input_shape == (3, 5, 6)
    first = np.asarray(Image.open(mixed / "a" / "000.png").convert("RGB")).transpose(2, 0, 1) / 255
    x, y = tensors(d.train)
    assert any(torch.allclose(x[i], torch.from_numpy(first).float()) for i in range(len(x)) if y[i] == 0)
    assert load_image_folder(mixed, color="grayscale").input_shape == (1, 5, 6)


def test_mixed_sizes_are_refused_naming_two_files_unless_resized(tmp_path):
    write_folder(tmp_path, {"a": 3}, size=(6, 5))
    write_folder(tmp_path, {"b": 3}, size=(8, 8))
    with pytest.raises(DataError, match=r"different sizes: .*a/\d+\.png is 6x5, .*b/\d+\.png is 8x8") as info:
        load_image_folder(tmp_path)
    assert "resize" in info.value.hint
    d = load_image_folder(tmp_path, resize=(4, 7))
    assert d.input_shape == (1, 4, 7) and tensors(d.train)[0].shape[1:] == (1, 4, 7)


def test_jpeg_and_nested_folders_are_read_and_other_files_skipped_with_a_warning(tmp_path):
    write_folder(tmp_path, {"a": 3, "b": 2}, mode="RGB", suffix=".jpg")
    write_folder(tmp_path / "b" / "more", {"deeper": 2}, mode="RGB", suffix=".JPEG")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) that are not PNG or JPEG, e.g. .*notes.txt"):
        d = load_image_folder(tmp_path, test_fraction=0.0, val_fraction=0.0)
    assert d.input_shape == (3, 5, 6) and sorted(tensors(d.train)[1].tolist()) == [0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("damage", "fault"),
    [
        (lambda p: p.write_bytes(b"this is not a png"), "unreadable or corrupt image"),
        (lambda p: p.write_bytes(p.read_bytes()[:60]), "unreadable or corrupt image"),
        (lambda p: p.write_bytes(b""), "unreadable or corrupt image"),
    ],
)
def test_corrupt_image_is_one_line_naming_the_file(tmp_path, damage, fault):
    write_folder(tmp_path, {"a": 3, "b": 3}, size=(32, 32))
    bad = tmp_path / "b" / "001.png"
    damage(bad)
    with pytest.raises(DataError, match=fault) as info:
        load_image_folder(tmp_path)
    message = info.value.args[0]
    assert str(bad) in message and "\n" not in message and info.value.hint


def test_empty_class_and_unknown_class_are_errors_naming_the_folder(tmp_path):
    write_folder(tmp_path, {"a": 3})
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match=r"/b: empty class"):
        load_image_folder(tmp_path)
    write_folder(tmp_path / "split" / "train", {"a": 3})
    write_folder(tmp_path / "split" / "test", {"zebra": 1})
    with pytest.raises(DataError, match=r"test/zebra: class folder not in the training set \(classes: a\)"):
        load_image_folder(tmp_path / "split")
    with pytest.raises(DataError, match="no such folder"):
        load_image_folder(tmp_path / "absent")
    (tmp_path / "flat").mkdir()
    Image.new("L", (2, 2)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(DataError, match="flat: no class subfolders"):
        load_image_folder(tmp_path / "flat")


def _png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims ``width`` x ``height`` pixels (with little data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = zlib.compress(b"\0" * 64)
    idat = struct.pack(">I", len(data)) + b"IDAT" + data + struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat + b"\0\0\0\0IEND\xaeB`\x82"


@pytest.mark.parametrize("side", [7000, 12000, 50000])  # under, between and over Pillow's own two thresholds
def test_decompression_bombs_are_refused_from_the_header(tmp_path, side):
    write_folder(tmp_path, {"a": 2, "b": 2})
    bomb = tmp_path / "b" / "bomb.png"
    bomb.write_bytes(_png_claiming(side, side))
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path)
    assert time.perf_counter() - start < 1.0
    assert str(bomb) in str(info.value)


def test_decoded_size_is_capped_before_allocation(tmp_path, monkeypatch):
    write_folder(tmp_path, {"a": 2, "b": 2})
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 100)
    with pytest.raises(DataError, match=r"decoded images: shape \(4, 1, 5, 6\) spans 120 elements"):
        load_image_folder(tmp_path)


def test_normalization_from_training_split_or_given(tmp_path):
    write_folder(tmp_path, {"a": 20, "b": 20}, mode="RGB")
    d = load_image_folder(tmp_path, val_fraction=0.0)
    x = tensors(d.train)[0]
    assert len(d.mean) == 3 and x.mean(dim=(0, 2, 3)).abs().max() < 0.05
    given = load_image_folder(tmp_path, mean=[0.5], std=[0.25])
    assert given.mean == (0.5, 0.5, 0.5) and given.std == (0.25, 0.25, 0.25)
    with pytest.raises(Exception, match="mean has 2 values but the inputs have 3 channels"):
        load_image_folder(tmp_path, mean=[0.5, 0.5], std=[0.2, 0.2])


def test_images_are_decoded_once_while_files_do_not_change(tmp_path, monkeypatch):
    write_folder(tmp_path, {"a": 3, "b": 3})
    folder_module._decode_cached.cache_clear()
    calls = []
    real = folder_module._decode
    monkeypatch.setattr(folder_module, "_decode", lambda *a: calls.append(a) or real(*a))
    first = load_image_folder(tmp_path)
    load_image_folder(tmp_path, seed=5)
    assert len(calls) == 6
    time.sleep(0.01)
    Image.new("L", (6, 5), color=255).save(tmp_path / "a" / "000.png")
    changed = load_image_folder(tmp_path)
    assert len(calls) == 12 and not torch.equal(tensors(first.train)[0], tensors(changed.train)[0])


def test_data_config_path_with_augment_and_hflip(tmp_path):
    write_folder(tmp_path, {"a": 8, "b": 8}, size=(10, 10), mode="RGB")
    config = DataConfig(path=str(tmp_path), augment=True, hflip=True, batch_size=4, resize=8, seed=3)
    loaders = load_data(config)
    assert loaders.splits.hflip and loaders.splits.input_shape == (3, 8, 8)
    assert loaders.train.collate_fn.augment.hflip
    x, y = next(iter(loaders.train))
    assert x.shape == (4, 3, 8, 8) and y.dtype == torch.int64
    assert load_data(DataConfig(path=str(tmp_path), resize=8)).splits.hflip is False


@pytest.mark.data
def test_fashion_mnist_through_png_files_gives_the_idx_loaders_tensors(tmp_path, require_fashion_mnist):
    files = require_fashion_mnist
    x_train, y_train = read_idx_pair(files["train_images"], files["train_labels"])
    x_test, y_test = read_idx_pair(files["test_images"], files["test_labels"])
    n_train, n_test = 2000, 500
    names = [f"{i}-{c.replace('/', '-')}" for i, c in enumerate(FASHION_CLASSES)]  # sorted = label order
    for split, x, y, n in (("train", x_train, y_train, n_train), ("test", x_test, y_test, n_test)):
        for name in names:
            (tmp_path / split / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(x[i]).save(tmp_path / split / names[y[i]] / f"{i:05d}.png", compress_level=1)
    meta = DATASETS.meta("fashion-mnist")
    config = DataConfig(path=str(tmp_path), mean=meta["mean"], std=meta["std"], hflip=True, seed=7)
    folder = load_data(config).splits

    # The folder lists images class by class, then by file name: that order, through the IDX path.
    train_order = np.lexsort((np.arange(n_train), y_train[:n_train]))
    test_order = np.lexsort((np.arange(n_test), y_test[:n_test]))
    raw = RawData(x_train=x_train[:n_train][train_order][:, None], y_train=y_train[:n_train][train_order],
                  x_test=x_test[:n_test][test_order][:, None], y_test=y_test[:n_test][test_order],
                  class_names=list(FASHION_CLASSES), scale=255.0)
    idx = build_splits(raw, name="fashion-mnist", val_fraction=0.1, seed=7, mean=meta["mean"], std=meta["std"])
    for split in ("train", "val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(tensors(getattr(folder, split)), tensors(getattr(idx, split))))

    # And the test images are exactly what the registered IDX loader serves, so any model scores the same.
    order = torch.from_numpy(test_order)
    reference_x, reference_y = (t[:n_test][order] for t in tensors(load_dataset("fashion-mnist", download=False).test))
    assert torch.equal(tensors(folder.test)[0], reference_x) and torch.equal(tensors(folder.test)[1], reference_y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    with torch.no_grad():
        accuracy = [(model(x).argmax(1) == y).float().mean().item() for x, y in
                    (tensors(folder.test), (reference_x, reference_y))]
    assert accuracy[0] == accuracy[1]


def test_split_folder_names_are_never_taken_for_classes(tmp_path):
    write_folder(tmp_path / "alone" / "train", {"a": 5, "b": 5})
    alone = load_image_folder(tmp_path / "alone")
    assert alone.class_names == ["a", "b"] and alone.meta["layout"] == "pool"
    write_folder(tmp_path / "keras" / "train", {"a": 5, "b": 5})
    write_folder(tmp_path / "keras" / "validation", {"a": 1, "b": 1})
    keras = load_image_folder(tmp_path / "keras")
    assert keras.meta["layout"] == "train+val" and keras.sizes()["test"] == 2
    write_folder(tmp_path / "vehicles", {"bus": 2, "car": 2, "train": 2})  # a class may be called train
    assert load_image_folder(tmp_path / "vehicles").class_names == ["bus", "car", "train"]
    write_folder(tmp_path / "no_train" / "test", {"a": 2})
    with pytest.raises(DataError, match="test/ without a train/ folder"):
        load_image_folder(tmp_path / "no_train")
    write_folder(tmp_path / "twice" / "train", {"a": 2})
    write_folder(tmp_path / "twice" / "val", {"a": 2})
    write_folder(tmp_path / "twice" / "valid", {"a": 2})
    with pytest.raises(DataError, match="hold the val split; keep one"):
        load_image_folder(tmp_path / "twice")
