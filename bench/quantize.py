"""Quantization on Fashion-MNIST: slimkit's default int8 (the fastest runtime, measured) against
three peers (PyTorch FX x86 int8, ONNX Runtime's quantize_static, OpenVINO + NNCF int8) on the
default teacher CNN, a ResNet-8 and a MobileNet; W4A8 with nearest and GPTQ rounding; int4 kernels.

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/quantize.py   # full size, 1 thread
    python bench/quantize.py --quick                                    # digits, tiny, < 1 minute

Speed: every deployable artifact of a model is timed in one alternating run (fixed threads),
reported as speedup over PyTorch fp32 eager and over ONNX Runtime fp32. Sizes: bytes of files.
The first model also gets the observer matrix, dynamic int8, mixed precision and QAT. ONNX
Runtime int8 files are listed with their node counts after ORT's QDQ fusion (int8 kernels
against float fallbacks). The int4 section comes from bench/quantize_int4.py.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import (
    ROOT,
    bench_arguments,
    cache_model,
    cache_record,
    cached_model,
    default_pair,
    fmt_pm,
    mean_std,
    result_dir,
    target,
    write_results,
)
from torch.utils.data import DataLoader, Subset

from slimkit.data import DataConfig, load_data
from slimkit.evaluate import accuracy, measure_latency, predict
from slimkit.export import OrtModule, export_program, onnx_bytes, report_of
from slimkit.export.onnx import quiet_export
from slimkit.models import build_model
from slimkit.quantization import (
    QAT,
    DynamicInt8,
    LowBit,
    MixedPrecision,
    StaticInt8,
    load_packed,
    quantize,
    save_packed,
)
from slimkit.quantization.ptq import CompiledInt8
from slimkit.train import TrainConfig, Trainer
from slimkit.transform import fuse

CACHE = ROOT / "runs" / "bench-quantize"
OBSERVERS = ("minmax", "moving_average", "percentile", "entropy", "mse")


def trained(name: str, knobs: dict, loaders, epochs: int, quick: bool):
    config = TrainConfig(epochs=epochs, progress=False)
    folder = CACHE / f"{name}-{'-'.join(f'{k}{v}' for k, v in knobs.items())}"
    if not quick and cache_record(folder).get("train") == config.to_dict():
        return cached_model(folder)
    torch.manual_seed(0)
    model = build_model(name, **knobs, num_classes=10, input_size=loaders.splits.input_shape[-1])
    Trainer(model, config).fit(loaders.train)
    if not quick:
        cache_model(folder, model, {"train": config.to_dict(), "dataset": loaders.splits.name})
    return model.eval()


def subset(loaders, n: int, seed: int, *, shuffle: bool = True, batch_size: int = 64) -> DataLoader:
    """``n`` random training samples (``seed`` picks them; ``shuffle`` for training loaders)."""
    order = torch.randperm(len(loaders.splits.train), generator=torch.Generator().manual_seed(seed))[:n]
    return DataLoader(Subset(loaders.splits.train, order.tolist()), batch_size=batch_size, shuffle=shuffle)


def fx_int8(model, calib):
    """Peer: PyTorch's own FX graph mode int8 with the default x86 qconfig (eager int8 kernels)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), (next(iter(calib))[0],))
        with torch.no_grad():
            for x, _ in calib:
                prepared(x)
        return convert_fx(prepared)


