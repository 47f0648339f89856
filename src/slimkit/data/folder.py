"""Image folders: one subfolder per class of PNG/JPEG images, read with Pillow.

Layouts: ``folder/<class>/*.png`` (test and validation carved out, seeded), or
``folder/train/<class>/...`` beside ``val/`` (or ``valid/``, ``validation/``) and/or ``test/``
holding the same kind of class folders, used as given; ``train/`` alone is read like a
class-per-folder root. Class names are the folder names, sorted; label ``i`` is the
``i``-th name. Images are decoded once, into one preallocated uint8 array that is cached
for as long as no file changes, because recipes load the same data in several stages.

Decoding is guarded: the size in each header is checked against ``limits.MAX_IMAGE_PIXELS``
before any pixel is decoded (Pillow's own bomb check is made an error, too), only the PNG
and JPEG decoders are used, and a corrupt or unreadable file is a one-line DataError naming it.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from slimkit.data import limits
from slimkit.data.catalog import DatasetSplits, RawData, build_splits
from slimkit.data.splits import check_fraction, split_train_val
from slimkit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FORMATS = ["PNG", "JPEG", "MPO"]  # MPO: the JPEG variant many cameras write
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"}
# Split folder names (lower-cased) and the split each one holds.
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_HINT = "folders hold one subfolder per class of PNG/JPEG images, or train/ with val/ and/or test/ holding those"


@dataclass(frozen=True)
class _Part:
    """The images of one split folder: files in order and their labels."""

    files: tuple[Path, ...]
    labels: np.ndarray


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    resize: tuple[int, int] | None = None,
    color: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    hflip: bool = False,
) -> DatasetSplits:
    """Read an image folder as normalized DatasetSplits.

    ``resize`` is ``(height, width)``; without it every image must have the same size.
    ``color`` is ``"grayscale"`` or ``"rgb"`` (default: grayscale when every image is).
    Without a ``test/`` folder, a fixed ``test_fraction`` is held out (stratified,
    independent of ``seed``); without ``val/``, validation is carved from the training
    images by ``seed``. A ``train/`` + ``val/`` pair with no ``test/`` reports on ``val/``
    (as ImageNet's is used) and carves validation from ``train/``. ``mean``/``std`` default
    to the training pool's per-channel statistics.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for i in range(20):
    ...     (root / f"c{i % 2}").mkdir(exist_ok=True)
    ...     Image.new("L", (6, 5), color=i * 10).save(root / f"c{i % 2}" / f"{i}.png")
    >>> d = load_image_folder(root)
    >>> d.sizes(), d.input_shape, d.class_names
    ({'train': 14, 'val': 2, 'test': 4}, (1, 5, 6), ['c0', 'c1'])
    """
    check_fraction(test_fraction, "test_fraction")
    if color not in (None, "grayscale", "rgb"):
        raise DataError(f"color must be 'grayscale' or 'rgb', got {color!r}")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder", hint=_HINT)
    folders, pool = _layout(root)
    explicit = pool is None
    classes = _class_names(folders["train"] if explicit else pool)
    parts = {s: _list_part(folders[s], classes) for s in folders} if explicit else {"pool": _list_part(pool, classes)}
    files = tuple(f for part in parts.values() for f in part.files)
    pixels = decode_images(files, resize=resize, color=color)
    bounds = np.cumsum([0] + [len(p.files) for p in parts.values()])
    x = {s: pixels[a:b] for s, a, b in zip(parts, bounds[:-1], bounds[1:])}
    y = {s: p.labels for s, p in parts.items()}

    val_from = None
    if not explicit:
        # Seed 0, not the run's: the test set belongs to the data, not to the run.
        keep, test = (np.sort(i) for i in split_train_val(y["pool"], test_fraction, seed=0))
        x_train, y_train, x_test, y_test = x["pool"][keep], y["pool"][keep], x["pool"][test], y["pool"][test]
    elif "test" in parts:
        x_test, y_test = x["test"], y["test"]
        x_train, y_train = x["train"], y["train"]
        if "val" in parts:
            val_from = len(y_train)
            x_train, y_train = np.concatenate([x_train, x["val"]]), np.concatenate([y_train, y["val"]])
    else:
        x_train, y_train, x_test, y_test = x["train"], y["train"], x["val"], y["val"]
    raw = RawData(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=classes, scale=255.0)
    splits = build_splits(raw, name=str(root), limit=limit, val_fraction=val_fraction, seed=seed,
                          mean=mean, std=std, hflip=hflip, val_from=val_from)
    splits.meta.update(path=str(root), layout="+".join(parts), images=len(files))
    return splits


def _layout(root: Path) -> tuple[dict[str, Path], Path | None]:
    """The split folders (train/val/test) of ``root``, or else the one folder that holds the classes."""
    dirs = [e.name for e in _entries(root) if e.is_dir()]
    folders: dict[str, Path] = {}
    for name in dirs:
        split = SPLIT_NAMES.get(name.lower())
        if split is None:
            continue
        if split in folders:
            raise DataError(f"{root}: both {folders[split].name}/ and {name}/ hold the {split} split; keep one",
                            hint=_HINT)
        folders[split] = root / name
    if "train" in folders and len(folders) > 1:
        others = sorted(set(dirs) - {p.name for p in folders.values()})
        if others:
            warnings.warn(f"{root}: using {', '.join(p.name + '/' for p in folders.values())} and ignoring the "
                          f"other folder(s) {', '.join(others[:5])}", stacklevel=3)
        return {s: folders[s] for s in ("train", "val", "test") if s in folders}, None
    if "train" in folders and dirs == [folders["train"].name]:
        return {}, folders["train"]  # train/ alone: its classes are the whole pool
    if folders and "train" not in folders:
        raise DataError(f"{root}: {', '.join(p.name + '/' for p in folders.values())} without a train/ folder "
                        "beside it", hint=_HINT)
    return {}, root  # class folders (one of them may be called "train")


def _class_names(folder: Path) -> list[str]:
    names = sorted(e.name for e in _entries(folder) if e.is_dir())
    if not names:
        raise DataError(f"{folder}: no class subfolders (need one folder of images per class)", hint=_HINT)
    limits.check_shape((len(names),), f"{folder}: class folders")
    return names


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".")]  # hidden files (.DS_Store) are not data
    except OSError as exc:
        raise DataError(f"{folder}: cannot list folder ({exc.strerror or exc})", hint=_HINT) from None


def _list_part(folder: Path, classes: list[str]) -> _Part:
    """Every image of every class folder under ``folder``, sorted; unknown or empty classes are errors."""
    present = sorted(e.name for e in _entries(folder) if e.is_dir())
    if not present:
        raise DataError(f"{folder}: no class subfolders (need one folder of images per class)", hint=_HINT)
    unknown = [c for c in present if c not in classes]
    if unknown:
        raise DataError(f"{folder / unknown[0]}: class folder not in the training set "
                        f"(classes: {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})", hint=_HINT)
    files: list[Path] = []
    labels: list[int] = []
    skipped: list[Path] = []
    for label, name in enumerate(classes):
        if name not in present:
            continue
        images, others = _images_under(folder / name)
        skipped += others
        if not images:
            raise DataError(f"{folder / name}: empty class (no .png/.jpg/.jpeg images)",
                            hint="add images to it, or remove the folder")
        files += images
        labels += [label] * len(images)
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} file(s) that are not PNG or JPEG, e.g. {skipped[0]}",
                      stacklevel=3)
    return _Part(tuple(files), np.asarray(labels, dtype=np.int64))


def _images_under(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, other files) under ``folder``, recursively, in sorted order; symlinked folders are not followed."""
    images: list[Path] = []
    others: list[Path] = []
    for entry in sorted(_entries(folder), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            sub_images, sub_others = _images_under(Path(entry.path))
            images += sub_images
            others += sub_others
        elif entry.name.lower().endswith(IMAGE_SUFFIXES):
            images.append(Path(entry.path))
        else:
            others.append(Path(entry.path))
    return images, others


def decode_images(files: Sequence[Path], *, resize: tuple[int, int] | None = None,
                  color: str | None = None) -> np.ndarray:
    """Decode ``files`` into one read-only uint8 array (N, C, H, W), cached while no file changes.

    Headers are read first: sizes and pixel counts are checked (and, without ``resize``,
    mixed sizes refused, naming two files) before the array is allocated and pixels decoded.
    """
    key = []
    for f in files:
        try:
            stat = f.stat()
        except OSError as exc:
            raise DataError(f"{f}: cannot read image ({exc.strerror or exc})") from None
        key.append((str(f), stat.st_size, stat.st_mtime_ns))
    return _decode_cached(tuple(key), resize, color)


@functools.lru_cache(maxsize=2)
def _decode_cached(key: tuple[tuple[str, int, int], ...], resize: tuple[int, int] | None,
                   color: str | None) -> np.ndarray:
    files = [Path(k[0]) for k in key]
    headers = [_header(f) for f in files]  # (width, height, mode)
    if color is None:
        color = "grayscale" if all(mode in _GRAY_MODES for _, _, mode in headers) else "rgb"
    if resize is None:
        sizes = {(w, h): f for f, (w, h, _) in zip(files, headers)}
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise DataError(f"images have different sizes: {fa} is {a[0]}x{a[1]}, {fb} is {b[0]}x{b[1]} "
                            "(width x height)", hint="set resize: [height, width] (or one side) to resize them all")
        width, height = next(iter(sizes)) if sizes else (1, 1)
    else:
        height, width = resize
    channels = 1 if color == "grayscale" else 3
    limits.check_shape((len(files), channels, height, width), "decoded images",
                       hint="resize to a smaller size, or use fewer images")
    out = np.empty((len(files), channels, height, width), dtype=np.uint8)
    for i, f in enumerate(files):
        out[i] = _decode(f, "L" if channels == 1 else "RGB", (width, height))
    out.flags.writeable = False  # cached and shared: nobody may change it
    return out


def _open(path: Path) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path, formats=_FORMATS)


def _header(path: Path) -> tuple[int, int, str]:
    try:
        with _open(path) as img:  # reads the header only
            width, height, mode = img.width, img.height, img.mode
    except Exception as exc:  # noqa: BLE001  (Pillow raises many types on bad files; each becomes one line)
        raise _unreadable(path, exc) from None
    if width * height > limits.MAX_IMAGE_PIXELS or min(width, height) < 1:
        raise DataError(f"{path}: image of {width}x{height} pixels; at most {limits.MAX_IMAGE_PIXELS} are "
                        "decoded (a corrupt header or a decompression bomb)", hint="shrink or remove the image")
    return width, height, mode


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    try:
        with _open(path) as img:
            img.load()
            if img.mode in ("P", "PA"):  # through RGBA, as Pillow asks, so transparency is read right
                img = img.convert("RGBA")
            if img.mode != mode:
                img = img.convert(mode)
            if img.size != size:
                img = img.resize(size, Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001  (Pillow raises many types on bad files; each becomes one line)
        raise _unreadable(path, exc) from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _unreadable(path: Path, exc: Exception) -> DataError:
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    return DataError(f"{path}: unreadable or corrupt image ({detail})",
                     hint="delete or replace the file (only PNG and JPEG images are read)")
