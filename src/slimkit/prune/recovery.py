"""Recovery after pruning: fine-tune the pruned model, distilling from the original.

With ``distill=True`` this is ``slimkit.distill.recover`` (0.9 KD at T=4 + 0.1 CE, the original
as a frozen teacher); ``distill=False`` fine-tunes with plain cross-entropy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from slimkit.train import Callback, TrainConfig, Trainer

KD_ALPHA, KD_TEMPERATURE = 0.9, 4.0


def finetune(model: nn.Module, original: nn.Module | None, train_loader: Any, *,
             val_loader: Iterable[Any] | None = None, epochs: int = 1, lr: float = 5e-4,
             callbacks: Sequence[Callback] = (), distill: bool = True, seed: int = 0,
             threads: int | None = None) -> nn.Module:
    """Fine-tune ``model`` in place for ``epochs`` and return it (KD from ``original`` when
    ``distill`` and ``original`` is given, else cross-entropy)."""
    if distill and original is not None:
        from slimkit.distill import recover

        return recover(model, original, train_loader, val_loader=val_loader, epochs=epochs, lr=lr,
                       temperature=KD_TEMPERATURE, alpha=KD_ALPHA, callbacks=callbacks, seed=seed, threads=threads)
    config = TrainConfig(epochs=epochs, lr=lr, seed=seed, threads=threads, progress=False)
    Trainer(model, config, callbacks=callbacks).fit(train_loader, val_loader)
    return model
