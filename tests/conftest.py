"""Shared test fixtures: tiny IDX datasets on disk, an isolated data environment, tiny splits,
and ``require_fashion_mnist`` for the few tests that read the real Fashion-MNIST.

Tests never download: an autouse fixture replaces the download function with one that fails, and
the Hugging Face hub is switched off (``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from slimkit.data import DatasetSplits, load_dataset, search_dirs, sources
from slimkit.data.sources import IDX_FILES, idx_files_in
from slimkit.errors import DataError

# Test helpers (the foreign-architecture zoo) import as top-level modules: `import zoo`.
sys.path.insert(0, str(Path(__file__).parent))
# Hugging Face models are built from configs; the hub is never reached, not even to look.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, magic: bytes | None = None,
              cut: int = 0) -> Path:
    """Write ``array`` as an IDX file (gzipped if ``gz``); ``magic`` overrides the first 4 bytes
    and ``cut`` drops that many trailing bytes, to make corrupted files on purpose."""
    array = np.asarray(array)
    head = magic if magic is not None else bytes([0, 0, _IDX_CODES[array.dtype], array.ndim])
    dims = np.asarray(array.shape, dtype=">u4").tobytes()
    data = head + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if cut:
        data = data[:-cut]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def write_idx_dataset(directory: Path, *, n_train: int = 60, n_test: int = 20, size: int = 28,
                      gz: bool = True, num_classes: int = 10, seed: int = 0) -> Path:
    """Write the four IDX files of a tiny MNIST-like dataset (balanced labels) into ``directory``."""
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        labels = (np.arange(n) % num_classes).astype(np.uint8)
        write_idx(directory / (IDX_FILES[f"{split}_images"] + suffix), images, gz=gz)
        write_idx(directory / (IDX_FILES[f"{split}_labels"] + suffix), labels, gz=gz)
    return directory


@pytest.fixture
def idx_writer() -> Callable[..., Path]:
    """The :func:`write_idx` helper."""
    return write_idx


@pytest.fixture
def idx_dataset_writer() -> Callable[..., Path]:
    """The :func:`write_idx_dataset` helper."""
    return write_idx_dataset


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(url: str, **_: object) -> bytes:
        raise DataError(f"tests never download (asked for {url})")

    monkeypatch.setattr(sources, "fetch_url", refuse)


@pytest.fixture
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real dataset is visible: $SLIMKIT_DATA unset, cache and system dirs under tmp_path."""
    monkeypatch.delenv("SLIMKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIR", tmp_path / "system")
    return tmp_path


@pytest.fixture
def fake_idx_data(isolated_data_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tiny fashion-mnist and mnist IDX sets (60 train, 20 test, 28x28) under $SLIMKIT_DATA."""
    root = isolated_data_env / "data"
    for i, name in enumerate(sources.IDX_SOURCES):
        write_idx_dataset(root / name, seed=i)
    monkeypatch.setenv("SLIMKIT_DATA", str(root))
    return root


@pytest.fixture
def tiny_splits() -> DatasetSplits:
    """Synthetic 3-class 1x8x8 data: 108 train, 12 val, 30 test. Learnable in a few steps."""
    return load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=120, test_size=30)


@pytest.fixture
def require_fashion_mnist() -> dict[str, Path]:
    """Paths of the real Fashion-MNIST IDX files (keys as in ``IDX_FILES``).

    Skips when they are absent, unless SLIMKIT_REQUIRE_DATA=1, where absence is a failure
    (CI installs the data, so a silent skip there would hide a broken setup).
    """
    for directory in search_dirs("fashion-mnist"):
        if directory.is_dir():
            found, missing = idx_files_in(directory)
            if not missing:
                return found
    message = "Fashion-MNIST not found in: " + ", ".join(map(str, search_dirs("fashion-mnist")))
    if os.environ.get("SLIMKIT_REQUIRE_DATA") == "1":
        pytest.fail(message + " (SLIMKIT_REQUIRE_DATA=1 makes this a failure; "
                    "apt-get install dataset-fashion-mnist)")
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    # Tiny models on a shared 2-core machine: one intra-op thread avoids threads spin-waiting on
    # each other (tiny convolutions get up to 100x slower) and keeps results reproducible.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Every test starts on one thread, whatever the test before it set."""
    torch.set_num_threads(1)


# ------------------------------------------------------------------- fuzz case count
# Each fuzz test records ``fuzz_cases`` with ``record_property`` (tests/fuzzing.py); pytest, and
# pytest-xdist (which ships user properties back to the controller), hand them to this hook.
_FUZZ_CASES: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        for key, value in report.user_properties:
            if key == "fuzz_cases":
                _FUZZ_CASES[report.nodeid] = int(value)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line: how many generated cases every fuzz test ran, in all and per test folder."""
    if _FUZZ_CASES:
        areas: dict[str, int] = {}
        for nodeid, cases in _FUZZ_CASES.items():
            area = nodeid.split("::")[0].rsplit("/", 1)[0]
            areas[area] = areas.get(area, 0) + cases
        parts = ", ".join(f"{area} {cases}" for area, cases in sorted(areas.items()))
        terminalreporter.write_line(f"fuzz: {sum(_FUZZ_CASES.values())} generated cases in {len(_FUZZ_CASES)} tests "
                                    f"({parts}), each ending in success or a SlimkitError")
