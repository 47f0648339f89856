"""DataConfig: which data to load (a registered dataset, an image folder or an .npz file) and how.

Every number here is range-checked when the config is built, so a recipe with ``seed: 2**70``
or ``batch_size: 1e12`` fails at validation with a line naming the field, not at run time
deep inside numpy or torch.
"""

from __future__ import annotations

import math
import os
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config, Seed
from slimkit.data.catalog import DATASETS
from slimkit.registry import did_you_mean

#: Batch sizes and counts beyond this are typos, and would overflow torch's int32 index paths.
MAX_BATCH = 2**31 - 1
MAX_WORKERS = 256
#: Largest side an image folder may be resized to; far above any model slimkit trains.
MAX_SIDE = 8192

Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
# Bounded so a normalization statistic can never turn inputs into inf or NaN.
Stat = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]

# Fields that only mean something for some kinds of source (see DataConfig.kind).
_APPLIES_TO = {"root": ("registered",), "options": ("registered",), "resize": ("folder",), "color": ("folder",),
               "mean": ("folder", "npz"), "std": ("folder", "npz")}
_KIND_NAMES = {("registered",): "registered datasets", ("folder",): "image folders",
               ("folder", "npz"): "image folders and .npz files"}


class DataConfig(Config):
    """Which dataset to load and how to batch it.

    Give exactly one of ``name`` (a registered dataset; a path ending in .npz is still read
    as a file) and ``path`` (a folder of class-per-subfolder images, or an .npz file).
    Without either, the dataset is Fashion-MNIST.

    Image folders take ``resize`` (a side or ``[height, width]``; without it every image must
    have the same size), ``color`` (``grayscale`` or ``rgb``; by default grayscale when every
    image is) and ``mean``/``std`` (per channel; by default computed from the training split).
    ``augment`` shifts training images by up to 2 pixels; ``hflip`` also flips them (default:
    what the dataset says, off for folders).

    >>> DataConfig(name="digits", limit=100).batch_size
    128
    >>> DataConfig(path="photos/", resize=32).resize
    (32, 32)
    >>> DataConfig(name="fashion_mnist")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: DataConfig: field 'name': ... Did you mean 'fashion-mnist'? ...
    >>> DataConfig(seed=2**70)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: DataConfig: field 'seed': Input should be less than or equal to 4294967295 ...
    """

    name: str | None = "fashion-mnist"
    path: str | None = None
    root: str | None = None
    limit: int | None = Field(default=None, ge=1, le=2**62)
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    seed: Seed = 0
    batch_size: int = Field(default=128, ge=1, le=MAX_BATCH)
    eval_batch_size: int = Field(default=512, ge=1, le=MAX_BATCH)
    workers: int = Field(default=0, ge=0, le=MAX_WORKERS)
    augment: bool = False
    hflip: bool | None = None
    download: bool = True
    resize: tuple[Side, Side] | None = None
    color: Literal["grayscale", "rgb"] | None = None
    mean: tuple[Stat, ...] | None = Field(default=None, min_length=1, max_length=4)
    std: tuple[Stat, ...] | None = Field(default=None, min_length=1, max_length=4)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _path_replaces_default_name(cls, data: Any) -> Any:
        # ``name`` defaults to Fashion-MNIST; giving ``path`` alone means "not the default".
        if isinstance(data, dict) and data.get("path") is not None and "name" not in data:
            data = {**data, "name": None}
        return data

    @field_validator("name")
    @classmethod
    def _known_name(cls, name: str | None) -> str | None:
        if name is None or name in DATASETS or name.endswith(".npz"):
            return name
        known = DATASETS.names()
        raise ValueError(
            f"unknown dataset '{name}'.{did_you_mean(name, known)} "
            f"Known datasets: {', '.join(known)}; or give path: a folder of images or an .npz file"
        )

    @field_validator("path")
    @classmethod
    def _plain_path(cls, path: str | None) -> str | None:
        if path is not None and (not path.strip() or "\0" in path or len(path) > 4096):
            raise ValueError("must be a non-empty folder or .npz path (no NUL bytes, at most 4096 characters)")
        return path

    @field_validator("resize", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if (self.name is None) == (self.path is None):
            raise ValueError(
                "give exactly one of 'name' (a registered dataset) and 'path' (an image folder or .npz file)"
                if self.name is not None else "give 'name' (a registered dataset) or 'path' (an image folder)"
            )
        misplaced = [f for f, kinds in _APPLIES_TO.items()
                     if self.kind not in kinds and getattr(self, f) not in (None, {})]
        if misplaced:
            raise ValueError("; ".join(f"'{f}' applies to {_KIND_NAMES[_APPLIES_TO[f]]} only" for f in misplaced))
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both 'mean' and 'std', or neither (then they are computed from the training split)")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std):
                raise ValueError(f"'mean' has {len(self.mean)} values but 'std' has {len(self.std)}")
            if min(self.std) <= 1e-8 or not all(math.isfinite(s) for s in self.std):
                raise ValueError(f"every 'std' value must be positive, got {list(self.std)}")
        return self

    @property
    def kind(self) -> str:
        """``"registered"``, ``"folder"`` (an image folder) or ``"npz"`` (a file, by path or by name)."""
        target = self.path if self.path is not None else str(self.name)
        if target.endswith(".npz") and target not in DATASETS:
            return "npz"
        return "folder" if self.path is not None else "registered"

    @property
    def source(self) -> str:
        """What the data is, for logs and reports: the dataset name or the path."""
        return self.name if self.name is not None else str(self.path)


def dataset_config(reference: str, **fields: Any) -> DataConfig:
    """A DataConfig for what a user typed after ``--dataset``: a registered name or a path.

    A registered name wins; anything else that exists on disk (a folder or an .npz file), or
    that looks like a path, is a ``path``; the rest is an unknown name (with "did you mean").

    >>> dataset_config("digits").name, dataset_config("photos/").path
    ('digits', 'photos/')
    """
    if reference in DATASETS:
        return DataConfig(name=reference, **fields)
    looks_like_path = os.sep in reference or reference.endswith(".npz") or os.path.exists(reference)
    if looks_like_path:
        return DataConfig(path=reference, **{k: v for k, v in fields.items() if k != "root" or v is not None})
    return DataConfig(name=reference, **fields)
