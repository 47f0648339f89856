"""The model I/O contract: what a batch is, how a model is called, and where its logits are.

Every part of slimkit that feeds a model goes through this module: the Trainer, distillation,
prediction and comparison, calibration, cost and latency measurement, export and parity
checks, replay on load, recipes and the report. So a model that works here works everywhere.

**Batches.** A loader may yield

- ``(x, y, *extra)``, where ``x`` is one tensor, a tuple of tensors (several positional
  inputs) or a mapping of named tensors (keyword inputs);
- a mapping with a label key (``labels``, ``label``, ``targets``, ``target`` or ``y``); the
  other keys are the model's keyword inputs, as Hugging Face datasets yield them;
- bare inputs (no labels), for calibration or export.

**Inputs** keep their dtype: integer token IDs are never cast to float, and only float tensors
are ever perturbed (robustness) or drawn at random (latency).

**Outputs.** A model may return a tensor, a tuple or list (logits first), a mapping with a
``logits`` key, or an object with a ``.logits`` attribute (Hugging Face ``ModelOutput``).

>>> import torch
>>> b = split({"input_ids": torch.tensor([[1, 2]]), "labels": torch.tensor([0])})
>>> sorted(b.inputs), b.targets.tolist()
(['input_ids'], [0])
>>> spec = input_spec(b.inputs)
>>> spec["tensors"][0]["dtype"], spec["tensors"][0]["shape"]
('int64', [2])
>>> make_inputs(spec, 3)["input_ids"].shape
torch.Size([3, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import CheckpointError, DataError, ModelError, SlimkitError

__all__ = [
    "LABEL_KEYS",
    "MAX_INPUT_ELEMENTS",
    "Batch",
    "batch_size",
    "call",
    "example_for",
    "example_from",
    "forward_logits",
    "has_float",
    "input_names",
    "input_spec",
    "logits_of",
    "make_inputs",
    "map_floats",
    "map_tensors",
    "remember_inputs",
    "split",
    "take",
    "tensors",
    "tile",
    "to_device",
]

#: Mapping keys read as the labels of a batch that is a mapping.
LABEL_KEYS = ("labels", "label", "targets", "target", "y")
#: Dtypes an input spec may name (a spec is data read from files: nothing else is looked up).
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool,
}
#: The most elements an input made from a spec may have per sample (a spec read from a file
#: could ask for terabytes; this caps it before anything is allocated).
MAX_INPUT_ELEMENTS = 1 << 26

Inputs = Any  # Tensor | tuple[Tensor, ...] | Mapping[str, Tensor]


@dataclass(frozen=True)
class Batch:
    """One loader batch, understood: the model's ``inputs``, the ``targets`` (None if the batch
    has no labels) and anything after them (``extra``, e.g. sample indices)."""

    inputs: Inputs
    targets: Tensor | None = None
    extra: tuple[Any, ...] = ()


def split(batch: Any) -> Batch:
    """Read a loader batch as inputs, targets and extras (see the module docstring).

    >>> split((torch.zeros(2, 3), torch.tensor([0, 1]), "i")).extra
    ('i',)
    >>> split(torch.zeros(2, 3)).targets is None
    True
    """
    if isinstance(batch, Tensor):
        return Batch(batch)
    if isinstance(batch, Mapping):
        key = next((k for k in LABEL_KEYS if k in batch), None)
        if key is None:
            return Batch(dict(batch))
        return Batch({k: v for k, v in batch.items() if k != key}, batch[key])
    if isinstance(batch, (tuple, list)) and batch:
        inputs = batch[0]
        if isinstance(inputs, list):
            inputs = tuple(inputs)
        targets = batch[1] if len(batch) > 1 else None
        return Batch(inputs, targets, tuple(batch[2:]))
    raise DataError(
        f"a batch must be a tensor, a tuple (inputs, labels, ...) or a mapping of named tensors, "
        f"got {type(batch).__name__}",
        hint="wrap the dataset so each item is (x, y), e.g. torch.utils.data.TensorDataset(x, y)",
    )


def _invoke(model: Callable[..., Any], inputs: Inputs) -> Any:
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def call(model: Callable[..., Any], inputs: Inputs) -> Any:
    """Call ``model`` on ``inputs``: keyword arguments for a mapping, positional ones for a tuple.

    A failure inside the model's forward becomes a ModelError that names the innermost module
    that was running and the inputs it was given (errors slimkit raises on purpose pass as they are).

    >>> call(lambda a, b: a + b, (1, 2)), call(lambda x=0: x, {"x": 3})
    (3, 3)
    >>> call(nn.Sequential(nn.Linear(4, 2)), torch.zeros(1, 3))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ModelError: Sequential failed in module '0' (Linear) on inputs [input: (1, 3) float32]: mat1 and mat2 ...
      hint: check that the data fits the model (its input shape, dtype and number of classes), ...
    """
    try:
        return _invoke(model, inputs)
    except SlimkitError:
        raise
    except Exception as exc:  # any failure in the user's model: say where it happened
        if not isinstance(model, nn.Module):
            raise
        raise _diagnose(model, inputs, exc) from exc


def _diagnose(model: nn.Module, inputs: Inputs, exc: Exception) -> ModelError:
    """Run ``model`` again under hooks to find the innermost module that fails."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[nn.Module] = []
    failed: list[nn.Module] = []

    def enter(module: nn.Module, args: Any) -> None:
        stack.append(module)

    def leave(module: nn.Module, args: Any, output: Any) -> None:  # returns None: the output is kept
        if stack:
            stack.pop()

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    try:
        with torch.no_grad():
            _invoke(model, inputs)
    except Exception:  # noqa: BLE001 (the failure we are locating)
        failed = list(stack)
    finally:
        for handle in handles:
            handle.remove()
    where = failed[-1] if failed else model
    name = names.get(where, "") or "(root)"
    shapes = ", ".join(f"{n}: {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for n, t in tensors(inputs))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelError(
        f"{type(model).__name__} failed in module '{name}' ({type(where).__name__}) on inputs [{shapes}]: {first[:300]}",
        hint="check that the data fits the model (its input shape, dtype and number of classes), or build the "
             "model for this data",
    )


