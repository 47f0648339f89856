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

from slimkit.errors import CheckpointError, SlimkitError


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


#: JSON files slimkit reads back are refused above this size, before they are read (a run's
#: largest, metrics.json with per-layer tables and per-epoch histories, is a few hundred KB).
MAX_JSON_BYTES = 64 << 20
#: Deeper nesting than this is refused: slimkit writes at most about eight levels, and every
#: reader of the data recurses once per level.
MAX_JSON_DEPTH = 64


def read_json_checked(path: str | os.PathLike[str], *, what: str = "file", hint: str | None = None,
                      error: type[SlimkitError] = CheckpointError) -> Any:
    """The JSON in ``path``, read as untrusted data: present, at most :data:`MAX_JSON_BYTES`,
    UTF-8, valid JSON, at most :data:`MAX_JSON_DEPTH` levels deep. Any problem is one ``error``
    (default :class:`~slimkit.errors.CheckpointError`) naming the file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> _ = p.write_bytes(b'{"a": [1, 2]}'); read_json_checked(p)
    {'a': [1, 2]}
    >>> _ = p.write_bytes(b"[" * 100 + b"]" * 100); read_json_checked(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.CheckpointError: ...a.json: nested more than 64 levels deep
    """
    path = Path(path)

    def fail(problem: str) -> SlimkitError:
        return error(f"{path}: {problem}", hint=hint)

    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise fail(f"{size:,} bytes is too large for a slimkit {what} (at most {MAX_JSON_BYTES:,})")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"the {what} is missing") from None
    except OSError as exc:
        raise fail(f"cannot read the {what} ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise fail(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4300 digits
        raise fail(f"not valid JSON ({str(exc)[:160]})") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise fail(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def json_depth(data: Any) -> int:
    """Nesting depth of plain JSON data, measured without recursion.

    >>> json_depth(1), json_depth([]), json_depth({"a": [[1]]})
    (0, 1, 3)
    """
    deepest, todo = 0, [(data, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            todo.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


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
