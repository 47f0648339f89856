"""CP decomposition of convolutions (Lebedev et al. 2015).

``W (out x in x kh x kw) ~ sum_r A[:, r] o B[:, r] o C[:, r] o D[:, r]`` becomes four layers:
``in_proj`` (1x1, in -> R), ``vertical`` (depthwise kh x 1), ``horizontal`` (depthwise 1 x kw)
and ``out_proj`` (1x1, R -> out, original bias). tensorly's ``parafac`` (ALS from an SVD start)
computes it; the factor norms are balanced across the four layers so fine-tuning sees similar
scales everywhere.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from slimkit.factorization.blocks import CPConv
from slimkit.factorization.rank import Method, Ranks, conv_like
from slimkit.factorization.tucker import supports as tucker_supports
from slimkit.transform.surgery import Geometry


def supports(module: nn.Module) -> str | None:
    """Why ``module`` cannot be factorized this way, or None when it can."""
    return tucker_supports(module)


def max_ranks(module: nn.Module) -> Ranks:
    """The largest ranks this decomposition allows for ``module``."""
    # The rank of a tensor never exceeds the product of all its dimensions but the largest.
    dims = sorted(module.weight.shape)
    return (math.prod(dims[:-1]),)


def spectra(module: nn.Module) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Singular values (and matrix shape) of the unfoldings whose energy sets the ranks."""
    return []


def cost(module: nn.Module, geom: Geometry, ranks: Ranks) -> tuple[int, int]:
    """Params and MACs of the CP block; the vertical conv runs at (output height x input width).

    >>> conv = nn.Conv2d(64, 128, 3, padding=1, bias=False)
    >>> cost(conv, Geometry((7, 7), (7, 7), 49), (100,))
    (19800, 970200)
    """
    (r,) = ranks
    kh, kw = module.kernel_size
    cin, cout = module.in_channels, module.out_channels
    q = geom.in_hw[0] * geom.in_hw[1]
    vertical = geom.out_hw[0] * geom.in_hw[1]
    params = r * (cin + kh + kw + cout) + (cout if module.bias is not None else 0)
    return params, q * cin * r + vertical * r * kh + geom.positions * r * (kw + cout)


def shell(module: nn.Module, ranks: Ranks) -> nn.Module:
    """The factorized block for ``module`` at ``ranks``, without weights (used on reload)."""
    (r,) = ranks
    kh, kw = module.kernel_size
    return CPConv(OrderedDict(
        in_proj=conv_like(module, module.in_channels, r, pointwise=True),
        vertical=conv_like(module, r, r, kernel=(kh, 1), axis=0, groups=r),
        horizontal=conv_like(module, r, r, kernel=(1, kw), axis=1, groups=r),
        out_proj=conv_like(module, r, module.out_channels, pointwise=True, bias=module.bias is not None),
    ))


def decompose(module: nn.Module, ranks: Ranks, config: Any = None) -> nn.Module:
    """CP block approximating ``module`` with rank ``R`` (exact when the kernel has CP rank <= R
    and ALS converges).

    >>> conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    >>> decompose(conv, (5,)).vertical.weight.shape
    torch.Size([5, 1, 3, 1])
    """
    import tensorly
    from tensorly.decomposition import parafac

    (r,) = ranks
    weight = module.weight.detach().double().cpu().numpy()
    with threadpool_limits(1), tensorly.backend_context("numpy"), warnings.catch_warnings():
        # small matrices: see tucker.py. tensorly warns when R exceeds a mode size (it pads the
        # SVD start with random columns, seeded), which is expected for CP ranks.
        warnings.simplefilter("ignore", UserWarning)
        cp = parafac(weight, r, init="svd", n_iter_max=getattr(config, "iterations", 50), tol=1e-7,
                     normalize_factors=True, random_state=getattr(config, "seed", 0))
    weights, (a, b, c, d) = cp
    # Give each factor an equal share of the component's norm, keeping its sign in A.
    share = np.abs(weights) ** 0.25
    a, b, c, d = (f * share[None, :] for f in (a, b, c, d))
    a = a * np.sign(weights)[None, :]
    block = shell(module, ranks)
    values = ((block.in_proj, b.T[:, :, None, None]), (block.vertical, c.T[:, None, :, None]),
              (block.horizontal, d.T[:, None, None, :]), (block.out_proj, a[:, :, None, None]))
    with torch.no_grad():
        for layer, value in values:
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(layer.weight))
        if module.bias is not None:
            block.out_proj.bias.copy_(module.bias)
    return block


METHOD = Method("cp", supports, max_ranks, spectra, cost, shell, decompose)
