"""Tucker-2 decomposition of convolutions (Kim et al. 2016): 1x1 -> kxk core -> 1x1.

The kernel ``W (out x in x kh x kw)`` is approximated as ``core x_0 U_out x_1 U_in`` with
``core (r_out x r_in x kh x kw)``. The block is ``in_proj`` (1x1, in -> r_in), ``core`` (kxk with
the original stride/padding, r_in -> r_out) and ``out_proj`` (1x1, r_out -> out, original bias).
tensorly's ``partial_tucker`` (HOOI from an SVD start) computes it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from slimkit.factorization.blocks import TuckerConv
from slimkit.factorization.rank import Method, Ranks, conv_like
from slimkit.transform.surgery import Geometry


def supports(module: nn.Module) -> str | None:
    """Why ``module`` cannot be factorized this way, or None when it can."""
    if not isinstance(module, nn.Conv2d):
        return f"Tucker factorizes convolutions; {type(module).__name__} is not one (use SVD)"
    if module.groups != 1:
        return f"grouped/depthwise conv (groups={module.groups}) has no dense kernel to factorize"
    if tuple(module.kernel_size) == (1, 1):
        return "a 1x1 conv is a matrix: use SVD"
    if module.in_channels == 1:
        return "a single input channel leaves no input mode to compress"
    return None


def max_ranks(module: nn.Module) -> Ranks:
    """The largest ranks this decomposition allows for ``module``."""
    return (module.out_channels, module.in_channels)


def spectra(module: nn.Module) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Singular values (and matrix shape) of the unfoldings whose energy sets the ranks."""
    w = module.weight.detach().double().cpu()
    out_unfold = w.reshape(w.shape[0], -1)
    in_unfold = w.transpose(0, 1).reshape(w.shape[1], -1)
    return [(torch.linalg.svdvals(m).numpy(), tuple(m.shape)) for m in (out_unfold, in_unfold)]


def cost(module: nn.Module, geom: Geometry, ranks: Ranks) -> tuple[int, int]:
    """Params and MACs of the Tucker-2 block; ``in_proj`` runs at the input resolution.

    >>> conv = nn.Conv2d(64, 128, 3, padding=1, bias=False)
    >>> cost(conv, Geometry((7, 7), (7, 7), 49), (32, 16))
    (9728, 476672)
    """
    r_out, r_in = ranks
    k = module.kernel_size[0] * module.kernel_size[1]
    cin, cout = module.in_channels, module.out_channels
    q = geom.in_hw[0] * geom.in_hw[1]
    params = cin * r_in + r_in * r_out * k + r_out * cout + (cout if module.bias is not None else 0)
    return params, q * cin * r_in + geom.positions * (r_in * r_out * k + r_out * cout)


def shell(module: nn.Module, ranks: Ranks) -> nn.Module:
    """The factorized block for ``module`` at ``ranks``, without weights (used on reload)."""
    r_out, r_in = ranks
    return TuckerConv(OrderedDict(
        in_proj=conv_like(module, module.in_channels, r_in, pointwise=True),
        core=conv_like(module, r_in, r_out),
        out_proj=conv_like(module, r_out, module.out_channels, pointwise=True, bias=module.bias is not None),
    ))


def decompose(module: nn.Module, ranks: Ranks, config: Any = None) -> nn.Module:
    """Tucker-2 block approximating ``module`` at ``ranks = (r_out, r_in)`` (exact at full rank).

    >>> conv = nn.Conv2d(4, 6, 3, padding=1)
    >>> x = torch.randn(1, 4, 5, 5)
    >>> torch.allclose(decompose(conv, (6, 4))(x), conv(x), atol=1e-5)
    True
    """
    from tensorly.decomposition import partial_tucker

    r_out, r_in = ranks
    weight = module.weight.detach().double().cpu().numpy()
    # Small matrices: BLAS threads cost more in synchronisation than they save (and oversubscribe
    # a shared machine), so the decomposition runs on one thread.
    with threadpool_limits(1):
        (core, (u_out, u_in)), _ = partial_tucker(
            weight, rank=[r_out, r_in], modes=[0, 1], init="svd",
            n_iter_max=getattr(config, "iterations", 10), random_state=getattr(config, "seed", 0),
        )
    block = shell(module, ranks)
    with torch.no_grad():
        for layer, value in ((block.in_proj, u_in.T[:, :, None, None]), (block.core, core),
                             (block.out_proj, u_out[:, :, None, None])):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(layer.weight))
        if module.bias is not None:
            block.out_proj.bias.copy_(module.bias)
    return block


METHOD = Method("tucker", supports, max_ranks, spectra, cost, shell, decompose)
