"""Read the arrays of an .npz file safely: no unpickling, and no allocation a header did not earn.

``numpy.load`` allocates the shape an .npy header announces before it reads the data, so a
few hundred bytes can ask for terabytes. Here each member's header is read first and checked
(dtype, dimensions, element count against :mod:`slimkit.data.limits`, and the data size
against the size the zip directory records, which zipfile enforces while decompressing);
only then is the member read.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from slimkit.data import limits
from slimkit.errors import DataError

# Raised by zipfile and numpy's header parser on damaged or unusual archives.
_ARCHIVE_FAULTS = (
    zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, struct.error,
    NotImplementedError, RuntimeError, OverflowError, UnicodeDecodeError, SyntaxError,
)
_HEADER_LIMIT = 10_000  # bytes of one .npy header, numpy's own default


def read_npz(path: str | os.PathLike[str], keys: tuple[str, ...], *, hint: str | None = None) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the .npz at ``path`` that it holds, each checked before it is read.

    Other members are neither read nor decompressed. Object arrays are refused (they would
    need unpickling). Every fault is a DataError naming the file and the member.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(p, x=np.zeros((2, 3)), y=np.arange(2), other=np.ones(4))
    >>> {k: v.shape for k, v in read_npz(p, ("x", "y", "z")).items()}
    {'x': (2, 3), 'y': (2,)}
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                if key in keys and (key not in members or info.filename.endswith(".npy")):
                    members[key] = info
            return {key: _read_member(archive, members[key], f"{path}: {members[key].filename}", hint)
                    for key in keys if key in members}
    except _ARCHIVE_FAULTS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable .npz file ({detail})", hint=hint) from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str, hint: str | None) -> np.ndarray:
    with archive.open(info) as handle:
        dtype, shape, fortran, header_size = _read_header(handle, what)
        count = limits.check_shape(shape, what)
        nbytes = count * dtype.itemsize
        if nbytes > limits.MAX_FILE_BYTES:
            raise DataError(f"{what}: {nbytes} data bytes, more than the {limits.MAX_FILE_BYTES} allowed", hint=hint)
        if info.file_size != header_size + nbytes:
            raise DataError(
                f"{what}: header says shape {shape} of {dtype} ({nbytes} data bytes) but the member holds "
                f"{info.file_size - header_size}; the file is corrupted",
                hint=hint,
            )
        data = handle.read(nbytes)  # zipfile stops at file_size and checks the CRC at the end
        if len(data) != nbytes or handle.read(1):
            raise DataError(f"{what}: holds {len(data)} data bytes, expected {nbytes}; the file is corrupted",
                            hint=hint)
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    # Native byte order, so torch.from_numpy accepts the array later.
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def _read_header(handle: IO[bytes], what: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle, max_header_size=_HEADER_LIMIT)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle, max_header_size=_HEADER_LIMIT)
    else:
        raise DataError(f"{what}: .npy format version {version} is not supported (1.0 and 2.0 are)",
                        hint="save plain numeric or string arrays with numpy.savez")
    if dtype.hasobject:
        raise DataError(f"{what}: holds Python objects, which slimkit never unpickles",
                        hint="save numeric or string arrays (not dtype=object)")
    if dtype.kind not in "biufcUS":
        raise DataError(f"{what}: dtype {dtype} is not supported; use numeric or string arrays",
                        hint="save plain arrays with numpy.savez")
    return dtype, tuple(int(d) for d in shape), bool(fortran), handle.tell()
