import pytest
import torch
from torch import nn

from slimkit.errors import CheckpointError
from slimkit.evaluate import artifact_bytes
from slimkit.models import build_model
from slimkit.pruning import (
    StructuredPruning,
    UnstructuredPruning,
    load_sparse,
    prune,
    save_sparse,
    sparse_bytes,
)
from slimkit.pruning.sparse_storage import SPARSE_FILE, decode, encode


@pytest.mark.parametrize("density", [0.0, 0.02, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(7,), (5, 9), (4, 3, 3, 3)])
def test_encodings_round_trip_exactly(density, shape):
    generator = torch.Generator().manual_seed(0)
    tensor = torch.randn(shape, generator=generator) * (torch.rand(shape, generator=generator) < density)
    parts, info = encode("w", tensor)
    assert torch.equal(decode("w", info, parts), tensor)


def test_the_smallest_encoding_wins():
    sparse = torch.zeros(100, 100)
    sparse[0, :5] = 1.0
    assert encode("w", sparse)[1]["enc"] == "csr"
    half = torch.randn(100, 100) * (torch.rand(100, 100) < 0.3)
    assert encode("w", half)[1]["enc"] == "bitmask"
    assert encode("w", torch.randn(10, 10))[1]["enc"] == "dense"


def test_sparse_artifact_is_smaller_on_disk_and_reloads_identically(example, tmp_path):
    model = build_model("mlp", hidden=[300, 100], input_size=8)
    dense = artifact_bytes(model)
    prune(model, UnstructuredPruning(amount=0.92, scope="global"))
    folder = save_sparse(model, tmp_path / "sparse")
    on_disk = sum(p.stat().st_size for p in folder.iterdir())
    assert sparse_bytes(model) == on_disk and on_disk < dense / 4
    reloaded = load_sparse(folder)
    assert torch.equal(reloaded(example), model.eval()(example))


def test_structurally_pruned_and_masked_model_round_trips(example, tmp_path):
    model = build_model("resnet", depth=8, input_size=8)
    prune(model, StructuredPruning(ratio=0.3))
    prune(model, UnstructuredPruning(amount=0.7))
    save_sparse(model, tmp_path)
    assert torch.equal(load_sparse(tmp_path)(example), model.eval()(example))


def test_a_damaged_file_is_a_checkpoint_error(tmp_path):
    save_sparse(nn.Sequential(nn.Linear(3, 3)), tmp_path)
    (tmp_path / SPARSE_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_sparse(tmp_path, model=nn.Sequential(nn.Linear(3, 3)))
