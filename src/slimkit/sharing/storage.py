"""A compact file format for shared and pruned models: codebook + indices, relative sparse
indices and Huffman coding, as in Deep Compression (Han et al. 2016).

Every tensor of the model's *effective* state (what the forward pass uses) is stored as the
smallest of the encodings that fit it:

- ``raw``: the tensor's bytes;
- ``dense``: a shared weight as its float32 codebook plus one index per weight;
- ``sparse``: nonzero positions as gaps from the previous nonzero, each at most ``2**b - 1``
  (a longer gap inserts a filler zero, as in the paper), plus one value per entry: a codebook
  index for shared weights, a float32 for plain ones. ``b`` is chosen per tensor.

Index and gap streams are Huffman-coded (``huffman=True``) or fixed-width. Decoding gives back
bit-identical tensors. Layout: ``b"SKC1"``, a uint32 header length, a zlib-compressed JSON
header (names, shapes, dtypes, stream positions), then the streams.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from slimkit.errors import CheckpointError
from slimkit.fileio import atomic_write_bytes
from slimkit.sharing.cluster import SharedWeight, bake, shared_layers
from slimkit.sharing.huffman import (
    huffman_decode,
    huffman_encode,
    pack_bits,
    unpack_fixed,
)

MAGIC = b"SKC1"
GAP_BITS = range(1, 9)


class _Writer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        self.chunks.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def _stream(symbols: np.ndarray, alphabet: int, huffman: bool) -> tuple[dict[str, Any], list[bytes]]:
    """Encode an int stream; returns (its header entry, its byte chunks) without placing them.

    With ``huffman`` the stream is Huffman-coded unless fixed width is smaller (tiny streams,
    where the code table costs more than it saves).
    """
    width = max(1, int(alphabet - 1).bit_length())
    data, _ = pack_bits(symbols, width)
    fixed = ({"n": len(symbols), "width": width}, [data])
    if not huffman:
        return fixed
    data, lengths, _ = huffman_encode(symbols, alphabet)
    coded = ({"n": len(symbols), "huff": alphabet}, [lengths.tobytes(), data])
    return coded if len(coded[1][0]) + len(coded[1][1]) < len(fixed[1][0]) else fixed


def _read_stream(entry: dict[str, Any], blob: memoryview, spans: list[list[int]]) -> np.ndarray:
    if "huff" in entry:
        (lo, ln), (do, dn) = spans
        lengths = np.frombuffer(bytes(blob[lo:lo + ln]), dtype=np.uint8)
        return huffman_decode(bytes(blob[do:do + dn]), lengths, entry["n"])
    ((do, dn),) = spans
    return unpack_fixed(bytes(blob[do:do + dn]), entry["width"], entry["n"])


def _gaps(positions: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative indices with filler entries: returns (gaps, is_real) per stored entry."""
    top = (1 << bits) - 1
    raw = np.diff(np.concatenate([[-1], positions])) - 1
    fillers = raw // (top + 1)  # each filler covers top zeros plus its own (zero) slot
    gaps = np.full(len(raw) + int(fillers.sum()), top, dtype=np.int64)
    real_at = np.cumsum(fillers + 1) - 1
    gaps[real_at] = raw - fillers * (top + 1)
    real = np.zeros(len(gaps), dtype=bool)
    real[real_at] = True
    return gaps, real


def _candidates(tensor: Tensor, shared: SharedWeight | None, huffman: bool) -> list[tuple[dict, list[list[bytes]]]]:
    flat = tensor.detach().cpu().reshape(-1)
    options = []
    if shared is None:
        options.append(({"enc": "raw"}, [[flat.numpy().tobytes()]]))
        if not flat.is_floating_point() or flat.dtype != torch.float32:
            return options
        values = flat.numpy()
        codebook = None
    else:
        codes = shared.indices.detach().cpu().reshape(-1).long().numpy()
        table = shared.table().detach().cpu().float().numpy()
        entry, chunks = _stream(codes, len(table), huffman)
        options.append(({"enc": "dense", "k": len(table), "idx": entry}, [[table.tobytes()], chunks]))
        values, codebook = codes, table
    positions = np.flatnonzero(values) if codebook is None else np.flatnonzero(codebook[values] != 0)
    for bits in GAP_BITS:
        gaps, real = _gaps(positions, bits)
        gap_entry, gap_chunks = _stream(gaps, 1 << bits, huffman)
        if codebook is None:
            stored = np.zeros(len(gaps), dtype=np.float32)
            stored[real] = values[positions]
            head = {"enc": "sparse", "gap": gap_entry, "bits": bits, "count": len(gaps)}
            options.append((head, [gap_chunks, [stored.tobytes()]]))
        else:
            stored = np.zeros(len(gaps), dtype=np.int64)  # code 0 of a filler must decode to zero
            stored[real] = values[positions]
            zero = int(np.flatnonzero(codebook == 0)[0]) if (codebook == 0).any() else None
            if zero is None:
                continue  # a dense code table without a zero cannot express fillers
            stored[~real] = zero
            idx_entry, idx_chunks = _stream(stored, len(codebook), huffman)
            head = {"enc": "sparse", "k": len(codebook), "gap": gap_entry, "bits": bits, "idx": idx_entry}
            options.append((head, [[codebook.tobytes()], gap_chunks, idx_chunks]))
    return options


