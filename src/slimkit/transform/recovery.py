"""Recover accuracy after a structural change by distilling from the original model.

Uses ``slimkit.distill.recover`` (KD from the original plus cross-entropy), so every technique
recovers the same way. ``recover`` has no seed yet; for another seed the same losses are run
through ``slimkit.distill.distill`` with that seed (benchmarks average over seeds).
"""

from __future__ import annotations

import inspect
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

    options = {"val_loader": val_loader, "epochs": epochs, "lr": lr, "callbacks": tuple(callbacks)}
    if seed == 0 or "seed" in inspect.signature(recover).parameters:
        return recover(model, original, train_loader, **options, **({"seed": seed} if seed else {}))
    from slimkit.distill import DistillConfig, distill
    from slimkit.train import TrainConfig

    config = DistillConfig(losses=[{"name": "kd", "weight": KD_WEIGHT, "temperature": TEMPERATURE},
                                   {"name": "ce", "weight": 1.0 - KD_WEIGHT}],
                           train=TrainConfig(epochs=epochs, lr=lr, seed=seed, progress=False))
    training, flags = original.training, [p.requires_grad for p in original.parameters()]
    original.eval().requires_grad_(False)
    try:
        distill(model, original, train_loader, config, val_loader=val_loader, callbacks=tuple(callbacks))
    finally:
        original.train(training)
        for param, flag in zip(original.parameters(), flags):
            param.requires_grad_(flag)
    return model
