"""ONNX export (fp32, and int8 QDQ from a PT2E-quantized graph) and ONNX Runtime as a module.

Export goes through ``torch.export`` and the dynamo ONNX exporter, the route that also handles
PT2E quantize/dequantize ops, with a dynamic batch dimension and the weights inside the one
file (so its size is the artifact's size). :class:`OrtModule` runs an ONNX model in ONNX
Runtime behind the ``nn.Module`` call interface, so slimkit's predict, compare and latency
tools measure the deployed artifact itself.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from slimkit.evaluate.predict import eval_mode
from slimkit.export.parity import ExportError
from slimkit.export.serialize import CHANGES
from slimkit.fileio import atomic_write_bytes

__all__ = ["OrtModule", "export_onnx", "load_onnx", "onnx_bytes", "onnx_ops", "quiet_export", "session_options"]


def session_options(threads: int) -> Any:
    """ORT options for a fair CPU measurement: ``threads`` intra-op threads and no spin-waiting
    (spinning threads keep burning cores after each call, which would slow whatever runs next,
    including the PyTorch model it alternates with)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OrtModule(nn.Module):
    """An ONNX model run by ONNX Runtime (CPU), called like a PyTorch module.

    The ONNX bytes are a ``uint8`` buffer, so ``state_dict``/safetensors hold the real artifact.
    Sessions are built lazily, one per torch thread count, so a caller that fixes threads (as
    slimkit's latency tools do) gets an ORT session with the same count.
    """

    def __init__(self, model: bytes | None = None, *, size: int = 0) -> None:
        super().__init__()
        data = torch.frombuffer(bytearray(model), dtype=torch.uint8).clone() if model else torch.zeros(size, dtype=torch.uint8)
        self.register_buffer("onnx_model", data)
        self._sessions: dict[int, Any] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> OrtModule:
        return cls(Path(path).read_bytes())

    def onnx_bytes(self) -> bytes:
        return self.onnx_model.numpy().tobytes()

    def session(self) -> Any:
        import onnxruntime as ort

        threads = torch.get_num_threads()
        if threads not in self._sessions:
            try:
                self._sessions[threads] = ort.InferenceSession(
                    self.onnx_bytes(), session_options(threads), providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT reports bad graphs with its own exception types
                raise ExportError(f"ONNX Runtime cannot load this model: {exc}",
                                  hint="re-export the model; check the opset and ops it uses") from exc
        return self._sessions[threads]

    def forward(self, x: Tensor) -> Tensor:
        session = self.session()
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(x.detach().cpu().float().numpy())}
        return torch.from_numpy(session.run(None, feed)[0])

    def save(self, path: str | Path) -> Path:
        """Write the ``.onnx`` file (atomically)."""
        return atomic_write_bytes(path, self.onnx_bytes())

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._sessions = {}  # new bytes, new sessions

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_sessions"] = {}  # sessions cannot be copied or pickled; they are rebuilt on use
        return state

    def extra_repr(self) -> str:
        return f"onnx_bytes={self.onnx_model.numel()}"


def _replay_ort(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Loading a saved OrtModule: an empty one of the recorded size; the bytes load after."""
    return OrtModule(size=int(change["bytes"]))


if "onnxruntime" not in CHANGES:
    CHANGES.add("onnxruntime", _replay_ort, doc="model replaced by an ONNX Runtime artifact")


@contextmanager
def quiet_export() -> Iterator[None]:
    """Mute what exporters and ORT's quantizer log on every call (missing torchvision ops,
    step banners, pytree deprecations, a pre-processing suggestion) but not real errors."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _layers_using(program: Any, ops: set[str]) -> list[str]:
    """Module paths of graph nodes whose op name contains one of ``ops``."""
    names = []
    for node in program.graph.nodes:
        target = str(node.target)
        if node.op == "call_function" and any(op in target for op in ops):
            stack = node.meta.get("nn_module_stack") or {}
            names.append(f"{list(stack.values())[-1][0] if stack else '(top level)'} ({target})")
    return sorted(set(names))


