"""Which convolutions are faster in int8 than in float on ONNX Runtime, measured layer by layer.

Profiling slimkit's int8 graphs in ONNX Runtime (1 thread, batch 256) shows int8 is not faster
everywhere. On the zoo MobileNet the stem convolution (one input channel, so each output is a
9-term dot product) took 43.5 ms in int8 against 16.5 ms in float, and the first depthwise
convolution (16 channels at 28x28) 47.1 ms against 18.5 ms, while every pointwise convolution
ran 2 to 4x faster in int8; the whole int8 MobileNet was no faster than float. So each
convolution is timed alone, in float and in int8 (quantize, int8 convolution, dequantize: the
cost of entering and leaving int8 is charged to it), at the caller's batch sizes, and the ones
where int8 loses stay float (``StaticInt8(exclude=...)``).

The timings are of ONNX Runtime's kernels; OpenVINO's differ. :mod:`slimkit.quantization.runtime`
times the resulting artifact as a whole against the all-int8 one, so a layer plan that does not
pay end to end is not chosen.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from slimkit import modelio
from slimkit.export.onnx import session_options

__all__ = ["conv_timings", "slow_int8_layers"]


def _input_shapes(model: nn.Module, example: Any, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Per-sample input shape of each named layer, from one forward pass."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Any:
        def hook(module: nn.Module, args: tuple) -> None:
            shapes.setdefault(name, tuple(args[0].shape[1:]))
        return hook

    hooks = [model.get_submodule(n).register_forward_pre_hook(record(n)) for n in names]
    try:
        with torch.no_grad():
            modelio.call(model.eval(), modelio.take(example, 1))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _conv_graphs(conv: nn.Conv2d, shape: tuple[int, ...]) -> tuple[bytes, bytes]:
    """Two one-convolution ONNX models: float, and int8 (QuantizeLinear -> DequantizeLinear ->
    Conv with per-channel int8 weights -> QuantizeLinear -> DequantizeLinear, which ONNX Runtime
    fuses into QuantizeLinear -> QLinearConv -> DequantizeLinear as in a full int8 graph)."""
    from onnx import TensorProto, helper, numpy_helper

    w = conv.weight.detach().float().numpy()
    bias = (conv.bias.detach().float().numpy() if conv.bias is not None else np.zeros(w.shape[0], np.float32))
    attrs = {"strides": list(conv.stride), "pads": [*conv.padding, *conv.padding], "dilations": list(conv.dilation),
             "group": conv.groups, "kernel_shape": list(conv.kernel_size)}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(1), 1e-8).astype(np.float32) / 127
    w_q = np.clip(np.round(w / scale[:, None, None, None]), -127, 127).astype(np.int8)
    b_scale = (scale * 0.02).astype(np.float32)
    inits_float = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
    inits_int8 = [numpy_helper.from_array(w_q, "wq"), numpy_helper.from_array(scale, "ws"),
                  numpy_helper.from_array(np.zeros(w.shape[0], np.int8), "wz"),
                  numpy_helper.from_array(np.round(bias / b_scale).astype(np.int32), "bq"),
                  numpy_helper.from_array(b_scale, "bs"), numpy_helper.from_array(np.zeros(w.shape[0], np.int32), "bz"),
                  numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                  numpy_helper.from_array(np.array(128, np.uint8), "z")]
    nodes_float = [helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)]
    nodes_int8 = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                  helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
                  helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0),
                  helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], **attrs),
                  helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
                  helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["y"])]
    models = []
    for nodes, inits in ((nodes_float, inits_float), (nodes_int8, inits_int8)):
        graph = helper.make_graph(nodes, "conv", [x], [y], initializer=inits)
        models.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return models[0], models[1]


def conv_timings(model: nn.Module, example: Any, names: list[str], *, batch_sizes: list[int], threads: int = 1,
                 repeats: int = 7) -> dict[str, dict[int, dict[str, float]]]:
    """``{layer: {batch: {"float_ms", "int8_ms"}}}`` for the named Conv2d layers, each timed alone
    in ONNX Runtime (float and int8 alternating, median of ``repeats``)."""
    import onnxruntime as ort

    shapes = _input_shapes(model, example, names)
    clock = cpu_clock(threads)
    out: dict[str, dict[int, dict[str, float]]] = {}
    generator = np.random.default_rng(0)
    for name in names:
        conv = model.get_submodule(name)
        if not isinstance(conv, nn.Conv2d) or name not in shapes or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            continue
        sessions = [ort.InferenceSession(g, session_options(threads), providers=["CPUExecutionProvider"])
                    for g in _conv_graphs(conv, shapes[name])]
        out[name] = {}
        for b in batch_sizes:
            x = generator.standard_normal((b, *shapes[name])).astype(np.float32)
            times: list[list[float]] = [[], []]
            for i in range(repeats + 1):
                for k, session in enumerate(sessions):
                    start = clock()
                    session.run(None, {"x": x})
                    if i:  # the first round warms up
                        times[k].append(clock() - start)
            out[name][b] = {"float_ms": 1e3 * statistics.median(times[0]), "int8_ms": 1e3 * statistics.median(times[1])}
    return out


def slow_int8_layers(timings: dict[str, dict[int, dict[str, float]]]) -> list[str]:
    """Layers whose int8 time is above their float time at the largest batch size timed (at small
    batches both are mostly per-node overhead, and the one-layer int8 graph has five nodes where
    a full int8 graph fuses them into one)."""
    slow = []
    for name, rows in timings.items():
        row = rows[max(rows)]
        if row["int8_ms"] > row["float_ms"]:
            slow.append(name)
    return slow


def cpu_clock(threads: int) -> Any:
    """The clock to time single-thread kernels with: the process's CPU time at one thread (what a
    dedicated core would take, whatever else shares the machine), else wall time."""
    return time.process_time if threads == 1 else time.perf_counter