def logits_of(outputs: Any) -> Tensor:
    """The logits in a model's outputs (see the module docstring); ModelError if there are none.

    >>> logits_of((torch.ones(2, 3), "features")).shape
    torch.Size([2, 3])
    >>> logits_of({"logits": torch.zeros(1, 2), "hidden": None}).shape
    torch.Size([1, 2])
    """
    if isinstance(outputs, Tensor):
        return outputs
    found = getattr(outputs, "logits", None)
    if isinstance(found, Tensor):
        return found
    if isinstance(outputs, Mapping):
        if isinstance(outputs.get("logits"), Tensor):
            return outputs["logits"]
        first = next((v for v in outputs.values() if isinstance(v, Tensor)), None)
        if first is not None and len(outputs) == 1:
            return first
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], Tensor):
        return outputs[0]
    raise ModelError(
        f"cannot find logits in a model output of type {type(outputs).__name__}",
        hint="return a tensor, a tuple whose first element is the logits, a dict with 'logits', "
             "or an object with a .logits attribute",
    )


def forward_logits(model: Callable[..., Any], inputs: Inputs) -> Tensor:
    """``logits_of(call(model, inputs))``."""
    return logits_of(call(model, inputs))


def to_device(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor in a (nested) batch to ``device``; dtypes, tuples and keys are kept.

    >>> to_device([torch.zeros(1), 3, {"m": torch.ones(1, dtype=torch.long)}], "cpu")
    (tensor([0.]), 3, {'m': tensor([1])})
    """
    device = torch.device(device)
    if isinstance(obj, Tensor):
        # non_blocking only helps (and is only safe) for pinned host memory going to an accelerator.
        return obj.to(device, non_blocking=device.type != "cpu")
    if isinstance(obj, Mapping):
        return {key: to_device(value, device) for key, value in obj.items()}
    if isinstance(obj, (tuple, list)):
        return tuple(to_device(item, device) for item in obj)
    return obj


def tensors(inputs: Inputs) -> list[tuple[str, Tensor]]:
    """The input tensors with names: mapping keys, ``input_K`` for a tuple, ``input`` for one.

    >>> [n for n, _ in tensors((torch.zeros(1), torch.zeros(1)))]
    ['input_0', 'input_1']
    """
    if isinstance(inputs, Tensor):
        return [("input", inputs)]
    if isinstance(inputs, Mapping):
        return [(str(k), v) for k, v in inputs.items() if isinstance(v, Tensor)]
    if isinstance(inputs, tuple):
        return [(f"input_{k}", v) for k, v in enumerate(inputs) if isinstance(v, Tensor)]
    raise DataError(f"model inputs must be a tensor, a tuple or a mapping of tensors, got {type(inputs).__name__}")


def input_names(inputs: Inputs) -> list[str]:
    """The names :func:`tensors` gives, in order (ONNX input names use them)."""
    return [name for name, _ in tensors(inputs)]


def map_tensors(inputs: Inputs, fn: Callable[[Tensor], Tensor]) -> Inputs:
    """``inputs`` with ``fn`` applied to every tensor, the structure kept."""
    if isinstance(inputs, Tensor):
        return fn(inputs)
    if isinstance(inputs, Mapping):
        return {k: fn(v) if isinstance(v, Tensor) else v for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(fn(v) if isinstance(v, Tensor) else v for v in inputs)
    return inputs


def map_floats(inputs: Inputs, fn: Callable[[Tensor], Tensor]) -> Inputs:
    """``fn`` applied to the floating-point tensors only: token IDs and masks pass unchanged.

    >>> out = map_floats({"ids": torch.ones(1, dtype=torch.long), "x": torch.ones(1)}, lambda t: t * 2)
    >>> out["ids"].item(), out["x"].item()
    (1, 2.0)
    """
    return map_tensors(inputs, lambda t: fn(t) if t.is_floating_point() else t)


def has_float(inputs: Inputs) -> bool:
    """Whether any input tensor is floating point (perturbing the others makes no sense)."""
    return any(t.is_floating_point() for _, t in tensors(inputs))


def batch_size(inputs: Inputs) -> int:
    """The number of samples in ``inputs`` (dimension 0 of its first tensor)."""
    found = tensors(inputs)
    if not found or found[0][1].dim() == 0:
        raise DataError("model inputs hold no batched tensor", hint="inputs need a batch dimension first")
    return int(found[0][1].shape[0])


def take(inputs: Inputs, n: int) -> Inputs:
    """The first ``n`` samples of every input tensor."""
    return map_tensors(inputs, lambda t: t[:n])


def tile(inputs: Inputs, n: int) -> Inputs:
    """A batch of exactly ``n`` samples made by repeating the samples of ``inputs``.

    >>> tile(torch.arange(2).reshape(2, 1), 5).flatten().tolist()
    [0, 1, 0, 1, 0]
    """
    have = batch_size(inputs)
    reps = math.ceil(n / have)

    def grow(t: Tensor) -> Tensor:
        return t.repeat(reps, *([1] * (t.dim() - 1)))[:n].contiguous()

    return map_tensors(inputs, grow)


# ---------------------------------------------------------------------------------------- specs


def input_spec(inputs: Inputs) -> dict[str, Any]:
    """A JSON description of ``inputs`` per sample: structure, names, shapes, dtypes, and for
    integer tensors one above the largest value seen (``high``), so valid IDs can be drawn.
    """
    kind = "dict" if isinstance(inputs, Mapping) else "tuple" if isinstance(inputs, tuple) else "tensor"
    rows = []
    for name, t in tensors(inputs):
        dtype = next((k for k, v in DTYPES.items() if v == t.dtype), None)
        if dtype is None:
            raise ModelError(f"input '{name}' has dtype {t.dtype}, which slimkit cannot record",
                             hint=f"use one of {', '.join(DTYPES)}")
        row: dict[str, Any] = {"name": name, "shape": [int(s) for s in t.shape[1:]], "dtype": dtype}
        if not t.is_floating_point() and t.numel():
            row["high"] = int(t.max()) + 1
        rows.append(row)
    return {"kind": kind, "tensors": rows}


def _checked_rows(spec: Any, source: str) -> tuple[str, list[dict[str, Any]]]:
    """The spec's kind and rows, checked as data read from a file (types, dtypes, sizes)."""
    if not isinstance(spec, Mapping) or spec.get("kind") not in ("tensor", "tuple", "dict"):
        raise CheckpointError(f"{source}: 'inputs' is not an input spec (kind must be tensor, tuple or dict)")
    rows = spec.get("tensors")
    if not isinstance(rows, list) or not rows or (spec["kind"] == "tensor" and len(rows) != 1):
        raise CheckpointError(f"{source}: 'inputs.tensors' must list the input tensors")
    for row in rows:
        shape = row.get("shape") if isinstance(row, Mapping) else None
        if (not isinstance(row, Mapping) or not isinstance(row.get("name"), str) or row.get("dtype") not in DTYPES
                or not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                                                          for s in shape)):
            raise CheckpointError(f"{source}: bad input entry {str(row)[:120]}",
                                  hint=f"each needs a name, a shape of positive ints and a dtype in {', '.join(DTYPES)}")
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise CheckpointError(f"{source}: input '{row['name']}' of shape {shape} is larger than slimkit allows "
                                  f"({MAX_INPUT_ELEMENTS:,} elements per sample)")
        high = row.get("high", 2)
        if isinstance(high, bool) or not isinstance(high, int) or high < 1:
            raise CheckpointError(f"{source}: input '{row['name']}' has a bad 'high' {high!r}")
    return spec["kind"], rows


