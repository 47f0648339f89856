"""The user's own data: numpy arrays, .npz files, and any torch Dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence, Sized
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from slimkit.data import limits
from slimkit.data.catalog import DatasetSplits, RawData, build_splits
from slimkit.data.npz import read_npz
from slimkit.data.splits import check_fraction, split_train_val
from slimkit.errors import ConfigError, DataError

NPZ_KEYS = ("x", "y", "x_test", "y_test", "class_names")
NPZ_HINT = (
    "save it with numpy.savez(path, x=inputs, y=labels) where x is (N, H, W), (N, C, H, W) "
    "or (N, F) and y holds N integer or string labels; optional x_test/y_test hold a test set"
)


def dataset_from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    name: str = "arrays",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    class_names: Sequence[str] | None = None,
    hflip: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> DatasetSplits:
    """Turn arrays into normalized DatasetSplits, like a registered dataset.

    ``x`` is (N, H, W), (N, C, H, W) or (N, F) features (seen as 1x1xF, normalized per
    feature); uint8 inputs are scaled by 1/255. Integer labels >= 0 are kept as they are;
    other labels (strings, negatives) are mapped to 0..K-1 in sorted order. Without
    ``x_test`` a fixed, stratified ``test_fraction`` is held out (independent of ``seed``).
    ``mean``/``std`` (per channel, or per feature) default to the training split's statistics.

    >>> d = dataset_from_arrays(np.zeros((50, 6, 6), np.uint8), np.arange(50) % 2)
    >>> d.sizes(), d.input_shape, d.num_classes
    ({'train': 36, 'val': 4, 'test': 10}, (1, 6, 6), 2)
    """
    check_fraction(test_fraction, "test_fraction")
    x, per_feature = _as_nchw(np.asarray(x), f"{name}: x")
    if (x_test is None) != (y_test is None):
        raise DataError(f"{name}: give both x_test and y_test, or neither", hint=NPZ_HINT)
    _check_lengths(x, y, name, "x", "y")
    if x_test is not None:
        x_test, _ = _as_nchw(np.asarray(x_test), f"{name}: x_test")
        _check_lengths(x_test, y_test, name, "x_test", "y_test")
    all_y = np.asarray(y) if y_test is None else np.concatenate([np.asarray(y), np.asarray(y_test)])
    labels, names = encode_labels(all_y, name, num_names=None if class_names is None else len(class_names))
    if class_names is not None:
        names = [str(c) for c in class_names]
    if x_test is None:
        y_train_all = labels
        # seed 0, not the run's seed: the test set belongs to the data, not to the run.
        pool, test = split_train_val(y_train_all, test_fraction, seed=0)
        pool, test = np.sort(pool), np.sort(test)
        x_tr, y_tr, x_te, y_te = x[pool], y_train_all[pool], x[test], y_train_all[test]
    else:
        x_tr, y_tr, x_te, y_te = x, labels[: len(x)], x_test, labels[len(x):]
    raw = RawData(
        x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, class_names=names,
        scale=255.0 if x.dtype == np.uint8 else 1.0, per_feature=per_feature,
    )
    return build_splits(raw, name=name, limit=limit, val_fraction=val_fraction, seed=seed, hflip=hflip,
                        mean=mean, std=std)


def load_npz(
    path: str | os.PathLike[str],
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> DatasetSplits:
    """Load an .npz with arrays ``x`` and ``y`` (optional ``x_test``, ``y_test``, ``class_names``).

    Never unpickles: object arrays are refused. Shapes are checked before anything is read
    (:func:`slimkit.data.npz.read_npz`), and labels against the number of classes before any
    per-class list is built. Every fault is a DataError naming the file.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(p, x=np.random.rand(30, 4).astype("float32"), y=np.arange(30) % 3)
    >>> load_npz(p).input_shape
    (1, 1, 4)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", hint=NPZ_HINT)
    arrays = read_npz(path, NPZ_KEYS, hint=NPZ_HINT)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(
            f"{path}: missing array(s) {', '.join(repr(k) for k in missing)}; "
            f"found {sorted(arrays) or 'none'}",
            hint=NPZ_HINT,
        )
    names = arrays.get("class_names")
    if names is not None and (names.ndim != 1 or names.dtype.kind not in "iuUS"):
        raise DataError(f"{path}: class_names must be a 1-D array of strings, got {names.dtype} of shape "
                        f"{names.shape}", hint=NPZ_HINT)
    return dataset_from_arrays(
        arrays["x"], arrays["y"], x_test=arrays.get("x_test"), y_test=arrays.get("y_test"),
        name=str(path), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        limit=limit, class_names=None if names is None else [str(n) for n in names], mean=mean, std=std,
    )


def _as_nchw(x: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what} must be numeric, got dtype {x.dtype}", hint=NPZ_HINT)
    if not x.dtype.isnative or x.dtype.itemsize > 8:
        # torch reads only native byte order and at most 64-bit floats.
        x = x.astype(np.float64 if x.dtype.kind == "f" else x.dtype.newbyteorder("="))
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{what} holds NaN or infinite values", hint="clean or drop those samples before training")
    if x.ndim == 2:
        return x[:, None, None, :], True
    if x.ndim == 3:
        return x[:, None], False
    if x.ndim == 4:
        return x, False
    raise DataError(f"{what} must be (N, H, W), (N, C, H, W) or (N, F); got shape {x.shape}", hint=NPZ_HINT)


