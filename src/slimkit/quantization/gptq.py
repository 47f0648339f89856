"""GPTQ: second-order rounding of low-bit weights (Frantar et al. 2023), for Conv and Linear.

Rounding each weight to its nearest grid point ignores what the layer computes. GPTQ rounds
the weights of a layer one input column at a time and spreads each rounding error over the
columns not yet rounded, weighted by the inverse Hessian ``H = X^T X`` of the layer's inputs
on calibration data, so the layer's *output* stays close. Layers go in model order, each
calibrated on inputs that already went through the rounded layers before it.

Here, with ``slimkit``'s grids (:mod:`slimkit.quantization.lowbit`): scales per output channel
or per group of ``group_size`` inputs, fixed before rounding from the float weights ("static
groups", so the grid does not depend on the column order), with a clipping ratio searched per
row or group to minimise the squared weight error; columns in order of decreasing Hessian
diagonal ("act order"); a dampening of 1% of the mean diagonal. Convolutions use their unfolded
input patches (per group for grouped and depthwise convolutions). Afterwards, bias correction
moves each layer's bias by the mean output shift the rounding caused on calibration data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from slimkit import modelio

__all__ = ["gptq_round", "grid"]

CLIP_RATIOS = tuple(1.0 - 0.05 * i for i in range(9))  # 1.0 down to 0.6


def grid(w: Tensor, bits: int, group_size: int | None, symmetric: bool, *, search: bool = True) -> tuple[Tensor, Tensor]:
    """Scales and zero points ``(rows, groups)`` for ``w`` (rows, columns), per row or per group
    of columns, the clipping ratio chosen per group to minimise the squared rounding error."""
    rows, cols = w.shape
    size = cols if group_size is None else min(group_size, cols)
    groups = math.ceil(cols / size)
    padded = torch.cat([w, w.new_zeros(rows, groups * size - cols)], 1).reshape(rows, groups, size)
    lo, hi = padded.amin(2), padded.amax(2)
    qmax = 2**bits - 1
    best_scale = best_zero = best_err = None
    for ratio in CLIP_RATIOS if search else (1.0,):
        if symmetric:
            half = 2 ** (bits - 1)
            scale = torch.clamp(torch.maximum(-lo, hi) * ratio / max(half - 1, 1), min=2.0**-24)
            zero = torch.full_like(scale, float(half))
        else:
            low, high = torch.clamp(lo * ratio, max=0.0), torch.clamp(hi * ratio, min=0.0)
            scale = torch.clamp((high - low) / qmax, min=2.0**-24)
            zero = torch.clamp(torch.round(-low / scale), 0, qmax)
        q = (torch.clamp(torch.round(padded / scale[..., None]) + zero[..., None], 0, qmax) - zero[..., None]) * scale[..., None]
        err = (q - padded).pow(2).sum(2)
        if best_err is None:
            best_scale, best_zero, best_err = scale, zero, err
        else:
            better = err < best_err
            best_scale = torch.where(better, scale, best_scale)
            best_zero = torch.where(better, zero, best_zero)
            best_err = torch.where(better, err, best_err)
    return best_scale, best_zero


def _fake(w: Tensor, scale: Tensor, zero: Tensor, qmax: int) -> Tensor:
    return (torch.clamp(torch.round(w / scale) + zero, 0, qmax) - zero) * scale


def _round_matrix(w: Tensor, h: Tensor, scale: Tensor, zero: Tensor, bits: int, group_size: int | None, *,
                  damp: float = 0.01, block: int = 128) -> Tensor:
    """GPTQ on one weight matrix ``w`` (rows, cols) with input Hessian ``h`` (cols, cols); the
    grid (``scale``/``zero`` per row and column group) is fixed. Returns the rounded weights."""
    w = w.clone().double()
    h = h.clone().double()
    cols = w.shape[1]
    size = cols if group_size is None else min(group_size, cols)
    column_group = torch.arange(cols) // size
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    order = torch.argsort(torch.diag(h), descending=True)
    w, h, column_group = w[:, order], h[order][:, order], column_group[order]
    h += damp * torch.diag(h).mean() * torch.eye(cols, dtype=h.dtype)
    try:
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    except RuntimeError:  # not positive definite even dampened (e.g. constant inputs): more dampening
        h += 0.1 * torch.diag(h).mean() * torch.eye(cols, dtype=h.dtype)
        hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    scale, zero = scale.double(), zero.double()
    qmax = 2**bits - 1
    q = torch.zeros_like(w)
    for start in range(0, cols, block):
        end = min(start + block, cols)
        w1, h1 = w[:, start:end].clone(), hinv[start:end, start:end]
        err1 = torch.zeros_like(w1)
        for i in range(end - start):
            g = column_group[start + i]
            col = w1[:, i]
            qcol = _fake(col, scale[:, g], zero[:, g], qmax)
            q[:, start + i] = qcol
            err = (col - qcol) / h1[i, i]
            w1[:, i:] -= err[:, None] * h1[i, i:][None, :]
            err1[:, i] = err
        w[:, end:] -= err1 @ hinv[start:end, end:]
    out = torch.empty_like(q)
    out[:, order] = q
    return out.float()


class _Stats:
    """Running ``X^T X`` per group and the mean input row of one layer, from a forward hook."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer, self.h, self.mean, self.n = layer, None, None, 0

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = _columns(self.layer, args[0].detach().float())  # (groups, samples, cols)
        xtx = x.transpose(1, 2) @ x
        self.h = xtx if self.h is None else self.h + xtx
        total = x.sum(1)
        self.mean = total if self.mean is None else self.mean + total
        self.n += x.shape[1]


