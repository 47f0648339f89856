"""Replayers that rebuild pruned architectures on load, registered in ``export.CHANGES``.

``prune_channels`` removes the recorded channel indices from the freshly built model with the
same dependency graph code that pruned it, so the rebuilt model has the pruned shapes and the
saved weights load into it. ``prune_masks`` re-attaches (all-ones) mask parametrizations so that
a model saved mid fine-tuning, masks and all, loads back; the saved mask buffers then fill them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.errors import CheckpointError
from slimkit.export.serialize import CHANGES


def replay_channels(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Redo a recorded ``prune_channels`` change on ``model`` (built from the original spec)."""
    from slimkit.pruning.structured import apply_removals

    try:
        shape, removed = change["input_shape"], change["removed"]
    except KeyError as exc:
        raise CheckpointError(f"the prune_channels record lacks {exc}", hint="the model.json was edited or truncated") from None
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    apply_removals(model, torch.zeros(shape, device=device), {k: list(v) for k, v in removed.items()},
                   change.get("keep", ()))
    return model


def replay_masks(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Re-attach unstructured pruning masks (all ones) on the recorded layers."""
    from slimkit.pruning.unstructured import attach_mask

    for name in change.get("layers", []):
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"the prune_masks record names layer '{name}', which the model does not have",
                                  hint="the model.json does not belong to this architecture") from None
        attach_mask(module, torch.ones_like(module.weight, dtype=torch.bool))
    return model


if "prune_channels" not in CHANGES:
    CHANGES.add("prune_channels", replay_channels, doc="structured channel removal (slimkit.pruning)")
if "prune_masks" not in CHANGES:
    CHANGES.add("prune_masks", replay_masks, doc="unstructured pruning masks (slimkit.pruning)")
