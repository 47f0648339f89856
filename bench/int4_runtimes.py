"""Every int4 weight kernel a CPU user can install, against int8, on bench/quantize_int4.py's
Linear-heavy MLP, 1 thread. Evidence for bench/quantize.py's int4 section: whether any int4
runtime keeps up with int8 at large batches on this CPU.

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/int4_runtimes.py   # about two minutes, run alone
    .venv/bin/python bench/int4_runtimes.py --quick                          # a small MLP, to runs/bench-quick

The candidates besides ONNX Runtime's ``MatMulNBits`` (slimkit's ``LowBit(backend="onnxruntime")``):

- OpenVINO: NNCF's ``compress_weights`` stores every Linear's weights in int4 (symmetric, per
  output channel or in groups of 16: 784 inputs do not split into groups of 32); OpenVINO's CPU
  plugin then runs its int4 weight-decompression kernels, with activations in f32 or quantized to
  int8 on the fly in groups of 32 (``DYNAMIC_QUANTIZATION_GROUP_SIZE``).
- torchao: its int4 CPU weight-only layout (``PrototypeInt4WeightOnlyConfig``, group 32: PyTorch's
  ``_weight_int4pack_mm_for_cpu`` kernel; torchao 0.18 moved it to the prototype namespace). That
  kernel needs inputs divisible by 32 and outputs by 16, so it takes the two 1024x1024 layers of
  the four. torchao's dynamic-int8-activation kernel (``Int8DynamicActivationInt4WeightConfig``,
  ``da8w4_linear_cpu``) is tried too; where the installed wheel lacks it, the results say so.

The reference is slimkit's static int8 of the same model. Random weights (seed 0) and inputs;
every model timed alternating in one :func:`~slimkit.evaluate.measure_latency` run, medians of 40.
"""

from __future__ import annotations

import logging

import torch
from _common import bench_arguments, result_dir, target, write_results
from quantize_int4 import mlp

from slimkit.evaluate import measure_latency
from slimkit.export import onnx_bytes
from slimkit.export.openvino import OpenVINOModule
from slimkit.quantization import LowBit, StaticInt8, quantize

INT8 = "ORT static int8 (slimkit)"
NBITS = "ORT int4 MatMulNBits (acc 4)"
TORCHAO = "torchao int4 weight-only, group 32"
TORCHAO_DA8W4 = "torchao int4 weights + dynamic int8 activations (da8w4)"


class Compiled(torch.nn.Module):
    """An OpenVINO model compiled with extra CPU properties, called like a module."""

    def __init__(self, model: object, threads: int, **properties: object) -> None:
        super().__init__()
        import openvino

        from slimkit.export.openvino import _config  # OpenVINOModule's settings, plus ``properties``

        self.compiled = openvino.Core().compile_model(model, "CPU", {**_config(threads), **properties})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.compiled(x.numpy())[0])


def int4_models(model: torch.nn.Module, example: torch.Tensor, threads: int) -> dict[str, torch.nn.Module]:
    """OpenVINO int4 variants of ``model``: per channel and group 16, dynamic int8 activations off and on."""
    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    fp32 = OpenVINOModule(onnx_bytes(model, example)).read()
    out = {}
    for group, label in ((-1, "per channel"), (16, "group 16")):
        compressed = nncf.compress_weights(fp32.clone(), mode=nncf.CompressWeightsMode.INT4_SYM, group_size=group,
                                           ratio=1.0, all_layers=True)
        for dq in (0, 32):
            name = f"OpenVINO int4 {label}, activations {'int8 (dynamic, group 32)' if dq else 'f32'}"
            out[name] = Compiled(compressed, threads, DYNAMIC_QUANTIZATION_GROUP_SIZE=dq)
    return out


