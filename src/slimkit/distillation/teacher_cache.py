"""Teacher outputs computed once and looked up by sample index, in memory or on disk.

With a deterministic data pipeline a frozen teacher gives the same outputs every epoch, so
offline KD need not run it more than once. ``with_indices(loader)`` (in ``batches.py``) makes
batches carry each sample's index, and ``TeacherCache.lookup(idx)`` returns the teacher's
logits and features for exactly those samples: no teacher forward pass during training.

A disk cache is a safetensors file per teacher whose name is keyed by what it caches (teacher
architecture, dataset length, feature paths, view). Its metadata holds the cache format version,
digests of the teacher's weights and of the data, and a checksum of the stored tensors. Any
mismatch (retrained teacher, changed data, other version, shapes, corruption) is logged and the
outputs are recomputed: a stale cache is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from slimkit.distillation.batches import IndexedDataset
from slimkit.distillation.hooks import FeatureCapture
from slimkit.distillation.losses.base import Outputs
from slimkit.errors import DataError, ModelError
from slimkit.fileio import atomic_write_bytes
from slimkit.modelio import call, logits_of, map_floats, split, tensors, to_device

#: Bump when the stored layout or the meaning of the digests changes: old files get recomputed.
CACHE_VERSION = 1
log = logging.getLogger("slimkit.distillation")


def digest(tensors: Iterable[tuple[str, Tensor]], *extra: Any) -> str:
    """A hex digest of named tensors (names, dtypes, shapes and bytes) and extra JSON-able values.

    >>> digest([("a", torch.zeros(2))]) == digest([("a", torch.zeros(2))]) != digest([("a", torch.ones(2))])
    True
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    for name, tensor in tensors:
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def data_digest(dataset: Dataset, samples: int = 256) -> str:
    """Digest of a dataset: every tensor of a (subset of a) TensorDataset, otherwise its length
    and ``samples`` evenly spaced items."""
    if isinstance(dataset, IndexedDataset):
        dataset = dataset.dataset
    tensors = _dataset_tensors(dataset)
    n = len(dataset)  # type: ignore[arg-type]
    if tensors is None:
        picks = sorted({int(i) for i in np.linspace(0, n - 1, num=min(samples, n))}) if n else []
        items = [(f"{i}.{name}", t) for i in picks for name, t in _item_tensors(dataset[i])]
        return digest(items, "sampled", n)
    return digest([(str(j), t) for j, t in enumerate(tensors)], "tensors", n)


def _item_tensors(item: Any) -> list[tuple[str, Tensor]]:
    """A dataset item's input tensors and label, named (any batch layout ``modelio`` reads)."""
    parts = split(item)
    found = [(name, t) for name, t in tensors(parts.inputs)] if not isinstance(parts.inputs, Tensor) \
        else [("input", parts.inputs)]
    if parts.targets is not None:
        found.append(("target", torch.as_tensor(parts.targets)))
    return found


def _dataset_tensors(dataset: Dataset) -> list[Tensor] | None:
    if isinstance(dataset, TensorDataset):
        return list(dataset.tensors)
    if isinstance(dataset, Subset):
        inner = _dataset_tensors(dataset.dataset)
        if inner is not None:
            index = torch.as_tensor(list(dataset.indices), dtype=torch.long)
            return [t[index] for t in inner]
    return None


