"""The PT2E route (torchao): export the model, annotate it with the x86 quantizer, observe,
convert to the reference int8 graph (quantize/dequantize around each quantized op).

That graph is *the* quantized model: it runs as is in PyTorch, compiles to oneDNN int8 kernels
with ``torch.compile``, and exports to ONNX QDQ for ONNX Runtime's int8 kernels with the same
scales, so the simulated model and the deployed one agree.

torchao is imported inside functions only: importing it takes seconds and prints warnings.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any
from unittest import mock

import torch
from torch import Tensor, nn

from slimkit import modelio
from slimkit.errors import ModelError
from slimkit.quantization.config import StaticInt8
from slimkit.quantization.observers import EPS, build_observer
from slimkit.select import select_modules

__all__ = ["convert", "export_graph", "float_layers", "prepare", "weighted_layers"]

#: Graph ops that carry weights: if one is not fed a dequantized weight it stayed in float.
WEIGHTED_OPS = ("conv", "linear", "matmul", "addmm", "bmm", "embedding", "lstm", "gru", "rnn")
WEIGHTED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                  nn.ConvTranspose3d, nn.Linear, nn.Embedding, nn.LSTM, nn.GRU, nn.RNN)
QUANTIZABLE_TYPES = (nn.Conv2d, nn.Linear)  # what the x86 quantizer annotates


@functools.lru_cache(maxsize=1)
def load_torchao() -> None:
    """Import torchao's PT2E modules once, muting the warnings it logs at import (missing CUDA
    kernels, a pytree deprecation) that say nothing about the user's model."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchao.quantization.pt2e.quantize_pt2e
            import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@functools.lru_cache(maxsize=1)
def observer_class() -> type:
    """A torchao observer that delegates range finding to a slimkit observer (built lazily)."""
    load_torchao()
    from torchao.quantization.pt2e.observer import UniformQuantizationObserverBase

    class SlimkitObserver(UniformQuantizationObserverBase):
        """torchao's qparams arithmetic over the range a slimkit observer proposes."""

        def __init__(self, method: str = "minmax", options: dict | None = None, **kwargs: Any) -> None:
            kwargs.setdefault("eps", EPS)
            super().__init__(**kwargs)
            levels = self.quant_max - self.quant_min + 1
            self.inner = build_observer(method, levels=levels, **(options or {}))

        def forward(self, x: Tensor) -> Tensor:
            return self.inner(x)

        def calculate_qparams(self) -> tuple[Tensor, Tensor]:
            lo, hi = self.inner.range()
            return self._calculate_qparams(torch.tensor(lo), torch.tensor(hi))

        def reset_min_max_vals(self) -> None:
            self.inner = type(self.inner)(levels=self.inner.levels)

    return SlimkitObserver


def quantization_config(config: StaticInt8, *, qat: bool = False) -> Any:
    """torchao QuantizationConfig for the activation observer and weight scheme in ``config``."""
    load_torchao()
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize
    from torchao.quantization.pt2e.observer import (
        MinMaxObserver,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
        PerChannelMinMaxObserver,
    )
    from torchao.quantization.pt2e.quantizer import QuantizationConfig, QuantizationSpec

    options = {"percentile": config.percentile, "averaging_constant": config.averaging_constant}
    act_observer = observer_class().with_args(method=config.observer, options=options)
    if qat:  # the observer runs every step, and fake-quant applies its range (straight-through)
        act_observer = FakeQuantize.with_args(observer=act_observer)
    act = QuantizationSpec(dtype=torch.uint8, quant_min=0, quant_max=255, qscheme=torch.per_tensor_affine,
                           observer_or_fake_quant_ctr=act_observer)
    half = 2 ** (config.weight_bits - 1)
    if config.per_channel:
        qscheme = torch.per_channel_symmetric if config.symmetric else torch.per_channel_affine
        observer = MovingAveragePerChannelMinMaxObserver if qat else PerChannelMinMaxObserver
    else:
        qscheme = torch.per_tensor_symmetric if config.symmetric else torch.per_tensor_affine
        observer = MovingAverageMinMaxObserver if qat else MinMaxObserver
    weight_ctr = observer.with_args(eps=EPS)
    if qat:
        # averaging_constant=1: each step quantizes the weights as they are now. Plain FakeQuantize,
        # not the fused kernel: that one derives its scale with its own formula, so the trained
        # model would not be the one convert produces
        weight_ctr = FakeQuantize.with_args(observer=observer, eps=EPS, averaging_constant=1.0)
    # below 8 bits a symmetric grid drops its lone most-negative level: [-7, 7] has scale max/7,
    # so the largest weights are exact instead of clipped by half a step ([-8, 7] gives max/7.5)
    low = -(half - 1) if config.symmetric and config.weight_bits < 8 else -half
    weight = QuantizationSpec(dtype=torch.int8, quant_min=low, quant_max=half - 1, qscheme=qscheme, ch_axis=0,
                              observer_or_fake_quant_ctr=weight_ctr)
    return QuantizationConfig(act, act, weight, None, qat)


def export_graph(model: nn.Module, example: Any, *, dynamic_axes: Any = None) -> torch.fx.GraphModule:
    """``torch.export`` on the model's own inputs (any structure and dtype) with a dynamic batch
    (and ``dynamic_axes``); failures name the model and the cause."""
    from slimkit.errors import ExportError
    from slimkit.export.capture import capture

    try:
        return capture(model, example, dynamic_axes=dynamic_axes).program.module()
    except ExportError as exc:
        message = exc.args[0].split(": ", 1)[-1]
        hint = exc.hint if "dynamic axis" in message else (
            "quantization traces the model's forward; avoid data-dependent Python control flow "
            "or exclude the model part that does it")
        raise ModelError(f"torch.export could not capture {type(model).__name__} for quantization: {message}",
                         hint=hint) from exc


