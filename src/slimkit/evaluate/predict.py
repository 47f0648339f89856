"""Run a model over a loader and collect its logits and the targets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from slimkit.errors import DataError, ModelError

__all__ = ["Predictions", "eval_mode", "model_device", "output_logits", "predict", "unpack_batch"]


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


def unpack_batch(batch: object) -> tuple[Tensor, Tensor]:
    """Split a loader batch ``(x, y, *extra)`` into ``(x, y)``; anything else is a DataError.

    >>> x, y = unpack_batch((torch.zeros(2, 3), torch.tensor([0, 1]), "extra"))
    >>> tuple(x.shape), y.tolist()
    ((2, 3), [0, 1])
    """
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise DataError(
        f"evaluation expects loader batches of (inputs, targets, ...), got {type(batch).__name__}",
        hint="wrap the dataset so each item is (x, y), e.g. torch.utils.data.TensorDataset(x, y)",
    )


def output_logits(output: object) -> Tensor:
    """The logits inside a model's output: the tensor itself, the first element of a tuple or
    list (models that also return features), or ``output["logits"]``.

    >>> output_logits((torch.ones(1, 2), "features")).shape
    torch.Size([1, 2])
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    if isinstance(output, dict) and isinstance(output.get("logits"), Tensor):
        return output["logits"]
    raise ModelError(
        f"cannot find logits in a model output of type {type(output).__name__}",
        hint="return a tensor, a tuple whose first element is the logits, or a dict with 'logits'",
    )


def predict(
    model: nn.Module, loader: Iterable, *, device: torch.device | str | None = None
) -> Predictions:
    """Logits and targets of ``model`` over ``loader`` in eval mode without gradients.

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
        for batch in loader:
            x, y = unpack_batch(batch)
            out = output_logits(model(x.to(device)))
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
