"""Atomic file writes: a crash mid-write never leaves a half-written file behind.

Every write goes to a temporary file in the target's folder, is flushed to disk, and is then
renamed over the target with ``os.replace``: a reader (or a resume after a crash) sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    For writers that want a path (safetensors, ONNX exporters) rather than a file handle.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hi")
    >>> target.read_text()
    'hi'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())  # the data must be on disk before the rename makes it visible
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path.

    >>> import tempfile, pathlib
    >>> p = atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "a.bin", b"hi")
    >>> p.read_bytes(), [f.name for f in p.parent.iterdir()]
    (b'hi', ['a.bin'])
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """Plain JSON data: NaN and infinities become None (JSON has none), dict keys strings,
    tuples lists, tensors and numpy values numbers or lists; anything else its ``str``.

    >>> json_safe({1: [float("nan"), (1, 2.0)]})
    {'1': [None, [1, 2.0]]}
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # tensors, numpy arrays and scalars
        return json_safe(value.tolist())
    return str(value)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` (made :func:`json_safe`) as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically. Read it back with ``weights_only=True``.

    >>> import tempfile, pathlib
    >>> p = atomic_torch_save({"w": torch.ones(2)}, pathlib.Path(tempfile.mkdtemp()) / "x.pt")
    >>> torch.load(p, weights_only=True)["w"].tolist()
    [1.0, 1.0]
    """
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
