import copy

import pytest
import torch

from slimkit.models import build_model
from slimkit.prune import StructuredPruning, finetune, prune


@pytest.mark.parametrize(("distill", "seed"), [(True, 0), (True, 2), (False, 0)])
def test_finetune_trains_the_pruned_model_and_leaves_the_original_alone(distill, seed, tiny_loader):
    original = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    reference = copy.deepcopy(original.state_dict())
    pruned = prune(copy.deepcopy(original), StructuredPruning(ratio=0.5))
    before = copy.deepcopy(pruned.state_dict())
    finetune(pruned, original, tiny_loader, epochs=1, lr=1e-2, distill=distill, seed=seed)
    assert any(not torch.equal(before[k], v) for k, v in pruned.state_dict().items())
    assert all(torch.equal(reference[k], v) for k, v in original.state_dict().items())
    assert all(p.requires_grad for p in original.parameters())
