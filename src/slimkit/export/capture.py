"""Capture a model as a ``torch.export`` program that keeps its inputs: names, dtypes, structure.

Every exporter and the int8 (PT2E) route start here, so ONNX files, ``.pt2`` programs and
quantized graphs all take what the model takes (see :mod:`slimkit.modelio`): one tensor, a
tuple of positional tensors, or a mapping of named tensors (keyword arguments), integer token
IDs included. The batch axis of every input is dynamic, and so is any axis the user marks
(``dynamic_axes={"input_ids": {1: "sequence"}}``), so a text model exported at one length runs
at another.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slimkit import modelio
from slimkit.errors import ConfigError, ExportError
from slimkit.evaluate.predict import eval_mode

__all__ = ["Captured", "DynamicAxes", "capture", "example_inputs", "quiet_export"]

#: ``{input name: {axis: axis name}}``; the batch axis (0, named ``batch``) is always dynamic.
DynamicAxes = Mapping[str, Mapping[int, str]]
#: The largest size a dynamic axis may take (torch.export wants a bound; 2**16 is far above any batch).
MAX_AXIS = 1 << 16


@contextmanager
def quiet_export() -> Iterator[None]:
    """Mute what exporters and ORT's quantizer log on every call (missing torchvision ops,
    step banners, pytree deprecations, a pre-processing suggestion) but not real errors."""
    # the strict tracer logs a failed attempt at ERROR with a stack; the exception says it all
    muted = {"torch.onnx": logging.ERROR, "torch.export": logging.ERROR, "torch._export": logging.ERROR,
             "": logging.ERROR, "torch._dynamo": logging.CRITICAL, "torch._guards": logging.CRITICAL,
             "torch.fx.experimental.symbolic_shapes": logging.CRITICAL}
    loggers = [logging.getLogger(n) for n in muted]
    levels = [lg.level for lg in loggers]
    for lg, level in zip(loggers, muted.values()):
        lg.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@dataclass(frozen=True)
class Captured:
    """A captured program and how to call it: ``args``/``kwargs`` of the example, the input
    ``names`` (modelio's: ``input``, ``input_K`` or the mapping keys) in graph order, and the
    dynamic ``axes`` ``{name: {axis: axis name}}``."""

    program: Any
    args: tuple[Tensor, ...]
    kwargs: dict[str, Tensor]
    names: list[str]
    axes: dict[str, dict[int, str]]


def example_inputs(model: nn.Module, given: Any = None) -> Any:
    """``given``, else zero inputs from the spec the model recorded (``model.slimkit_inputs``);
    ExportError when there is neither."""
    found = modelio.example_for(model, given, n=2)
    if found is None:
        raise ExportError(f"no example inputs for {type(model).__name__}: pass some, or save the model "
                          "with slimkit (it records its inputs)",
                          hint="e.g. export_onnx(model, path, torch.zeros(1, 1, 28, 28))")
    return found


def _split_call(inputs: Any) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
    if isinstance(inputs, Mapping):
        return (), dict(modelio.tensors(inputs))
    if isinstance(inputs, tuple):
        return tuple(t for _, t in modelio.tensors(inputs)), {}
    return (inputs,), {}


def _axes(inputs: Any, dynamic_axes: DynamicAxes | None) -> dict[str, dict[int, str]]:
    """Every input's dynamic axes: batch first, then the user's (checked against the inputs)."""
    found = dict(modelio.tensors(inputs))
    axes = {name: ({0: "batch"} if t.dim() else {}) for name, t in found.items()}
    for name, marked in (dynamic_axes or {}).items():
        if name not in found:
            raise ConfigError(f"dynamic_axes names input '{name}', but the model's inputs are {sorted(found)}",
                              hint="key dynamic_axes by input name: 'input' for one tensor, 'input_K' for "
                                   "positional inputs, the keys of a mapping")
        for axis, label in marked.items():
            if not isinstance(axis, int) or not 0 <= axis < found[name].dim() or not str(label).isidentifier():
                raise ConfigError(f"dynamic_axes['{name}'] has axis {axis!r}: '{name}' has {found[name].dim()} "
                                  f"axes, and axis names must be identifiers (got {label!r})",
                                  hint="e.g. dynamic_axes={'input_ids': {1: 'sequence'}}")
            axes[name][axis] = str(label)
    return axes


def _widened(t: Tensor, axes: Mapping[int, str]) -> Tensor:
    """``t`` repeated to at least 2 along each dynamic axis: torch.export fixes axes of size 1."""
    for axis in axes:
        if t.shape[axis] < 2:
            reps = [1] * t.dim()
            reps[axis] = 2
            t = t.repeat(*reps)
    return t.contiguous()


def _dynamic_shapes(inputs: Any, names: list[str], axes: dict[str, dict[int, str]],
                    bounds: Mapping[str, tuple[int, int]] | None = None) -> Any:
    from torch.export import Dim

    dims: dict[str, Any] = {}
    bounds = bounds or {}

    def spec(name: str) -> dict[int, Any]:
        return {a: dims.setdefault(label, Dim(label, min=bounds.get(label, (1, MAX_AXIS))[0],
                                              max=bounds.get(label, (1, MAX_AXIS))[1]))
                for a, label in axes[name].items()}

    if isinstance(inputs, Mapping):
        return {name: spec(name) for name in names}
    return tuple(spec(name) for name in names)


def suggested_bounds(exc: Exception) -> dict[str, tuple[int, int]]:
    """The bounds torch.export suggests for dynamic axes the model accepts only up to a size
    (``sequence = Dim('sequence', max=64)`` for a BERT with 64 position embeddings).

    >>> suggested_bounds(ValueError("Suggested fixes:\\n  sequence = Dim('sequence', max=64)"))
    {'sequence': (1, 64)}
    """
    found = {}
    for label, low, high in re.findall(r"(\w+) = Dim\('\w+'(?:, min=(\d+))?(?:, max=(\d+))?\)", str(exc)):
        if high or low:
            found[label] = (int(low or 1), int(high or MAX_AXIS))
    return found


def failure(model: nn.Module, stage: str, exc: Exception, program: Any = None) -> ExportError:
    """An ExportError naming the stage, the ops in the message and (from ``program``) the layers."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # the exporter colours its messages
    ops = set(re.findall(r"\b([a-z_][\w]*(?:::|\.)[a-zA-Z_][\w]*(?:\.[\w]+)?)", text)) if text else set()
    ops = {o for o in ops if not o.startswith(("torch.", "self.", "exc.", "site-packages")) and not o.endswith(".py")}
    where = _layers_using(program, {o.replace("::", ".") for o in ops}) if program is not None and ops else []
    first = text.splitlines()[0] if text else type(exc).__name__
    located = f" at layer(s) {', '.join(where[:5])}" if where else (f" (ops: {', '.join(sorted(ops)[:5])})" if ops else "")
    hint = "replace or exclude the named layer, or export with format='torchscript'"
    if "specialized it to be a constant" in text or "Constraints violated" in text:
        fixed = re.findall(r"Constraints violated \(([\w, ]+)\)", text)
        first = f"the model fixes the size of the dynamic axis {', '.join(fixed) or '(see the cause)'}"
        located = ""
        hint = ("mark only axes the model accepts at any size (a learned position table fixes the sequence "
                "length); use x.shape[0] rather than len(x) in forward")
    return ExportError(f"{stage} failed for {type(model).__name__}{located}: {first[:300]}", hint=hint)


def _layers_using(program: Any, ops: set[str]) -> list[str]:
    """Module paths of graph nodes whose op name contains one of ``ops``."""
    names = []
    for node in program.graph.nodes:
        target = str(node.target)
        if node.op == "call_function" and any(op in target for op in ops):
            stack = node.meta.get("nn_module_stack") or {}
            names.append(f"{list(stack.values())[-1][0] if stack else '(top level)'} ({target})")
    return sorted(set(names))


def capture(model: nn.Module, inputs: Any = None, *, dynamic_axes: DynamicAxes | None = None,
            stage: str = "torch.export") -> Captured:
    """``torch.export`` ``model`` (eval mode; not modified) on ``inputs`` (or the inputs it
    recorded) with a dynamic batch and the marked ``dynamic_axes``.

    Non-strict tracing first; if it fixes a dynamic axis (``len(x)`` in forward does), the
    strict (TorchDynamo) tracer, which keeps it symbolic. Failures raise ExportError.
    """
    inputs = example_inputs(model, inputs)
    axes = _axes(inputs, dynamic_axes)
    inputs = modelio.map_tensors(inputs, lambda t: t)  # a shallow copy of the structure
    widened = {name: _widened(t, axes[name]) for name, t in modelio.tensors(inputs)}
    names = list(widened)
    if isinstance(inputs, Mapping):
        inputs = widened
    elif isinstance(inputs, tuple):
        inputs = tuple(widened.values())
    else:
        inputs = widened[names[0]]
    args, kwargs = _split_call(inputs)
    dynamic = _dynamic_shapes(inputs, names, axes)
    errors: list[Exception] = []
    with eval_mode(model), quiet_export():
        for strict in (False, True):
            try:
                program = torch.export.export(model, args, kwargs or None, dynamic_shapes=dynamic, strict=strict)
                return Captured(program, args, kwargs, names, axes)
            except Exception as exc:  # noqa: BLE001 - torch.export raises many types; reported below
                errors.append(exc)
            # An axis the model accepts up to a size (a table of 512 positions): export it with that bound.
            bounds = suggested_bounds(errors[-1]) if "Constraints violated" in str(errors[-1]) else {}
            if bounds:
                try:
                    program = torch.export.export(model, args, kwargs or None, strict=strict,
                                                  dynamic_shapes=_dynamic_shapes(inputs, names, axes, bounds))
                    return Captured(program, args, kwargs, names, axes)
                except Exception as exc:  # noqa: BLE001 - as above
                    errors[-1] = exc
    # a strict failure says more when both tracers fixed an axis (it names only the axes the
    # model really fixes); otherwise the non-strict tracer's message is the one about the model
    fixed = ["Constraints violated" in str(e) for e in errors]
    cause = errors[-1] if all(fixed) else errors[0]
    raise failure(model, stage, cause) from cause
