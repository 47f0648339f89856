"""Find a model's classifier head: the layers whose output is its logits.

Names say little (``head``, ``fc``, ``classifier.out``, ``lm_head``...), so the head is found
by running one forward pass: every module's output is remembered by its autograd node, and the
graph is walked back from ``modelio.logits_of(outputs)`` through operations and parameter-free
modules (activations, pooling, dropout, reshapes) to the first weight layers on each path.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Dropout())
>>> logit_layers(net, torch.zeros(1, 4))
['2']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.modelio import call, logits_of, take

#: The layer types a head can be.
HEAD_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _weight_leaf(module: nn.Module) -> bool:
    """A module with parameters and no children (a norm, an embedding): where a body begins. A
    container with parameters of its own (a head with a learned temperature) is walked through."""
    return next(module.parameters(recurse=False), None) is not None and next(module.children(), None) is None


def _producers(model: nn.Module, inputs: Any) -> tuple[dict[Any, list[str]], Any]:
    """One forward pass: ``{autograd node: [names of the modules whose output it made]}``
    (innermost first), and the model's logits."""
    made: dict[Any, list[str]] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.grad_fn is not None:
                made.setdefault(output.grad_fn, []).append(name)
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]
    # Autograd nodes need parameters that require gradients: frozen ones are switched on for
    # this one pass and switched back.
    frozen = [p for p in model.parameters() if p.is_floating_point() and not p.requires_grad]
    was_training = model.training
    try:
        model.eval()
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad():
            logits = logits_of(call(model, take(inputs, 1)))
    finally:
        model.train(was_training)
        for p in frozen:
            p.requires_grad_(False)
        for h in handles:
            h.remove()
    return made, logits


def logit_layers(model: nn.Module, inputs: Any, types: tuple[type[nn.Module], ...] = HEAD_TYPES) -> list[str]:
    """Names of the layers of ``types`` whose output is the logits or feeds them directly (through
    operations and parameter-free modules only), in the order found; ``[]`` when none does (e.g.
    logits made from a tied embedding matrix). ``inputs`` are model inputs as :mod:`slimkit.modelio`
    reads them; one sample is run in eval mode.
    """
    made, logits = _producers(model, inputs)
    modules = dict(model.named_modules())
    found: list[str] = []
    stack, seen = [logits.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names = made.get(node, [])
        heads = [n for n in names if isinstance(modules[n], types)]
        if heads:
            found += [n for n in heads if n not in found]
            continue
        if any(_weight_leaf(modules[n]) for n in names):
            continue  # another weight layer (a norm, attention, an embedding): the body starts here
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found
