"""OpenVINO as a runtime and a deployable artifact (optional: ``pip install slimkit[openvino]``).

:class:`OpenVINOModule` runs a model on OpenVINO's CPU plugin behind the ``nn.Module`` call
interface, like :class:`~slimkit.export.onnx.OrtModule`: inputs fed by name with their dtypes,
outputs in the model's structure, one compiled model per thread count and input shape
(OpenVINO compiles static shapes into faster code than dynamic ones, measured on the zoo CNNs).
It holds either an ONNX file (OpenVINO reads ONNX, int8 QDQ included, natively) or an
OpenVINO IR (``.xml`` + ``.bin``; what NNCF produces), as ``uint8`` buffers, so ``state_dict``
and safetensors hold the real artifact.

:func:`export_openvino` writes the IR a user deploys; :func:`load_openvino` reads it back;
:func:`nncf_int8` quantizes with NNCF (OpenVINO's own post-training int8).
"""

from __future__ import annotations

import functools
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit import modelio
from slimkit.errors import ConfigError, ExportError
from slimkit.export.onnx import OUTPUTS_KEY, OrtModule, _array, _output_structure, onnx_bytes, order_inputs
from slimkit.export.serialize import CHANGES
from slimkit.fileio import atomic_write_bytes

__all__ = ["OpenVINOModule", "available", "export_openvino", "load_openvino", "nncf_int8"]

#: OpenVINO element types and the numpy dtypes fed for them.
OV_DTYPES = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i64": np.int64, "i32": np.int32,
             "i16": np.int16, "i8": np.int8, "u8": np.uint8, "boolean": np.bool_}
#: The rt_info key under which the output structure is kept in an IR (as ONNX metadata holds it).
RT_OUTPUTS = "slimkit_outputs"


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether OpenVINO imports here (it is an optional extra)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _openvino() -> Any:
    if not available():
        raise ConfigError("OpenVINO is not installed", hint="pip install 'slimkit[openvino]'")
    import openvino

    return openvino


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    return _openvino().Core()


def _config(threads: int) -> dict[str, Any]:
    # one stream of ``threads`` threads, like ONNX Runtime's session; f32 inference precision so a
    # CPU with bf16 support does not silently run float layers in bf16 (parity would break)
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32"}


class OpenVINOModule(nn.Module):
    """An ONNX file or OpenVINO IR run by OpenVINO (CPU), called like a PyTorch module."""

    MAX_SHAPES = 8  # compiled models kept per module (each input shape compiles once)

    def __init__(self, model: bytes | None = None, weights: bytes | None = None, *,
                 sizes: tuple[int, int] = (0, 0)) -> None:
        super().__init__()

        def buffer(data: bytes | None, size: int) -> torch.Tensor:
            return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone() if data else torch.zeros(size, dtype=torch.uint8)

        self.register_buffer("ov_model", buffer(model, sizes[0]))
        self.register_buffer("ov_weights", buffer(weights, sizes[1]))
        self._compiled: OrderedDict[tuple, Any] = OrderedDict()
        self._read: Any = None

    @property
    def is_ir(self) -> bool:
        return self.ov_weights.numel() > 0

    def read(self) -> Any:
        """The OpenVINO model (read once)."""
        if self._read is None:
            ov = _openvino()
            data = self.ov_model.numpy().tobytes()
            try:
                if self.is_ir:
                    self._read = _core().read_model(model=data, weights=ov.Tensor(self.ov_weights.numpy().copy()))
                else:
                    with tempfile.TemporaryDirectory(prefix="slimkit-ov-") as tmp:
                        path = Path(tmp) / "model.onnx"
                        path.write_bytes(data)
                        self._read = _core().read_model(str(path))
            except Exception as exc:  # OpenVINO raises its own types for bad models
                raise ExportError(f"OpenVINO cannot read this model: {str(exc).splitlines()[0][:300]}",
                                  hint="re-export the model; check the ops it uses") from exc
        return self._read

    @functools.cached_property
    def _signature(self) -> tuple[list[tuple[str, Any]], list[str], Any]:
        model = self.read()
        inputs = [(i.get_any_name(), np.dtype(OV_DTYPES[i.get_element_type().get_type_name()]))
                  for i in model.inputs]
        outputs = [o.get_any_name() for o in model.outputs]
        recorded = None
        for key in (RT_OUTPUTS, OUTPUTS_KEY):
            if model.has_rt_info(key):
                recorded = model.get_rt_info(key).astype(str)
                break
        if recorded is None and not self.is_ir:
            recorded = _onnx_outputs(self.ov_model.numpy().tobytes())
        return inputs, outputs, _output_structure(recorded, outputs)

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self._signature[0]]

    def _request(self, arrays: list[np.ndarray]) -> Any:
        key = (torch.get_num_threads(), *(a.shape for a in arrays))
        found = self._compiled.get(key)
        if found is None:
            model = self.read().clone()
            model.reshape({name: list(a.shape) for (name, _), a in zip(self._signature[0], arrays)})
            try:
                found = _core().compile_model(model, "CPU", _config(key[0])).create_infer_request()
            except Exception as exc:  # OpenVINO raises its own types
                raise ExportError(f"OpenVINO cannot compile this model for inputs "
                                  f"{[tuple(a.shape) for a in arrays]}: {str(exc).splitlines()[0][:300]}",
                                  hint="check the input shapes match the exported model") from exc
            self._compiled[key] = found
            while len(self._compiled) > self.MAX_SHAPES:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return found

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        inputs, _, structure = self._signature
        ordered = order_inputs([n for n, _ in inputs], args, kwargs)
        arrays = [_array(name, value, dtype) for (name, dtype), value in zip(inputs, ordered)]
        results = self._request(arrays).infer(arrays, share_inputs=True)
        return structure([torch.from_numpy(np.array(results[i], copy=True)) for i in range(len(results))])

    def save(self, path: str | Path) -> Path:
        """Write the OpenVINO IR (``path`` as ``.xml`` and the weights beside it as ``.bin``)."""
        xml, weights = _ir_bytes(self.read())
        path = Path(path).with_suffix(".xml")
        atomic_write_bytes(path.with_suffix(".bin"), weights)
        return atomic_write_bytes(path, xml)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._compiled, self._read = OrderedDict(), None
        self.__dict__.pop("_signature", None)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_compiled"], state["_read"] = OrderedDict(), None  # compiled models are rebuilt on use
        state.pop("_signature", None)
        return state

    def extra_repr(self) -> str:
        kind = "ir" if self.is_ir else "onnx"
        return f"format={kind}, bytes={self.ov_model.numel() + self.ov_weights.numel()}"


