import torch
from torch import nn

from slimkit.factorization import tucker
from slimkit.factorization.config import Tucker
from slimkit.transform.surgery import Geometry


def test_full_rank_tucker_reproduces_the_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1)
    block = tucker.decompose(conv, (8, 6))
    x = torch.randn(2, 6, 9, 9)
    torch.testing.assert_close(block(x), conv(x), atol=1e-5, rtol=1e-5)
    assert [type(m).__name__ for m in block] == ["Conv2d"] * 3
    assert block.in_proj.kernel_size == (1, 1) and block.core.stride == (2, 2) and block.out_proj.kernel_size == (1, 1)


def test_low_rank_kernel_is_recovered_at_its_rank():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 10, 3, padding=1, bias=False)
    core, u_out, u_in = torch.randn(4, 3, 3, 3), torch.randn(10, 4), torch.randn(8, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.einsum("abhw,oa,ib->oihw", core, u_out, u_in))
    block = tucker.decompose(conv, (4, 3), Tucker(ranks=(4, 3)))
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(block(x), conv(x), atol=1e-4, rtol=1e-4)


def test_cost_by_hand_and_matches_the_built_block():
    conv = nn.Conv2d(64, 128, 3, padding=1)
    params, macs = tucker.cost(conv, Geometry((7, 7), (7, 7), 49), (32, 16))
    assert params == 64 * 16 + 16 * 32 * 9 + 32 * 128 + 128
    assert macs == 49 * (64 * 16 + 16 * 32 * 9 + 32 * 128)
    assert sum(p.numel() for p in tucker.shell(conv, (32, 16)).parameters()) == params


def test_unsupported_layers_have_reasons():
    assert "1x1" in tucker.supports(nn.Conv2d(4, 4, 1))
    assert "single input channel" in tucker.supports(nn.Conv2d(1, 8, 3))
    assert "use SVD" in tucker.supports(nn.Linear(4, 4))
