"""Pick the fastest int8 runtime for a model, by measurement (``StaticInt8(backend="auto")``).

No runtime wins everywhere. Measured on the zoo CNNs (1 thread): ONNX Runtime has the least
overhead per call, so it wins at batch 1, while OpenVINO's int8 convolutions win at batch 256
(ResNet-8 about 3x faster than ONNX Runtime's, MobileNet 2.7x). So the candidates are built and
timed on this machine, alternating, at the batch sizes asked for, and the fastest within the
accuracy budget wins:

- ``onnxruntime``: slimkit's int8 QDQ ONNX in ONNX Runtime;
- ``openvino``: the same file in OpenVINO (it reads QDQ ONNX as int8);
- ``onnxruntime-qoperator``: the same quantization pre-fused to QLinear ops (QOperator form);
- ``openvino-nncf``: NNCF's own int8 of the float model, as an OpenVINO IR;
- ``fx``: PyTorch FX graph-mode int8 (``torch.ao``, x86 qconfig; one-tensor inputs);
- ``x86-inductor``: the PT2E int8 graph under ``torch.compile`` (oneDNN int8 kernels).

The first two share one artifact, so the result can route each call to the runtime measured
fastest at the nearest batch size (:class:`RoutedModule`): one file, and the best runtime at
batch 1 and at batch 256. ``fx`` and ``x86-inductor`` cannot be saved without pickle, so they
are opt-in. ONNX Runtime fp32 is timed beside them as the reference, and everything measured
goes in ``report_of(model, "quantize")["runtime"]``.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit import modelio
from slimkit.export.onnx import OrtModule, onnx_bytes, quiet_export, session_options
from slimkit.export.parity import INT8, Tolerance, check_parity
from slimkit.export.routed import QDQ_RUNTIMES, RoutedModule

__all__ = ["INT8_VS_FLOAT", "RoutedModule", "select_runtime"]

#: An int8 artifact made by another quantizer (NNCF, FX) against the float model: a few percent
#: of the logit range, and predictions kept.
INT8_VS_FLOAT = Tolerance(atol=0.05, rtol=0.1, min_agreement=0.95)


def qoperator_bytes(qdq: bytes) -> bytes:
    """The QDQ model with ONNX Runtime's QDQ fusions applied and saved (QLinearConv, QLinearAdd...):
    the QOperator form of the same quantization. Only portable fusions are applied (the
    ``extended`` level; the layout rewrites of the ``all`` level depend on the CPU)."""
    import onnxruntime as ort

    options = session_options(1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    with tempfile.TemporaryDirectory(prefix="slimkit-ort-") as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "fused.onnx")
        ort.InferenceSession(qdq, options, providers=["CPUExecutionProvider"])
        return Path(options.optimized_model_filepath).read_bytes()


def fx_int8(model: nn.Module, batches: list[Any]) -> nn.Module:
    """PyTorch FX graph-mode int8 with the default x86 qconfig (``torch.ao``; one-tensor inputs)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if not isinstance(batches[0], torch.Tensor):
        raise TypeError("FX int8 here takes models with one tensor input")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao is deprecated in favour of PT2E; still measured
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), (batches[0],))
        with torch.no_grad():
            for x in batches:
                prepared(x)
        return convert_fx(prepared)


def _accuracy(model: nn.Module, batches: list[Any], targets: list[Any]) -> float | None:
    """Top-1 accuracy (percent) on the calibration batches that carry integer class labels."""
    right = total = 0
    with torch.no_grad():
        for x, y in zip(batches, targets):
            if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dim() != 1:
                continue
            logits = modelio.forward_logits(model, x)
            right += int((logits.argmax(1) == y).sum())
            total += len(y)
    return 100.0 * right / total if total else None


def _build(name: str, converted: nn.Module, base: nn.Module, qdq: bytes, batches: list[Any], config: Any) -> nn.Module:
    """One candidate runtime (ValueError/ImportError when it cannot run this model here)."""
    if name == "onnxruntime":
        return OrtModule(qdq)
    if name == "onnxruntime-qoperator":
        return OrtModule(qoperator_bytes(qdq))
    if name in ("openvino", "openvino-nncf"):
        from slimkit.export.openvino import OpenVINOModule, available, nncf_int8

        if not available():
            raise ImportError("OpenVINO is not installed (pip install 'slimkit[openvino]')")
        if name == "openvino":
            return OpenVINOModule(qdq)
        return nncf_int8(base, batches, dynamic_axes=config.dynamic_axes)
    if name == "fx":
        return fx_int8(base, batches)
    from slimkit.quantization.ptq import CompiledInt8

    return CompiledInt8(converted)