def _onnx_outputs(data: bytes) -> str | None:
    import onnx

    for entry in onnx.load_from_string(data).metadata_props:
        if entry.key == OUTPUTS_KEY:
            return entry.value
    return None


def _ir_bytes(model: Any) -> tuple[bytes, bytes]:
    """The model as IR ``.xml`` and ``.bin`` bytes (weights kept in their precision, not fp16)."""
    ov = _openvino()
    with tempfile.TemporaryDirectory(prefix="slimkit-ov-") as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(model, str(path), compress_to_fp16=False)
        return path.read_bytes(), path.with_suffix(".bin").read_bytes()


def _from_model(model: Any, outputs: str | None) -> OpenVINOModule:
    if outputs:
        model.set_rt_info(outputs, RT_OUTPUTS)
    return OpenVINOModule(*_ir_bytes(model))


def to_openvino(model: nn.Module, example_inputs: Any = None, *, dynamic_axes: Any = None) -> OpenVINOModule:
    """``model`` (a PyTorch module, a PT2E int8 graph, or an :class:`OrtModule`) as an
    OpenVINO module reading its ONNX export (int8 QDQ graphs run as OpenVINO int8)."""
    data = model.onnx_bytes() if isinstance(model, OrtModule) else onnx_bytes(model, example_inputs,
                                                                               dynamic_axes=dynamic_axes)
    return OpenVINOModule(data)


def export_openvino(model: nn.Module, path: str | Path, example_inputs: Any = None, *,
                    dynamic_axes: Any = None) -> Path:
    """Write ``model`` as an OpenVINO IR (``.xml`` + ``.bin``) and return the ``.xml`` path.

    An :class:`OpenVINOModule` writes its own model; anything else goes through its ONNX export
    (inputs as :func:`slimkit.export.onnx.onnx_bytes` keeps them).
    """
    module = model if isinstance(model, OpenVINOModule) else to_openvino(model, example_inputs,
                                                                          dynamic_axes=dynamic_axes)
    return module.save(path)


def load_openvino(path: str | Path) -> OpenVINOModule:
    """An OpenVINO IR (``.xml`` with its ``.bin``) as a callable module."""
    path = Path(path)
    if not path.is_file() or not path.with_suffix(".bin").is_file():
        raise ExportError(f"no OpenVINO IR at {path} (an .xml with its .bin beside it)",
                          hint="export one with slimkit.export.export_openvino")
    return OpenVINOModule(path.read_bytes(), path.with_suffix(".bin").read_bytes())


def nncf_int8(model: nn.Module, batches: list[Any], example_inputs: Any = None, *,
              dynamic_axes: Any = None) -> OpenVINOModule:
    """NNCF post-training int8 (its default performance preset) of ``model``'s OpenVINO form,
    calibrated on ``batches`` (model inputs, as :mod:`slimkit.modelio` reads them)."""
    _openvino()
    import logging

    import nncf

    fp32 = to_openvino(model, example_inputs if example_inputs is not None else batches[0], dynamic_axes=dynamic_axes)
    names = fp32.input_names
    samples = sum(modelio.batch_size(b) for b in batches)

    def feed(inputs: Any) -> dict[str, np.ndarray]:
        return {name: t.numpy() for name, (_, t) in zip(names, modelio.tensors(inputs))}

    level = logging.getLogger("nncf").level
    logging.getLogger("nncf").setLevel(logging.ERROR)  # progress bars and banners on every call
    try:
        quantized = nncf.quantize(fp32.read(), nncf.Dataset(batches, feed), subset_size=samples)
    finally:
        logging.getLogger("nncf").setLevel(level)
    return _from_model(quantized, _onnx_outputs(fp32.ov_model.numpy().tobytes()))


def _replay_openvino(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Loading a saved OpenVINOModule: an empty one of the recorded sizes; the bytes load after."""
    return OpenVINOModule(sizes=(int(change["bytes"]), int(change.get("weights", 0))))


if "openvino" not in CHANGES:
    CHANGES.add("openvino", _replay_openvino, doc="model replaced by an OpenVINO artifact")
