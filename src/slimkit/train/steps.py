"""What one batch means for training: the default loss, accuracy, and validation (batches and
outputs are read by :mod:`slimkit.modelio`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.errors import TrainingError
from slimkit.modelio import batch_size, call, logits_of, split, to_device

#: ``loss_fn(outputs, batch)`` where batch is what the loader yields, already on the device (see
#: :mod:`slimkit.modelio`: ``(x, y, *extra)``, ``(dict, y)`` or a mapping with a label key) and
#: outputs = the model called on the batch's inputs; returns the loss or (loss, {name: value})
#: whose values are averaged into the epoch metrics as ``train_<name>``.
LossFn = Callable[[Any, Any], Tensor | tuple[Tensor, dict[str, float]]]


def count_correct(outputs: Any, batch: Any) -> int | None:
    """Number of samples whose arg-max logit matches the batch's labels; None without labels.

    Soft (N, C) float targets count by their arg-max.

    >>> count_correct(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), (None, torch.tensor([0, 0])))
    1
    """
    target = split(batch).targets
    if not isinstance(target, Tensor):
        return None
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

    def forward(self, outputs: Any, batch: Any) -> Tensor:
        targets = split(batch).targets
        if not isinstance(targets, Tensor):
            raise TrainingError(
                "the default loss needs labels, but the loader's batches have none",
                hint="yield (x, y) or a mapping with a 'labels' key from the loader, or pass a loss_fn that needs no labels",
            )
        logits = logits_of(outputs)
        if targets.dtype != torch.long or logits.dim() < 2:
            return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        classes = logits.shape[1]
        if targets.numel() and (int(targets.max()) >= classes or int(targets.min()) < 0):
            raise TrainingError(
                f"the model gives {classes} logits per sample, but the data has label "
                f"{int(targets.max()) if int(targets.max()) >= classes else int(targets.min())}",
                hint="build the model with as many outputs as the data has classes (num_classes=...)",
            )
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

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
            inputs = split(batch).inputs
            outputs = call(model, inputs)
            loss, _ = split_loss(loss_fn(outputs, batch))
            size = batch_size(inputs)
            total_loss += float(loss) * size
            correct += count_correct(outputs, batch) or 0
            seen += size
    finally:
        model.train(was_training)
    if seen == 0:
        raise TrainingError("the evaluation loader yielded no samples", hint="check the dataset is not empty")
    return total_loss / seen, correct / seen
