"""The built-in datasets: fashion-mnist and mnist (IDX), digits (sklearn), synthetic."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence

import numpy as np

from slimkit.data import limits
from slimkit.data.catalog import DATASETS, RawData
from slimkit.data.idx import read_idx_pair
from slimkit.data.sources import locate_idx
from slimkit.errors import ConfigError, DataError

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
DIGIT_CLASSES = [str(i) for i in range(10)]


def load_idx_dataset(
    name: str, class_names: list[str], *, root: str | os.PathLike[str] | None, download: bool
) -> RawData:
    """Locate (or download) the four IDX files of ``name`` and read them as uint8 arrays."""
    files = locate_idx(name, root=root, download=download)
    n = len(class_names)
    x_train, y_train = read_idx_pair(files["train_images"], files["train_labels"], num_classes=n)
    x_test, y_test = read_idx_pair(files["test_images"], files["test_labels"], num_classes=n)
    return RawData(
        x_train=x_train[:, None], y_train=y_train, x_test=x_test[:, None], y_test=y_test,
        class_names=class_names, scale=255.0,
    )


# mean/std: pixel statistics of the 60000 training images, scaled to [0, 1].
@DATASETS.register(
    "fashion-mnist", doc="Zalando's 28x28 clothing images, 10 classes (60000 train, 10000 test)",
    mean=(0.2860,), std=(0.3530,), hflip=True,
)
def fashion_mnist(*, root: str | os.PathLike[str] | None = None, download: bool = True) -> RawData:
    """Fashion-MNIST from IDX files; clothes survive a horizontal flip, so hflip is on."""
    return load_idx_dataset("fashion-mnist", FASHION_CLASSES, root=root, download=download)


@DATASETS.register(
    "mnist", doc="handwritten digits, 28x28, 10 classes (60000 train, 10000 test)",
    mean=(0.1307,), std=(0.3081,), hflip=False,
)
def mnist(*, root: str | os.PathLike[str] | None = None, download: bool = True) -> RawData:
    """MNIST from IDX files; no horizontal flips, since a mirrored digit is another glyph."""
    return load_idx_dataset("mnist", DIGIT_CLASSES, root=root, download=download)


@DATASETS.register("digits", doc="scikit-learn's bundled 8x8 digits, 10 classes (1797 images)", hflip=False)
def digits(*, root: str | os.PathLike[str] | None = None, download: bool = True) -> RawData:
    """sklearn's 8x8 digits (values 0..16) with a fixed, stratified 20% test split."""
    del root, download  # bundled with scikit-learn: nothing to find or fetch
    from sklearn.datasets import load_digits  # lazy: sklearn imports slowly
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    # A fixed random_state: the test set is part of the dataset, not of a run's seed.
    train, test = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0
    )
    train, test = np.sort(train), np.sort(test)
    return RawData(
        x_train=images[train], y_train=labels[train], x_test=images[test], y_test=labels[test],
        class_names=DIGIT_CLASSES, scale=16.0,
    )


@DATASETS.register("synthetic", doc="seeded class patterns plus Gaussian noise; any shape and size", hflip=False)
def synthetic(
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    num_classes: int = 10,
    shape: Sequence[int] = (1, 28, 28),
    size: int = 1000,
    test_size: int | None = None,
    noise: float = 1.0,
    data_seed: int = 0,
) -> RawData:
    """Learnable synthetic images: each class has a smooth random pattern, each sample adds noise.

    ``size`` is the training pool (validation is carved out of it); ``test_size`` defaults
    to ``size // 5``. The patterns are blocky (4x4 cells), so both MLPs and convolutions can
    learn them; larger ``noise`` makes the task harder. ``data_seed`` fixes the data itself,
    independently of the split seed. ``shape`` is (C, H, W) or (H, W).

    >>> raw = synthetic(num_classes=2, shape=(4, 4), size=10)
    >>> raw.x_train.shape, raw.x_test.shape, sorted(set(raw.y_train.tolist()))
    ((10, 1, 4, 4), (2, 1, 4, 4), [0, 1])
    """
    del root, download
    for field, value in (("num_classes", num_classes), ("size", size), ("test_size", test_size),
                         ("data_seed", data_seed)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ConfigError(f"synthetic: {field} must be an integer, got {value!r:.40}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise):
        raise ConfigError(f"synthetic: noise must be a finite number, got {noise!r:.40}")
    if not isinstance(shape, Sequence) or isinstance(shape, str) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape):
        raise ConfigError(f"synthetic: shape must be a list of integers, got {shape!r:.40}")
    if not 0 <= data_seed <= 2**32 - 1:
        raise ConfigError(f"synthetic: data_seed must be in 0..{2**32 - 1}, got {data_seed}")
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"synthetic: shape must be (C, H, W) or (H, W) of positive sizes, got {shape}")
    if num_classes < 2:
        raise ConfigError(f"synthetic: num_classes must be at least 2, got {num_classes}")
    if size < num_classes:
        raise ConfigError(f"synthetic: size ({size}) must be at least num_classes ({num_classes})")
    if not 0 <= noise <= 1e6:  # far above any useful level; larger would overflow float32
        raise ConfigError(f"synthetic: noise must be in 0..1e6, got {noise}")
    test_size = max(size // 5, num_classes) if test_size is None else int(test_size)
    if test_size < 1:
        raise ConfigError(f"synthetic: test_size must be positive, got {test_size}")
    if num_classes > limits.MAX_CLASSES:
        raise ConfigError(f"synthetic: num_classes must be at most {limits.MAX_CLASSES}, got {num_classes}")
    try:
        limits.check_shape((size + test_size, *shape), "synthetic")
    except DataError as exc:
        raise ConfigError(exc.args[0], hint="ask for fewer or smaller samples") from None
    c, h, w = shape
    rng = np.random.default_rng(data_seed)
    cells = rng.standard_normal((num_classes, c, math.ceil(h / 4), math.ceil(w / 4)))
    patterns = cells.repeat(4, axis=2).repeat(4, axis=3)[:, :, :h, :w].astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        # Balanced classes in random order.
        y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
        x = patterns[y] + noise * rng.standard_normal((n, c, h, w)).astype(np.float32)
        return x, y

    x_train, y_train = draw(size)
    x_test, y_test = draw(test_size)
    return RawData(
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        class_names=[f"class {i}" for i in range(num_classes)],
    )
