"""Truncated SVD of Linear layers and convolutions.

A Linear ``W (out x in)`` becomes ``in_proj`` (in -> r, no bias) then ``out_proj`` (r -> out);
a conv's kernel, read as a matrix ``out x (in*kh*kw)``, becomes a kxk conv to ``r`` channels
(``in_proj``, with the original stride and padding) then a 1x1 conv (``out_proj``). The singular
values are split evenly (sqrt(S) on each side) so both factors have similar scales, which helps
fine-tuning.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit.factorization.blocks import LowRankConv, LowRankLinear
from slimkit.factorization.rank import Method, Ranks, conv_like
from slimkit.transform.surgery import Geometry


def _matrix(module: nn.Module) -> torch.Tensor:
    return module.weight.detach().reshape(module.weight.shape[0], -1).double().cpu()


def supports(module: nn.Module) -> str | None:
    """Why ``module`` cannot be factorized this way, or None when it can."""
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            return f"grouped/depthwise conv (groups={module.groups}) has no dense kernel matrix to factorize"
    elif not isinstance(module, nn.Linear):
        return f"{type(module).__name__} is not a Linear or Conv2d"
    if min(_matrix(module).shape) < 2:
        return f"its weight matrix {tuple(_matrix(module).shape)} already has rank 1 at most"
    return None


def max_ranks(module: nn.Module) -> Ranks:
    """The largest ranks this decomposition allows for ``module``."""
    return (min(_matrix(module).shape),)


def spectra(module: nn.Module) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Singular values (and matrix shape) of the unfoldings whose energy sets the ranks."""
    matrix = _matrix(module)
    return [(torch.linalg.svdvals(matrix).numpy(), tuple(matrix.shape))]


def cost(module: nn.Module, geom: Geometry, ranks: Ranks) -> tuple[int, int]:
    """Params and MACs of the rank-``r`` form.

    >>> cost(nn.Linear(100, 50), Geometry(), (10,))
    (1550, 1500)
    """
    (r,) = ranks
    rows, cols = _matrix(module).shape
    bias = rows if module.bias is not None else 0
    return r * (rows + cols) + bias, geom.positions * r * (rows + cols)


def shell(module: nn.Module, ranks: Ranks) -> nn.Module:
    """The factorized block for ``module`` at ``ranks``, without weights (used on reload)."""
    (r,) = ranks
    has_bias = module.bias is not None
    if isinstance(module, nn.Linear):
        kw = {"device": module.weight.device, "dtype": module.weight.dtype}
        return LowRankLinear(OrderedDict(in_proj=nn.Linear(module.in_features, r, bias=False, **kw),
                                  out_proj=nn.Linear(r, module.out_features, bias=has_bias, **kw)))
    return LowRankConv(OrderedDict(in_proj=conv_like(module, module.in_channels, r),
                            out_proj=conv_like(module, r, module.out_channels, pointwise=True, bias=has_bias)))


def decompose(module: nn.Module, ranks: Ranks, config: Any = None) -> nn.Module:
    """The rank-``r`` truncated SVD of ``module`` as a two-layer block (best rank-r approximation
    of the weight matrix in Frobenius norm, by Eckart-Young).

    >>> lin = nn.Linear(6, 4)
    >>> x = torch.randn(2, 6)
    >>> torch.allclose(decompose(lin, (4,))(x), lin(x), atol=1e-5)
    True
    """
    (r,) = ranks
    u, s, vh = torch.linalg.svd(_matrix(module), full_matrices=False)
    root = s[:r].sqrt()
    first = root[:, None] * vh[:r]
    second = u[:, :r] * root[None, :]
    block = shell(module, ranks)
    with torch.no_grad():
        w = block.in_proj.weight
        w.copy_(first.reshape(w.shape).to(w))
        w = block.out_proj.weight
        w.copy_(second.reshape(w.shape).to(w))
        if module.bias is not None:
            block.out_proj.bias.copy_(module.bias)
    return block


METHOD = Method("svd", supports, max_ranks, spectra, cost, shell, decompose)