def int4_layers(model: torch.nn.Module) -> str:
    """How many of ``model``'s Linear layers hold int4 weights (torchao swaps in tensor subclasses)."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return f"{sum(type(m.weight) is not torch.nn.Parameter for m in linears)} of {len(linears)}"


def torchao_models(model: torch.nn.Module) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """torchao's int4 CPU variants of ``model`` (the Linear layers its kernels take), and the
    variants that cannot run here with the reason."""
    import copy
    import warnings

    from slimkit.quantization._pt2e import load_torchao

    load_torchao()  # mutes the import-time warnings (missing CUDA kernels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.quantization.int4 import (
            Int8DynamicActivationInt4WeightConfig,
            PrototypeInt4WeightOnlyConfig,
        )
        from torchao.quantization import quantize_

    def fits(module: torch.nn.Module, _: str) -> bool:
        return isinstance(module, torch.nn.Linear) and module.in_features % 32 == 0 and module.out_features % 16 == 0

    out, missing = {}, {}
    for name, config in ((TORCHAO, PrototypeInt4WeightOnlyConfig(group_size=32)),
                         (TORCHAO_DA8W4, Int8DynamicActivationInt4WeightConfig(group_size=32))):
        quantized = copy.deepcopy(model)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_(quantized, config, filter_fn=fits)
        except (AssertionError, RuntimeError, NotImplementedError) as exc:  # a kernel this wheel lacks
            missing[name] = str(exc).splitlines()[0][:200]
            continue
        if int4_layers(quantized).startswith("0 "):
            missing[name] = "no Linear layer fits the kernel"
            continue
        out[name] = quantized
    return out, missing


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.set_defaults(threads=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, depth = (256, 2) if args.quick else (1024, 3)
    model = mlp(width, depth)
    gen = torch.Generator().manual_seed(1)
    calib = [(torch.randn(32, 1, 28, 28, generator=gen), torch.zeros(32, dtype=torch.long)) for _ in range(2)]
    example = calib[0][0][:1]
    models = {INT8: quantize(model, StaticInt8(backend="onnxruntime", calibration_batches=2), calib),
              NBITS: quantize(model, LowBit(bits=4, group_size=32, activation_bits=None, backend="onnxruntime",
                                            accuracy_level=4), calib),
              **int4_models(model, example, args.threads)}
    extra, unavailable = torchao_models(model)
    models.update(extra)
    x = torch.cat([b[0] for b in calib])
    with torch.no_grad():
        ref = model(x)
        error = {k: float((m(x) - ref).abs().max() / ref.abs().max()) for k, m in models.items()}
    batches = (1, 32) if args.quick else (1, 256)
    timed = measure_latency(models, example, batch_sizes=batches, warmup=2 if args.quick else 5,
                            repeats=5 if args.quick else 40, threads=args.threads, memory=False, settle=True)
    rows = {name: {"relative_error": error[name], "median_ms": {str(b): timed[name][b]["median_ms"] for b in batches},
                   "vs_int8": {str(b): timed[INT8][b]["median_ms"] / timed[name][b]["median_ms"] for b in batches}}
            for name in models}
    big = str(batches[-1])
    best = max((n for n in rows if n != INT8), key=lambda n: rows[n]["vs_int8"][big])
    targets = [target(f"some int4 runtime at least as fast as int8 at batch {big} (int8 ms / int4 ms; best: {best})",
                      rows[best]["vs_int8"][big], rows[best]["vs_int8"][big] >= 1.0)]
    data = {"quick": args.quick, "model": f"MLP 784-{'-'.join([str(width)] * depth)}-10, random weights (seed 0)",
            "threads": args.threads, "batch_sizes": list(batches), "rows": rows, "unavailable": unavailable,
            "torchao_layers": {name: int4_layers(m) for name, m in extra.items()}}
    lines = [f"# int4 runtimes against int8{' (QUICK: not a result)' if args.quick else ''}", "",
             (f"`python bench/int4_runtimes.py`: {data['model']}, {args.threads} thread(s), every model timed "
              "alternating (medians). Error: max |output - float output| / max |float output| on 64 random inputs."), "",
             "| runtime | error | " + " | ".join(f"ms b{b} | int8 ms / this, b{b}" for b in batches) + " |",
             "|---|---|" + "---|---|" * len(batches)]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['relative_error']:.4f} | " + " | ".join(
            f"{row['median_ms'][str(b)]:.3f} | {row['vs_int8'][str(b)]:.2f}x" for b in batches) + " |")
    lines += [f"| {name} | not available here: {why} |" + " |" * (2 * len(batches)) for name, why in unavailable.items()]
    lines += ["", *(f"{name}: int4 weights in {layers} Linear layers (the rest run in float)."
                    for name, layers in data["torchao_layers"].items())]
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|",
              *(f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else 'NO'} |" for t in targets)]
    write_results("int4_runtimes", data, "\n".join(lines), targets=targets, out_dir=result_dir(args))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