def make_inputs(spec: Mapping[str, Any], batch: int = 1, *, fill: str = "zeros", seed: int = 0,
                device: torch.device | str = "cpu", source: str = "input spec") -> Inputs:
    """Inputs of ``batch`` samples as ``spec`` describes: zeros (``fill="zeros"``), or seeded
    values (``"random"``: standard normal floats, integers in ``[0, high)``)."""
    kind, rows = _checked_rows(spec, source)
    generator = torch.Generator().manual_seed(seed)
    made = []
    for row in rows:
        dtype, shape = DTYPES[row["dtype"]], (batch, *row["shape"])
        if fill == "random" and dtype.is_floating_point:
            t = torch.randn(shape, generator=generator).to(dtype)
        elif fill == "random":
            t = torch.randint(0, int(row.get("high", 2)), shape, generator=generator).to(dtype)
        else:
            t = torch.zeros(shape, dtype=dtype)
        made.append((row["name"], t.to(device)))
    if kind == "dict":
        return dict(made)
    if kind == "tuple":
        return tuple(t for _, t in made)
    return made[0][1]


def remember_inputs(model: nn.Module, inputs: Inputs) -> None:
    """Record the spec of ``inputs`` on ``model`` (``slimkit_inputs``) unless it has one; saving the
    model writes it, and replay and export use it to build inputs of the right dtype and shape."""
    if getattr(model, "slimkit_inputs", None) is None:
        model.slimkit_inputs = input_spec(inputs)


def example_from(loader: Iterable[Any], n: int = 2) -> Inputs:
    """The inputs of the first ``n`` samples of ``loader`` (two: BatchNorm wants more than one)."""
    try:
        first = next(iter(loader))
    except StopIteration:
        raise DataError("the loader yielded no batches", hint="check the dataset is not empty") from None
    return take(split(first).inputs, n)


def example_for(model: nn.Module, given: Inputs | None = None, loader: Iterable[Any] | None = None, *,
                n: int = 1) -> Inputs | None:
    """Example inputs for ``model``: ``given``; else ``n`` zero samples from the spec the model
    recorded; else the first ``n`` samples of ``loader``; else None. On the model's device.

    >>> from slimkit.models import build_model
    >>> example_for(build_model("lenet5", input_size=8)).shape
    torch.Size([1, 1, 8, 8])
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if given is not None:
        return to_device(given, device)
    spec = getattr(model, "slimkit_inputs", None)
    if spec is not None:
        return make_inputs(spec, n, device=device)
    if loader is not None:
        return to_device(example_from(loader, n), device)
    return None
