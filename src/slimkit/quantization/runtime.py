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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit import modelio
from slimkit.export.onnx import OrtModule, onnx_bytes, quiet_export, session_options
from slimkit.export.parity import INT8, INT8_CHECK_BATCHES, Tolerance, check_parity
from slimkit.export.routed import QDQ_RUNTIMES, RoutedModule
from slimkit.quantization.placement import conv_timings, cpu_clock, slow_int8_layers
from slimkit.select import select_modules

__all__ = ["INT8_VS_FLOAT", "OURS", "RoutedModule", "select_runtime"]

#: Timed calls per model per round (after one untimed call).
BLOCK = 3
#: Candidates that run slimkit's own quantization (held to the PyTorch int8 graph by parity).
OURS = (*QDQ_RUNTIMES, "onnxruntime-qoperator", "x86-inductor")
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
    return CompiledInt8(converted)


class CompiledInt8(nn.Module):
    """The PT2E int8 graph under ``torch.compile`` (oneDNN int8 kernels), compiled per input shape
    on first use.

    Inductor's ``freezing`` (constant weights, needed to pre-pack int8 weights) is switched on
    only around each call: it is a global setting, and a library should not change it for the
    rest of the user's program (the per-compile ``options=`` route fails on these graphs).
    """

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        import torch

        self.graph = graph
        object.__setattr__(self, "compiled", torch.compile(graph, dynamic=False))  # not a submodule

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self.compiled(*args, **kwargs)


