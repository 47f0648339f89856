"""Calibration data: take batches from the user's loader and check them before quantizing.

The loader is the user's own: batches as :mod:`slimkit.modelio` reads them (``(x, y, ...)``,
``(dict, y)``, a mapping with labels, or bare inputs), float images or integer token IDs.
Problems are reported as DataError naming what was expected, before any minutes are spent
calibrating.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from slimkit import modelio
from slimkit.errors import DataError, ModelError
from slimkit.evaluate.predict import eval_mode

__all__ = ["QuantizationWarning", "calibration_batches", "expected_shape", "report_float_layers"]


class QuantizationWarning(UserWarning):
    """Part of a model stayed in float (or another quantization caveat)."""


def expected_shape(model: nn.Module, example: Tensor | None = None) -> tuple[int, ...] | None:
    """The per-sample input shape: from ``example`` or a zoo model's spec, else unknown.

    >>> from slimkit.models import build_model
    >>> expected_shape(build_model("cnn", input_size=8))
    (1, 8, 8)
    """
    if example is not None:
        return tuple(example.shape[1:])
    recorded = getattr(model, "slimkit_inputs", None)
    if isinstance(recorded, dict) and recorded.get("kind") == "tensor" and recorded.get("tensors"):
        row = recorded["tensors"][0]  # token IDs may come at any sequence length: only float shapes are fixed
        return tuple(row["shape"]) if str(row.get("dtype", "")).startswith("float") else None
    spec = getattr(model, "slimkit_spec", None) or {}
    kwargs = spec.get("kwargs", {})
    if spec.get("name"):
        size = int(kwargs.get("input_size", 28))
        return (int(kwargs.get("in_channels", 1)), size, size)
    return None


def calibration_batches(
    loader: Iterable[Any] | None,
    limit: int,
    *,
    model: nn.Module,
    example: Any = None,
    what: str = "calibration loader",
    targets: list[Any] | None = None,
) -> list[Any]:
    """Up to ``limit`` batches of model inputs from ``loader`` (batches as :mod:`slimkit.modelio`
    reads them: a tensor, positional or named tensors, integer token IDs included), checked for
    emptiness and shape and checked to run through ``model``. When ``targets`` is a list, each
    batch's labels (or None) are appended to it, in step with the returned inputs.

    >>> from slimkit.models import build_model
    >>> calibration_batches([], 4, model=build_model("cnn", input_size=8))
    Traceback (most recent call last):
    ...
    slimkit.errors.DataError: the calibration loader is empty: quantization needs real inputs to choose activation ranges
      hint: pass a DataLoader over a few hundred training samples (e.g. loaders.train)
    """
    if loader is None:
        raise DataError(f"no {what} given: static quantization needs real inputs to choose activation ranges",
                        hint="pass calib_loader=<a DataLoader over a few hundred training samples>")
    batches: list[Any] = []
    for batch in loader:
        if len(batches) >= limit:
            break
        split = modelio.split(batch)
        inputs = split.inputs
        if targets is not None:
            targets.append(split.targets)
        found = modelio.tensors(inputs)  # DataError when the inputs are not tensors
        if not found or any(t.dim() == 0 for _, t in found):
            raise DataError(f"the {what} yields inputs without a batch dimension",
                            hint="the loader should yield (x, y) batches, as slimkit's loaders do")
        batches.append(modelio.map_tensors(inputs, lambda t: t.detach().cpu()))
    if not batches:
        raise DataError(f"the {what} is empty: quantization needs real inputs to choose activation ranges",
                        hint="pass a DataLoader over a few hundred training samples (e.g. loaders.train)")
    want = expected_shape(model, example) if isinstance(example, Tensor) or example is None else None
    names = modelio.input_names(example) if example is not None else None
    for i, x in enumerate(batches):
        if isinstance(x, Tensor) and (x.dim() < 2 or (want is not None and tuple(x.shape[1:]) != want)):
            raise DataError(f"{what} batch {i} has shape {tuple(x.shape)}, but the model takes (N, {', '.join(map(str, want or ('...',)))})",
                            hint="calibrate on the same kind of data the model was trained on")
        if names is not None and modelio.input_names(x) != names:
            raise DataError(f"{what} batch {i} has inputs {modelio.input_names(x)}, but the model takes {names}",
                            hint="calibrate on the same kind of data the model was trained on")
    try:
        with eval_mode(model), torch.no_grad():
            modelio.call(model, modelio.take(batches[0], 2))
    except (ModelError, RuntimeError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"the model cannot run on {what} batches like {_describe(batches[0])}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                        hint="calibrate on the data the model was trained on") from exc
    return batches


def _describe(inputs: Any) -> str:
    return ", ".join(f"{name} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for name, t in modelio.tensors(inputs))


def report_float_layers(kind: str, left: dict[str, str], *, strict: bool) -> None:
    """Warn (or, with ``strict``, fail) naming every selected layer that stayed in float."""
    if not left:
        return
    listed = ", ".join(f"{name} ({op})" for name, op in sorted(left.items()))
    message = f"{kind}: {len(left)} layer(s) kept in float because they cannot be quantized: {listed}"
    if strict:
        raise ModelError(message, hint="exclude them (exclude=[...]) to keep them float on purpose, "
                                       "or set strict=False to accept partial quantization")
    warnings.warn(message, QuantizationWarning, stacklevel=4)
