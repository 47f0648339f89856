"""PyTorch-native artifacts: TorchScript (``.pt``, traced) and torch.export programs (``.pt2``).

Both load without unpickling code: ``torch.jit.load`` reads TorchScript's own format and
``torch.export.load`` a serialized graph plus tensors. TorchScript is in maintenance in
PyTorch (``torch.jit`` warns that it is deprecated); torch.export is its successor, the
recommended format, and also carries PT2E-quantized graphs.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.errors import ExportError
from slimkit.evaluate.predict import eval_mode
from slimkit.export.capture import DynamicAxes, capture
from slimkit.export.capture import example_inputs as example_inputs_of
from slimkit.fileio import atomic_write_bytes

__all__ = ["export_program", "export_torchscript", "load_program", "load_torchscript"]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__


def export_torchscript(model: nn.Module, path: str | Path, example_inputs: Any = None) -> Path:
    """Trace ``model`` on ``example_inputs`` (a tensor, a tuple of positional tensors or a mapping
    of named ones; default: the inputs the model recorded) and save it as TorchScript (atomically).

    >>> import tempfile, os
    >>> p = export_torchscript(nn.Linear(3, 2), os.path.join(tempfile.mkdtemp(), "m.pt"), torch.zeros(1, 3))
    >>> load_torchscript(p)(torch.ones(4, 3)).shape
    torch.Size([4, 2])
    """
    inputs = example_inputs_of(model, example_inputs)
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values baked in as constants
        try:
            if isinstance(inputs, Mapping):
                traced = torch.jit.trace(model, example_kwarg_inputs=dict(inputs), check_trace=False, strict=False)
            else:
                args = inputs if isinstance(inputs, tuple) else (inputs,)
                traced = torch.jit.trace(model, args, check_trace=False, strict=False)
        except Exception as exc:  # tracing raises many types
            raise ExportError(f"TorchScript tracing failed for {type(model).__name__}: {_first_line(exc)}",
                              hint="export to ONNX or torch.export (format='program') instead") from exc
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated; still asked for
        torch.jit.save(traced, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_torchscript(path: str | Path) -> nn.Module:
    """Load a TorchScript file (CPU)."""
    if not Path(path).is_file():
        raise ExportError(f"no TorchScript file at {path}", hint="export one with export_torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def export_program(model: nn.Module, path: str | Path, example_inputs: Any = None, *,
                   dynamic_axes: DynamicAxes | None = None) -> Path:
    """Save ``model`` as a ``torch.export`` program (atomically) taking the model's own inputs
    (see :func:`slimkit.export.capture.capture`), with a dynamic batch and ``dynamic_axes``.

    >>> import tempfile, os
    >>> p = export_program(nn.Linear(3, 2), os.path.join(tempfile.mkdtemp(), "m.pt2"), torch.zeros(2, 3))
    >>> load_program(p)(torch.ones(5, 3)).shape
    torch.Size([5, 2])
    """
    program = capture(model, example_inputs, dynamic_axes=dynamic_axes).program
    buffer = io.BytesIO()  # through memory: the archive writer wants a .pt2 name, not a temp name
    torch.export.save(program, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


class ProgramModule(nn.Module):
    """A loaded program behind a plain module: exported graphs refuse ``.eval()``/``.train()``
    (they were captured in eval mode already), which callers such as latency tools call."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "program", module)  # not a submodule: .eval() must not reach it

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.program(*args, **kwargs)


def load_program(path: str | Path) -> nn.Module:
    """Load a ``.pt2`` program as a callable module."""
    if not Path(path).is_file():
        raise ExportError(f"no torch.export file at {path}", hint="export one with export_program")
    return ProgramModule(torch.export.load(str(path)).module())
