"""Dynamic channel gating: Feature Boosting and Suppression (Gao et al., ICLR 2019).

:class:`FBSConv` replaces a convolution (and the BatchNorm that reads it, folded in). A small
predictor reads the input's per-channel mean magnitude and gives a saliency ``s >= 0`` per
output channel; per sample only the ``k = density * C_out`` most salient channels are kept
(winner-take-all), scaled by their saliency, and the rest are zero::

    y = wta_k(s(x)) * BN(conv(x))

In training everything is computed and masked (the predictor learns through the kept
saliencies; an L1 penalty on the saliencies is added to their gradient, the paper's lasso
term). At inference the suppressed channels are really skipped: the convolution runs with only
the kept filters and only the input channels that are not all zero (a gated layer upstream
zeroed them), BatchNorm folded in, and the result is scattered into a zero tensor. At batch 1
this is one sample's channels; in a batch it is the union of the samples' channels, each sample
masked to its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from slimkit.errors import ConfigError
from slimkit.select import select_modules

__all__ = ["FBSConv", "gate_channels", "gate_pairs", "init_saliency"]


class _L1Gradient(torch.autograd.Function):
    """Identity forward; backward adds ``weight * sign(s) / batch``: the gradient of
    ``weight * mean_batch(sum_channels |s|)``, so the penalty needs no change to the loss."""

    @staticmethod
    def forward(ctx: Any, s: Tensor, weight: float) -> Tensor:
        ctx.weight = weight
        ctx.save_for_backward(s)
        return s.view_as(s)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (s,) = ctx.saved_tensors
        return grad + ctx.weight * torch.sign(s) / s.shape[0], None


class FBSConv(nn.Module):
    """A gated ``conv`` (with the ``bn`` that followed it, if any); see the module docstring.

    >>> gated = FBSConv(nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), density=0.5).eval()
    >>> x = torch.randn(1, 4, 6, 6)
    >>> gated.skip = False; dense = gated(x); gated.skip = True
    >>> torch.allclose(gated(x), dense, atol=1e-5), int((dense.abs().amax((2, 3)) > 0).sum())
    (True, 4)
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None, *, density: float = 0.5,
                 sparsity_weight: float = 0.0) -> None:
        super().__init__()
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            raise ConfigError(f"channel gating needs a dense Conv2d (groups=1), got {conv}",
                              hint="exclude grouped and depthwise convolutions")
        self.conv, self.bn = conv, bn
        self.saliency = nn.Linear(conv.in_channels, conv.out_channels)
        nn.init.normal_(self.saliency.weight, std=0.01)
        nn.init.ones_(self.saliency.bias)
        self.keep = max(1, min(conv.out_channels, round(density * conv.out_channels)))
        self.sparsity_weight = float(sparsity_weight)
        self.skip = True  # inference computes only the kept channels
        self._fold: tuple[Any, Tensor, Tensor] | None = None

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(saliency, kept, level)``: the saliencies (N, C_out), the top-k indices (N, k), and
        the input's per-channel mean magnitude (N, C_in) they are predicted from."""
        level = x.abs().mean(dim=(2, 3))
        s = F.relu(self.saliency(level))
        if self.training and self.sparsity_weight > 0 and s.requires_grad:
            s = _L1Gradient.apply(s, self.sparsity_weight)
        return s, s.topk(self.keep, dim=1).indices, level

    def _dense(self, x: Tensor, s: Tensor, kept: Tensor) -> Tensor:
        y = self.conv(x)
        if self.bn is not None:
            y = self.bn(y)
        mask = torch.zeros_like(s).scatter_(1, kept, 1.0)
        return y * (s * mask)[:, :, None, None]

    def folded(self) -> tuple[Tensor, Tensor]:
        """The conv's weight and bias with BatchNorm folded in, computed once per change of the
        weights (inference reads them on every call)."""
        parts = [self.conv.weight, self.conv.bias]
        if self.bn is not None:
            parts += [self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var]
        key = tuple((id(t), t._version) if t is not None else None for t in parts)
        if self._fold is None or self._fold[0] != key:
            with torch.no_grad():
                weight = self.conv.weight
                bias = self.conv.bias if self.conv.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype,
                                                                                     device=weight.device)
                if self.bn is not None:
                    bn = self.bn
                    scale = (bn.weight if bn.weight is not None else 1.0) / torch.sqrt(bn.running_var + bn.eps)
                    bias = (bn.bias if bn.bias is not None else 0.0) + (bias - bn.running_mean) * scale
                    weight = weight * scale.reshape(-1, 1, 1, 1)
                self._fold = (key, weight.contiguous(), bias.contiguous())
        return self._fold[1], self._fold[2]

    def forward(self, x: Tensor) -> Tensor:
        s, kept, level = self.gates(x)
        if self.training or not self.skip or (self.bn is not None and self.bn.training):
            return self._dense(x, s, kept)
        n, conv = x.shape[0], self.conv
        out = kept[0] if n == 1 else torch.unique(kept)
        live = (level if n == 1 else level.amax(dim=0, keepdim=True))[0].nonzero().flatten()
        inputs = None if live.numel() == conv.in_channels else live  # channels zero upstream are skipped too
        weight, bias = self.folded()
        weight = weight.index_select(0, out)
        if inputs is not None:
            weight, x = weight.index_select(1, inputs), x.index_select(1, inputs)
        small = F.conv2d(x, weight, bias.index_select(0, out), conv.stride, conv.padding, conv.dilation)
        if n == 1:
            small = small * s[0].index_select(0, out).reshape(1, -1, 1, 1)
        else:
            mask = torch.zeros_like(s).scatter_(1, kept, 1.0)
            small = small * (s * mask).index_select(1, out)[:, :, None, None]
        return small.new_zeros(n, conv.out_channels, *small.shape[2:]).index_copy_(1, out, small)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__)
        state["_fold"] = None  # a cache of derived tensors: a copy recomputes its own
        return state

    def extra_repr(self) -> str:
        return f"keep={self.keep}/{self.conv.out_channels}, bn={self.bn is not None}, skip={self.skip}"


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def gate_pairs(model: nn.Module, include: Iterable[str] = ("*",), exclude: Iterable[str] = ()) -> dict[str, str | None]:
    """The dense convs to gate (by name), each with the BatchNorm that alone reads its output, if any."""
    chosen = select_modules(model, list(include), exclude=list(exclude), types=[nn.Conv2d])
    convs = {name: m for name, m in chosen.items() if type(m) is nn.Conv2d and m.groups == 1}
    if not convs:
        raise ConfigError(f"channel gating: no dense Conv2d of {type(model).__name__} matches include={list(include)}",
                          hint="include conv layer names, e.g. ['features.*.conv']")
    pairs: dict[str, str | None] = dict.fromkeys(convs)
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001  (untraceable models: gate without folding BatchNorm)
        return pairs
    modules = dict(model.named_modules())
    for node in graph.nodes:
        if node.op == "call_module" and node.target in convs and len(node.users) == 1:
            (user,) = node.users
            if user.op == "call_module" and isinstance(modules.get(user.target), nn.BatchNorm2d) \
                    and modules[user.target].num_features == convs[node.target].out_channels:
                pairs[node.target] = user.target
    return pairs


