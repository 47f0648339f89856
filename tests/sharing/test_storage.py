import pytest
import torch
from torch import nn

from slimkit.errors import CheckpointError
from slimkit.models import build_model
from slimkit.pruning import UnstructuredPruning, make_permanent, prune
from slimkit.sharing import (
    ShareConfig,
    decode,
    effective_state,
    encode,
    load_encoded,
    share,
)


def magnitude_prune(model, amount):
    """Layer-wise magnitude pruning baked into plain weights, as Deep Compression's first stage."""
    return make_permanent(prune(model, UnstructuredPruning(amount=amount)))


def pruned_shared(name="mlp"):
    torch.manual_seed(0)
    model = build_model(name, input_size=8, num_classes=3)
    magnitude_prune(model, 0.8)
    return share(model, ShareConfig(bits=4))


@pytest.mark.parametrize("name", ["mlp", "lenet5", "cnn"])
@pytest.mark.parametrize("huffman", [True, False])
def test_decoding_gives_back_identical_weights(tmp_path, name, huffman):
    model = pruned_shared(name)
    size = encode(model, tmp_path / "m.skc", huffman=huffman)
    assert size == (tmp_path / "m.skc").stat().st_size
    decoded = decode(tmp_path / "m.skc")
    expected = effective_state(model)
    assert decoded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert decoded[key].dtype == tensor.dtype and torch.equal(decoded[key], tensor), key


def test_sizes_shrink_with_sparsity_sharing_and_huffman(tmp_path):
    torch.manual_seed(0)
    dense = build_model("mlp", input_size=8, num_classes=3)
    fp32 = encode(dense, tmp_path / "a.skc")
    magnitude_prune(dense, 0.9)
    pruned = encode(dense, tmp_path / "b.skc", huffman=False)
    share(dense, ShareConfig(bits=4))
    clustered = encode(dense, tmp_path / "c.skc", huffman=False)
    coded = encode(dense, tmp_path / "d.skc", huffman=True)
    assert fp32 > pruned > clustered >= coded
    assert fp32 / coded > 10


def test_load_encoded_and_bad_files(tmp_path):
    model = pruned_shared().eval()
    encode(model, tmp_path / "m.skc")
    fresh = build_model("mlp", input_size=8, num_classes=3).eval()
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(load_encoded(tmp_path / "m.skc", fresh)(x), model(x))
    (tmp_path / "bad.skc").write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="not a slimkit compressed model"):
        decode(tmp_path / "bad.skc")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_encoded(tmp_path / "m.skc", nn.Sequential(nn.Linear(2, 2)))