def _annotate_for_ort(annotate: Any, act_spec: Any, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The x86 annotation, plus a quantizer on *every* input of a residual add.

    oneDNN fuses conv + add (+ relu) into one int8 kernel, so the x86 recipe leaves the conv's
    output unquantized. ONNX Runtime has no such fusion: it runs a conv in int8 only when a
    QuantizeLinear follows it, and otherwise falls back to a float conv with dequantized
    weights, slower than the float model (measured on ResNet-8: 0.67x of ORT fp32).

    The model's own inputs are quantized signed and symmetric (int8, zero point 0), as NNCF does
    for inputs that go negative: oneDNN's int8 convolutions (OpenVINO) then skip the zero-point
    compensation. Measured on the default teacher at batch 256: OpenVINO 6.56 -> 5.84 ms, the stem
    convolution being the difference; ONNX Runtime unchanged at batch 1.
    """
    model = annotate(model)
    key = "quantization_annotation"
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    signed = QuantizationSpec(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_symmetric,
                              observer_or_fake_quant_ctr=act_spec.observer_or_fake_quant_ctr)
    for node in model.graph.nodes:
        if key in node.meta and node.meta[key].input_qspec_map:
            qmap = node.meta[key].input_qspec_map
            for arg in list(qmap):
                if isinstance(arg, torch.fx.Node) and arg.op == "placeholder":
                    qmap[arg] = signed
    for node in model.graph.nodes:
        if node.target is torch.ops.aten.add.Tensor and key in node.meta and node.meta[key].input_qspec_map:
            qmap = node.meta[key].input_qspec_map
            for arg in node.args[:2]:
                if isinstance(arg, torch.fx.Node) and arg not in qmap:
                    qmap[arg] = act_spec
    return model


def _lenient_weight_qspec(config: Any) -> Any:
    return None if config is None else config.weight


def prepare(model: nn.Module, config: StaticInt8, example: Any, *, qat: bool = False) -> torch.fx.GraphModule:
    """Export ``model`` (not modified) and insert observers (or fake-quant for ``qat``)."""
    load_torchao()
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    model = copy.deepcopy(model).train(qat)
    quantizer = xiq.X86InductorQuantizer()
    qconfig = quantization_config(config, qat=qat)
    quantizer.set_global(qconfig)
    if getattr(config, "backend", "x86") != "x86":  # the QDQ file that ONNX Runtime and OpenVINO run
        quantizer.annotate = functools.partial(_annotate_for_ort, quantizer.annotate, qconfig.input_activation)
    chosen = set(weighted_layers(model, config))
    for name, module in model.named_modules():
        if isinstance(module, QUANTIZABLE_TYPES) and name not in chosen:
            quantizer.set_module_name_qconfig(name, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pytree deprecations inside torch.export
        graph = export_graph(model, example, dynamic_axes=getattr(config, "dynamic_axes", None))
    # The x86 quantizer refuses asymmetric weights because its oneDNN lowering needs symmetric
    # ones; ONNX Runtime runs them, so the check is relaxed for this call only.
    lenient = nullcontext() if config.symmetric else mock.patch.object(xiq, "get_weight_qspec", _lenient_weight_qspec)
    with lenient, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        prepared = (prepare_qat_pt2e if qat else prepare_pt2e)(graph, quantizer)
    return _train_eval(prepared)


def _train_eval(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    # exported graphs refuse .train()/.eval(); this makes them switch dropout (and BN) the way
    # slimkit's Trainer and predict expect
    return allow_exported_model_train_eval(graph)


def observe(prepared: nn.Module, batches: Iterable[Any]) -> None:
    """Run calibration batches (model inputs of any structure) through the observers."""
    with torch.no_grad():
        for x in batches:
            modelio.call(prepared, x)


def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The reference int8 graph, in eval mode."""
    load_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    prepared.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _train_eval(convert_pt2e(prepared))


def weighted_layers(model: nn.Module, config: Any) -> list[str]:
    """Names of weight-carrying layers the config selects (include/exclude globs)."""
    return list(select_modules(model, config.include, exclude=config.exclude, types=WEIGHTED_TYPES))


def float_layers(converted: torch.fx.GraphModule, wanted: Iterable[str]) -> dict[str, str]:
    """``{layer: op}`` for selected weight layers whose op still runs in float after conversion."""
    wanted = set(wanted)
    left: dict[str, str] = {}
    for node in converted.graph.nodes:
        if node.op != "call_function" or not any(k in str(node.target) for k in WEIGHTED_OPS):
            continue
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            continue
        name = list(stack.values())[-1][0]
        weights = [a for a in node.args[1:2] if isinstance(a, torch.fx.Node)]
        dequantized = any("dequantize" in str(a.target) for a in weights)
        if name in wanted and not dequantized:
            left[name] = str(node.target).split(".")[1] if "." in str(node.target) else str(node.target)
    return left


def check_quantizable(model: nn.Module, config: Any) -> None:
    """Fail early when the selection matches no weight layer at all."""
    if not weighted_layers(model, config):
        raise ModelError(
            f"no Conv/Linear layer of {type(model).__name__} matches include={config.include} "
            f"exclude={config.exclude}",
            hint="check the layer globs, e.g. include=['features.*', 'classifier.*']",
        )