def gate_channels(model: nn.Module, pairs: dict[str, str | None], *, density: float, sparsity_weight: float = 0.0) -> nn.Module:
    """Replace each conv of ``pairs`` (and its BatchNorm) by an :class:`FBSConv`, in place."""
    for conv_name, bn_name in pairs.items():
        conv = model.get_submodule(conv_name)
        bn = model.get_submodule(bn_name) if bn_name else None
        _set(model, conv_name, FBSConv(conv, bn, density=density, sparsity_weight=sparsity_weight))  # type: ignore[arg-type]
        if bn_name:
            _set(model, bn_name, nn.Identity())
    return model


@torch.no_grad()
def init_saliency(model: nn.Module, loader: Iterable[Any], *, batches: int = 4) -> None:
    """Start each predictor at the channels' average importance: bias = the channel's mean
    output magnitude on a few batches (scaled to mean 1), so winner-take-all first keeps the
    channels that matter most on average and training refines that per input."""
    from slimkit.modelio import call, split

    gated = [m for m in model.modules() if isinstance(m, FBSConv)]
    sums: dict[int, Tensor] = {}

    def hook(module: FBSConv, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        y = module.conv(inputs[0])
        if module.bn is not None:
            y = module.bn(y)
        sums[id(module)] = sums.get(id(module), 0) + F.relu(y).mean(dim=(0, 2, 3))

    handles = [m.register_forward_hook(hook) for m in gated]
    was = model.training
    model.eval()
    try:
        for i, raw in enumerate(loader):
            if i >= batches:
                break
            call(model, split(raw).inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was)
    for module in gated:
        if id(module) in sums:
            level = sums[id(module)]
            module.saliency.bias.copy_(level / level.mean().clamp_min(1e-8))
