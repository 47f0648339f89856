import numpy as np
import pytest

from slimkit.errors import CheckpointError
from slimkit.sharing.huffman import (
    canonical_codes,
    code_lengths,
    huffman_decode,
    huffman_encode,
    pack_bits,
    unpack_fixed,
)


@pytest.mark.parametrize("alphabet", [1, 2, 5, 32, 300])
@pytest.mark.parametrize("n", [0, 1, 7, 5000])
def test_round_trip_is_exact_and_no_longer_than_fixed_width(alphabet, n):
    rng = np.random.default_rng(alphabet + n)
    symbols = rng.choice(alphabet, size=n, p=rng.dirichlet(np.full(alphabet, 0.5)))
    data, lengths, nbits = huffman_encode(symbols, alphabet)
    assert np.array_equal(huffman_decode(data, lengths, n), symbols)
    assert nbits <= n * max(1, (alphabet - 1).bit_length())
    assert len(data) == -(-nbits // 8)


def test_skewed_counts_give_long_codes_that_still_decode():
    fib = [1, 1]
    while len(fib) < 25:
        fib.append(fib[-1] + fib[-2])
    symbols = np.random.default_rng(0).permutation(np.repeat(np.arange(25), fib))
    data, lengths, _ = huffman_encode(symbols, 25)
    assert lengths.max() == 24
    assert np.array_equal(huffman_decode(data, lengths, len(symbols)), symbols)


def test_code_is_prefix_free_and_optimal_on_a_textbook_case():
    lengths = code_lengths(np.array([45, 13, 12, 16, 9, 5]))  # CLRS example: 224 bits per 100 symbols
    assert int((lengths * np.array([45, 13, 12, 16, 9, 5])).sum()) == 224
    codes = [format(int(c), f"0{int(l)}b") for c, l in zip(canonical_codes(lengths), lengths)]
    assert not any(a != b and b.startswith(a) for a in codes for b in codes)


def test_fixed_width_packing_and_truncation_errors():
    values = np.array([0, 5, 7, 1])
    data, nbits = pack_bits(values, 3)
    assert nbits == 12 and unpack_fixed(data, 3, 4).tolist() == values.tolist()
    with pytest.raises(CheckpointError, match="truncated"):
        unpack_fixed(data, 3, 10)
    data, lengths, _ = huffman_encode(np.array([0, 1, 2, 2]), 3)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        huffman_decode(data[:0], lengths, 4)
