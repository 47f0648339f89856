"""Weight sharing (k-means per layer), Huffman coding, a compact file format, Deep Compression.

>>> from slimkit.sharing import ShareConfig, share
>>> from torch import nn
>>> net = share(nn.Sequential(nn.Linear(32, 4)), ShareConfig(bits=3))
>>> len(net[0].weight.unique()) <= 8
True
"""

from slimkit.sharing.api import SHARE, share
from slimkit.sharing.cluster import (
    SharedWeight,
    bake,
    cluster_weights,
    index_dtype,
    initial_centroids,
    kmeans_1d,
    replay_share,
    share_layer,
    shareable,
    shared_layers,
)
from slimkit.sharing.config import DeepCompressionConfig, ShareConfig
from slimkit.sharing.deep_compression import (
    DeepCompressionResult,
    deep_compress,
)
from slimkit.sharing.huffman import (
    canonical_codes,
    code_lengths,
    huffman_decode,
    huffman_encode,
    pack_bits,
    unpack_fixed,
)
from slimkit.sharing.storage import decode, effective_state, encode, load_encoded

__all__ = [
    "SHARE",
    "DeepCompressionConfig",
    "DeepCompressionResult",
    "ShareConfig",
    "SharedWeight",
    "bake",
    "canonical_codes",
    "cluster_weights",
    "code_lengths",
    "decode",
    "deep_compress",
    "effective_state",
    "encode",
    "huffman_decode",
    "huffman_encode",
    "index_dtype",
    "initial_centroids",
    "kmeans_1d",
    "load_encoded",
    "pack_bits",
    "replay_share",
    "share",
    "share_layer",
    "shareable",
    "shared_layers",
    "unpack_fixed",
]
