import numpy as np
import pytest
import torch
from torch import nn

from slimkit.factorization import svd
from slimkit.transform.surgery import Geometry


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_linear_svd_error_matches_numpy_truncation(rank):
    torch.manual_seed(0)
    layer = nn.Linear(10, 6)
    block = svd.decompose(layer, (rank,))
    approx = (block.out_proj.weight @ block.in_proj.weight).detach().double().numpy()
    w = layer.weight.detach().double().numpy()
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    best = (u[:, :rank] * s[:rank]) @ vh[:rank]
    np.testing.assert_allclose(approx, best, atol=1e-6)
    # Eckart-Young: the error is the energy of the dropped singular values
    assert np.linalg.norm(w - approx) == pytest.approx(np.sqrt((s[rank:] ** 2).sum()), abs=1e-5)
    assert torch.equal(block.out_proj.bias, layer.bias)


def test_conv_svd_at_full_rank_is_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 9, 9)
    block = svd.decompose(conv, svd.max_ranks(conv))
    assert type(block).__name__ == "LowRankConv" and block.in_proj.stride == (2, 2)
    torch.testing.assert_close(block(x), conv(x), atol=1e-5, rtol=1e-5)


def test_cost_matches_hand_count_and_built_block():
    layer = nn.Linear(300, 100)
    params, macs = svd.cost(layer, Geometry(), (20,))
    assert params == 20 * 400 + 100 and macs == 20 * 400
    assert sum(p.numel() for p in svd.shell(layer, (20,)).parameters()) == params
    conv = nn.Conv2d(32, 64, 3, padding=1, bias=False)
    params, macs = svd.cost(conv, Geometry((14, 14), (14, 14), 196), (10,))
    assert params == 10 * (32 * 9 + 64) and macs == 196 * params


def test_supports_explains_what_it_cannot_factorize():
    assert "depthwise" in svd.supports(nn.Conv2d(4, 4, 3, groups=4))
    assert "not a Linear" in svd.supports(nn.BatchNorm2d(3))
    assert "rank 1" in svd.supports(nn.Linear(5, 1))
    assert svd.supports(nn.Linear(5, 3)) is None
