"""Property-based fuzzing of the IDX and .npz loaders, image folders and DataConfig.

Every generated case must end in success or a SlimkitError subclass (any other exception
fails the test, with hypothesis's smallest example) within hypothesis's one-second deadline.
Files are random bytes, or valid files with random mutations (flipped, inserted, deleted
bytes, truncation, header fields overwritten with random 32-bit values). Each test records
how many cases it ran; tests/conftest.py prints the total. ``SLIMKIT_FUZZ_SCALE``
multiplies every example count (CI may raise it; the default keeps the module under ~30 s).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import os
import warnings
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fuzzing import mutate_bytes as mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from slimkit.config import MAX_SEED
from slimkit.data import DATASETS, DataConfig, limits, load_image_folder, load_npz, load_splits
from slimkit.data.idx import IDX_DTYPES, parse_idx, read_idx, read_idx_pair
from slimkit.data.npz import read_npz
from slimkit.errors import ConfigError, SlimkitError

pytestmark = pytest.mark.fuzz

SCALE = float(os.environ.get("SLIMKIT_FUZZ_SCALE", "1"))
_RUNS: dict[str, int] = {}
_NAMES = itertools.count()


def fuzz(examples: int):
    """Hypothesis settings for one fuzz target: ``examples`` cases (times SCALE), 1 s each at most."""
    return settings(
        max_examples=max(1, int(examples * SCALE)), deadline=timedelta(seconds=1), database=None,
        derandomize=os.environ.get("CI") == "true",  # CI: the same cases every run; locally: new ones
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def run(target, record_property, minimum: int, *args) -> None:
    """Run a hypothesis target, count its cases, and check it ran at least ``minimum`` of them."""
    name = target.__name__
    _RUNS[name] = 0
    target(*args)
    record_property("fuzz_cases", _RUNS[name])
    print(f"{name}: {_RUNS[name]} cases")
    assert _RUNS[name] >= max(1, int(minimum * min(SCALE, 1.0)))


def outcome(call, *args, **kwargs):
    """``call``'s result, or the SlimkitError it raised; any other exception propagates."""
    try:
        return call(*args, **kwargs)
    except SlimkitError as exc:
        assert str(exc).strip(), "an error must say what went wrong"
        return exc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A scratch folder, after one run through every loader: first-call imports (scikit-learn,
    Pillow's plugins) must not count against a case's one-second deadline."""
    root = tmp_path_factory.mktemp("fuzz")
    np.savez(root / "warm.npz", x=np.zeros((20, 3), np.float32), y=np.arange(20) % 2)
    load_npz(root / "warm.npz")
    for i, fmt in enumerate(["PNG", "JPEG", "PNG", "JPEG"]):
        (root / "warm" / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(root / "warm" / f"c{i % 2}" / f"{i}.{fmt.lower()}", fmt)
    load_image_folder(root / "warm", resize=(3, 3))
    load_splits(DataConfig(name="synthetic", options={"size": 20, "shape": [1, 2, 2], "num_classes": 2}))
    outcome(DataConfig.from_dict, {"seed": -1, "nam": "x"})
    return root


def fresh(directory: Path, suffix: str) -> Path:
    # A new name per case: cached readers key on (path, size, mtime), which a rewrite could repeat.
    return directory / f"case{next(_NAMES)}{suffix}"


# --- IDX ---------------------------------------------------------------------------------------

@st.composite
def idx_bytes(draw, dims: tuple[int, int] = (1, 4)) -> bytes:
    code = draw(st.sampled_from(sorted(IDX_DTYPES)))
    rank = draw(st.integers(*dims))
    shape = draw(st.lists(st.integers(0, 5), min_size=rank, max_size=rank))
    size = math.prod(shape) * np.dtype(IDX_DTYPES[code]).itemsize
    head = bytes([0, 0, code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    return head + draw(st.binary(min_size=size, max_size=size))


@st.composite
def idx_files(draw, dims: tuple[int, int] = (1, 4)) -> bytes:
    data = draw(idx_bytes(dims))
    if draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
    return draw(mutate(data, header=32)) if draw(st.integers(0, 3)) else data


def check_idx(result) -> None:
    if isinstance(result, np.ndarray):
        assert result.size <= limits.MAX_ELEMENTS and result.dtype.isnative


@fuzz(700)
@given(data=st.binary(max_size=300) | idx_bytes().flatmap(lambda b: mutate(b, header=32)))
def idx_parse(data: bytes) -> None:
    _RUNS["idx_parse"] += 1
    check_idx(outcome(parse_idx, data, source="fuzz.idx"))


@fuzz(600)
@given(data=idx_files())
def idx_files_on_disk(workdir: Path, data: bytes) -> None:
    _RUNS["idx_files_on_disk"] += 1
    path = fresh(workdir, "-idx")
    path.write_bytes(data)
    check_idx(outcome(read_idx, path))


@fuzz(300)
@given(images=idx_files((3, 3)), labels=idx_files((1, 1)))
def idx_pairs(workdir: Path, images: bytes, labels: bytes) -> None:
    _RUNS["idx_pairs"] += 1
    paths = fresh(workdir, "-images"), fresh(workdir, "-labels")
    paths[0].write_bytes(images)
    paths[1].write_bytes(labels)
    result = outcome(read_idx_pair, *paths, num_classes=10)
    if isinstance(result, tuple):
        x, y = result
        assert x.ndim == 3 and y.ndim == 1 and len(x) == len(y)
        assert len(y) == 0 or (0 <= int(y.min()) and int(y.max()) < 10)


def test_fuzz_idx_bytes(workdir, record_property):
    run(idx_parse, record_property, 700)


def test_fuzz_idx_files(workdir, record_property):
    run(idx_files_on_disk, record_property, 600, workdir)


def test_fuzz_idx_pairs(workdir, record_property):
    run(idx_pairs, record_property, 300, workdir)


# --- .npz --------------------------------------------------------------------------------------

DTYPES = ["<f4", ">f8", "<f2", "|u1", "<i8", ">u4", "|b1", "<U3", "|S2", "<c8"]


@st.composite
def arrays(draw, dims: tuple[int, int] = (1, 4), n: int | None = None) -> np.ndarray:
    rank = draw(st.integers(*dims))
    dims = draw(st.lists(st.integers(0, 4), min_size=rank, max_size=rank))
    if n is not None and dims:
        dims[0] = n
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    count = math.prod(dims)
    if dtype.kind in "US":
        values = draw(st.lists(st.sampled_from(["a", "b", "ccc", ""]), min_size=count, max_size=count))
        return np.array(values, dtype=dtype).reshape(dims)
    special = [0, 1, -1, 255, 10**9, 2**63 - 1, 1e300, float("nan"), float("inf")]
    values = draw(st.lists(st.sampled_from(special) | st.integers(-3, 12), min_size=count, max_size=count))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1e300 into float16 is inf on purpose
        return np.array([_cast(v, dtype) for v in values], dtype=dtype).reshape(dims)


def _cast(value, dtype: np.dtype):
    """``value`` as something numpy puts into ``dtype`` without complaint (clipped, or 0)."""
    integral = isinstance(value, int) or float(value).is_integer()
    if dtype.kind == "b":
        return bool(integral and value)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return int(min(max(int(value), info.min), info.max)) if integral else 0
    return value


@st.composite
def npz_bytes(draw) -> bytes:
    n = draw(st.integers(0, 6))
    members: dict[str, np.ndarray] = {}
    if draw(st.integers(0, 9)):
        members["x"] = draw(arrays((1, 5), n=n))
    if draw(st.integers(0, 9)):
        members["y"] = draw(arrays((1, 2), n=n if draw(st.integers(0, 5)) else None))
    if draw(st.booleans()):
        m = draw(st.integers(0, 3))
        members["x_test"] = draw(arrays((1, 5), n=m))
        if draw(st.integers(0, 5)):
            members["y_test"] = draw(arrays((1, 1), n=m))
    if draw(st.booleans()):
        members["class_names"] = draw(arrays((1, 2)))
    out = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(out, **members)
    return out.getvalue()


@st.composite
def npy_headers(draw) -> bytes:
    """An .npy member with a random header (sizes anywhere from negative to 2**70) and random data."""
    descr = draw(st.sampled_from([*DTYPES, "|O", "|V4", "<M8[D]", [("a", "<i4")], [("o", "|O")]]))
    shape = tuple(draw(st.lists(st.integers(-2, 8) | st.sampled_from([2**31, 2**32 + 1, 2**62, 2**70]),
                                max_size=draw(st.sampled_from([3, 3, 40])))))
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": draw(st.booleans()), "shape": shape})
    return out.getvalue() + draw(st.binary(max_size=64))


@st.composite
def crafted_npz(draw) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as z:
        z.writestr("x.npy", draw(npy_headers()))
        z.writestr("y.npy", draw(npy_headers()) if draw(st.booleans()) else _npy(np.arange(3) % 2))
    return out.getvalue()


def _npz_files():
    base = npz_bytes()
    return (st.binary(max_size=200) | base | base.flatmap(lambda b: mutate(b, header=200)) | crafted_npz()
            | crafted_npz().flatmap(lambda b: mutate(b, header=120)))


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def check_splits(result) -> None:
    if isinstance(result, SlimkitError):
        return
    sizes = result.sizes()
    assert sizes["train"] >= 1 and 1 <= result.num_classes <= limits.MAX_CLASSES
    for split in ("train", "val", "test"):
        x, y = getattr(result, split).tensors
        assert x.shape[1:] == result.input_shape and bool(x.isfinite().all())
        assert len(y) == 0 or (0 <= int(y.min()) and int(y.max()) < result.num_classes)


@fuzz(1000)
@given(data=_npz_files(), val=st.sampled_from([0.0, 0.1, 0.5]), test=st.sampled_from([0.0, 0.2, 0.9]),
       seed=st.integers(0, MAX_SEED))
def npz_files(workdir: Path, data: bytes, val: float, test: float, seed: int) -> None:
    _RUNS["npz_files"] += 1
    path = fresh(workdir, ".npz")
    path.write_bytes(data)
    check_splits(outcome(load_npz, path, val_fraction=val, test_fraction=test, seed=seed))
    result = outcome(read_npz, path, ("x", "y", "x_test", "y_test", "class_names", "junk"))
    if isinstance(result, dict):
        assert all(a.dtype.isnative and a.size <= limits.MAX_ELEMENTS for a in result.values())


def test_fuzz_npz_files(workdir, record_property):
    run(npz_files, record_property, 1000, workdir)


# --- image folders -----------------------------------------------------------------------------

@st.composite
def image_bytes(draw) -> bytes:
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16", "LA"]))
    width, height = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**16))
    array = np.random.default_rng(seed).integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    image = Image.fromarray(array, "RGBA").convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image, np.uint16) * 257)
    fmt = draw(st.sampled_from(["PNG", "JPEG"])) if mode in ("L", "RGB") else "PNG"
    out = io.BytesIO()
    image.save(out, fmt)
    data = out.getvalue()
    return draw(mutate(data, header=40)) if draw(st.integers(0, 2)) else data


@fuzz(300)
@given(images=st.lists(image_bytes(), min_size=1, max_size=4), resize=st.none() | st.tuples(
    st.integers(1, 12), st.integers(1, 12)), color=st.sampled_from([None, "grayscale", "rgb"]))
def image_folders(workdir: Path, images: list[bytes], resize, color) -> None:
    _RUNS["image_folders"] += 1
    root = fresh(workdir, "-folder")
    for i, blob in enumerate(images):
        (root / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"class{i % 2}" / f"{i}.png").write_bytes(blob)
    check_splits(outcome(load_image_folder, root, resize=resize, color=color, test_fraction=0.0))


def test_fuzz_image_folders(workdir, record_property):
    run(image_folders, record_property, 300, workdir)


# --- DataConfig --------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats() | st.text(max_size=8)
           | st.sampled_from([0, 1, -1, 2**31, 2**32 - 1, 2**32, 2**63, 2**70, 0.5, 1.0, "", "\0", "digits", "x.npz"]))
# Flat containers only: hypothesis's recursive strategies cost ~10 ms a case to draw.
ANY_VALUE = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.text(max_size=4), SCALARS, max_size=2)
FIELDS = st.sampled_from([*DataConfig.model_fields, "type", "version", "batch_sise", "data_dir"])
NAMES = st.sampled_from([*DATASETS.names(), "fashion_mnist", "data.npz", "photos"])


@fuzz(1200)
@given(data=st.dictionaries(FIELDS, ANY_VALUE | NAMES, max_size=6))
def data_configs(data: dict) -> None:
    _RUNS["data_configs"] += 1
    try:
        config = DataConfig.from_dict(data, source="fuzz.yaml")
    except ConfigError as exc:
        assert "fuzz.yaml" in str(exc)
        return
    assert (config.name is None) != (config.path is None)
    assert 0 <= config.seed <= MAX_SEED and 1 <= config.batch_size < 2**31
    again = DataConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert json.dumps(again.to_dict()) == json.dumps(config.to_dict())


SMALL = st.integers(-2, 40) | st.sampled_from([2**40, 10**12])


@fuzz(250)
@given(options=st.fixed_dictionaries({}, optional={
    "size": SMALL, "test_size": st.none() | SMALL, "num_classes": SMALL, "noise": st.floats(),
    "shape": st.lists(st.integers(-1, 9) | st.sampled_from([10**6]), max_size=4) | ANY_VALUE,
    "data_seed": st.integers(-1, 2**33), "colour": st.integers()}),
    limit=st.none() | st.integers(-1, 50), seed=st.integers(-1, 2**33), val=st.floats(-0.5, 1.5))
def synthetic_configs(options: dict, limit, seed: int, val: float) -> None:
    _RUNS["synthetic_configs"] += 1
    config = outcome(DataConfig, name="synthetic", options=options, limit=limit, seed=seed, val_fraction=val)
    if isinstance(config, DataConfig):
        check_splits(outcome(load_splits, config))


def test_fuzz_data_configs(workdir, record_property):
    run(data_configs, record_property, 1200)


def test_fuzz_synthetic_configs(workdir, record_property):
    run(synthetic_configs, record_property, 250)
