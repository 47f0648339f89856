"""Recover accuracy after a structural change by distilling from the original model.

Uses ``slimkit.distill.recover`` (KD from the original plus cross-entropy), so every technique
recovers the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

KD_WEIGHT, TEMPERATURE = 0.9, 4.0  # recover's defaults: alpha * KD(T) + (1 - alpha) * CE


def recover_from(
    model: nn.Module,
    original: nn.Module,
    train_loader: Iterable,
    *,
    val_loader: Iterable | None = None,
    epochs: int = 1,
    lr: float = 5e-4,
    callbacks: Sequence[Any] = (),
    seed: int = 0,
) -> nn.Module:
    """Fine-tune ``model`` for ``epochs`` on ``train_loader``, distilling from ``original``.

    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> x = torch.randn(16, 4); y = (x[:, 0] > 0).long()
    >>> net = recover_from(nn.Linear(4, 2), nn.Linear(4, 2), DataLoader(TensorDataset(x, y), batch_size=8))
    >>> isinstance(net, nn.Linear)
    True
    """
    from slimkit.distill import recover

    return recover(model, original, train_loader, val_loader=val_loader, epochs=epochs, lr=lr,
                   temperature=TEMPERATURE, alpha=KD_WEIGHT, callbacks=tuple(callbacks), seed=seed)
