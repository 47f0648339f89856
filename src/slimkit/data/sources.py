"""Where IDX datasets live on disk, and how they are fetched when they are nowhere.

Lookup order: the explicit ``root`` (itself, then ``root/<name>``), ``$SLIMKIT_DATA/<name>``,
the user cache (``$XDG_CACHE_HOME/slimkit/<name>`` or ``~/.cache/slimkit/<name>``), then
``/usr/share/datasets/<name>`` where Debian's ``dataset-*`` packages install them. Downloads
go to the user cache, are checked against the published MD5s, and are written atomically
so an interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from slimkit.errors import DataError

# The four files of an IDX dataset, by role; each may also carry a ".gz" suffix.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Module-level so tests can point it at a temporary directory.
SYSTEM_DATA_DIR = Path("/usr/share/datasets")


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset is published, with the MD5 of each gzipped file."""

    base_url: str
    md5: dict[str, str]
    install_hint: str


IDX_SOURCES: dict[str, IdxSource] = {
    "fashion-mnist": IdxSource(
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        install_hint="on Debian/Ubuntu: apt-get install dataset-fashion-mnist",
    ),
    "mnist": IdxSource(
        base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        install_hint="copy the four MNIST IDX files from a machine that has them",
    ),
}


def cache_dir(name: str) -> Path:
    """The user cache directory for dataset ``name`` (not created).

    >>> cache_dir("mnist").parts[-2:]
    ('slimkit', 'mnist')
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slimkit" / name


def search_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every directory searched for dataset ``name``, in lookup order.

    >>> search_dirs("mnist", "/data")[:2]
    [PosixPath('/data'), PosixPath('/data/mnist')]
    """
    dirs = [*explicit_dirs(name, root), cache_dir(name), SYSTEM_DATA_DIR / name]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def explicit_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories the user chose (``root`` and ``$SLIMKIT_DATA``), where a partial set of
    files is an error rather than a reason to look further.

    >>> explicit_dirs("mnist", "/data")[:2]
    [PosixPath('/data'), PosixPath('/data/mnist')]
    """
    dirs = [Path(root), Path(root) / name] if root is not None else []
    if os.environ.get("SLIMKIT_DATA"):
        dirs.append(Path(os.environ["SLIMKIT_DATA"]) / name)
    return dirs


def idx_files_in(directory: Path) -> tuple[dict[str, Path], list[str]]:
    """Find the four IDX files in one directory: ``(found by role, missing file names)``."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stem in IDX_FILES.items():
        # Uncompressed first: it loads faster when someone has unpacked the files.
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(stem)
    return found, missing


def locate_idx(
    name: str, *, root: str | os.PathLike[str] | None = None, download: bool = True
) -> dict[str, Path]:
    """Return the paths of the four IDX files of ``name`` (keys: ``IDX_FILES``).

    Searches :func:`search_dirs` in order. A directory the user chose (``root``,
    ``$SLIMKIT_DATA``) that holds some of the files but not all is a DataError naming the
    missing ones, never a silent fall-back to another copy. If no directory holds all four files and
    ``download`` is true (and the dataset has a known source), downloads them into the
    cache. Otherwise raises DataError listing every place searched and how to get the files.
    """
    report: list[str] = []
    chosen = explicit_dirs(name, root)
    for directory in search_dirs(name, root):
        if not directory.is_dir():
            report.append(f"  {directory}: no such directory")
            continue
        found, missing = idx_files_in(directory)
        if not missing:
            return found
        if found and directory in chosen:
            # The user pointed here: another copy found further down might be another version.
            raise DataError(
                f"{name}: {directory} holds {', '.join(p.name for p in found.values())} but not "
                f"{', '.join(missing)} (plain or .gz)",
                hint=f"add the missing file(s) to {directory}, or move the folder away to use another copy",
            )
        report.append(f"  {directory}: missing {', '.join(missing)} (plain or .gz)")
    source = IDX_SOURCES.get(name)
    if download and source is not None:
        try:
            download_idx(name)
        except DataError as exc:
            raise DataError(
                f"{exc.args[0]}\nsearched before downloading:\n" + "\n".join(report),
                hint=exc.hint,
            ) from None
        return idx_files_in(cache_dir(name))[0]
    how = [
        f"put {', '.join(IDX_FILES.values())} (plain or .gz) in one of those directories",
        f"or set $SLIMKIT_DATA to a folder holding a '{name}' subfolder, or pass root=",
    ]
    if source is not None:
        how.insert(0, source.install_hint)
        how.append(f"or allow download=True to fetch them from {source.base_url}")
    raise DataError(
        f"{name}: IDX files not found; searched:\n" + "\n".join(report),
        hint="; ".join(how),
    )


def fetch_url(url: str, *, timeout: float = 60.0) -> bytes:
    """Fetch ``url`` with urllib and return its bytes (tests replace this function)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def md5_hex(data: bytes) -> str:
    """MD5 hex digest, used only to check downloads against the published checksums.

    >>> md5_hex(b"")
    'd41d8cd98f00b204e9800998ecf8427e'
    """
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download_idx(name: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Download the four gzipped IDX files of ``name`` into ``dest`` (default: the cache).

    Each file is checked against its published MD5 before it is written, and written to a
    temporary file then renamed, so a failed or interrupted download leaves nothing behind
    that a later lookup would take for a complete file. Files already present with the
    right checksum are not fetched again. Returns the directory.
    """
    source = IDX_SOURCES.get(name)
    if source is None:
        raise DataError(
            f"{name}: no download source is known",
            hint=f"datasets that can be downloaded: {', '.join(sorted(IDX_SOURCES))}",
        )
    target = Path(dest) if dest is not None else cache_dir(name)
    target.mkdir(parents=True, exist_ok=True)
    for filename, expected in source.md5.items():
        path = target / filename
        if path.is_file() and md5_hex(path.read_bytes()) == expected:
            continue
        url = source.base_url + filename
        try:
            data = fetch_url(url)
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(
                f"{name}: download of {url} failed ({exc})",
                hint=f"check the network, or get the files another way: {source.install_hint}",
            ) from None
        got = md5_hex(data)
        if got != expected:
            raise DataError(
                f"{name}: checksum mismatch for {url}: md5 {got}, expected {expected}; "
                "nothing was written",
                hint="the download was corrupted or the server changed; try again later",
            )
        _write_atomic(path, data)
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
