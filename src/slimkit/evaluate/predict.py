"""Run a model over a loader and collect its logits and the targets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from slimkit.errors import DataError, ModelError
from slimkit.modelio import call, logits_of, split, to_device

__all__ = ["Predictions", "eval_mode", "model_device", "predict"]


@dataclass
class Predictions:
    """Logits (N, C) and integer targets (N,) of one pass over a loader, both on the CPU."""

    logits: Tensor
    targets: Tensor

    def pair(self) -> tuple[Tensor, Tensor]:
        """``(logits, targets)``, the arguments every quality metric takes."""
        return self.logits, self.targets

    @property
    def labels(self) -> Tensor:
        """Predicted class per sample (argmax of the logits)."""
        return self.logits.argmax(dim=1)

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; the CPU for a model with none.

    >>> model_device(nn.Linear(2, 2))
    device(type='cpu')
    """
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore each submodule's own mode afterwards.

    Restoring matters because callers often evaluate mid-training.

    >>> m = nn.Dropout().train()
    >>> with eval_mode(m):
    ...     m.training
    False
    >>> m.training
    True
    """
    modes = {name: module.training for name, module in model.named_modules()}
    model.eval()
    try:
        yield model
    finally:
        for name, module in model.named_modules():
            module.training = modes.get(name, module.training)


def predict(
    model: nn.Module, loader: Iterable, *, device: torch.device | str | None = None
) -> Predictions:
    """Logits and targets of ``model`` over ``loader`` in eval mode without gradients.

    Batches and outputs are read as :mod:`slimkit.modelio` says (tensors, tuples or named
    inputs; tensors, tuples, dicts or ``.logits`` outputs), and every batch needs labels.
    ``device`` defaults to the model's own device; the model is not moved, so pass a device
    only where the model already lives there. Results come back on the CPU.

    >>> data = [(torch.eye(3), torch.tensor([0, 1, 2]))]
    >>> p = predict(nn.Identity(), data)
    >>> p.labels.tolist(), p.targets.tolist()
    ([0, 1, 2], [0, 1, 2])
    """
    device = torch.device(device) if device is not None else model_device(model)
    logits: list[Tensor] = []
    targets: list[Tensor] = []
    with eval_mode(model), torch.no_grad():
        for raw in loader:
            batch = split(raw)
            if batch.targets is None:
                raise DataError("evaluation needs labels, and the loader's batches have none",
                                hint="yield (x, y) or a mapping with a 'labels' key")
            y = batch.targets
            out = logits_of(call(model, to_device(batch.inputs, device)))
            if out.dim() != 2:
                raise ModelError(
                    f"expected logits of shape (batch, classes), got {tuple(out.shape)}",
                    hint="make the model end with a classifier that outputs one score per class",
                )
            logits.append(out.detach().float().cpu())
            targets.append(torch.as_tensor(y).detach().long().cpu().reshape(-1))
    if not logits:
        raise DataError("the loader yielded no batches", hint="check the dataset is not empty")
    return Predictions(torch.cat(logits), torch.cat(targets))
