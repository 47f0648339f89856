"""Quantization-aware training: the static-int8 scheme, simulated while the model trains.

Three steps, usable separately inside a user's own training loop:

1. :func:`prepare_qat` folds Conv-BN and inserts fake-quant modules (straight-through
   estimator) for weights (at ``weight_bits``) and activations (8 bits);
2. :func:`train_qat` fine-tunes in slimkit's Trainer, distilling from the float model
   (``slimkit.distillation.recover``) when ``config.distill``;
3. :func:`convert_qat` converts to int8 exactly as :class:`~slimkit.quantization.StaticInt8` does,
   with the ranges learned during training (no re-calibration), then deploys to the backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from slimkit import modelio
from slimkit.errors import ConfigError
from slimkit.quantization import _pt2e
from slimkit.quantization.calibrate import calibration_batches, report_float_layers
from slimkit.quantization.config import QAT
from slimkit.quantization.ptq import QUANTIZE, deploy, float_copy

__all__ = ["convert_qat", "prepare_qat", "train_qat"]


def prepare_qat(model: nn.Module, config: QAT, example: Tensor) -> torch.fx.GraphModule:
    """A trainable fake-quantized copy of ``model`` (BN folded); ``model`` is untouched."""
    if config.observer not in ("minmax", "moving_average"):
        raise ConfigError(
            f"QAT observer '{config.observer}' would rebuild a histogram range at every training step",
            hint="use observer='moving_average' (default) or 'minmax' for QAT; histogram observers suit PTQ",
        )
    _pt2e.check_quantizable(model, config)
    return _pt2e.prepare(float_copy(model, fold=config.fold_bn), config, example, qat=True)


def train_qat(
    prepared: nn.Module,
    original: nn.Module,
    train_loader: Iterable[Any],
    config: QAT,
    *,
    val_loader: Iterable[Any] | None = None,
    callbacks: Sequence[Any] = (),
) -> nn.Module:
    """Fine-tune the fake-quantized model as ``config.recovery`` says (KD from ``original`` + CE,
    or CE alone)."""
    from slimkit.distillation.recovery import recover

    return recover(prepared, original, train_loader, config.recovery, val_loader=val_loader, callbacks=callbacks)


def convert_qat(prepared: nn.Module, original: nn.Module, config: QAT, batches: list[Tensor]) -> nn.Module:
    """The trained fake-quant model as real int8 on ``config.backend``."""
    prepared.eval()
    with torch.no_grad():  # weight observers see the final weights (the last step changed them)
        modelio.call(prepared, batches[0])
    converted = _pt2e.convert(prepared)
    wanted = _pt2e.weighted_layers(original, config)
    left = _pt2e.float_layers(converted, wanted)
    report_float_layers("qat", left, strict=config.strict)
    info = {"scheme": config.to_dict(), "kind": "qat",
            "quantized_layers": [n for n in wanted if n not in left], "float_layers": left}
    return deploy(original, converted, config, batches, info)


@QUANTIZE.register(QAT)
def qat(model: nn.Module, config: QAT, train_loader: Any, example: Tensor | None) -> nn.Module:
    """prepare -> train (on ``train_loader``) -> convert; see the module docstring."""
    batches = calibration_batches(train_loader, 2, model=model, example=example, what="QAT training loader")
    prepared = prepare_qat(model, config, batches[0])
    train_qat(prepared, model, train_loader, config)
    return convert_qat(prepared, model, config, batches)