def select_runtime(converted: nn.Module, base: nn.Module, batches: list[Any], targets: list[Any],
                   config: Any, reconvert: Callable[[list[str]], nn.Module] | None = None,
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """Build every candidate in ``config.runtimes``, check it, time them alternating at
    ``config.batch_sizes`` and return the fastest, with a report of everything measured.

    Candidates running slimkit's quantization must pass parity with the PyTorch int8 graph;
    those quantizing on their own (NNCF, FX) must keep calibration accuracy (where the batches
    have class labels) within ``config.accuracy_budget`` points of the float model's. With
    ``config.tune_layers`` and ``reconvert`` (the int8 graph again, with extra layers left float),
    the QDQ file is also made with the convolutions whose int8 kernel is slower than float in
    ONNX Runtime left float (:mod:`slimkit.quantization.placement`), and run by the same runtimes
    (``onnxruntime+tuned``, ``openvino+tuned``).
    """
    qdq = onnx_bytes(converted, batches[0], dynamic_axes=config.dynamic_axes)
    files = {"qdq": (qdq, converted)}
    plans: list[tuple[str, Callable[[], nn.Module], nn.Module]] = []
    for name in dict.fromkeys(["onnxruntime", *config.runtimes]):
        reference = converted if name in OURS else base
        plans.append((name, lambda name=name: _build(name, converted, base, qdq, batches, config), reference))
    slow: list[str] = []
    shared = [r for r in dict.fromkeys(["onnxruntime", *config.runtimes]) if r in QDQ_RUNTIMES]
    if config.tune_layers and reconvert is not None:
        timings = conv_timings(base, batches[0], list(select_modules(base, config.include, exclude=config.exclude,
                                                                       types=(nn.Conv2d,))),
                               batch_sizes=config.batch_sizes, threads=config.threads or torch.get_num_threads())
        slow = slow_int8_layers(timings)
        if slow:
            tuned = reconvert(slow)
            files["qdq+tuned"] = (onnx_bytes(tuned, batches[0], dynamic_axes=config.dynamic_axes), tuned)
            for name in shared:
                plans.append((f"{name}+tuned", lambda name=name: _build(name, tuned, base, files["qdq+tuned"][0],
                                                                        batches, config), tuned))
    data = [(b,) for b in batches]
    candidates: dict[str, nn.Module] = {}
    skipped: dict[str, str] = {}
    parity: dict[str, dict[str, Any]] = {}
    for name, build, reference in plans:
        try:
            with quiet_export():
                module = build()
        except (ImportError, TypeError, ValueError, RuntimeError) as exc:
            skipped[name] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            continue
        ours = reference is not base
        report = check_parity(reference, module, data, tolerance=INT8 if ours else INT8_VS_FLOAT, max_batches=INT8_CHECK_BATCHES,
                              raise_on_failure=name == "onnxruntime",
                              name=f"int8 {name} vs {'PyTorch int8 graph' if ours else 'float model'}")
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
    for name in [n for n in candidates if n not in OURS and not n.endswith("+tuned")]:
        if float_acc is not None and accuracy[name] is not None and float_acc - accuracy[name] > config.accuracy_budget:
            skipped[name] = f"accuracy {accuracy[name]:.2f} is more than {config.accuracy_budget} points below float"
            del candidates[name]
    timed = {**candidates, "onnxruntime-fp32 (reference)": OrtModule(onnx_bytes(base, batches[0],
                                                                             dynamic_axes=config.dynamic_axes))}
    with quiet_export():
        median, threads = _timings(timed, batches[0], config)
    chosen, routes, scores = _choose(median, list(candidates), config.batch_sizes)
    if chosen in files:
        runtimes = {b: r.removesuffix("+tuned") for b, r in routes.items()}
        if set(runtimes.values()) == {"onnxruntime"}:
            module = candidates["onnxruntime" + chosen.removeprefix("qdq")]
        else:
            module = RoutedModule(files[chosen][0], routes=runtimes)
        routes = runtimes
    else:
        module = candidates[chosen]
    info = {"backend": "auto", "chosen": chosen, "routes": routes, "median_ms": median, "scores": scores,
            "float_accuracy": float_acc, "accuracy": accuracy, "parity": parity, "skipped": skipped,
            "float_for_speed": slow if chosen == "qdq+tuned" else [], "slower_in_int8": slow,
            "batch_sizes": list(config.batch_sizes), "threads": threads,
            "clock": "process CPU time" if threads == 1 else "wall time"}
    return module, info


def _timings(models: dict[str, nn.Module], example: Any, config: Any) -> tuple[dict[str, dict[int, float]], int]:
    """Median milliseconds per call of each model at each batch size, at the configured threads.

    The models alternate in rounds (A B A B...), each round a short block of calls whose first
    call is not timed: OpenVINO's worker threads stay busy a moment after a call, and timing the
    next model's very next call would charge that to it. At one thread the process's CPU time is
    the clock, so other load on a shared machine does not decide (at more threads, wall time).
    """
    from slimkit.evaluate.latency import fixed_threads, make_input

    median: dict[str, dict[int, float]] = {name: {} for name in models}
    with fixed_threads(config.threads) as threads, torch.no_grad():
        clock = cpu_clock(threads)
        for b in config.batch_sizes:
            inputs = make_input(example, b)
            times: dict[str, list[float]] = {name: [] for name in models}
            for i in range(config.selection_warmup + config.selection_repeats):
                for name, model in models.items():
                    modelio.call(model, inputs)  # settles the previous model's threads; not timed
                    start = clock()
                    for _ in range(BLOCK):
                        modelio.call(model, inputs)
                    if i >= config.selection_warmup:
                        times[name].append((clock() - start) / BLOCK)
            for name in models:
                median[name][b] = 1e3 * statistics.median(times[name])
    return median, threads


def _choose(median: dict[str, dict[int, float]], names: list[str],
            batch_sizes: list[int]) -> tuple[str, dict[int, str], dict[str, float]]:
    """The artifact with the best geometric-mean speed over the batch sizes, each batch size run
    by its fastest runtime (runtimes of slimkit's QDQ file share one artifact, ``qdq``)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        runtime, _, tuned = name.partition("+")
        groups.setdefault(("qdq" + (f"+{tuned}" if tuned else "")) if runtime in QDQ_RUNTIMES else name, []).append(name)
    best_at = {b: min(median[n][b] for n in names) for b in batch_sizes}
    scores, routes = {}, {}
    for group, members in groups.items():
        routes[group] = {b: min(members, key=lambda n: median[n][b]) for b in batch_sizes}
        ratios = [best_at[b] / median[routes[group][b]][b] for b in batch_sizes]
        scores[group] = statistics.geometric_mean(ratios)
    chosen = max(scores, key=lambda g: (scores[g], g.startswith("qdq")))  # ties go to the shared QDQ file
    return chosen, routes[chosen] if chosen.startswith("qdq") else {}, scores
