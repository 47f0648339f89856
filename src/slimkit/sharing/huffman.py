"""Canonical Huffman coding and bit packing of integer symbol streams, vectorized with numpy.

A code is stored as one length per symbol (canonical Huffman: codes follow from the lengths),
so the table costs one byte per symbol of the alphabet.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

from slimkit.errors import CheckpointError


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length of each symbol from its count (0 for symbols that never occur).

    >>> code_lengths(np.array([5, 1, 1, 0])).tolist()
    [1, 2, 2, 0]
    """
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(len(counts), dtype=np.int64)
    present = np.flatnonzero(counts)
    if len(present) == 1:
        lengths[present] = 1  # a lone symbol still needs one bit per occurrence
        return lengths
    tie = itertools.count()
    heap = [(int(counts[s]), next(tie), [int(s)]) for s in present]
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1  # every symbol below the merged node moves one level deeper
        heapq.heappush(heap, (c1 + c2, next(tie), s1 + s2))
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codes for ``lengths``: shorter codes first, ties by symbol order.

    >>> canonical_codes(np.array([1, 2, 2, 0])).tolist()
    [0, 2, 3, 0]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.uint64)
    code, previous = 0, 0
    for symbol in np.lexsort((np.arange(len(lengths)), lengths)):
        length = int(lengths[symbol])
        if length == 0:
            continue
        code <<= length - previous
        codes[symbol] = code
        code, previous = code + 1, length
    return codes


def pack_bits(values: np.ndarray, widths: np.ndarray | int) -> tuple[bytes, int]:
    """Concatenate each value's lowest ``width`` bits, most significant first. Returns the bytes
    (zero-padded to a whole byte) and the number of meaningful bits.

    >>> pack_bits(np.array([1, 2, 3]), 2)
    (b'l', 6)
    """
    values = np.asarray(values, dtype=np.uint64)
    widths = np.broadcast_to(np.asarray(widths, dtype=np.int64), values.shape)
    total = int(widths.sum())
    bits = np.zeros(total, dtype=np.uint8)
    starts = np.cumsum(widths) - widths
    for j in range(int(widths.max(initial=0))):
        sel = widths > j
        shift = (widths[sel] - 1 - j).astype(np.uint64)
        bits[starts[sel] + j] = ((values[sel] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits).tobytes(), total


def unpack_fixed(data: bytes, width: int, count: int) -> np.ndarray:
    """Read ``count`` values of ``width`` bits written by :func:`pack_bits`.

    >>> unpack_fixed(b'l', 2, 3).tolist()
    [1, 2, 3]
    """
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: width * count]
    if len(bits) < width * count:
        raise CheckpointError(f"encoded stream is truncated: need {width * count} bits, found {len(bits)}")
    weights = (1 << np.arange(width - 1, -1, -1)).astype(np.int64)
    return bits.reshape(count, width).astype(np.int64) @ weights


def huffman_encode(symbols: np.ndarray, alphabet: int) -> tuple[bytes, np.ndarray, int]:
    """Huffman-code ``symbols`` (ints in ``[0, alphabet)``). Returns payload, the per-symbol code
    lengths (uint8, the table to store) and the payload's bit count.

    >>> data, lengths, nbits = huffman_encode(np.array([0, 0, 0, 1, 2]), 3)
    >>> huffman_decode(data, lengths, 5).tolist(), nbits
    ([0, 0, 0, 1, 2], 7)
    """
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet)[:alphabet])
    if lengths.max(initial=0) > 56:
        raise CheckpointError("a Huffman code longer than 56 bits is not supported")
    codes = canonical_codes(lengths)
    data, nbits = pack_bits(codes[symbols], lengths[symbols])
    return data, lengths.astype(np.uint8), nbits


def huffman_decode(data: bytes, lengths: np.ndarray, count: int) -> np.ndarray:
    """Decode ``count`` symbols of a canonical Huffman code given by ``lengths``."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    top = int(lengths.max(initial=0))
    if top == 0:
        raise CheckpointError("Huffman table is empty but symbols were expected")
    order = [s for s in np.lexsort((np.arange(len(lengths)), lengths)) if lengths[s] > 0]
    per_length = np.bincount(lengths[order], minlength=top + 1)
    first = np.zeros(top + 1, dtype=np.int64)
    offset = np.zeros(top + 1, dtype=np.int64)
    code = index = 0
    for length in range(1, top + 1):  # canonical codes of one length are consecutive integers
        first[length], offset[length] = code, index
        code = (code + int(per_length[length])) << 1
        index += int(per_length[length])
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    n = len(bits)
    bits = np.concatenate([bits, np.zeros(top, dtype=np.uint8)])
    # window[p] = the next `top` bits from position p, so every code's prefix is a shift away.
    window = np.zeros(n, dtype=np.uint64)
    for j in range(top):
        window = (window << np.uint64(1)) | bits[j : j + n].astype(np.uint64)
    length_at = np.zeros(n, dtype=np.int64)
    for length in range(top, 0, -1):  # descending, so the shortest matching length wins
        prefix = (window >> np.uint64(top - length)).astype(np.int64)
        length_at[prefix < first[length] + per_length[length]] = length
    steps = length_at.tolist()
    positions, p = [], 0
    for _ in range(count):
        if p >= n or steps[p] == 0:
            raise CheckpointError(f"Huffman stream is corrupt or truncated after {len(positions)} of {count} symbols")
        positions.append(p)
        p += steps[p]
    pos = np.asarray(positions)
    lens = length_at[pos]
    prefix = (window[pos] >> (np.uint64(top) - lens.astype(np.uint64))).astype(np.int64)
    return np.asarray(order, dtype=np.int64)[offset[lens] + prefix - first[lens]]
