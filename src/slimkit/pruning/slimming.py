"""Network Slimming's sparsity training: an L1 penalty on BatchNorm scales, as a Callback.

Liu et al. (2017) add ``lambda * sum |gamma|`` to the loss so that unimportant channels' BN
scales shrink towards zero during training; pruning by ``criterion="bn_scale"`` with global
allocation then removes them. The penalty's subgradient ``lambda * sign(gamma)`` is added to
the gradients in ``on_after_backward`` (after clipping), which is the same as adding the term to
the loss without touching the user's loss function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.select import select_modules
from slimkit.train.callbacks import Callback


class BNSparsity(Callback):
    """Add ``strength * sign(gamma)`` to the gradient of every selected BatchNorm scale.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    >>> net[1].weight.grad = torch.zeros(3)
    >>> callback = BNSparsity(1e-2)
    >>> callback.attach(net); callback.apply()
    >>> net[1].weight.grad.tolist()
    [0.009999999776482582, 0.009999999776482582, 0.009999999776482582]
    """

    def __init__(self, strength: float = 1e-4, *, include: Sequence[str] = ("*",), exclude: Sequence[str] = ()) -> None:
        if strength < 0:
            raise ConfigError(f"BNSparsity strength must be >= 0, got {strength}", hint="Network Slimming uses 1e-5 to 1e-4")
        self.strength, self.include, self.exclude = strength, tuple(include), tuple(exclude)
        self.scales: list[nn.Parameter] = []

    def attach(self, model: nn.Module) -> None:
        """Find the BatchNorm scales of ``model`` the penalty applies to."""
        layers = select_modules(model, self.include, exclude=self.exclude, types=[nn.modules.batchnorm._BatchNorm])
        self.scales = [m.weight for m in layers.values() if m.weight is not None]
        if not self.scales:
            raise ConfigError(
                f"BNSparsity found no BatchNorm scale in {type(model).__name__} (include={list(self.include)})",
                hint="Network Slimming needs BatchNorm layers with affine=True",
            )

    def apply(self) -> None:
        with torch.no_grad():
            for gamma in self.scales:
                if gamma.grad is not None:
                    gamma.grad.add_(torch.sign(gamma), alpha=self.strength)

    def on_fit_start(self, trainer: Any) -> None:
        self.attach(trainer.model)

    def on_after_backward(self, trainer: Any) -> None:
        self.apply()
