"""Caps on sizes read from files, checked before anything is allocated.

A corrupt or hostile file can claim any shape in a few bytes; these limits turn "allocate
40 TB" into a one-line DataError. They sit far above any dataset slimkit holds in memory, and
are module attributes (read at call time) so a user with a bigger machine, or a test, can
raise or lower them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from slimkit.errors import DataError

#: Elements in one array (2**31: 8 GiB as float32).
MAX_ELEMENTS = 2**31
#: Bytes of one decoded file (IDX data, one .npz member).
MAX_FILE_BYTES = 2**34
#: Classes in one dataset; labels are checked against it before any per-class list exists.
MAX_CLASSES = 100_000
#: Pixels in one image of an image folder (about 8192 x 4096), checked from the header before decoding.
MAX_IMAGE_PIXELS = 2**25
#: Dimensions of one array; numpy itself stops at 64.
MAX_DIMS = 16


def check_shape(shape: Sequence[int], what: str, *, hint: str | None = None) -> int:
    """Raise DataError unless ``shape`` is a plausible array shape; return its element count.

    >>> check_shape((60000, 28, 28), "x")
    47040000
    >>> check_shape((10**9, 10**9), "x.npy")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.DataError: x.npy: shape (1000000000, 1000000000) spans 10^18 elements; at most 2147483648 ...
    """
    shape = tuple(shape)
    if len(shape) > MAX_DIMS:
        raise DataError(f"{what}: {len(shape)} dimensions; at most {MAX_DIMS} are supported", hint=hint)
    if any(d < 0 for d in shape):
        raise DataError(f"{what}: shape {shape} has a negative size", hint=hint)
    # Python ints: no silent overflow, whatever the header says. Empty dimensions count as 1,
    # because numpy refuses (0, 2**24, 2**24, 2**24) as firmly as the full shape.
    span = math.prod(max(d, 1) for d in shape)
    if span > MAX_ELEMENTS:
        raise DataError(
            f"{what}: shape {shape} spans {_magnitude(span)} elements; at most {MAX_ELEMENTS} are supported",
            hint=hint or "the file is corrupted, or too large to hold in memory: pass a torch Dataset from Python",
        )
    return math.prod(shape)


def _magnitude(n: int) -> str:
    # Exact below a billion, a power of ten above: a header may claim 10^300 elements.
    return str(n) if n < 10**9 else f"10^{len(str(n)) - 1}"
