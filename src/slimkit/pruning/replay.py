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
from slimkit.modelio import make_inputs


def replay_channels(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Redo a recorded ``prune_channels`` change on ``model`` (built from the original spec).

    The tracing inputs are rebuilt from the recorded input spec (``inputs``: names, shapes and
    dtypes, so token IDs stay integers); records written before it have ``input_shape`` (one
    float tensor)."""
    from slimkit.pruning.structured import apply_removals

    if "removed" not in change or ("inputs" not in change and "input_shape" not in change):
        missing = "'removed'" if "removed" not in change else "'inputs'"
        raise CheckpointError(f"the prune_channels record lacks {missing}", hint="the model.json was edited or truncated")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if "inputs" in change:
        example = make_inputs(change["inputs"], 1, device=device, source="the prune_channels record")
    else:
        shape = change["input_shape"]
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 1 for s in shape):
            raise CheckpointError(f"the prune_channels record has a bad input_shape {str(shape)[:80]}")
        example = torch.zeros(shape, device=device)
    removed = change["removed"]
    if not isinstance(removed, dict):
        raise CheckpointError("the prune_channels record's 'removed' is not a mapping of layer names to indices")
    apply_removals(model, example, {k: list(v) for k, v in removed.items()}, change.get("keep", ()),
                   include=change.get("include", ("*",)))
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