def select_runtime(converted: nn.Module, base: nn.Module, batches: list[Any], targets: list[Any],
                   config: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Build every candidate in ``config.runtimes``, check it, time them alternating at
    ``config.batch_sizes`` and return the fastest, with a report of everything measured.
    Candidates running slimkit's quantization must pass parity with the PyTorch int8 graph;
    those quantizing on their own (NNCF, FX) must keep calibration accuracy (where the batches
    have class labels) within ``config.accuracy_budget`` points of the float model's."""
    from slimkit.evaluate import measure_latency

    qdq = onnx_bytes(converted, batches[0], dynamic_axes=config.dynamic_axes)
    data = [(b,) for b in batches[:2]]
    ours = set(QDQ_RUNTIMES) | {"onnxruntime-qoperator", "x86-inductor"}  # slimkit's own quantization
    candidates: dict[str, nn.Module] = {}
    skipped: dict[str, str] = {}
    parity: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(["onnxruntime", *config.runtimes]):
        try:
            with quiet_export():
                module = _build(name, converted, base, qdq, batches, config)
        except (ImportError, TypeError, ValueError, RuntimeError) as exc:
            skipped[name] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            continue
        reference, tolerance = (converted, INT8) if name in ours else (base, INT8_VS_FLOAT)
        report = check_parity(reference, module, data, tolerance=tolerance, raise_on_failure=name == "onnxruntime",
                              name=f"int8 {name} vs {'PyTorch int8 graph' if name in ours else 'float model'}")
        parity[name] = report.to_dict()
        if report.passed:
            candidates[name] = module
        else:
            skipped[name] = f"parity failed: {report}"
    # Runtimes of slimkit's own quantization are held to the int8 graph by parity above; the
    # accuracy budget judges the quantizers that chose their own ranges (NNCF, FX). (On a few
    # hundred calibration samples one flipped prediction is several tenths of a point, so
    # runtime rounding alone must not decide.)
    float_acc = _accuracy(base, batches, targets)
    accuracy = {name: _accuracy(m, batches, targets) for name, m in candidates.items()}
    for name in [n for n in candidates if n not in ours]:
        if float_acc is not None and accuracy[name] is not None and float_acc - accuracy[name] > config.accuracy_budget:
            skipped[name] = f"accuracy {accuracy[name]:.2f} is more than {config.accuracy_budget} points below float"
            del candidates[name]
    timed = {**candidates, "onnxruntime-fp32 (reference)": OrtModule(onnx_bytes(base, batches[0],
                                                                             dynamic_axes=config.dynamic_axes))}
    with quiet_export():
        latency = measure_latency(timed, batches[0], batch_sizes=config.batch_sizes, warmup=config.selection_warmup,
                                  repeats=config.selection_repeats, threads=config.threads, memory=False)
    median = {name: {b: latency[name][b]["median_ms"] for b in config.batch_sizes} for name in timed}
    chosen, routes, scores = _choose(median, list(candidates), config.batch_sizes)
    if chosen == "qdq" and set(routes.values()) == {"onnxruntime"}:
        module: nn.Module = candidates["onnxruntime"]
    elif chosen == "qdq":
        module = RoutedModule(qdq, routes=routes)
    else:
        module = candidates[chosen]
    info = {"backend": "auto", "chosen": chosen, "routes": routes, "median_ms": median, "scores": scores,
            "float_accuracy": float_acc, "accuracy": accuracy, "parity": parity, "skipped": skipped,
            "batch_sizes": list(config.batch_sizes), "threads": latency["onnxruntime"][config.batch_sizes[0]]["threads"]}
    return module, info


def _choose(median: dict[str, dict[int, float]], names: list[str],
            batch_sizes: list[int]) -> tuple[str, dict[int, str], dict[str, float]]:
    """The artifact with the best geometric-mean speed over the batch sizes, each batch size run
    by its fastest runtime (runtimes of slimkit's QDQ file share one artifact, ``qdq``)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault("qdq" if name in QDQ_RUNTIMES else name, []).append(name)
    best_at = {b: min(median[n][b] for n in names) for b in batch_sizes}
    scores, routes = {}, {}
    for group, members in groups.items():
        routes[group] = {b: min(members, key=lambda n: median[n][b]) for b in batch_sizes}
        ratios = [best_at[b] / median[routes[group][b]][b] for b in batch_sizes]
        scores[group] = statistics.geometric_mean(ratios)
    chosen = max(scores, key=lambda g: (scores[g], g == "qdq"))  # ties go to the shared QDQ file
    return chosen, routes[chosen] if chosen == "qdq" else {}, scores
