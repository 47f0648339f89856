"""IDX parsing: round trips and every kind of corrupted file."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

from slimkit.data import limits
from slimkit.data.idx import parse_idx, read_idx, read_idx_pair
from slimkit.errors import DataError


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, idx_writer, gz, dtype):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    path = idx_writer(tmp_path / "a-idx3-ubyte", array, gz=gz)
    out = read_idx(path)
    assert out.shape == (2, 3, 4)
    assert out.dtype.isnative and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, array)


def test_gzip_is_detected_by_content_not_name(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "labels.idx", np.array([3, 1], np.uint8), gz=True)
    assert read_idx(path).tolist() == [3, 1]


def test_result_is_read_only_and_rewritten_file_is_reread(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "l", np.array([1, 2, 3], np.uint8))
    first = read_idx(path)
    assert not first.flags.writeable
    idx_writer(path, np.array([7, 8, 9, 10], np.uint8))  # different size -> new cache key
    assert read_idx(path).tolist() == [7, 8, 9, 10]


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (b"\x00\x00", "too short for an IDX header"),
        (bytes([0x50, 0x4B, 3, 4, 0, 0, 0, 1, 5]), "bad IDX magic number 0x504b0304"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "bad IDX magic number 0x00000701"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0]), "truncated IDX header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 5, 6]), "truncated: header says shape (3,)"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 5, 6]), "has trailing bytes"),
    ],
)
def test_corrupted_bytes_raise_data_error_naming_file_and_fault(tmp_path, data, fault):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert fault in str(info.value)
    assert info.value.hint  # says how to fix it


def test_truncated_gzip_names_file(tmp_path, idx_writer):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    blob = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 200]) + bytes(200))
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupted gzip data.*truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(tmp_path / "nope")


def test_cut_file_written_by_helper_is_truncated(tmp_path, idx_writer):
    path = idx_writer(tmp_path / "x", np.zeros((4, 2, 2), np.uint8), gz=True, cut=3)
    with pytest.raises(DataError, match=r"truncated: header says shape \(4, 2, 2\) \(16 data bytes\).*13"):
        read_idx(path)


def test_pair_reads_matching_files(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "i", np.zeros((5, 3, 3), np.uint8))
    labels = idx_writer(tmp_path / "l", np.arange(5, dtype=np.uint8))
    x, y = read_idx_pair(images, labels, num_classes=10)
    assert x.shape == (5, 3, 3) and y.tolist() == [0, 1, 2, 3, 4]


def test_pair_count_mismatch_names_both_files(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "imgs", np.zeros((5, 3, 3), np.uint8))
    labels = idx_writer(tmp_path / "labs", np.arange(4, dtype=np.uint8))
    with pytest.raises(DataError, match="has 5 images but .*labs has 4 labels") as info:
        read_idx_pair(images, labels)
    assert str(images) in str(info.value)


def test_pair_swapped_files(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "imgs", np.zeros((5, 3, 3), np.uint8))
    labels = idx_writer(tmp_path / "labs", np.arange(5, dtype=np.uint8))
    with pytest.raises(DataError, match="expected 3-D images"):
        read_idx_pair(labels, images)


def test_pair_label_out_of_range(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "imgs", np.zeros((2, 3, 3), np.uint8))
    labels = idx_writer(tmp_path / "labs", np.array([1, 12], np.uint8))
    with pytest.raises(DataError, match=r"labs: label 12 is outside 0..9"):
        read_idx_pair(images, labels, num_classes=10)


def test_parse_names_source():
    with pytest.raises(DataError, match="^somefile: too short"):
        parse_idx(b"", source="somefile")


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (bytes([0, 0, 8, 40]) + bytes(160), "40 dimensions; at most 16"),
        # Dimensions whose product wraps around in int64 arithmetic to the 4 bytes that follow.
        (bytes([0, 0, 8, 4]) + (2**16).to_bytes(4, "big") * 4 + bytes(4), "truncated: header says shape"),
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 2]) + np.array([1.0, 2.0], ">f4").tobytes(), None),
        # Empty, yet numpy could not even describe it: refused, not a raw ValueError.
        (bytes([0, 0, 8, 4, 0, 0, 0, 0]) + (2**24).to_bytes(4, "big") * 3, r"spans 10\^21 elements"),
    ],
)
def test_headers_are_checked_with_exact_arithmetic(tmp_path, data, fault):
    path = tmp_path / "x-idx"
    path.write_bytes(data)
    if fault is None:
        assert read_idx(path).tolist() == [1.0, 2.0]
        return
    with pytest.raises(DataError, match=fault):
        read_idx(path)


def test_gzip_is_never_inflated_past_what_the_header_announces(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(_gz(bytes([0, 0, 8, 1, 0, 0, 0, 4]) + bytes(10**7)))  # 10 MB of zeros, 10 KB on disk
    start = time.perf_counter()
    with pytest.raises(DataError, match="has trailing bytes"):
        read_idx(bomb)
    assert time.perf_counter() - start < 0.5
    claims = tmp_path / "claims.gz"
    claims.write_bytes(_gz(bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2))
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 1000)
    with pytest.raises(DataError, match=r"claims.gz: shape \(60000, 28, 28\) spans 47040000 elements; at most 1000"):
        read_idx(claims)


def test_gzip_trailing_garbage_is_refused_but_zero_padding_is_fine(tmp_path):
    good = _gz(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    (tmp_path / "padded.gz").write_bytes(good + bytes(16))
    assert read_idx(tmp_path / "padded.gz").tolist() == [7, 9]
    (tmp_path / "junk.gz").write_bytes(good + b"junk")
    with pytest.raises(DataError, match="junk.gz: has data after the end of its gzip stream"):
        read_idx(tmp_path / "junk.gz")


def test_pair_refuses_float_labels_and_non_finite_images(tmp_path, idx_writer):
    images = idx_writer(tmp_path / "i", np.zeros((2, 2, 2), np.float32))
    labels = idx_writer(tmp_path / "l", np.array([0.0, 1.0], np.float32))
    with pytest.raises(DataError, match="labels must be integers"):
        read_idx_pair(images, labels)
    nan_images = idx_writer(tmp_path / "n", np.full((2, 2, 2), np.nan, np.float32))
    with pytest.raises(DataError, match="images hold NaN or infinite values"):
        read_idx_pair(nan_images, idx_writer(tmp_path / "l2", np.array([0, 1], np.uint8)))
