"""int4 weight-only with a real kernel (ONNX Runtime ``MatMulNBits``) against int8 and fp32.

Imported by ``bench/quantize.py``: :func:`int4_rows` times, in ONE alternating
:func:`~slimkit.evaluate.measure_latency` run at fixed threads, the same Linear-heavy model as
fp32 ONNX Runtime, ORT dynamic int8 (:class:`DynamicInt8`), ORT static int8
(``StaticInt8(backend="onnxruntime")``) and int4 ``MatMulNBits`` at ``accuracy_level`` 4 (int8
compute) and 0 (float compute), and reports file bytes, parity and the targets.

The model is an MLP on flattened Fashion-MNIST-sized input (784 -> 1024 -> 1024 -> 1024 -> 10;
quick: 784 -> 256 -> 256 -> 10) with **random initial weights** (seed 0, never trained):
accuracy is not the point here, speed and size are, and those do not depend on the weights'
values. Calibration and timing inputs are random normal. Rounding is nearest (no GPTQ): the
kernel runs the same codes either way.

Run alone: ``python bench/quantize_int4.py [--quick] [--threads N]`` prints the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from _common import target
from torch import nn

from slimkit.evaluate import measure_latency
from slimkit.export import OrtModule, onnx_bytes, report_of
from slimkit.quantization import DynamicInt8, LowBit, StaticInt8, quantize

GROUP_SIZE = 32
INT4 = "int4 MatMulNBits (acc 4)"
INT4_FLOAT = "int4 MatMulNBits (acc 0)"
INT8 = ("ORT dynamic int8", "ORT static int8")


def mlp(width: int, depth: int, seed: int = 0) -> nn.Module:
    """``depth`` hidden Linear layers of ``width`` on 784 inputs, 10 outputs; random weights."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    size = 784
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    return nn.Sequential(*layers, nn.Linear(size, 10)).eval()


def build_rows(model: nn.Module, calib: list[Any], example: torch.Tensor) -> tuple[dict[str, nn.Module], dict]:
    """Every runtime of ``model`` and, for the int4 ones, the parity with the fake-quant model."""
    w4 = {"bits": 4, "group_size": GROUP_SIZE, "activation_bits": None, "rounding": "nearest"}
    fake = quantize(model, LowBit(**w4), example_inputs=example)
    models = {
        "fp32 ORT": OrtModule(onnx_bytes(model, example)),
        INT8[0]: quantize(model, DynamicInt8(), calib),
        INT8[1]: quantize(model, StaticInt8(backend="onnxruntime", calibration_batches=len(calib)), calib),
    }
    parity = {}
    for label, level in ((INT4, 4), (INT4_FLOAT, 0)):
        runtime = quantize(model, LowBit(**w4, backend="onnxruntime", accuracy_level=level), calib)
        models[label] = runtime
        x = torch.cat([b[0] for b in calib])
        with torch.no_grad():
            ref = fake(x)
            diff = float((runtime(x) - ref).abs().max())
        report = report_of(runtime, "quantize")
        parity[label] = {"max_abs_diff_vs_fake_quant": diff, "logit_range": float(ref.abs().max()),
                         "kernel_layers": len(report["kernel_layers"]), "size_only_layers": len(report["size_only_layers"])}
    return models, parity


def int4_rows(threads: int, quick: bool) -> tuple[dict, list[dict]]:
    """``({"rows": {label: {bytes, median_ms{b}, vs_int8{b}}}, "parity": ..., ...}, targets)``.

    ``vs_int8[b]`` is the best int8 median (the faster of dynamic and static int8) over this
    row's median at batch ``b``: above 1 is faster than int8. The targets use the default int4
    configuration (``accuracy_level=4``)."""
    width, depth = (256, 2) if quick else (1024, 3)
    batch_sizes = (1, 32) if quick else (1, 256)
    repeats, warmup = (10, 2) if quick else (50, 5)
    started = time.perf_counter()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = mlp(width, depth)
        gen = torch.Generator().manual_seed(1)
        calib = [(torch.randn(32, 1, 28, 28, generator=gen), torch.zeros(32, dtype=torch.long)) for _ in range(2)]
        example = calib[0][0][:1]
        models, parity = build_rows(model, calib, example)
        timing = measure_latency(models, example, batch_sizes=batch_sizes, warmup=warmup, repeats=repeats,
                                 threads=threads, memory=False)
    finally:
        torch.set_num_threads(before)
    rows: dict[str, dict[str, Any]] = {}
    best_int8 = {b: min(timing[n][b]["median_ms"] for n in INT8) for b in batch_sizes}
    for label, runtime in models.items():
        medians = {b: timing[label][b]["median_ms"] for b in batch_sizes}
        rows[label] = {"bytes": int(runtime.onnx_model.numel()),
                       "median_ms": {str(b): m for b, m in medians.items()},
                       "vs_int8": {str(b): best_int8[b] / m for b, m in medians.items()}}
    int8_bytes = min(rows[n]["bytes"] for n in INT8)
    name = "W4 weight-only with a real int4 kernel (MatMulNBits, Linear)"
    targets = [target(f"{name}: smaller than int8 (int4 bytes / int8 bytes)", rows[INT4]["bytes"] / int8_bytes,
                      rows[INT4]["bytes"] < int8_bytes)]
    for b in batch_sizes:
        speedup = rows[INT4]["vs_int8"][str(b)]
        targets.append(target(f"{name}: at least as fast as int8 at batch {b} (int8 ms / int4 ms)", speedup,
                              speedup >= 1.0))
    data = {"model": f"MLP 784-{'-'.join([str(width)] * depth)}-10, random weights (seed 0), group {GROUP_SIZE}",
            "threads": threads, "batch_sizes": list(batch_sizes), "repeats": repeats, "rows": rows,
            "parity": parity, "seconds": round(time.perf_counter() - started, 1)}
    return data, targets


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    result, rows = int4_rows(args.threads, args.quick)
    print(json.dumps({**result, "targets": rows}, indent=1))
