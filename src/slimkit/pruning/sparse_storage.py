"""Sparse storage of pruned weights: a folder that is as small as the sparsity allows.

Each tensor is stored in the smallest of three encodings, chosen per tensor:

- ``dense``: as is;
- ``bitmask``: one bit per entry (nonzero or not) plus the nonzero values;
- ``csr``: the tensor as a (rows, rest) matrix in compressed sparse rows: values, column indices
  (int16 when they fit) and row pointers.

The folder holds ``model.sparse.safetensors`` (no pickle) and ``model.json`` (the same spec and
history as :func:`slimkit.export.save_model`), so :func:`load_sparse` rebuilds the architecture,
replays its history and loads identical weights. Sizes reported are the bytes of these files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn.utils import parametrize

from slimkit.errors import CheckpointError
from slimkit.export.serialize import (
    FORMAT,
    FORMAT_VERSION,
    SPEC_FILE,
    build_from_spec,
    load_state,
    model_spec,
    read_spec,
    replay_history,
)
from slimkit.fileio import atomic_path, atomic_write_json

SPARSE_FILE = "model.sparse.safetensors"
SPARSE_FORMAT = "slimkit-sparse"


def encode(name: str, tensor: Tensor) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The smallest encoding of ``tensor``: ``({stored name: tensor}, {"enc", "shape", "dtype"})``.

    >>> parts, info = encode("w", torch.zeros(64, 64))
    >>> info["enc"] in ("bitmask", "csr"), sum(t.numel() * t.element_size() for t in parts.values()) < 64 * 64 * 4
    (True, True)
    """
    t = tensor.detach().cpu().contiguous()
    info = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    options = {"dense": {name: t}}
    if t.is_floating_point() and t.numel() > 0:
        nonzero = t.flatten() != 0
        values = t.flatten()[nonzero].clone()
        bits = np.packbits(nonzero.numpy().astype(np.uint8))
        options["bitmask"] = {f"{name}::values": values, f"{name}::bitmask": torch.from_numpy(bits)}
        if t.dim() >= 1:
            matrix = t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(1, -1)
            rows, cols = matrix.nonzero(as_tuple=True)
            index_dtype = torch.int16 if matrix.shape[1] <= 32767 else torch.int32
            rowptr = torch.zeros(matrix.shape[0] + 1, dtype=torch.int32)
            rowptr[1:] = torch.bincount(rows, minlength=matrix.shape[0]).cumsum(0)
            options["csr"] = {f"{name}::values": matrix[rows, cols].clone(), f"{name}::col": cols.to(index_dtype),
                              f"{name}::rowptr": rowptr}
    size = {enc: sum(p.numel() * p.element_size() for p in parts.values()) for enc, parts in options.items()}
    best = min(size, key=lambda enc: (size[enc], enc != "dense"))
    return options[best], {**info, "enc": best}


def decode(name: str, info: dict[str, Any], stored: dict[str, Tensor]) -> Tensor:
    """Rebuild the tensor ``name`` from its stored parts (inverse of :func:`encode`)."""
    shape, enc = tuple(info["shape"]), info["enc"]
    dtype = getattr(torch, info["dtype"])
    if enc == "dense":
        return stored[name]
    numel = int(np.prod(shape)) if shape else 1
    if enc == "bitmask":
        bits = np.unpackbits(stored[f"{name}::bitmask"].numpy())[:numel].astype(bool)
        out = torch.zeros(numel, dtype=dtype)
        out[torch.from_numpy(bits)] = stored[f"{name}::values"]
        return out.view(shape)
    if enc == "csr":
        rowptr = stored[f"{name}::rowptr"].long()
        rows_n = rowptr.numel() - 1
        cols_n = numel // max(rows_n, 1)
        rows = torch.repeat_interleave(torch.arange(rows_n), rowptr[1:] - rowptr[:-1])
        out = torch.zeros(rows_n, cols_n, dtype=dtype)
        out[rows, stored[f"{name}::col"].long()] = stored[f"{name}::values"]
        return out.view(shape)
    raise CheckpointError(f"tensor '{name}' has unknown encoding '{enc}'", hint="the file was written by a newer slimkit")


def effective_state(model: nn.Module) -> dict[str, Tensor]:
    """The state dict as the forward pass sees it: parametrized weights (masks) evaluated.

    Built from the state dict rather than by removing parametrizations from a deep copy: a copy
    shares the parametrized class with the original, and removing it there breaks the original.
    """
    state = model.state_dict()
    for name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        prefix = f"{name}." if name else ""
        for tensor_name in list(module.parametrizations):
            inner = f"{prefix}parametrizations.{tensor_name}."
            for key in [k for k in state if k.startswith(inner)]:
                del state[key]
            state[prefix + tensor_name] = getattr(module, tensor_name).detach()
    return state


def save_sparse(model: nn.Module, folder: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``folder`` in sparse encodings, atomically; returns the folder.

    >>> import tempfile
    >>> from slimkit.pruning import UnstructuredPruning, prune_unstructured
    >>> net = prune_unstructured(nn.Sequential(nn.Linear(64, 64)), UnstructuredPruning(amount=0.9))
    >>> out = save_sparse(net, tempfile.mkdtemp())
    >>> torch.equal(load_sparse(out, model=nn.Sequential(nn.Linear(64, 64)))[0].weight, net[0].weight)
    True
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    encodings: dict[str, Any] = {}
    for name, tensor in effective_state(model).items():
        parts, info = encode(name, tensor)
        tensors.update(parts)
        encodings[name] = info
    with atomic_path(folder / SPARSE_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": SPARSE_FORMAT, "encodings": json.dumps(encodings)})
    history = [c for c in getattr(model, "slimkit_history", []) if c.get("kind") != "prune_masks"]
    atomic_write_json(folder / SPEC_FILE, {
        "format": FORMAT, "version": FORMAT_VERSION, "spec": model_spec(model), "history": history,
        "metadata": {**(metadata or {}), "weights": SPARSE_FILE},
    })
    return folder


def load_sparse(folder: str | Path, *, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a model saved by :func:`save_sparse` (spec + history replay) with its weights."""
    folder = Path(folder)
    doc = read_spec(folder)
    if model is None:
        spec = doc["spec"]
        if not spec.get("name"):
            raise CheckpointError(f"{folder} holds a {spec.get('class', 'custom')} model that is not in slimkit's registry",
                                  hint="pass model=<an instance of the same architecture>")
        model = build_from_spec(doc, folder / SPEC_FILE)
    model = replay_history(model, doc.get("history", []), folder / SPEC_FILE)
    model.slimkit_history = list(doc.get("history", []))
    path = folder / SPARSE_FILE
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            stored = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, FileNotFoundError, OSError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}", hint="save it again with save_sparse") from None
    if meta.get("format") != SPARSE_FORMAT:
        raise CheckpointError(f"{path} is not a slimkit sparse file (format {meta.get('format')!r})")
    encodings = json.loads(meta["encodings"])
    load_state(model, {name: decode(name, info, stored) for name, info in encodings.items()}, source=str(path))
    return model.eval()


def sparse_bytes(model: nn.Module) -> int:
    """Bytes of the sparse artifact of ``model`` (both files), measured on disk."""
    from slimkit.evaluate import artifact_bytes

    return artifact_bytes(model, saver=lambda m, path: save_sparse(m, path))