def _failure(model: nn.Module, stage: str, exc: Exception, program: Any = None) -> ExportError:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # the exporter colours its messages
    ops = set(re.findall(r"\b([a-z_][\w]*(?:::|\.)[a-zA-Z_][\w]*(?:\.[\w]+)?)", text)) if text else set()
    ops = {o for o in ops if not o.startswith(("torch.", "self.", "exc.", "site-packages"))}
    where = _layers_using(program, {o.replace("::", ".") for o in ops}) if program is not None and ops else []
    first = text.splitlines()[0] if text else type(exc).__name__
    located = f" at layer(s) {', '.join(where[:5])}" if where else (f" (ops: {', '.join(sorted(ops)[:5])})" if ops else "")
    return ExportError(f"{stage} failed for {type(model).__name__}{located}: {first[:300]}",
                       hint="replace or exclude the named layer, or export with format='torchscript'")


def strip_metadata(proto: Any) -> Any:
    """Drop per-node debug metadata (module paths, source FX node text) in place: it is not
    needed to run the model and can outweigh int8 weights in a small model's file."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def onnx_bytes(model: nn.Module, example_input: Tensor, *, opset: int | None = None,
               keep_metadata: bool = False) -> bytes:
    """The model as ONNX bytes with a dynamic batch dimension (weights inside).

    ``keep_metadata`` keeps each node's module path (``pkg.torch.onnx.name_scopes``), which
    tools mapping ONNX nodes back to layers need; the default strips it (smaller file)."""
    if isinstance(model, OrtModule):
        return model.onnx_bytes()
    from torch.export import Dim, export

    example = example_input if example_input.shape[0] > 1 else example_input.expand(2, *example_input.shape[1:])
    program = None
    with eval_mode(model), quiet_export():
        try:
            program = export(model, (example.contiguous(),), dynamic_shapes=({0: Dim("batch", min=1, max=1 << 16)},))
        except Exception as exc:  # torch.export raises many types
            raise _failure(model, "torch.export", exc) from exc
        try:
            onnx_program = torch.onnx.export(program, (example,), dynamo=True, external_data=False,
                                             opset_version=opset, verbose=False)
        except Exception as exc:  # the exporter raises many types
            raise _failure(model, "ONNX export", exc, program) from exc
    proto = onnx_program.model_proto
    return (proto if keep_metadata else strip_metadata(proto)).SerializeToString()


def export_onnx(model: nn.Module, path: str | Path, example_input: Tensor, *, opset: int | None = None) -> Path:
    """Write ``model`` as one ``.onnx`` file (atomically) and return its path.

    A PT2E-quantized graph exports as int8 QDQ; an :class:`OrtModule` writes its own bytes.
    Failures raise :class:`ExportError` naming the op and, where found, the layer.

    >>> import tempfile, os
    >>> p = export_onnx(nn.Sequential(nn.Linear(4, 2)), os.path.join(tempfile.mkdtemp(), "m.onnx"),
    ...                 torch.zeros(2, 4))
    >>> load_onnx(p)(torch.ones(3, 4)).shape
    torch.Size([3, 2])
    """
    return atomic_write_bytes(path, onnx_bytes(model, example_input, opset=opset))


def load_onnx(path: str | Path) -> OrtModule:
    """An ``.onnx`` file as a callable module run by ONNX Runtime."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no ONNX file at {path}", hint="export one with slimkit.export.export_onnx")
    return OrtModule.from_file(path)


def onnx_ops(model: OrtModule | bytes | str | Path) -> dict[str, int]:
    """How many nodes of each op type the ONNX model has (e.g. QuantizeLinear for int8)."""
    import onnx

    if isinstance(model, OrtModule):
        data = model.onnx_bytes()
    elif isinstance(model, bytes):
        data = model
    else:
        data = Path(model).read_bytes()
    counts: dict[str, int] = {}
    for node in onnx.load_from_string(data).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
