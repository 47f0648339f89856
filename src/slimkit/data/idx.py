"""Read the IDX format of MNIST and Fashion-MNIST, gzipped or not, with numpy.frombuffer.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of
dimensions), one big-endian uint32 per dimension, then the values, big-endian, row-major.
Every fault is reported as a DataError naming the file, because a half-downloaded file is
the usual cause and the fix (delete it, fetch it again) depends on which file it is.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from pathlib import Path

import numpy as np

from slimkit.data import limits
from slimkit.errors import DataError

# IDX dtype codes from the format's definition (yann.lecun.com/exdb/mnist).
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
IDX_DTYPES_NP = {code: np.dtype(name) for code, name in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_REFETCH = "delete the file and download it again (or reinstall the dataset package)"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzip, judged by content, not by name) into a numpy array.

    The result is read-only and may be shared between calls: files are cached by path,
    size and modification time, because recipes load the same dataset in several stages.
    The header is checked against the file size (and against :mod:`slimkit.data.limits`)
    before anything is allocated or decompressed, so a corrupt header or a gzip bomb is a
    DataError, not an out-of-memory crash.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 4]))
    >>> read_idx(p).tolist()
    [7, 1, 4]
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from None
    return _read_idx_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    del mtime_ns  # only part of the cache key: a rewritten file is read again
    if size > limits.MAX_FILE_BYTES:
        raise DataError(f"{path}: {size} bytes, more than the {limits.MAX_FILE_BYTES} an IDX file may have",
                        hint=_REFETCH)
    array = parse_idx(_read_bytes(Path(path)), source=path)
    array.flags.writeable = False  # cached arrays are shared; nobody may change them
    return array


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from None
    return _gunzip(raw, str(path)) if raw.startswith(_GZIP_MAGIC) else raw


def _gunzip(raw: bytes, source: str) -> bytes:
    """Decompress a gzipped IDX file, never producing more bytes than its header announces."""
    stream = _Inflater(raw, source)
    head = stream.pull(4)
    if len(head) == 4 and head[3] <= limits.MAX_DIMS:
        head += stream.pull(4 * head[3])
    _, shape, header = parse_header(head, source=source)  # raises on a bad or truncated header
    total = header + limits.check_shape(shape, source, hint=_REFETCH) * IDX_DTYPES_NP[head[2]].itemsize
    if total > limits.MAX_FILE_BYTES:
        raise DataError(f"{source}: header says shape {shape}, {total} bytes, more than the "
                        f"{limits.MAX_FILE_BYTES} an IDX file may have", hint=_REFETCH)
    data = head + stream.pull(total - len(head) + 1)  # one byte more reveals trailing data
    if len(data) == total:
        stream.finish()
    return data  # parse_idx names a size mismatch


class _Inflater:
    """A gzip stream decompressed on demand, at most as many bytes as asked for."""

    def __init__(self, raw: bytes, source: str) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = raw
        self._source = source

    def pull(self, n: int) -> bytes:
        out = bytearray()
        try:
            while len(out) < n and not self._z.eof:
                chunk = self._z.decompress(self._tail, n - len(out))
                self._tail = self._z.unconsumed_tail
                if not chunk and not self._tail:
                    break  # input exhausted before the end of the stream
                out += chunk
        except zlib.error as exc:
            raise DataError(f"{self._source}: corrupted gzip data ({exc}); the file is probably truncated",
                            hint=_REFETCH) from None
        if len(out) < n and not self._z.eof:
            raise DataError(f"{self._source}: corrupted gzip data (the stream stops early); the file is "
                            "probably truncated", hint=_REFETCH)
        return bytes(out)

    def finish(self) -> None:
        """Raise unless the gzip stream ended (its CRC checked) with nothing but padding after it."""
        if not self._z.eof:
            raise DataError(f"{self._source}: corrupted gzip data (the stream does not end); "
                            "the file is probably truncated", hint=_REFETCH)
        if self._z.unused_data.strip(b"\0"):
            raise DataError(f"{self._source}: has data after the end of its gzip stream", hint=_REFETCH)


def parse_header(data: bytes, *, source: str = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """Read an IDX header: ``(dtype, shape, header length in bytes)``; DataError when it is bad.

    >>> parse_header(bytes([0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 4]))
    (dtype('uint8'), (3, 4), 12)
    """
    if len(data) < 4:
        raise DataError(
            f"{source}: too short for an IDX header ({len(data)} bytes; need at least 4)",
            hint=_REFETCH,
        )
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or code not in IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{source}: bad IDX magic number 0x{magic:08x} (expected 0x00000801 for labels, "
            f"0x00000803 for images); this is not an IDX file or it is corrupted",
            hint=_REFETCH,
        )
    if ndim > limits.MAX_DIMS:
        raise DataError(f"{source}: IDX header says {ndim} dimensions; at most {limits.MAX_DIMS} are supported",
                        hint=_REFETCH)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{source}: truncated IDX header ({len(data)} bytes; {ndim} dimensions need {header})",
            hint=_REFETCH,
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return IDX_DTYPES_NP[code], shape, header


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (already decompressed); ``source`` names the file in errors.

    >>> parse_idx(bytes([0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 2, 5, 6])).tolist()
    [[5, 6]]
    >>> parse_idx(bytes([1, 2, 3, 4]), source="x.idx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.DataError: x.idx: bad IDX magic number 0x01020304 ...
    """
    dtype, shape, header = parse_header(data, source=source)
    # Exact Python-int arithmetic: a header whose product overflows int64 cannot sneak past.
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        fault = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{source}: {fault}: header says shape {shape} ({expected} data bytes) "
            f"but the file holds {found} data bytes",
            hint=_REFETCH,
        )
    limits.check_shape(shape, source, hint=_REFETCH)
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # Native byte order so torch.from_numpy accepts it; a no-op copy-free view for uint8.
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def read_idx_pair(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image (N,H,W) and label (N,) IDX files and check they agree.

    Raises DataError naming the file when the dimensions are wrong, when the image and
    label counts disagree, or when a label is outside ``range(num_classes)``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "i").write_bytes(bytes([0, 0, 8, 3] + [0, 0, 0, 1] * 3 + [9]))
    >>> _ = (d / "l").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 2]))
    >>> x, y = read_idx_pair(d / "i", d / "l")
    >>> x.shape, y.tolist()
    ((1, 1, 1), [2])
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(
            f"{images_path}: expected 3-D images (count, height, width), got shape {images.shape}",
            hint="check that image and label files are not swapped",
        )
    if labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected 1-D labels, got shape {labels.shape}",
            hint="check that image and label files are not swapped",
        )
    if labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: labels must be integers, got IDX dtype {labels.dtype}",
                        hint="check that image and label files are not swapped; " + _REFETCH)
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise DataError(f"{images_path}: images hold NaN or infinite values", hint=_REFETCH)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "the counts must match",
            hint="one of the files is from another dataset or split; " + _REFETCH,
        )
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.max() if labels.max() >= num_classes else labels.min())
        raise DataError(
            f"{labels_path}: label {bad} is outside 0..{num_classes - 1}",
            hint=_REFETCH,
        )
    return images, labels