@dataclass
class TeacherCache:
    """One teacher's logits (N, C) and features (N, ...) for every sample of a dataset."""

    logits: Tensor
    features: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    hit: bool = False  # True when read back from disk instead of computed

    def __len__(self) -> int:
        return self.logits.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.logits, *self.features.values()))

    def lookup(self, index: Tensor, device: torch.device | None = None) -> Outputs:
        """The cached outputs of the samples ``index`` (a 1-D integer tensor)."""
        if not isinstance(index, Tensor) or index.dim() != 1 or index.dtype.is_floating_point:
            raise DataError(f"sample indices must be a 1-D integer tensor, got {index!r:.80}")
        index = index.to(self.logits.device, torch.long)
        if len(index) and (int(index.max()) >= len(self) or int(index.min()) < 0):
            raise DataError(f"sample index {int(index.max())} is outside the teacher cache of {len(self)} samples",
                            hint="the cache was built for another dataset; rebuild it for this loader")
        out = Outputs(self.logits.index_select(0, index), {k: v.index_select(0, index) for k, v in self.features.items()})
        return out if device is None else Outputs(out.logits.to(device), {k: v.to(device) for k, v in out.features.items()})

    def checksum(self) -> str:
        return digest([("logits", self.logits), *sorted(self.features.items())])

    def save(self, path: str | Path) -> Path:
        """Write a safetensors file (atomically) whose metadata carries ``meta`` and a checksum."""
        tensors = {"logits": self.logits.contiguous(), **{f"features/{k}": v.contiguous() for k, v in self.features.items()}}
        meta = {**self.meta, "checksum": self.checksum()}
        return atomic_write_bytes(path, st_save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | Path, expected: dict[str, str], *, samples: int, paths: Sequence[str]) -> TeacherCache | None:
        """The cache at ``path`` if it matches ``expected`` meta, ``samples`` and ``paths``; else
        ``None`` after logging why (missing, unreadable, other version, changed teacher or data,
        wrong shapes, bad checksum)."""
        path = Path(path)
        if not path.is_file():
            log.info("no teacher cache at %s yet; computing the teacher's outputs", path)
            return None
        try:
            raw = path.read_bytes()
            tensors = st_load(raw)
            meta = _metadata(raw)
        except (OSError, SafetensorError, ValueError, json.JSONDecodeError) as exc:
            return _stale(path, f"it cannot be read ({exc})")
        for key, what in (("version", "the cache format version"), ("teacher", "the teacher's weights"),
                          ("data", "the training data"), ("paths", "the cached feature paths"), ("view", "the teacher view")):
            if meta.get(key) != expected.get(key):
                return _stale(path, f"{what} changed ({key} {meta.get(key)!r} != {expected.get(key)!r})")
        features = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("features/")}
        logits = tensors.get("logits")
        if logits is None or logits.shape[0] != samples or sorted(features) != sorted(paths) \
                or any(v.shape[0] != samples for v in features.values()):
            return _stale(path, f"its shapes do not fit {samples} samples and features {sorted(paths)}")
        cache = cls(logits, features, meta={k: v for k, v in meta.items() if k != "checksum"}, hit=True)
        if cache.checksum() != meta.get("checksum"):
            return _stale(path, "its checksum does not match its contents (corrupted)")
        log.info("teacher outputs read from cache %s", path)
        return cache


def _metadata(raw: bytes) -> dict[str, str]:
    size = int.from_bytes(raw[:8], "little")
    return dict(json.loads(raw[8:8 + size]).get("__metadata__", {}))


def _stale(path: Path, why: str) -> None:
    log.warning("teacher cache %s is not used: %s; recomputing the teacher's outputs", path, why)


def teacher_meta(teacher: nn.Module, dataset: Dataset, paths: Sequence[str], view: nn.Module) -> dict[str, str]:
    """The metadata a valid cache must carry: version, teacher and data digests, paths, view."""
    spec = getattr(view, "spec", lambda: {"name": type(view).__name__})()
    return {
        "version": str(CACHE_VERSION),
        "teacher": digest(teacher.state_dict().items(), type(teacher).__qualname__),
        "data": data_digest(dataset),
        "paths": json.dumps(sorted(paths)),
        "view": json.dumps(spec, sort_keys=True),
    }


