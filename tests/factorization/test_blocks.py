import pytest
import torch
from torch import nn
from torch.nn import functional as F

from slimkit.factorization import CP, cp, svd, tucker

X = torch.randn(2, 6, 9, 9, generator=torch.Generator().manual_seed(0))


def conv(**kw):
    torch.manual_seed(0)
    return nn.Conv2d(6, 8, (3, 5), **kw)


BLOCKS = {
    "svd": lambda c: svd.decompose(c, (5,)),
    "tucker": lambda c: tucker.decompose(c, (5, 4)),
    "cp": lambda c: cp.decompose(c, (7,), CP(rank=7, iterations=5)),
}


@pytest.mark.parametrize("method", BLOCKS)
@pytest.mark.parametrize("geometry", [{"stride": 2, "padding": (1, 2)}, {"padding": "same", "dilation": 2}, {}],
                         ids=["strided", "same-dilated", "valid"])
def test_conv_blocks_expose_the_weight_they_apply_and_the_conv_attributes(method, geometry):
    original = conv(**geometry)
    block = BLOCKS[method](original)
    # the dense weight, used as an ordinary conv with the block's attributes, gives the block's output
    dense = F.conv2d(X, block.weight, block.bias, block.stride, block.padding, block.dilation, block.groups)
    torch.testing.assert_close(dense, block(X), atol=1e-5, rtol=1e-4)
    assert block.weight.shape == original.weight.shape
    for attribute in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                      "padding_mode"):
        assert getattr(block, attribute) == getattr(original, attribute), attribute
    assert torch.equal(block.bias, original.bias)


def test_full_rank_blocks_reconstruct_the_original_weight():
    original = conv(padding=1)
    torch.testing.assert_close(svd.decompose(original, svd.max_ranks(original)).weight, original.weight,
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(tucker.decompose(original, (8, 6)).weight, original.weight, atol=1e-5, rtol=1e-4)


def test_linear_block_reads_like_a_linear_and_its_weight_is_read_only():
    torch.manual_seed(0)
    layer = nn.Linear(10, 6)
    block = svd.decompose(layer, (3,))
    x = torch.randn(4, 10)
    torch.testing.assert_close(F.linear(x, block.weight, block.bias), block(x))
    assert (block.in_features, block.out_features, block.rank) == (10, 6, (3,))
    assert torch.linalg.matrix_rank(block.weight.detach()) == 3
    with pytest.raises(AttributeError):
        block.weight = torch.zeros(6, 10)
    block.weight.sum().backward()  # gradients reach the factors
    assert block.in_proj.weight.grad is not None and block.out_proj.weight.grad is not None


def test_block_in_a_model_that_reads_weights_keeps_working():
    class ReadsWeights(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):  # reads the layer's attributes, as some model code does
            return self.fc(x) + 0.0 * self.fc.weight.sum() + torch.zeros(self.fc.out_features)

    from slimkit.factorization import SVD, factorize

    model = factorize(ReadsWeights(), SVD(rank=8, include_head=True), example_inputs=torch.zeros(1, 8))
    assert type(model.fc).__name__ == "LowRankLinear"
    assert model(torch.randn(2, 8)).shape == (2, 8)