def effective_state(model: nn.Module) -> dict[str, Tensor]:
    """The state dict the forward pass uses, with sharing and masks as the plain tensors they
    compute, under the names a plain model has (``fc.weight``); ``model`` is not changed.

    >>> from slimkit.sharing import ShareConfig, share
    >>> sorted(effective_state(share(nn.Sequential(nn.Linear(8, 2)), ShareConfig(bits=1))))
    ['0.bias', '0.weight']
    """
    state = model.state_dict()
    with torch.no_grad():
        for prefix, module in model.named_modules():
            dot = f"{prefix}." if prefix else ""
            if parametrize.is_parametrized(module):
                for tensor_name in module.parametrizations:
                    inner = f"{dot}parametrizations.{tensor_name}."
                    state = {k: v for k, v in state.items() if not k.startswith(inner)}
                    state[f"{dot}{tensor_name}"] = getattr(module, tensor_name).detach()
            for key in [k for k in module._parameters if k.endswith("_orig")]:
                base = key[: -len("_orig")]
                if f"{dot}{base}_mask" in state:  # torch.nn.utils.prune keeps orig * mask
                    state.pop(f"{dot}{base}_mask")
                    state[f"{dot}{base}"] = state.pop(f"{dot}{key}") * getattr(module, f"{base}_mask")
    return state


def encode(model: nn.Module, path: str | Path, *, huffman: bool = True) -> int:
    """Write ``model`` in the compact format at ``path`` (atomically); returns the file's size.

    >>> import tempfile, os
    >>> from slimkit.sharing import ShareConfig, share
    >>> net = share(nn.Sequential(nn.Linear(64, 8)), ShareConfig(bits=2))
    >>> path = os.path.join(tempfile.mkdtemp(), "net.skc")
    >>> encode(net, path) < 64 * 8 * 4
    True
    >>> torch.equal(decode(path)["0.weight"], net[0].weight)
    True
    """
    shared = shared_layers(model)
    writer, entries = _Writer(), []
    for name, tensor in effective_state(model).items():
        options = _candidates(tensor, shared.get(name), huffman)
        head, chunk_groups = min(options, key=lambda o: sum(len(c) for g in o[1] for c in g))
        head = {"name": name, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape), **head}
        head["spans"] = [[writer.add(c) for c in group] for group in chunk_groups]
        entries.append(head)
    header = zlib.compress(json.dumps({"version": 1, "tensors": entries}, separators=(",", ":")).encode(), 9)
    data = MAGIC + struct.pack("<I", len(header)) + header + b"".join(writer.chunks)
    atomic_write_bytes(Path(path), data)
    return Path(path).stat().st_size


def decode(path: str | Path) -> dict[str, Tensor]:
    """Read a file written by :func:`encode` back into ``{name: tensor}`` (the effective state)."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC or len(data) < 8:
        raise CheckpointError(f"{path} is not a slimkit compressed model (bad magic {data[:4]!r})",
                              hint="pass a file written by slimkit.sharing.encode")
    (size,) = struct.unpack("<I", data[4:8])
    try:
        header = json.loads(zlib.decompress(data[8:8 + size]))
    except (zlib.error, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt header ({exc})") from None
    blob = memoryview(data)[8 + size:]
    out = {}
    for e in header["tensors"]:
        dtype = getattr(torch, e["dtype"])
        count = int(np.prod(e["shape"], dtype=np.int64))
        spans = e["spans"]
        if e["enc"] == "raw":
            (o, n), = spans[0]
            flat = torch.frombuffer(bytearray(blob[o:o + n]), dtype=dtype) if n else torch.zeros(0, dtype=dtype)
        else:
            flat = _decode_coded(e, blob, spans, count)
        out[e["name"]] = flat.to(dtype).reshape(e["shape"]).clone()
    return out


def _decode_coded(e: dict[str, Any], blob: memoryview, spans: list, count: int) -> Tensor:
    table = None
    if "k" in e:
        (o, n), = spans[0]
        table = np.frombuffer(bytes(blob[o:o + n]), dtype=np.float32)
        spans = spans[1:]
    if e["enc"] == "dense":
        return torch.from_numpy(table[_read_stream(e["idx"], blob, spans[0])].copy())
    gaps = _read_stream(e["gap"], blob, spans[0])
    positions = np.cumsum(gaps + 1) - 1
    if table is None:
        (o, n), = spans[1]
        values = np.frombuffer(bytes(blob[o:o + n]), dtype=np.float32)
    else:
        values = table[_read_stream(e["idx"], blob, spans[1])]
    flat = np.zeros(count, dtype=np.float32)
    flat[positions] = values
    return torch.from_numpy(flat)


def load_encoded(path: str | Path, model: nn.Module) -> nn.Module:
    """Load a compact file into ``model`` (same architecture; sharing is baked into plain weights)."""
    bake(model)
    from slimkit.export.serialize import load_state

    load_state(model, decode(path), source=str(path))
    return model