def ort_native(model, calib, example) -> OrtModule:
    """Peer: ONNX Runtime's own static quantizer (QDQ, per-channel, MinMax) on the fp32 ONNX."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name):
            self.batches = iter([{name: x.numpy()} for x, _ in calib])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp, quiet_export():
        src, pre, dst = (Path(tmp) / f for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(onnx_bytes(model, example))
        quant_pre_process(str(src), str(pre))
        name = OrtModule(src.read_bytes()).session().get_inputs()[0].name
        quantize_static(str(pre), str(dst), Reader(name), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return OrtModule(dst.read_bytes())


def file_bytes(model, folder: Path, label: str, example) -> tuple[int, Path]:
    """Bytes (and path) of the artifact a user would ship for this variant."""
    path = folder / "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
    model = model.graph if isinstance(model, CompiledInt8) else model  # the graph torch.compile runs
    if isinstance(model, OrtModule):
        written = model.save(path.with_suffix(".onnx"))
    elif report_of(model, "quantize").get("kind") in ("lowbit", "mixed"):
        written = save_packed(model, path.with_suffix(".safetensors"))
    elif isinstance(model, torch.fx.GraphModule) and any("quantized_decomposed" in str(n.target) for n in model.graph.nodes):
        written = export_program(model, path.with_suffix(".pt2"), example)
    elif any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
        written = path.with_suffix(".pt")
        torch.save(model.state_dict(), written)  # int8 packed params: only torch's own format holds them
    else:
        from safetensors.torch import save_model

        written = path.with_suffix(".safetensors")
        save_model(model, str(written))
    return written.stat().st_size, written


def nncf_peer(model, calib) -> torch.nn.Module:
    """Peer: OpenVINO's own post-training int8 (NNCF, default preset) run by OpenVINO."""
    from slimkit.export.openvino import nncf_int8

    return nncf_int8(fuse(copy.deepcopy(model).eval()), [x for x, _ in calib])


