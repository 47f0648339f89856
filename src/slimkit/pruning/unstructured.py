"""Unstructured pruning: zero individual weights through mask parametrizations.

A mask is a ``torch.nn.utils.parametrize`` parametrization (``weight = original * mask``), so the
forward pass, the gradients and every optimizer step see the pruned weights as zero: they stay
zero through fine-tuning without any hook in the training loop. ``make_permanent`` bakes masks
into plain weights. Unstructured sparsity saves storage under a sparse encoding
(:mod:`slimkit.pruning.sparse_storage`) and no time with dense kernels; reports say so.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from slimkit.errors import ConfigError
from slimkit.pruning.config import UnstructuredPruning, module_types
from slimkit.select import select_modules


class Mask(nn.Module):
    """The parametrization ``weight -> weight * mask``; ``mask`` is a boolean buffer (saved).

    >>> Mask(torch.tensor([True, False]))(torch.tensor([2.0, 3.0]))
    tensor([2., 0.])
    """

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        # A copy with its own storage: a view into a larger tensor (global scope splits one) would
        # make safetensors refuse to save the state dict.
        self.register_buffer("mask", mask.to(torch.bool).clone().contiguous())

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.mask.to(weight.dtype)


def get_mask(module: nn.Module) -> Mask | None:
    """The Mask parametrization on ``module.weight``, or None."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return next((p for p in module.parametrizations.weight if isinstance(p, Mask)), None)


def attach_mask(module: nn.Module, mask: Tensor) -> Mask:
    """Set ``module.weight``'s mask (adding the parametrization the first time) and zero the
    pruned entries of the stored weight too, so that removing the mask keeps them zero."""
    existing = get_mask(module)
    with torch.no_grad():
        if existing is None:
            existing = Mask(mask.to(module.weight.device))
            parametrize.register_parametrization(module, "weight", existing)
        else:
            existing.mask.copy_(mask)
        module.parametrizations.weight.original.mul_(existing.mask.to(module.parametrizations.weight.original.dtype))
    return existing


def prunable_layers(model: nn.Module, config: UnstructuredPruning) -> dict[str, nn.Module]:
    """The layers ``config`` selects (globs and types) that have a ``weight``."""
    chosen = select_modules(model, config.include, exclude=config.exclude, types=module_types(config.types))
    layers = {n: m for n, m in chosen.items() if isinstance(getattr(m, "weight", None), Tensor)}
    if not layers:
        raise ConfigError(
            f"UnstructuredPruning selects no layer of {type(model).__name__} "
            f"(include={list(config.include)}, exclude={list(config.exclude)}, types={list(config.types)})",
            hint="check the globs against the model's module names, e.g. 'features.*.conv'",
        )
    return layers


def _scores(module: nn.Module, method: str, generator: torch.Generator) -> Tensor:
    weight = module.weight.detach()  # the effective (already masked) weight: pruned entries are 0
    if method == "magnitude":
        return weight.abs().float()
    alive = (weight != 0).float()
    # Pruned entries score below every survivor, so a higher amount only adds to the mask.
    return torch.rand(weight.shape, generator=generator).to(weight.device) * alive + alive


def set_sparsity(model: nn.Module, config: UnstructuredPruning, amount: float | None = None) -> dict[str, float]:
    """Mask the selected layers to sparsity ``amount`` (default ``config.amount``); 0 <= amount < 1.

    Returns the sparsity of each layer. Already pruned weights stay pruned (they score lowest).
    """
    amount = config.amount if amount is None else amount
    if not 0 <= amount < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {amount}", hint="1 would zero every weight")
    layers = prunable_layers(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    scores = {name: _scores(m, config.method, generator) for name, m in layers.items()}
    if config.scope == "scaled":
        # Each layer's scores in units of the RMS of its surviving weights (its std, weights being
        # centred), so one threshold means "q standard deviations" in every layer.
        scores = {name: s / s[s > 0].pow(2).mean().sqrt().clamp_min(1e-12) if (s > 0).any() else s
                  for name, s in scores.items()}
    if config.scope in ("global", "scaled"):
        flat = _layer_mask(torch.cat([s.flatten().cpu() for s in scores.values()]), amount)
        sizes = [s.numel() for s in scores.values()]
        masks = {name: part.view_as(s).to(s.device)
                 for (name, s), part in zip(scores.items(), torch.split(flat, sizes))}
    else:
        masks = {name: _layer_mask(s, amount) for name, s in scores.items()}
    for name, module in layers.items():
        attach_mask(module, masks[name])
    _record(model, list(layers))
    return {name: 1 - float(masks[name].float().mean()) for name in layers}


def _layer_mask(scores: Tensor, amount: float) -> Tensor:
    k = int(amount * scores.numel())
    mask = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        mask[torch.argsort(scores.flatten(), stable=True)[:k]] = False
    return mask.view_as(scores)


def _record(model: nn.Module, layers: list[str]) -> None:
    from slimkit.export.serialize import record_change

    history = getattr(model, "slimkit_history", [])
    masked = {n for change in history if change.get("kind") == "prune_masks" for n in change.get("layers", [])}
    new = [n for n in layers if n not in masked]
    if new:
        record_change(model, "prune_masks", layers=new)


def prune_unstructured(model: nn.Module, config: UnstructuredPruning) -> nn.Module:
    """Mask ``config.amount`` of the selected weights in place and return ``model``.

    >>> net = nn.Sequential(nn.Linear(10, 10))
    >>> net = prune_unstructured(net, UnstructuredPruning(amount=0.7))
    >>> int((net[0].weight == 0).sum())
    70
    """
    set_sparsity(model, config)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Replace every mask parametrization by its plain (sparse) weight; returns ``model``.

    >>> net = prune_unstructured(nn.Sequential(nn.Linear(4, 4)), UnstructuredPruning(amount=0.5))
    >>> make_permanent(net)[0].weight.__class__.__name__, int((net[0].weight == 0).sum())
    ('Parameter', 8)
    """
    for module in model.modules():
        if get_mask(module) is not None:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    history = getattr(model, "slimkit_history", None)
    if history is not None:
        # Masks no longer exist, so loading must not re-attach them.
        model.slimkit_history = [c for c in history if c.get("kind") != "prune_masks"]
    return model


def sparsity(model: nn.Module, config: UnstructuredPruning | None = None) -> dict[str, Any]:
    """Share of zero weights per selected layer and overall (``{"layers": {...}, "total": x}``).

    >>> sparsity(nn.Sequential(nn.Linear(2, 2)))["total"]
    0.0
    """
    config = config or UnstructuredPruning()
    layers = prunable_layers(model, config)
    zeros = {n: int((m.weight == 0).sum()) for n, m in layers.items()}
    sizes = {n: m.weight.numel() for n, m in layers.items()}
    return {"layers": {n: zeros[n] / sizes[n] for n in layers}, "total": sum(zeros.values()) / sum(sizes.values())}