def _columns(layer: nn.Module, x: Tensor) -> Tensor:
    """The layer's input as the rows its weight multiplies: (groups, samples, in-columns)."""
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, x.shape[-1])[None]
    patches = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)
    n, cols, positions = patches.shape
    groups = layer.groups
    patches = patches.reshape(n, groups, cols // groups, positions).permute(1, 0, 3, 2)
    return patches.reshape(groups, n * positions, cols // groups)


def gptq_round(model: nn.Module, names: list[str], batches: Iterable[Any], plans: dict[str, Any], *,
               bias_correction: bool = True) -> dict[str, tuple[Tensor, Tensor]]:
    """Round the weights of the named Conv2d/Linear layers of ``model`` in place, in order, to the
    grids ``plans[name]`` describes (``bits``, ``group_size``, ``symmetric``); returns each
    layer's ``(scale, zero)`` (shapes ``(out, groups)``), which reproduce the rounded weights
    exactly. ``batches`` are model inputs (calibration)."""
    batches = list(batches)
    grids: dict[str, tuple[Tensor, Tensor]] = {}
    model.eval()
    for name in names:
        layer = model.get_submodule(name)
        plan = plans[name]
        stats = _Stats(layer)
        hook = layer.register_forward_pre_hook(stats)
        try:
            with torch.no_grad():
                for x in batches:
                    modelio.call(model, x)
        finally:
            hook.remove()
        weight = layer.weight.detach().float()
        out_channels = weight.shape[0]
        groups = getattr(layer, "groups", 1)
        per_group = out_channels // groups
        matrix = weight.reshape(out_channels, -1)
        scales, zeros, rounded = [], [], []
        for g in range(groups):
            rows = matrix[g * per_group:(g + 1) * per_group]
            scale, zero = grid(rows, plan.bits, plan.group_size, plan.symmetric)
            h = stats.h[g] / max(stats.n, 1)
            rounded.append(_round_matrix(rows, h, scale, zero, plan.bits, plan.group_size))
            scales.append(scale)
            zeros.append(zero)
        new = torch.cat(rounded).reshape(weight.shape)
        with torch.no_grad():
            if bias_correction and getattr(layer, "bias", None) is not None and stats.n:
                mean = stats.mean / stats.n  # (groups, cols)
                delta = (new - weight).reshape(groups, per_group, -1) @ mean[..., None]
                layer.bias -= delta.reshape(-1).to(layer.bias.dtype)
            layer.weight.copy_(new.to(layer.weight.dtype))
        grids[name] = (torch.cat(scales), torch.cat(zeros))
    return grids