def cache_file(folder: str | Path, index: int, teacher: nn.Module, samples: int, meta: dict[str, str]) -> Path:
    """The file for teacher ``index``: named by architecture, dataset length, paths and view,
    so retraining the teacher or changing the data overwrites it rather than piling up files."""
    arch = getattr(teacher, "slimkit_spec", None) or [(n, tuple(p.shape)) for n, p in teacher.state_dict().items()]
    slot = digest([], type(teacher).__qualname__, arch, samples, meta["paths"], meta["view"])[:12]
    return Path(folder) / f"teacher{index}-{slot}.safetensors"


def input_shapes(inputs: Any) -> str:
    """Per-sample input shapes for messages: ``(1, 28, 28)``, or ``image (1, 28, 28), scale ()``.

    >>> input_shapes(torch.zeros(2, 1, 4, 4)), input_shapes({"a": torch.zeros(2, 3), "b": torch.zeros(2)})
    ('(1, 4, 4)', 'a (3,), b ()')
    """
    found = tensors(inputs)
    if len(found) == 1:
        return str(tuple(found[0][1].shape[1:]))
    return ", ".join(f"{name} {tuple(t.shape[1:])}" for name, t in found)


def run_teacher(teacher: nn.Module, inputs: Any, name: str = "teacher") -> Tensor:
    """``teacher``'s logits for ``inputs`` (a tensor, a tuple or a dict of named tensors), with an
    error that names the input shapes if they do not fit."""
    try:
        return logits_of(call(teacher, inputs))
    except RuntimeError as exc:
        raise ModelError(
            f"the {name} cannot take input of shape {input_shapes(inputs)}: {str(exc).splitlines()[0]}",
            hint="distill on data like the teacher's (same image size and channels), or give the teacher a view",
        ) from None


@torch.no_grad()
def compute_outputs(
    teacher: nn.Module,
    loader: DataLoader,
    paths: Sequence[str],
    *,
    view: nn.Module | None = None,
    device: torch.device | None = None,
) -> TeacherCache:
    """Run ``teacher`` (eval mode, no grad) once over ``loader`` in order; keep its outputs on the CPU."""
    device = device or next(teacher.parameters(), torch.empty(0)).device
    if getattr(teacher, "runs_on_cpu", False):
        device = torch.device("cpu")
    teacher.eval()
    view = (view or nn.Identity()).eval()
    logits: list[Tensor] = []
    features: dict[str, list[Tensor]] = {p: [] for p in paths}
    with FeatureCapture(teacher, list(paths)) as capture:
        for batch in loader:
            inputs = to_device(split(batch).inputs, device)
            logits.append(run_teacher(teacher, map_floats(inputs, view)).detach().float().cpu())
            for key, value in capture.take().items():
                features[key].append(value.detach().cpu())
    return TeacherCache(torch.cat(logits), {k: torch.cat(v) for k, v in features.items()})


def build_cache(
    teacher: nn.Module,
    index: int,
    loader: DataLoader,
    paths: Sequence[str],
    *,
    view: nn.Module,
    device: torch.device | None = None,
    folder: str | Path | None = None,
) -> TeacherCache:
    """Teacher ``index``'s outputs over ``loader``'s dataset: read from ``folder`` when a valid
    cache is there, otherwise computed (and written to ``folder`` when given)."""
    dataset = loader.dataset.dataset if isinstance(loader.dataset, IndexedDataset) else loader.dataset
    meta = teacher_meta(teacher, dataset, paths, view)
    samples = len(dataset)  # type: ignore[arg-type]
    file = cache_file(folder, index, teacher, samples, meta) if folder is not None else None
    if file is not None:
        cached = TeacherCache.load(file, meta, samples=samples, paths=paths)
        if cached is not None:
            return cached
    ordered = DataLoader(dataset, batch_size=loader.batch_size or 256, shuffle=False, collate_fn=loader.collate_fn)
    cache = compute_outputs(teacher, ordered, paths, view=view, device=device)
    cache.meta = meta
    if file is not None:
        cache.save(file)
        log.info("teacher outputs cached in %s", file)
    return cache
