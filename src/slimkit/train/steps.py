"""What one batch means: moving it to the device, the default loss, accuracy, and validation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.errors import TrainingError

#: ``loss_fn(outputs, batch)`` where batch is what the loader yields (x, y, *extra) already on
#: the device and outputs = model(batch[0]); returns the loss or (loss, {name: value}) whose
#: values are averaged into the epoch metrics as ``train_<name>``.
LossFn = Callable[[Any, tuple], Tensor | tuple[Tensor, dict[str, float]]]


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) tuple/list/dict batch to ``device``; lists become tuples.

    >>> to_device([torch.zeros(1), 3, {"m": torch.ones(1)}], torch.device("cpu"))
    (tensor([0.]), 3, {'m': tensor([1.])})
    """
    if isinstance(batch, Tensor):
        # non_blocking only helps (and is only safe) for pinned host memory going to an accelerator.
        return batch.to(device, non_blocking=device.type != "cpu")
    if isinstance(batch, (tuple, list)):
        return tuple(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def logits_of(outputs: Any) -> Tensor:
    """The logits in a model's outputs: the outputs themselves, or the first element of a tuple/list.

    >>> logits_of((torch.ones(2, 3), "features")).shape
    torch.Size([2, 3])
    """
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def count_correct(outputs: Any, batch: tuple) -> int | None:
    """Number of samples whose arg-max logit matches the label batch[1]; None without labels.

    Soft (N, C) float targets count by their arg-max.

    >>> count_correct(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), (None, torch.tensor([0, 0])))
    1
    """
    if len(batch) < 2 or not isinstance(batch[1], Tensor):
        return None
    target = batch[1]
    if target.is_floating_point() and target.ndim == 2:
        target = target.argmax(dim=1)
    return int((logits_of(outputs).argmax(dim=1) == target).sum())


class ClassificationLoss(nn.Module):
    """The default LossFn: cross-entropy of the logits against batch[1], with label smoothing.

    >>> loss = ClassificationLoss()(torch.zeros(4, 2), (None, torch.zeros(4, dtype=torch.long)))
    >>> round(loss.item(), 4)  # log(2)
    0.6931
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, outputs: Any, batch: tuple) -> Tensor:
        if len(batch) < 2:
            raise TrainingError(
                "the default loss needs batches of (inputs, labels), but the loader yields 1 element",
                hint="yield (x, y) from the loader, or pass a loss_fn that needs no labels",
            )
        return F.cross_entropy(logits_of(outputs), batch[1], label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


def split_loss(result: Any) -> tuple[Tensor, dict[str, float]]:
    """Normalise a LossFn's return value to (loss, logs as floats).

    >>> split_loss((torch.tensor(1.0), {"kd": torch.tensor(0.5)}))
    (tensor(1.), {'kd': 0.5})
    """
    if isinstance(result, Tensor):
        return result, {}
    if isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[0], Tensor):
        loss, logs = result
        if isinstance(logs, dict):
            return loss, {str(key): float(v.detach() if isinstance(v, Tensor) else v) for key, v in logs.items()}
    raise TrainingError(
        f"loss_fn returned {type(result).__name__}; expected a scalar Tensor or (Tensor, dict of logs)",
        hint="return loss or (loss, {'name': value})",
    )


@torch.no_grad()
def evaluate_loss_acc(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: LossFn | None = None,
    *,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (eval mode, no gradients).

    The loss is ``loss_fn`` (its first element if it returns logs), plain cross-entropy by
    default. Both are averaged over samples. ``device`` defaults to the model's. The model's
    train/eval mode is restored afterwards.

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> data = DataLoader(TensorDataset(torch.eye(4), torch.arange(4)), batch_size=3)
    >>> evaluate_loss_acc(nn.Identity(), data)[1]  # logits = one-hot of the label
    1.0
    """
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    loss_fn = loss_fn if loss_fn is not None else ClassificationLoss()
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    try:
        for raw in loader:
            batch = to_device(raw, device)
            outputs = model(batch[0])
            loss, _ = split_loss(loss_fn(outputs, batch))
            size = len(batch[0])
            total_loss += float(loss) * size
            correct += count_correct(outputs, batch) or 0
            seen += size
    finally:
        model.train(was_training)
    if seen == 0:
        raise TrainingError("the evaluation loader yielded no samples", hint="check the dataset is not empty")
    return total_loss / seen, correct / seen
