"""``recover``: win back accuracy after compression by distilling from the original model.

Pruning, quantization-aware training and factorization all end with this step: fine-tune the
compressed model on ``alpha * KD + (1 - alpha) * CE`` with the uncompressed model as teacher.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from slimkit.errors import ConfigError
from slimkit.train import Callback, TrainConfig


def recover(
    model: nn.Module,
    original: nn.Module,
    train_loader: DataLoader,
    *,
    val_loader: Iterable[Any] | None = None,
    epochs: int = 1,
    lr: float = 5e-4,
    temperature: float = 4.0,
    alpha: float = 0.9,
    callbacks: Sequence[Callback] = (),
    out_dir: str | Path | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> nn.Module:
    """Fine-tune ``model`` in place by distilling from ``original`` (KD at ``temperature``
    weighted ``alpha``, hard-label CE weighted ``1 - alpha``); return ``model``.

    ``seed`` and ``threads`` go to the TrainConfig (AdamW, cosine schedule, no progress bar).

    ``original`` serves as a frozen teacher for the duration and gets its training mode and
    ``requires_grad`` flags back afterwards. Its outputs are cached when the loader does not
    augment (``cache_teacher="auto"``), so an epoch costs about as much as plain fine-tuning.

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> _ = torch.manual_seed(0); x = torch.randn(16, 4); y = (x[:, 0] > 0).long()
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=8)
    >>> original = nn.Linear(4, 2)
    >>> recover(nn.Linear(4, 2), original, loader).weight.shape, original.training
    (torch.Size([2, 4]), True)
    """
    from slimkit.distill.config import DistillConfig
    from slimkit.distill.offline import distill

    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ConfigError(f"recover: alpha must be in [0, 1], got {alpha!r}", hint="alpha weights KD, 1 - alpha weights CE")
    config = DistillConfig(
        losses=[{"name": "kd", "weight": float(alpha), "temperature": temperature},
                {"name": "ce", "weight": 1.0 - float(alpha)}],
        train=TrainConfig(epochs=epochs, lr=lr, seed=seed, threads=threads, progress=False),
    )
    training, device = original.training, next(original.parameters(), None)
    grads = [p.requires_grad for p in original.parameters()]
    original.eval().requires_grad_(False)  # frozen on purpose here: no warning
    try:
        distill(model, original, train_loader, config, val_loader=val_loader, out_dir=out_dir, callbacks=callbacks)
    finally:
        original.train(training)
        if device is not None:
            original.to(device.device)
        for param, flag in zip(original.parameters(), grads):
            param.requires_grad_(flag)
    return model
