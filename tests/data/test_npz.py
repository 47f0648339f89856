"""The safe .npz reader and label checks: sizes and labels checked before anything large exists."""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest

from slimkit.data import limits, load_npz
from slimkit.data.custom import encode_labels
from slimkit.data.npz import read_npz
from slimkit.errors import DataError


def _npy(array: np.ndarray | None = None, *, header: dict | None = None, data: bytes = b"") -> bytes:
    """An .npy member: a real array, or a hand-written ``header`` followed by ``data``."""
    out = io.BytesIO()
    if header is None:
        np.save(out, array)
    else:
        np.lib.format.write_array_header_1_0(out, header)
        out.write(data)
    return out.getvalue()


def _write(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    return path


def test_a_huge_label_is_a_data_error_at_once(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((3, 4), np.float32), y=np.array([0, 1, 10**9]))
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"labels.npz: label 1000000000 means 1000000001 classes; at most 100000"):
        load_npz(path)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("labels", "names", "match"),
    [
        (np.array([0, 12]), ["a", "b"], r"label 12 is outside 0..1 \(2 class names\)"),
        (np.array([2**64 - 1], dtype=np.uint64), None, "label 18446744073709551615 means"),
        (np.array([1e300]), None, "labels must be integers or strings"),
        (np.array([0.0, np.nan]), None, "labels must be integers or strings"),
        (np.array(["a", "b", "c"]), ["x", "y"], "3 distinct labels but 2 class names"),
    ],
)
def test_labels_are_checked_against_the_classes(labels, names, match):
    with pytest.raises(DataError, match=match):
        encode_labels(labels, "d", num_names=None if names is None else len(names))


def test_too_many_distinct_string_labels(monkeypatch):
    monkeypatch.setattr(limits, "MAX_CLASSES", 3)
    with pytest.raises(DataError, match="4 distinct labels; at most 3 classes"):
        encode_labels(np.array(list("abcd")), "d")


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}, b"", r"spans 10\^12 elements"),
        ({"descr": "<f8", "fortran_order": False, "shape": (2**40,) * 8}, b"", r"spans 10\^96 elements"),
        ({"descr": "<f8", "fortran_order": False, "shape": (1000, 1000)}, bytes(16),
         r"header says shape \(1000, 1000\) of float64 \(8000000 data bytes\) but the member holds 16"),
        ({"descr": "<u1", "fortran_order": False, "shape": (1,) * 40}, b"\0", "40 dimensions; at most 16"),
        ({"descr": "|O", "fortran_order": False, "shape": (2,)}, b"", "holds Python objects"),
        ({"descr": [("a", "<i4")], "fortran_order": False, "shape": (2,)}, bytes(8), "is not supported"),
    ],
)
def test_absurd_headers_are_refused_before_allocation(tmp_path, header, data, match):
    path = _write(tmp_path / "bad.npz", {"x.npy": _npy(header=header, data=data), "y.npy": _npy(np.zeros(2))})
    start = time.perf_counter()
    with pytest.raises(DataError, match=match) as info:
        load_npz(path)
    assert time.perf_counter() - start < 0.5
    assert "bad.npz: x.npy" in info.value.args[0]


def test_compressed_member_lying_about_its_size_is_refused(tmp_path):
    path = _write(tmp_path / "z.npz", {"x.npy": _npy(np.zeros((4, 3))), "y.npy": _npy(np.zeros(4))},
                  compression=zipfile.ZIP_DEFLATED)
    blob = bytearray(path.read_bytes())
    # Make the central directory claim a smaller uncompressed size for x.npy.
    offset = blob.rfind(b"PK\x01\x02", 0, blob.rfind(b"y.npy"))
    size_at = offset + 24
    blob[size_at:size_at + 4] = (int.from_bytes(blob[size_at:size_at + 4], "little") - 8).to_bytes(4, "little")
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="z.npz"):
        load_npz(path)


def test_only_known_members_are_read(tmp_path):
    path = _write(tmp_path / "d.npz", {"x.npy": _npy(np.ones((6, 2), np.float32)), "y.npy": _npy(np.arange(6) % 2),
                                       "junk.npy": b"corrupt bytes that are never read"})
    assert load_npz(path).input_shape == (1, 1, 2)
    assert sorted(read_npz(path, ("x", "y", "absent"))) == ["x", "y"]


def test_big_endian_fortran_and_unusual_dtypes_load(tmp_path):
    x = np.asfortranarray(np.arange(60, dtype=">f8").reshape(10, 6))
    path = tmp_path / "be.npz"
    np.savez(path, x=x, y=(np.arange(10) % 2).astype(">u4"))
    arrays = read_npz(path, ("x", "y"))
    assert arrays["x"].dtype.isnative and np.array_equal(arrays["x"], x)
    splits = load_npz(path, val_fraction=0.0, test_fraction=0.0)
    assert splits.num_classes == 2 and len(splits.train) == 10
    np.savez(tmp_path / "u32.npz", x=np.arange(40, dtype=np.uint32).reshape(10, 4), y=np.arange(10) % 2)
    assert load_npz(tmp_path / "u32.npz").input_shape == (1, 1, 4)


def test_non_finite_inputs_and_bad_class_names_are_refused(tmp_path):
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0, np.nan]] * 4), y=np.arange(4) % 2)
    with pytest.raises(DataError, match="nan.npz: x holds NaN or infinite values"):
        load_npz(tmp_path / "nan.npz")
    np.savez(tmp_path / "names.npz", x=np.zeros((4, 2)), y=np.arange(4) % 2, class_names=np.zeros((2, 2)))
    with pytest.raises(DataError, match="class_names must be a 1-D array of strings"):
        load_npz(tmp_path / "names.npz")
    np.savez(tmp_path / "huge.npz", x=np.full((4, 2), 1e300), y=np.arange(4) % 2)
    with pytest.raises(DataError, match="too large to normalize"):
        load_npz(tmp_path / "huge.npz")
