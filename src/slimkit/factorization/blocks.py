"""The factorized layers, which still look like the layer they replace.

Model code often reads a layer's attributes (``fc.weight``, ``fc.out_features``,
``conv.stride``...), and some torch modules read their children's (``nn.Linear``'s ``weight`` and
``bias``). Each block therefore exposes the replaced layer's attributes, and ``weight`` is the
dense weight the factors make (a read-only property, recomputed at each access, with gradients
flowing to the factors): the block keeps its savings in its own forward pass, and code that reads
the weight sees the weight the block applies.

>>> import torch
>>> from torch import nn
>>> from slimkit.factorization import svd
>>> block = svd.decompose(nn.Linear(6, 4), (4,))
>>> block.in_features, block.out_features, tuple(block.weight.shape)
(6, 4, (4, 6))
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _Factorized(nn.Sequential):
    """A chain of layers standing for one Linear or Conv2d: ``out_proj`` is the last one, and
    carries the original bias."""

    @property
    def bias(self) -> Tensor | None:
        return self.out_proj.bias


class _FactorizedConv(_Factorized):
    """The attributes of a conv with ``core``'s spatial behaviour (kernel, stride, padding)."""

    def _spatial(self) -> nn.Conv2d:  # the layer that slides over the image, in each subclass
        raise NotImplementedError

    @property
    def in_channels(self) -> int:
        return self.in_proj.in_channels

    @property
    def out_channels(self) -> int:
        return self.out_proj.out_channels

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return self._spatial().kernel_size

    @property
    def stride(self) -> tuple[int, ...]:
        return self._spatial().stride

    @property
    def padding(self) -> tuple[int, ...] | str:
        return self._spatial().padding

    @property
    def dilation(self) -> tuple[int, ...]:
        return self._spatial().dilation

    @property
    def padding_mode(self) -> str:
        return self._spatial().padding_mode

    @property
    def groups(self) -> int:
        return 1


class LowRankLinear(_Factorized):
    """``in_proj`` (in -> rank) then ``out_proj`` (rank -> out): a Linear of rank ``rank``."""

    @property
    def in_features(self) -> int:
        return self.in_proj.in_features

    @property
    def out_features(self) -> int:
        return self.out_proj.out_features

    @property
    def rank(self) -> tuple[int, ...]:
        return (self.in_proj.out_features,)

    @property
    def weight(self) -> Tensor:
        """``out x in``: the product of the two factors."""
        return self.out_proj.weight @ self.in_proj.weight


class LowRankConv(_FactorizedConv):
    """``in_proj`` (kxk conv to rank channels) then ``out_proj`` (1x1 conv): a rank-limited conv."""

    def _spatial(self) -> nn.Conv2d:
        return self.in_proj

    @property
    def rank(self) -> tuple[int, ...]:
        return (self.in_proj.out_channels,)

    @property
    def weight(self) -> Tensor:
        """``out x in x kh x kw``: ``out_proj``'s 1x1 matrix applied to ``in_proj``'s kernels."""
        first = self.in_proj.weight
        return torch.einsum("or,rihw->oihw", self.out_proj.weight[:, :, 0, 0], first)


class TuckerConv(_FactorizedConv):
    """``in_proj`` (1x1) -> ``core`` (kxk) -> ``out_proj`` (1x1): a Tucker-2 factorized conv."""

    def _spatial(self) -> nn.Conv2d:
        return self.core

    @property
    def rank(self) -> tuple[int, ...]:
        return (self.core.out_channels, self.core.in_channels)

    @property
    def weight(self) -> Tensor:
        """``core x_0 U_out x_1 U_in``."""
        return torch.einsum("oa,abhw,bi->oihw", self.out_proj.weight[:, :, 0, 0], self.core.weight,
                            self.in_proj.weight[:, :, 0, 0])


class CPConv(_FactorizedConv):
    """``in_proj`` (1x1) -> ``vertical`` (kx1 dw) -> ``horizontal`` (1xk dw) -> ``out_proj`` (1x1)."""

    def _spatial(self) -> nn.Conv2d:
        return self.vertical

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return (self.vertical.kernel_size[0], self.horizontal.kernel_size[1])

    @property
    def stride(self) -> tuple[int, ...]:
        return (self.vertical.stride[0], self.horizontal.stride[1])

    @property
    def padding(self) -> tuple[int, ...] | str:
        vertical, horizontal = self.vertical.padding, self.horizontal.padding
        return vertical if isinstance(vertical, str) else (vertical[0], horizontal[1])

    @property
    def dilation(self) -> tuple[int, ...]:
        return (self.vertical.dilation[0], self.horizontal.dilation[1])

    @property
    def rank(self) -> tuple[int, ...]:
        return (self.in_proj.out_channels,)

    @property
    def weight(self) -> Tensor:
        """``sum_r A[o, r] B[r, i] V[r, h] H[r, w]``: the four factors' outer products."""
        return torch.einsum("or,ri,rh,rw->oihw", self.out_proj.weight[:, :, 0, 0], self.in_proj.weight[:, :, 0, 0],
                            self.vertical.weight[:, 0, :, 0], self.horizontal.weight[:, 0, 0, :])


#: Every factorized block type (their children are never factorized again).
BLOCKS = (LowRankLinear, LowRankConv, TuckerConv, CPConv)
