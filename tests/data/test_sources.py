"""Where IDX datasets are looked for, and the (faked) download path."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from slimkit.data import load_dataset, locate_idx, search_dirs, sources
from slimkit.data.sources import IDX_FILES, IdxSource, cache_dir, download_idx
from slimkit.errors import DataError


def test_search_order(isolated_data_env, monkeypatch):
    tmp = isolated_data_env
    monkeypatch.setenv("SLIMKIT_DATA", str(tmp / "env"))
    assert search_dirs("mnist", tmp / "root") == [
        tmp / "root", tmp / "root" / "mnist", tmp / "env" / "mnist",
        tmp / "cache" / "slimkit" / "mnist", tmp / "system" / "mnist",
    ]


def test_cache_dir_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir("fashion-mnist") == tmp_path / ".cache" / "slimkit" / "fashion-mnist"


@pytest.mark.parametrize("winner", ["root", "root_sub", "env", "cache", "system"])
def test_lookup_takes_first_place_holding_all_files(isolated_data_env, monkeypatch, idx_dataset_writer, winner):
    tmp = isolated_data_env
    monkeypatch.setenv("SLIMKIT_DATA", str(tmp / "env"))
    places = {
        "root": tmp / "root",
        "root_sub": tmp / "root" / "mnist",
        "env": tmp / "env" / "mnist",
        "cache": tmp / "cache" / "slimkit" / "mnist",
        "system": tmp / "system" / "mnist",
    }
    order = list(places)
    # Every place after the winner also holds a complete set; the winner must still be chosen.
    for key in order[order.index(winner):]:
        idx_dataset_writer(places[key])
    files = locate_idx("mnist", root=tmp / "root", download=False)
    assert {p.parent for p in files.values()} == {places[winner]}


def test_plain_files_preferred_over_gz(tmp_path, idx_dataset_writer):
    idx_dataset_writer(tmp_path, gz=True)
    idx_dataset_writer(tmp_path, gz=False)
    files = locate_idx("mnist", root=tmp_path, download=False)
    assert all(p.suffix != ".gz" for p in files.values())


def test_missing_everywhere_lists_every_place_and_how_to_get_files(isolated_data_env, monkeypatch, idx_writer):
    tmp = isolated_data_env
    monkeypatch.setenv("SLIMKIT_DATA", str(tmp / "env"))
    partial = tmp / "system" / "fashion-mnist"
    idx_writer(partial / "train-images-idx3-ubyte.gz", np.zeros((1, 2, 2), np.uint8), gz=True)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", root=tmp / "r", download=False)
    text = str(info.value)
    for place in search_dirs("fashion-mnist", tmp / "r"):
        assert str(place) in text
    assert "no such directory" in text
    assert f"{partial}: missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte" in text
    assert "apt-get install dataset-fashion-mnist" in info.value.hint
    assert "SLIMKIT_DATA" in info.value.hint and "download=True" in info.value.hint


def _serve(idx_dataset_writer, tmp_path, monkeypatch, *, corrupt: str | None = None):
    """Fake the mnist source with local gz files; return the list of fetched URLs."""
    local = idx_dataset_writer(tmp_path / "served", gz=True)
    blobs = {f"{stem}.gz": (local / f"{stem}.gz").read_bytes() for stem in IDX_FILES.values()}
    md5 = {name: hashlib.md5(blob).hexdigest() for name, blob in blobs.items()}
    monkeypatch.setitem(sources.IDX_SOURCES, "mnist", IdxSource("https://example.invalid/mnist/", md5, "n/a"))
    fetched: list[str] = []

    def fetch(url: str, **_: object) -> bytes:
        fetched.append(url)
        name = url.rsplit("/", 1)[1]
        return blobs[name][:-10] if name == corrupt else blobs[name]

    monkeypatch.setattr(sources, "fetch_url", fetch)
    return fetched


def test_download_writes_checked_files_to_cache(isolated_data_env, monkeypatch, idx_dataset_writer):
    fetched = _serve(idx_dataset_writer, isolated_data_env, monkeypatch)
    d = load_dataset("mnist", limit=5)  # download=True by default
    assert d.sizes() == {"train": 5, "val": 5, "test": 5}
    target = cache_dir("mnist")
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{s}.gz" for s in IDX_FILES.values())
    assert len(fetched) == 4 and all(u.startswith("https://example.invalid/mnist/") for u in fetched)
    # Second call finds the cached files and fetches nothing.
    load_dataset("mnist", limit=5)
    assert len(fetched) == 4


def test_download_skips_files_already_present(isolated_data_env, monkeypatch, idx_dataset_writer):
    fetched = _serve(idx_dataset_writer, isolated_data_env, monkeypatch)
    download_idx("mnist")
    download_idx("mnist")
    assert len(fetched) == 4


def test_checksum_mismatch_raises_and_writes_nothing(isolated_data_env, monkeypatch, idx_dataset_writer):
    _serve(idx_dataset_writer, isolated_data_env, monkeypatch, corrupt="t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=r"checksum mismatch for https://example.invalid/mnist/t10k-images") as info:
        load_dataset("mnist")
    assert "searched before downloading" in str(info.value)
    written = sorted(p.name for p in cache_dir("mnist").iterdir())
    assert "t10k-images-idx3-ubyte.gz" not in written
    assert not [n for n in written if n.endswith(".part")]  # no temporary leftovers


def test_network_failure_is_a_data_error(isolated_data_env, monkeypatch):
    def broken(url: str, **_: object) -> bytes:
        raise OSError("network unreachable")

    monkeypatch.setattr(sources, "fetch_url", broken)
    with pytest.raises(DataError, match="download of http://fashion-mnist.*failed.*network unreachable") as info:
        load_dataset("fashion-mnist")
    assert "apt-get install dataset-fashion-mnist" in info.value.hint


def test_tests_never_download(isolated_data_env):
    with pytest.raises(DataError, match="tests never download"):
        load_dataset("mnist")


def test_unknown_download_source():
    with pytest.raises(DataError, match="no download source"):
        download_idx("digits")


def test_published_checksums_are_md5_hex():
    for source in sources.IDX_SOURCES.values():
        assert sorted(source.md5) == sorted(f"{s}.gz" for s in IDX_FILES.values())
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in source.md5.values())


def test_gz_helper_round_trips(tmp_path, idx_dataset_writer):
    d = idx_dataset_writer(tmp_path, gz=True, n_train=3)
    assert gzip.decompress((d / "train-labels-idx1-ubyte.gz").read_bytes())[:4] == bytes([0, 0, 8, 1])


@pytest.mark.parametrize("place", ["env", "root"])
def test_a_chosen_folder_missing_a_file_is_an_error_not_a_fallback(isolated_data_env, monkeypatch,
                                                                   idx_dataset_writer, place):
    tmp = isolated_data_env
    monkeypatch.setenv("SLIMKIT_DATA", str(tmp / "env"))
    idx_dataset_writer(tmp / "system" / "mnist")  # a complete copy further down must not be used
    chosen = tmp / "env" / "mnist" if place == "env" else tmp / "root"
    idx_dataset_writer(chosen)
    (chosen / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"holds .* but not t10k-labels-idx1-ubyte \(plain or .gz\)") as info:
        locate_idx("mnist", root=tmp / "root" if place == "root" else None, download=False)
    assert str(chosen) in str(info.value) and "add the missing file" in info.value.hint


def test_a_partial_cache_still_falls_back_to_the_system_copy(isolated_data_env, idx_dataset_writer):
    tmp = isolated_data_env
    idx_dataset_writer(tmp / "system" / "mnist")
    cache = idx_dataset_writer(tmp / "cache" / "slimkit" / "mnist")
    (cache / "train-images-idx3-ubyte.gz").unlink()  # an interrupted download
    files = locate_idx("mnist", download=False)
    assert {p.parent for p in files.values()} == {tmp / "system" / "mnist"}
