"""The ``quantize`` verb, and post-training int8 (static and dynamic).

``quantize(model, config, calib_loader)`` looks up a handler by the config's *type*
(:class:`StaticInt8`, :class:`DynamicInt8`, :class:`QAT`, :class:`LowBit`,
:class:`MixedPrecision`) and returns a new model; the input model is never modified.

Static int8 folds Conv-BN, exports the model with ``torch.export``, inserts the chosen
observers with torchao's x86 quantizer, calibrates, and converts to the reference int8 graph.
That graph is exported as ONNX QDQ and, after a parity check against it, run by ONNX Runtime
(``backend="onnxruntime"``), OpenVINO (``"openvino"``), or, by default (``"auto"``), by the
runtime measured fastest on this machine at each batch size asked for
(:mod:`slimkit.quantization.runtime`).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from slimkit import modelio
from slimkit.distillation.teachers import PROVIDED
from slimkit.errors import ConfigError
from slimkit.export.onnx import OrtModule, onnx_bytes, quiet_export
from slimkit.export.parity import FP32, INT8, INT8_CHECK_BATCHES, Tolerance, check_parity
from slimkit.export.serialize import record_report
from slimkit.quantization import _pt2e
from slimkit.quantization.calibrate import calibration_batches, report_float_layers
from slimkit.quantization.config import DynamicInt8, QuantConfig, StaticInt8
from slimkit.quantization.runtime import CompiledInt8, select_runtime
from slimkit.registry import Dispatch

__all__ = ["QUANTIZE", "quantize"]

#: ``quantize``'s implementations by config type; scheme modules register theirs on import.
QUANTIZE: Dispatch = Dispatch("quantize", modules=(
    "slimkit.quantization.qat", "slimkit.quantization.int4", "slimkit.quantization.mixed"))


def quantize(
    model: nn.Module,
    config: QuantConfig,
    loader: Iterable[Any] | None = None,
    *,
    example_inputs: Any = None,
) -> nn.Module:
    """Quantize ``model`` as ``config`` says and return the quantized model (``model`` itself is
    left untouched: an int8 model is a new graph or an ONNX Runtime artifact).

    ``loader`` yields batches (see :mod:`slimkit.modelio`): calibration data for static schemes,
    training data for :class:`QAT`. ``example_inputs`` fixes the input shape when the model did
    not record its inputs. ``report_of(result, "quantize")`` says what was done: quantized and
    float layers, parity, bytes.

    >>> from slimkit.models import build_model
    >>> quantize(build_model("mlp", hidden=[8], input_size=8), "int8")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: quantize() takes a config object (StaticInt8, DynamicInt8, ...), got str 'int8'
      hint: build one, e.g. StaticInt8.from_dict(data)
    """
    result = QUANTIZE.lookup(config)(model, config, loader, example_inputs)
    if getattr(model, "slimkit_inputs", None) is not None and getattr(result, "slimkit_inputs", None) is None:
        result.slimkit_inputs = model.slimkit_inputs
    return result


def float_copy(model: nn.Module, *, fold: bool = True) -> nn.Module:
    """An eval-mode deep copy with Conv-BN folded (the first step of every scheme)."""
    from slimkit.transform.fuse import fuse

    clone = copy.deepcopy(model).eval()
    return fuse(clone) if fold else clone


def deploy(model: nn.Module, converted: nn.Module, config: StaticInt8, batches: list[Any],
           info: dict[str, Any], *, targets: list[Any] | None = None,
           reconvert: Callable[[list[str]], nn.Module] | None = None) -> nn.Module:
    """The converted int8 graph as the chosen runtime runs it (``auto``: the fastest, measured),
    with its metadata attached."""
    if config.backend == "auto":
        runtime, chosen = select_runtime(converted, float_copy(model, fold=config.fold_bn), batches,
                                         targets or [None] * len(batches), config, reconvert)
        info = {**info, "runtime": chosen, "parity": chosen["parity"]["onnxruntime"]}
        if chosen["float_for_speed"]:  # kept float because their int8 kernel was measured slower
            speed = {n: "float: int8 slower here (measured)" for n in chosen["float_for_speed"]}
            info["float_layers"] = {**info["float_layers"], **speed}
            info["quantized_layers"] = [n for n in info["quantized_layers"] if n not in speed]
        runtime = _with_history(runtime, model, info)
    elif config.backend in ("onnxruntime", "openvino"):
        runtime = OrtModule(onnx_bytes(converted, batches[0], dynamic_axes=config.dynamic_axes))
        if config.backend == "openvino":
            from slimkit.export.openvino import OpenVINOModule

            runtime = OpenVINOModule(runtime.onnx_bytes())
        parity = check_parity(converted, runtime, [(b,) for b in batches], tolerance=INT8,
                              max_batches=INT8_CHECK_BATCHES,
                              name=f"int8 ONNX in {config.backend} vs PyTorch int8 graph")
        info = {**info, "parity": parity.to_dict()}
        runtime = _with_history(runtime, model, info)
    else:
        runtime = CompiledInt8(converted) if getattr(config, "compile", False) else converted
    if getattr(model, "slimkit_spec", None) is not None:
        runtime.slimkit_spec = dict(model.slimkit_spec)
    record_report(runtime, "quantize", info)
    return runtime


def _with_history(runtime: nn.Module, model: nn.Module, info: dict[str, Any]) -> nn.Module:
    """Record, for reloading, what replaced the model: an ONNX Runtime artifact (with its routes
    when calls are routed by batch size) or an OpenVINO one; models that cannot be saved
    (FX, compiled graphs) get no entry."""
    from slimkit.export.openvino import OpenVINOModule
    from slimkit.export.routed import RoutedModule

    if isinstance(runtime, OrtModule):
        entry = {"kind": "onnxruntime", "bytes": runtime.onnx_model.numel(), "scheme": info["scheme"]}
        if isinstance(runtime, RoutedModule):
            entry["routes"] = {str(b): r for b, r in runtime.routes.items()}
        info["onnx_bytes"] = runtime.onnx_model.numel()
    elif isinstance(runtime, OpenVINOModule):
        entry = {"kind": "openvino", "bytes": runtime.ov_model.numel(), "weights": runtime.ov_weights.numel(),
                 "scheme": info["scheme"]}
    else:
        return runtime
    runtime.slimkit_history = [*getattr(model, "slimkit_history", []), entry]
    return runtime


def static_int8(model: nn.Module, config: StaticInt8, calib: Any, example: Any, *,
                kind: str = "static-int8") -> nn.Module:
    """Post-training static int8 (see the module docstring)."""
    _pt2e.check_quantizable(model, config)
    targets: list[Any] = []
    batches = calibration_batches(calib, config.calibration_batches, model=model, example=example, targets=targets)
    base = float_copy(model, fold=config.fold_bn)

    def convert(cfg: StaticInt8) -> nn.Module:
        prepared = _pt2e.prepare(base, cfg, batches[0])
        _pt2e.observe(prepared, batches)
        return _pt2e.convert(prepared)

    converted = convert(config)
    wanted = _pt2e.weighted_layers(base, config)
    left = _pt2e.float_layers(converted, wanted)
    report_float_layers(kind, left, strict=config.strict)
    info = {"scheme": config.to_dict(), "kind": kind,
            "quantized_layers": [n for n in wanted if n not in left], "float_layers": left,
            "calibration_samples": sum(modelio.batch_size(b) for b in batches)}
    return deploy(model, converted, config, batches, info, targets=targets,
                  reconvert=lambda skip: convert(config.model_copy(update={"exclude": [*config.exclude, *skip]})))


QUANTIZE.register(StaticInt8)(static_int8)


#: The dynamic int8 artifact against the float model: per-batch activation scales move logits by
#: a few percent of their range; predictions must stay.
DYNAMIC_INT8 = Tolerance(atol=0.05, rtol=0.1, min_agreement=0.95)


@QUANTIZE.register(DynamicInt8)
def dynamic_int8(model: nn.Module, config: DynamicInt8, calib: Any, example: Any) -> nn.Module:
    """Int8 Linear weights with activations quantized per batch at run time."""
    _pt2e.check_quantizable(model, config)
    base = float_copy(model)
    wanted = _pt2e.weighted_layers(base, config)
    linear = [n for n in wanted if isinstance(base.get_submodule(n), nn.Linear)]
    left = {n: type(base.get_submodule(n)).__name__ for n in wanted if n not in linear}
    report_float_layers("dynamic-int8 (Linear layers only)", left, strict=config.strict)
    info = {"scheme": config.to_dict(), "kind": "dynamic-int8",
            "quantized_layers": linear, "float_layers": left}
    if config.backend == "x86":
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )

        qconfig = per_channel_dynamic_qconfig if config.per_channel else default_dynamic_qconfig
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao eager: deprecated, still the fast path
            warnings.simplefilter("ignore", UserWarning)
            runtime = quantize_dynamic(base, {n: qconfig for n in linear})
    else:
        batches = calibration_batches(calib, 2, model=model, example=example) if calib is not None else []
        example = example if example is not None else (batches[0] if batches else _spec_example(model))
        fp32 = OrtModule(onnx_bytes(base, example, keep_metadata=True, dynamic_axes=config.dynamic_axes))
        runtime = OrtModule(_ort_dynamic(fp32.onnx_bytes(), linear, per_channel=config.per_channel))
        data = [(b,) for b in batches] or [(example,)]
        checks = [check_parity(base, fp32, data, tolerance=FP32, name="fp32 ONNX vs PyTorch"),
                  check_parity(base, runtime, data, tolerance=DYNAMIC_INT8, name="dynamic int8 ONNX vs float")]
        info["parity"] = checks[-1].to_dict()
        info["export_parity"] = checks[0].to_dict()
        info["onnx_bytes"] = runtime.onnx_model.numel()
        runtime.slimkit_history = [*getattr(model, "slimkit_history", []),
                                   {"kind": "onnxruntime", "bytes": runtime.onnx_model.numel(), "scheme": info["scheme"]}]
    if getattr(model, "slimkit_spec", None) is not None:
        runtime.slimkit_spec = dict(model.slimkit_spec)
    record_report(runtime, "quantize", info)
    return runtime


def _spec_example(model: nn.Module) -> Any:
    """Example inputs from the model's recorded spec, else a zoo model's image shape; ConfigError if neither."""
    found = modelio.example_for(model, n=2)
    if found is not None:
        return found
    import torch

    from slimkit.quantization.calibrate import expected_shape

    shape = expected_shape(model)
    if shape is None:
        raise ConfigError("DynamicInt8 on onnxruntime needs example_inputs (or a loader) to export the model",
                          hint="pass example_inputs=torch.randn(2, C, H, W), or the token IDs the model takes")
    return torch.zeros(2, *shape)


def _ort_dynamic(fp32: bytes, layers: list[str], *, per_channel: bool) -> bytes:
    """ONNX Runtime's dynamic quantizer on the selected Linear layers (Gemm/MatMul nodes)."""
    import tempfile
    from pathlib import Path

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load_from_string(fp32)
    wanted = set(layers)
    exclude = []
    for node in graph.graph.node:
        scopes = {p.key: p.value for p in node.metadata_props}.get("pkg.torch.onnx.name_scopes", "[]")
        owner = eval_scope(scopes)
        if node.op_type in ("Gemm", "MatMul") and owner not in wanted:
            exclude.append(node.name)
    with tempfile.TemporaryDirectory(prefix="slimkit-ort-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        with quiet_export():
            quantize_dynamic(src, dst, per_channel=per_channel, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["Gemm", "MatMul"], nodes_to_exclude=exclude)
        from slimkit.export.onnx import strip_metadata

        return strip_metadata(onnx.load(str(dst))).SerializeToString()


def eval_scope(text: str) -> str:
    """The module path in an ONNX node's ``name_scopes`` metadata (``"['', 'a', 'a.fc', 'linear']"``).

    >>> eval_scope("['', 'classifier', 'classifier.out', 'linear_1']")
    'classifier.out'
    """
    import ast

    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return ""
    return scopes[-2] if isinstance(scopes, list) and len(scopes) >= 2 else ""


def _int8_teacher(model: nn.Module, loader: Any, calibration_batches: int) -> nn.Module:
    """A distillation teacher in int8, on the runtime measured fastest at the training batch size:
    training batches are large, where OpenVINO's int8 convolutions beat ONNX Runtime's (the
    default teacher at batch 256: 19x against 7.7x the eager fp32 model, bench/quantize.py)."""
    size = getattr(loader, "batch_size", None) or 256
    return quantize(model, StaticInt8(calibration_batches=calibration_batches, batch_sizes=[size]), loader)


if "int8_teacher" not in PROVIDED:
    PROVIDED.add("int8_teacher", _int8_teacher)