def _check_lengths(x: np.ndarray, y: Any, name: str, xs: str, ys: str) -> None:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{name}: {ys} must be 1-D (one label per input), got shape {y.shape}", hint=NPZ_HINT)
    if len(y) != len(x):
        raise DataError(f"{name}: {xs} has {len(x)} inputs but {ys} has {len(y)} labels", hint=NPZ_HINT)


def encode_labels(y: np.ndarray, name: str, *, num_names: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Labels as int64 class indices, and a name per class.

    Non-negative integers (or integral floats) are kept; strings and negative integers are
    mapped to 0..K-1 in sorted order. The number of classes is checked (against
    ``num_names`` when class names are given, else against ``limits.MAX_CLASSES``) from the
    labels' minimum and maximum, before any per-class list exists: a corrupt label of 10**9
    is a DataError at once, not a billion-entry list.

    >>> encode_labels(np.array([2.0, 0.0]), "d")
    (array([2, 0]), ['0', '1', '2'])
    >>> encode_labels(np.array(["cat", "ant"]), "d")
    (array([1, 0]), ['ant', 'cat'])
    >>> encode_labels(np.array([10**9]), "d")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.DataError: d: label 1000000000 means 1000000001 classes; at most 100000 are supported
    ...
    """
    if y.dtype.kind == "f" and len(y):
        finite = np.isfinite(y).all()
        if finite and np.all(y == np.round(y)) and float(np.abs(y).max()) < 2**62:
            y = y.astype(np.int64)  # float-typed integer labels are common in saved arrays
    if y.dtype.kind in "iub" and (len(y) == 0 or int(y.min()) >= 0):
        top = int(y.max()) if len(y) else -1  # a Python int: uint64 labels cannot wrap
        count = top + 1
        if num_names is not None and count > num_names:
            raise DataError(f"{name}: label {top} is outside 0..{num_names - 1} ({num_names} class names)",
                            hint=NPZ_HINT)
        if count > limits.MAX_CLASSES:
            raise DataError(f"{name}: label {top} means {count} classes; at most {limits.MAX_CLASSES} are "
                            "supported", hint="labels are class indices 0..K-1; a huge one is a corrupt label")
        return y.astype(np.int64), [str(i) for i in range(count)]
    if y.dtype.kind in "iuUS":
        uniques, codes = np.unique(y, return_inverse=True)
        if num_names is not None and len(uniques) > num_names:
            raise DataError(f"{name}: {len(uniques)} distinct labels but {num_names} class names", hint=NPZ_HINT)
        if len(uniques) > limits.MAX_CLASSES:
            raise DataError(f"{name}: {len(uniques)} distinct labels; at most {limits.MAX_CLASSES} classes are "
                            "supported", hint="labels name classes; a label per sample is not a class")
        return codes.reshape(-1).astype(np.int64), [str(u) for u in uniques]
    raise DataError(f"{name}: labels must be integers or strings, got dtype {y.dtype}", hint=NPZ_HINT)


def splits_from_datasets(
    train: Dataset,
    *,
    val: Dataset | None = None,
    test: Dataset | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "custom",
) -> DatasetSplits:
    """Wrap any map-style torch Datasets yielding ``(x, y, ...)`` as DatasetSplits, unchanged.

    Missing test/val sets are carved out of ``train`` (test with a fixed seed, val from
    ``seed``). ``num_classes`` is read from the labels when not given. No normalization is
    applied: the user's datasets are taken as they are.

    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.randn(20, 1, 4, 4), torch.arange(20) % 4)
    >>> s = splits_from_datasets(ds)
    >>> s.sizes(), s.num_classes, s.input_shape
    ({'train': 14, 'val': 2, 'test': 4}, 4, (1, 4, 4))
    """
    check_fraction(val_fraction, "val_fraction")
    check_fraction(test_fraction, "test_fraction")
    for part in (train, val, test):
        if part is not None and not isinstance(part, Sized):
            raise ConfigError(
                f"{name}: {type(part).__name__} has no length; make_loaders needs map-style datasets",
                hint="pass your DataLoader straight to the Trainer and evaluate functions instead",
            )
    if len(train) == 0:  # type: ignore[arg-type]
        raise DataError(f"{name}: the training dataset is empty")
    if test is None:
        train, test = _carve(train, test_fraction, 0)
    if val is None:
        train, val = _carve(train, val_fraction, seed)
    x0 = torch.as_tensor(train[0][0])
    shape = tuple(x0.shape)
    input_shape = (1, 1, *shape) if len(shape) == 1 else (1, *shape) if len(shape) == 2 else shape
    if len(input_shape) != 3:
        raise DataError(f"{name}: inputs must be (F), (H, W) or (C, H, W); got shape {shape}")
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else _count_classes((train, val, test))
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
    return DatasetSplits(
        name=name, train=train, val=val, test=test, num_classes=num_classes,
        input_shape=input_shape, class_names=names,  # type: ignore[arg-type]
        meta={"seed": seed, "val_fraction": val_fraction},
    )


def _carve(ds: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    order = np.random.default_rng(seed).permutation(len(ds))  # type: ignore[arg-type]
    n_out = round(len(order) * fraction)
    return Subset(ds, order[n_out:].tolist()), Subset(ds, order[:n_out].tolist())


def _count_classes(parts: Sequence[Dataset]) -> int:
    # Scans every label once; pass num_classes= to skip this on large datasets.
    top = -1
    for part in parts:
        for i in range(len(part)):  # type: ignore[arg-type]
            top = max(top, int(torch.as_tensor(part[i][1]).max()))
    return top + 1
