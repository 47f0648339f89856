import torch
from torch import nn

from slimkit.factorization import cp
from slimkit.factorization.config import CP
from slimkit.transform.surgery import Geometry


def test_cp_rank_kernel_is_recovered_at_its_rank():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, padding=1)
    a, b, c, d = torch.randn(8, 3), torch.randn(6, 3), torch.randn(3, 3), torch.randn(3, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.einsum("or,ir,hr,wr->oihw", a, b, c, d))
    block = cp.decompose(conv, (3,), CP(rank=3, iterations=200))
    x = torch.randn(2, 6, 7, 7)
    torch.testing.assert_close(block(x), conv(x), atol=1e-3, rtol=1e-3)


def test_lebedev_structure_keeps_stride_and_padding():
    conv = nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2))
    block = cp.shell(conv, (7,))
    assert [n for n, _ in block.named_children()] == ["in_proj", "vertical", "horizontal", "out_proj"]
    assert block.vertical.kernel_size == (3, 1) and block.vertical.groups == 7 and block.vertical.stride == (2, 1)
    assert block.horizontal.kernel_size == (1, 5) and block.horizontal.stride == (1, 2)
    x = torch.randn(1, 4, 11, 11)
    assert block(x).shape == conv(x).shape


def test_cost_by_hand():
    conv = nn.Conv2d(64, 128, 3, padding=1, bias=False)
    params, macs = cp.cost(conv, Geometry((14, 14), (7, 7), 49), (10,))
    assert params == 10 * (64 + 3 + 3 + 128)
    assert macs == 196 * 64 * 10 + 7 * 14 * 10 * 3 + 49 * 10 * (3 + 128)
    assert cp.max_ranks(conv) == (64 * 3 * 3,)