def variants(model, loaders, opts, *, first: bool):
    """``{label: (group, model or list of seeded models)}``; the model is never modified.

    Every model gets fp32 in three runtimes, slimkit's default int8 (``StaticInt8()``: the runtime
    measured fastest here), its int8 in ONNX Runtime alone, W4A8 (nearest and GPTQ rounding) and
    the three peers; the first model also gets the observer matrix, dynamic int8, mixed precision
    and QAT."""
    from slimkit.export.openvino import OpenVINOModule

    calib = subset(loaders, opts["calib"], seed=1234, shuffle=False)  # one fixed calibration set
    example = next(iter(calib))[0]
    cb = max(1, opts["calib"] // 64)
    fp32_onnx = onnx_bytes(fuse(copy.deepcopy(model).eval()), example)
    out = {"fp32 (PyTorch eager)": ("fp32", model), "fp32 (ONNX Runtime)": ("fp32", OrtModule(fp32_onnx)),
           "fp32 (OpenVINO)": ("fp32", OpenVINOModule(fp32_onnx))}
    selection = {"threads": opts["threads"], "batch_sizes": opts["batches"]}
    out["slimkit int8 (default: fastest runtime)"] = ("slimkit int8", quantize(
        model, StaticInt8(calibration_batches=cb, **selection), calib))
    out["slimkit int8 (ONNX Runtime)"] = ("slimkit int8", quantize(
        model, StaticInt8(backend="onnxruntime", calibration_batches=cb), calib))
    out["slimkit int8 per-tensor (ONNX Runtime)"] = ("slimkit int8", quantize(
        model, StaticInt8(backend="onnxruntime", per_channel=False, calibration_batches=cb), calib))
    if first:
        for obs in opts["observers"][1:]:
            out[f"slimkit int8 {obs} (ONNX Runtime)"] = ("slimkit int8", quantize(
                model, StaticInt8(backend="onnxruntime", observer=obs, calibration_batches=cb), calib))
        out["dynamic int8 (ONNX Runtime)"] = ("dynamic int8", quantize(model, DynamicInt8(), calib))
    out["W4A8 int8 kernels, nearest (per-channel)"] = ("W4A8", quantize(
        model, StaticInt8(backend="onnxruntime", weight_bits=4, calibration_batches=cb), calib))
    for rounding in ("nearest", "gptq"):
        for group in (None, 64):
            label = f"W4A8 packed, {rounding} ({'group 64' if group else 'per-channel'})"
            out[label] = ("W4A8", quantize(model, LowBit(bits=4, group_size=group, rounding=rounding,
                                                         calibration_batches=cb), calib))
    if first:
        out["mixed precision (budget 0.15)"] = ("mixed", quantize(model, MixedPrecision(budget=0.15, calibration_batches=cb), calib))
    out["peer: PyTorch FX int8 (x86 qconfig)"] = ("peer", fx_int8(model, calib))
    out["peer: ONNX Runtime quantize_static"] = ("peer", ort_native(model, calib, example))
    out["peer: OpenVINO + NNCF int8"] = ("peer", nncf_peer(model, calib))
    if first:
        for bits in opts["qat_bits"]:
            seeded = [quantize(model, QAT(weight_bits=bits, epochs=1, lr=1e-4, seed=s, calibration_batches=cb),
                               subset(loaders, opts["qat_samples"], seed=s)) for s in opts["seeds"]]
            out[f"QAT {'int8' if bits == 8 else 'W4A8'} (KD, {len(seeded)} seeds)"] = ("QAT", seeded)
    return out, example


def node_counts(model) -> dict | None:
    """Op types in an ONNX Runtime artifact as stored and after ONNX Runtime's QDQ fusion: how
    many convolutions run as int8 kernels (QLinearConv) and how many fell back to float."""
    if not isinstance(model, OrtModule):
        return None
    from slimkit.export.onnx import onnx_ops
    from slimkit.quantization.runtime import qoperator_bytes

    return {"file": onnx_ops(model), "fused": onnx_ops(qoperator_bytes(model.onnx_bytes()))}


def artifact_bytes(model, folder: Path, label: str, example) -> int:
    from slimkit.export.openvino import OpenVINOModule

    if isinstance(model, OpenVINOModule):  # the IR a user deploys: .xml + .bin
        return int(model.ov_model.numel() + model.ov_weights.numel())
    return file_bytes(model, folder, label, example)[0]


def measure(name: str, model, loaders, opts, *, first: bool) -> dict:
    folder = CACHE / "artifacts" / name
    folder.mkdir(parents=True, exist_ok=True)
    found, example = variants(model, loaders, opts, first=first)
    rows, timed = {}, {}
    for label, (group, m) in found.items():
        seeded = m if isinstance(m, list) else [m]
        accs = [float(accuracy(*predict(s, loaders.test).pair())) for s in seeded]
        timed[label] = seeded[0]
        size = artifact_bytes(seeded[0], folder, label, example)
        if label.startswith(("W4A8 packed", "mixed")):
            # deployed as stored: dequantized weights in float kernels (no int4 conv kernels anywhere)
            path = file_bytes(seeded[0], folder, label, example)[1]
            timed[label] = load_packed(path, fuse(copy.deepcopy(model).eval()))
        rows[label] = {"group": group, "accuracy": accs, "bytes": size, "runtime": type(timed[label]).__name__,
                       "nodes": node_counts(seeded[0])}
        chosen = report_of(seeded[0], "quantize").get("runtime")
        if chosen:
            rows[label]["selection"] = {k: chosen.get(k) for k in ("chosen", "routes", "median_ms", "skipped")}
            rows[label]["runtime"] = f"{type(seeded[0]).__name__} {chosen.get('routes') or chosen.get('chosen')}"
    lat: dict = {label: {} for label in timed}
    for b in opts["batches"]:  # small batches are cheap to repeat, and their ratios need it (a few us apart)
        at = measure_latency(timed, example, batch_sizes=(b,), warmup=opts["warmup"], repeats=opts["repeats"][b],
                             threads=opts["threads"], memory=False, settle=True)
        for label in timed:
            lat[label].update(at[label])
    for label, row in rows.items():
        row["median_ms"] = {b: lat[label][b]["median_ms"] for b in opts["batches"]}
        for ref, key in (("fp32 (PyTorch eager)", "vs_pytorch_fp32"), ("fp32 (ONNX Runtime)", "vs_ort_fp32")):
            row[key] = {b: lat[ref][b]["median_ms"] / lat[label][b]["median_ms"] for b in opts["batches"]}
    return rows


DEFAULT = "slimkit int8 (default: fastest runtime)"


def targets(results: dict, int4_targets: list[dict]) -> list[dict]:
    """Issue 18's targets (and issue 5's that still hold), in the shared schema. The speed value
    is slimkit's default int8 speedup over the fastest peer's at that batch size (>= 1: met)."""
    out = []
    for i, (name, rows) in enumerate(results.items()):
        fp32, ours = rows["fp32 (PyTorch eager)"], rows[DEFAULT]
        peers = {k: r for k, r in rows.items() if r["group"] == "peer"}
        lost = 100 * (fp32["accuracy"][0] - ours["accuracy"][0])
        for b in ours["median_ms"]:
            best = max(peers, key=lambda k: peers[k]["vs_pytorch_fp32"][b])
            ratio = ours["vs_pytorch_fp32"][b] / peers[best]["vs_pytorch_fp32"][b]
            out.append(target(f"{name}: static int8 at least as fast as the fastest peer ({best.removeprefix('peer: ')}), "
                              f"batch {b}", ratio, ratio >= 1.0))
        out.append(target(f"{name}: static int8 within 0.3 points of fp32", lost, lost <= 0.3))
        if i == 0:
            smaller = rows["fp32 (ONNX Runtime)"]["bytes"] / ours["bytes"]
            out.append(target(f"{name}: static int8 >= 3.8x smaller than the fp32 ONNX file", smaller, smaller >= 3.8))
            qat = [r for k, r in rows.items() if k.startswith("QAT W4A8")]
            if qat:
                lost = 100 * (fp32["accuracy"][0] - mean_std(qat[0]["accuracy"])[0])
                out.append(target(f"{name}: W4A8 with QAT within 1 point", lost, lost <= 1.0))
    if "resnet-8" in results:
        rows = results["resnet-8"]
        fp32 = rows["fp32 (PyTorch eager)"]["accuracy"][0]
        best = max((k for k in rows if k.startswith("W4A8 packed")), key=lambda k: rows[k]["accuracy"][0])
        lost = 100 * (fp32 - rows[best]["accuracy"][0])
        out.append(target(f"resnet-8: post-training W4A8 within 1 point of fp32 ({best})", lost, lost <= 1.0))
    if "mobilenet" in results:
        rows = results["mobilenet"]
        pt, pc = (rows[k]["accuracy"][0] for k in ("slimkit int8 per-tensor (ONNX Runtime)", "slimkit int8 (ONNX Runtime)"))
        out.append(target("mobilenet: per-channel at least as accurate as per-tensor (points)", 100 * (pc - pt), pc >= pt))
    return out + int4_targets


def fastest(rows: dict) -> str:
    """Which int8 artifact is fastest at each batch size (slimkit's or a peer's)."""
    int8 = {k: r for k, r in rows.items() if r["group"] in ("slimkit int8", "peer", "dynamic int8")}
    parts = []
    for b in next(iter(rows.values()))["median_ms"]:
        label = max(int8, key=lambda k: int8[k]["vs_pytorch_fp32"][b])
        parts.append(f"batch {b}: {label} ({int8[label]['vs_pytorch_fp32'][b]:.2f}x)")
    return "Fastest int8 artifact - " + "; ".join(parts) + "."


def nodes_table(rows: dict) -> list[str]:
    """ONNX Runtime artifacts: int8 kernels against float fallbacks after ORT's QDQ fusion."""
    lines = [("| artifact | file: QuantizeLinear / DequantizeLinear | fused: QLinearConv | fused: float Conv | "
             "fused: QLinearAdd | fused: DequantizeLinear left |"), "|---|---|---|---|---|---|"]
    for label, r in rows.items():
        n = r.get("nodes")
        if not n or not any(k.startswith("Quantize") for k in n["file"]):
            continue
        f, q = n["fused"], n["file"]
        lines.append(f"| {label} | {q.get('QuantizeLinear', 0)} / {q.get('DequantizeLinear', 0)} | "
                     f"{f.get('QLinearConv', 0)} | {f.get('Conv', 0)} | {f.get('QLinearAdd', 0)} | "
                     f"{f.get('DequantizeLinear', 0)} |")
    return lines


def int4_table(int4: dict) -> list[str]:
    """The int4 section (bench/quantize_int4.py): MatMulNBits against int8 on a Linear-heavy model."""
    bs = int4["batch_sizes"]
    lines = [(f"{int4['model']}, {int4['threads']} thread(s), alternating, median of {int4['repeats']}. Only Linear "
             "layers have an int4 kernel (ONNX Runtime MatMulNBits); convolutions stored in int4 run as float."), "",
             "| runtime | bytes | " + " | ".join(f"ms b{b} | vs best int8 b{b}" for b in bs) + " |",
             "|---|---|" + "---|---|" * len(bs)]
    for label, r in int4["rows"].items():
        lines.append(f"| {label} | {r['bytes']:,} | " + " | ".join(
            f"{r['median_ms'][str(b)]:.3f} | {r['vs_int8'][str(b)]:.2f}x" for b in bs) + " |")
    return lines


def markdown(data: dict) -> str:
    intro = (f"`{data['command']}` on {data['dataset']}; {data['threads']} thread(s); speedups are median latency "
             "ratios from one alternating run per model (A B A B ...). Bytes are the files a user ships (ONNX for ONNX "
             "Runtime rows, IR .xml + .bin for OpenVINO rows, packed safetensors for low-bit/mixed, torch.save for FX). "
             f"`{DEFAULT}` is `StaticInt8()` as a user gets it: candidates built and timed on this machine, the "
             "fastest within the accuracy budget kept (its runtime per batch size is in brackets). Low-bit packed and "
             "mixed rows run dequantized weights in float kernels (no int4 convolution kernel exists in these "
             "runtimes): their gain is size only.")
    lines = ["# Quantization benchmark", "", intro, ""]
    for name, rows in data["models"].items():
        fp32 = rows["fp32 (PyTorch eager)"]["accuracy"][0]
        bs = list(next(iter(rows.values()))["median_ms"])
        lines += [f"## {name}", "", "| variant | runtime | test accuracy | Δ pts | bytes | "
                  + " | ".join(f"vs PyTorch fp32 b{b}" for b in bs) + " | " + " | ".join(f"vs ORT fp32 b{b}" for b in bs)
                  + " |", "|" + "---|" * (5 + 2 * len(bs))]
        for label, r in rows.items():
            acc = fmt_pm(r["accuracy"]) if len(r["accuracy"]) > 1 else f"{100 * r['accuracy'][0]:.2f}"
            delta = 100 * (mean_std(r["accuracy"])[0] - fp32)
            lines.append(f"| {label} | {r['runtime']} | {acc} | {delta:+.2f} | {r['bytes']:,} | "
                         + " | ".join(f"{r['vs_pytorch_fp32'][b]:.2f}x" for b in bs) + " | "
                         + " | ".join(f"{r['vs_ort_fp32'][b]:.2f}x" for b in bs) + " |")
        lines += ["", fastest(rows), "", "Node counts of the ONNX Runtime int8 files:", "", *nodes_table(rows), ""]
    if data.get("int4"):
        lines += ["## W4 weight-only with a real int4 kernel", "", *int4_table(data["int4"]), ""]
    lines += ["## Targets", "", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else '**no**'} |" for t in data["targets"]]
    return "\n".join(lines)


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.set_defaults(threads=1)  # one thread: the measurements, the recipe's and the selection's
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = args.quick
    opts = {"calib": 128 if quick else 512, "qat_samples": 256 if quick else 20000, "threads": args.threads,
            "seeds": list(range(1 if quick else args.seeds)), "batches": [1, 32] if quick else [1, 256],
            "repeats": {1: 3, 32: 3} if quick else {1: 300, 256: 30}, "warmup": 1 if quick else 5,
            "observers": ("minmax",) if quick else OBSERVERS, "qat_bits": (8,) if quick else (8, 4)}
    loaders = load_data(DataConfig(name="digits" if quick else "fashion-mnist", batch_size=256))
    if quick:
        small = load_data(DataConfig(name="digits", batch_size=32))
        models = {"cnn": trained("cnn", {"channels": [8, 16], "hidden": 32}, small, 4, True)}
    else:
        models = {"teacher cnn": default_pair()[0].eval(), "resnet-8": trained("resnet", {"depth": 8}, loaders, 4, False),
                  "mobilenet": trained("mobilenet", {}, loaders, 4, False)}
    results = {name: measure(name, m, loaders, opts, first=i == 0) for i, (name, m) in enumerate(models.items())}
    from quantize_int4 import int4_rows

    int4, int4_targets = int4_rows(args.threads, quick)
    data = {"quick": quick, "dataset": loaders.splits.name, "threads": args.threads, "options": opts,
            "command": "python bench/quantize.py" + (" --quick" if quick else ""),
            "models": results, "int4": int4, "targets": targets(results, int4_targets)}
    path = write_results("quantize", data, markdown(data), targets=data["targets"], out_dir=result_dir(args))
    print(markdown(data))
    print(f"wrote {path}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
