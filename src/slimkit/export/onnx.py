"""ONNX export (fp32, and int8 QDQ from a PT2E-quantized graph) and ONNX Runtime as a module.

Export goes through ``torch.export`` (:mod:`slimkit.export.capture`: the model's own inputs,
names and dtypes, a dynamic batch and any marked axis) and the dynamo ONNX exporter, the route
that also handles PT2E quantize/dequantize ops, with the weights inside the one file (so its
size is the artifact's size). :class:`OrtModule` runs an ONNX model in ONNX Runtime behind the
``nn.Module`` call interface, so slimkit's predict, compare and latency tools measure the
deployed artifact itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from slimkit.errors import ExportError, ModelError
from slimkit.evaluate.predict import eval_mode
from slimkit.export.capture import DynamicAxes, capture, failure, quiet_export
from slimkit.fileio import atomic_write_bytes

__all__ = ["OrtModule", "export_onnx", "onnx_bytes", "onnx_ops", "quiet_export", "session_options"]


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


#: ONNX element types (as ONNX Runtime names them) and the numpy dtypes fed for them.
ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}
#: The ONNX metadata key under which the exporter records the structure of the model's outputs.
OUTPUTS_KEY = "slimkit.outputs"


class _Runner:
    """One session and what a call needs from it, looked up once: input names and dtypes,
    output names, and how to rebuild the model's output structure.

    A call is the bare ``session.run`` plus zero-copy views on the way in and out (inputs with
    the model's dtype are fed as numpy views of their memory; outputs come back as tensors over
    ONNX Runtime's arrays). I/O binding was measured too: binding fresh output tensors cost
    more than this path on CPU, so it is not used.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = [(i.name, np.dtype(ORT_DTYPES[i.type]) if i.type in ORT_DTYPES else None)
                       for i in session.get_inputs()]
        self.names = [name for name, _ in self.inputs]
        self.outputs = [o.name for o in session.get_outputs()]
        self.structure = _output_structure(session.get_modelmeta().custom_metadata_map.get(OUTPUTS_KEY), self.outputs)

    def __call__(self, args: tuple, kwargs: dict) -> Any:
        ordered = order_inputs(self.names, args, kwargs)
        feed = {name: _array(name, value, dtype) for (name, dtype), value in zip(self.inputs, ordered)}
        return self.structure([torch.from_numpy(r) for r in self.session.run(self.outputs, feed)])


def order_inputs(names: list[str], args: tuple, kwargs: dict) -> list[Any]:
    """A call's inputs in the model's input order: positional arguments in order, keyword
    arguments by name, or one mapping of named inputs (checked: count, names, none missing)."""
    if len(args) == len(names) and not kwargs and not isinstance(args[0], Mapping):
        return list(args)
    if len(args) == 1 and not kwargs and isinstance(args[0], Mapping):
        args, kwargs = (), dict(args[0])  # module(inputs_dict), as modelio batches hold them
    if len(args) > len(names):
        raise ModelError(f"the exported model takes {len(names)} input(s) {names}, got {len(args)} "
                         "positional arguments", hint="pass the inputs by name: module(**inputs)")
    given = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in names or name in given:
            raise ModelError(f"the exported model has no input '{name}' (or got it twice); its inputs are {names}",
                             hint="feed inputs under the names the model was exported with")
        given[name] = value
    missing = [name for name in names if name not in given]
    if missing:
        raise ModelError(f"the exported model's input(s) {missing} were not given; its inputs are {names}",
                         hint="pass every input, positionally or by name")
    return [given[name] for name in names]


def _array(name: str, value: Any, dtype: Any) -> np.ndarray:
    """``value`` as the numpy array ONNX Runtime reads, without a copy when it already has the
    input's dtype and a contiguous CPU layout. Casts stay within a kind (float to float, integer
    to integer); integer token IDs are never turned into floats, nor floats into IDs."""
    if isinstance(value, Tensor):
        try:
            array = value.numpy()  # the common case: a CPU tensor without grad; a view, no copy
        except (RuntimeError, TypeError):
            array = value.detach().cpu().numpy()
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
    else:
        array = np.asarray(value)
    if dtype is None or array.dtype == dtype:
        return array
    kind, want = array.dtype.kind, dtype.kind
    if kind == want or (kind in "iu" and want in "iu"):
        return array.astype(dtype)
    raise ModelError(f"input '{name}' is {array.dtype} but the exported model takes {dtype}",
                     hint="feed the dtype the model was exported with (token IDs as integers, images as floats)")


def _output_structure(recorded: str | None, names: list[str]) -> Any:
    """A function rebuilding the model's outputs from ONNX Runtime's list: the recorded pytree
    (a tensor, tuple or dict), else one tensor, else a tuple."""
    import torch.utils._pytree as pytree

    if recorded:
        try:
            spec = json.loads(recorded)
            if "treespec" in spec:
                tree = pytree.treespec_loads(spec["treespec"])
                if tree.num_leaves == len(names):
                    return lambda outs: pytree.tree_unflatten(outs, tree)
            elif spec.get("names") == names:
                return lambda outs: dict(zip(names, outs))
        except (ValueError, TypeError, KeyError, NotImplementedError):
            pass  # a structure slimkit cannot rebuild: fall back to the plain forms below
    if len(names) == 1:
        return lambda outs: outs[0]
    return tuple


class OrtModule(nn.Module):
    """An ONNX model run by ONNX Runtime (CPU), called like the PyTorch module it came from.

    Inputs are fed by name without casting across kinds: positional arguments in the model's
    input order, keyword arguments by name, or one mapping of named inputs; integer token IDs
    stay integers. Outputs come back in the model's structure (a tensor, a tuple or a dict)
    when slimkit exported the file. The ONNX bytes are a ``uint8`` buffer, so
    ``state_dict``/safetensors hold the real artifact. Sessions are built lazily, one per
    torch thread count, so a caller that fixes threads (as slimkit's latency tools do) gets an
    ORT session with the same count.
    """

    def __init__(self, model: bytes | None = None, *, size: int = 0) -> None:
        super().__init__()
        data = torch.frombuffer(bytearray(model), dtype=torch.uint8).clone() if model else torch.zeros(size, dtype=torch.uint8)
        self.register_buffer("onnx_model", data)
        self._sessions: dict[int, _Runner] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> OrtModule:
        return cls(Path(path).read_bytes())

    def onnx_bytes(self) -> bytes:
        return self.onnx_model.numpy().tobytes()

    def runner(self) -> _Runner:
        """The session (with its input and output names) for the current torch thread count."""
        threads = torch.get_num_threads()
        found = self._sessions.get(threads)
        if found is None:
            import onnxruntime as ort

            try:
                session = ort.InferenceSession(self.onnx_bytes(), session_options(threads),
                                               providers=["CPUExecutionProvider"])
            except Exception as exc:  # ORT reports bad graphs with its own exception types
                raise ExportError(f"ONNX Runtime cannot load this model: {exc}",
                                  hint="re-export the model; check the opset and ops it uses") from exc
            found = self._sessions[threads] = _Runner(session)
        return found

    def session(self) -> Any:
        return self.runner().session

    @property
    def input_names(self) -> list[str]:
        return list(self.runner().names)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.runner()(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # nn.Module.__call__ bookkeeping is measurable at batch 1 against a bare session; it is
        # only needed when someone hooked this module
        if self._forward_hooks or self._forward_pre_hooks or _global_hooks():
            return super().__call__(*args, **kwargs)
        found = self._sessions.get(torch.get_num_threads())
        return (found or self.runner())(args, kwargs)

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


def _global_hooks() -> bool:
    from torch.nn.modules import module as torch_module

    return bool(torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks)


def strip_metadata(proto: Any) -> Any:
    """Drop per-node debug metadata (module paths, source FX node text) in place: it is not
    needed to run the model and can outweigh int8 weights in a small model's file."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def _output_names(spec: Any) -> list[str]:
    """ONNX output names from the program's output pytree: ``logits`` for one tensor, the keys
    of a mapping, ``output_K`` for a tuple (nested paths joined with dots)."""
    import torch.utils._pytree as pytree

    if spec.num_leaves == 1 and spec.is_leaf():
        return ["logits"]
    leaves = pytree.tree_unflatten(list(range(spec.num_leaves)), spec)
    names = []
    for path, _ in pytree.tree_flatten_with_path(leaves)[0]:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        parts = [f"output_{p}" if p.isdigit() and i == 0 else p for i, p in enumerate(parts)]
        names.append(re.sub(r"[^\w.]", "_", ".".join(parts)) or "output")
    return names if len(set(names)) == len(names) else [f"output_{i}" for i in range(len(names))]


def _record_outputs(proto: Any, spec: Any, names: list[str]) -> None:
    """Record in the file how the outputs nest (a pytree spec), so OrtModule returns them in
    the model's structure; a structure torch cannot serialize is recorded as a dict by name."""
    import torch.utils._pytree as pytree

    try:
        value = {"treespec": pytree.treespec_dumps(spec)}
    except Exception:  # noqa: BLE001 - custom output classes (e.g. ModelOutput) may not serialize
        value = {"names": names}
    entry = proto.metadata_props.add()
    entry.key, entry.value = OUTPUTS_KEY, json.dumps(value)


def _name_axes(proto: Any, axes: dict[str, dict[int, str]]) -> None:
    """Give the dynamic dimensions the names the user chose (``batch``, ``sequence``) in place
    of the exporter's symbols (``s17``), on inputs, outputs and intermediate values alike."""
    rename: dict[str, str] = {}
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, label in axes.get(value.name, {}).items():
            if axis < len(dims) and dims[axis].dim_param:
                rename.setdefault(dims[axis].dim_param, label)
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]


def onnx_bytes(model: nn.Module, example_inputs: Any = None, *, opset: int | None = None,
               keep_metadata: bool = False, dynamic_axes: DynamicAxes | None = None) -> bytes:
    """The model as ONNX bytes (weights inside) that takes what the model takes.

    ``example_inputs`` is a tensor, a tuple (positional inputs ``input_0``, ``input_1``...) or a
    mapping (named inputs), in any dtype; without it, the inputs the model recorded
    (``model.slimkit_inputs``). Input names and dtypes are kept; the batch axis is dynamic and
    so is every axis in ``dynamic_axes`` (``{"input_ids": {1: "sequence"}}``). Outputs are named
    (``logits``; the keys of a dict; ``output_K``) and their structure is recorded for
    :class:`OrtModule`. ``keep_metadata`` keeps each node's module path
    (``pkg.torch.onnx.name_scopes``), which tools mapping ONNX nodes back to layers need; the
    default strips it (smaller file)."""
    if isinstance(model, OrtModule):
        return model.onnx_bytes()
    captured = capture(model, example_inputs, dynamic_axes=dynamic_axes)
    spec = captured.program.call_spec.out_spec
    outputs = _output_names(spec)
    with eval_mode(model), quiet_export():
        try:
            onnx_program = torch.onnx.export(captured.program, captured.args, kwargs=captured.kwargs or None,
                                             dynamo=True, external_data=False, opset_version=opset, verbose=False,
                                             input_names=captured.names, output_names=outputs)
        except Exception as exc:  # the exporter raises many types
            raise failure(model, "ONNX export", exc, captured.program) from exc
    proto = onnx_program.model_proto
    if [o.name for o in proto.graph.output] == outputs:
        _record_outputs(proto, spec, outputs)
    _name_axes(proto, captured.axes)
    return (proto if keep_metadata else strip_metadata(proto)).SerializeToString()


def export_onnx(model: nn.Module, path: str | Path, example_inputs: Any = None, *, opset: int | None = None,
                dynamic_axes: DynamicAxes | None = None) -> Path:
    """Write ``model`` as one ``.onnx`` file (atomically) and return its path.

    Inputs and outputs as :func:`onnx_bytes` says. A PT2E-quantized graph exports as int8 QDQ;
    an :class:`OrtModule` writes its own bytes. Failures raise :class:`ExportError` naming the
    op and, where found, the layer.

    >>> import tempfile, os
    >>> p = export_onnx(nn.Sequential(nn.Linear(4, 2)), os.path.join(tempfile.mkdtemp(), "m.onnx"),
    ...                 torch.zeros(2, 4))
    >>> OrtModule.from_file(p)(torch.ones(3, 4)).shape
    torch.Size([3, 2])
    """
    return atomic_write_bytes(path, onnx_bytes(model, example_inputs, opset=opset, dynamic_axes=dynamic_axes))


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
