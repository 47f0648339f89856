"""`slimkit quantize RUN`: quantize a trained run, measure it against the float model, save it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from slimkit.commands._common import (
    add_data_arguments,
    console,
    ensure_out,
    load_loaders,
)
from slimkit.commands._registry import command

SCHEMES = ("static-int8", "dynamic-int8", "qat", "lowbit", "w4a8", "mixed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (or saved model folder) to quantize")
    parser.add_argument("--scheme", choices=SCHEMES, default="static-int8",
                        help="static-int8 (calibrated), dynamic-int8 (Linear), qat, lowbit/w4a8 (low-bit "
                             "weights, 8-bit activations), mixed (per-layer bits under --budget)")
    parser.add_argument("--calib", type=int, default=512, help="calibration (or QAT training) samples from the train split")
    parser.add_argument("--observer", choices=["minmax", "moving_average", "percentile", "entropy", "mse"], default=None,
                        help="how activation ranges are chosen (default: minmax; moving_average for qat)")
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    parser.add_argument("--asymmetric", action="store_true", help="asymmetric (zero-point) weights")
    parser.add_argument("--bits", type=int, default=4, help="weight bits for lowbit (and qat/static: --weight-bits)")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight grid of static-int8/qat (2..8)")
    parser.add_argument("--group-size", type=int, default=None, help="lowbit/mixed: quantization group (default per channel)")
    parser.add_argument("--budget", type=float, default=0.25, help="mixed: weight size as a share of fp32")
    parser.add_argument("--epochs", type=int, default=1, help="qat: fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=1e-4, help="qat: learning rate")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="layers kept float (repeatable)")
    parser.add_argument("--strict", action="store_true", help="fail instead of warning when a layer stays float")
    parser.add_argument("--out", default=None, help="run folder for the result (default RUN-SCHEME)")
    add_data_arguments(parser, default=None)


def build_config(args: argparse.Namespace) -> Any:
    """The typed config the arguments describe."""
    from slimkit.quantization import QAT, DynamicInt8, LowBit, MixedPrecision, StaticInt8

    common = {"exclude": list(args.exclude), "strict": args.strict}
    calibration_batches = max(1, math.ceil(args.calib / args.batch_size))
    static = {**common, "per_channel": not args.per_tensor, "symmetric": not args.asymmetric,
              "percentile": args.percentile, "calibration_batches": calibration_batches, "weight_bits": args.weight_bits}
    if args.scheme == "static-int8":
        return StaticInt8(**static, observer=args.observer or "minmax")
    if args.scheme == "qat":
        return QAT(**static, observer=args.observer or "moving_average", epochs=args.epochs, lr=args.lr,
                   seed=args.seed)
    if args.scheme == "dynamic-int8":
        return DynamicInt8(**common, per_channel=not args.per_tensor)
    if args.scheme in ("lowbit", "w4a8"):
        return LowBit(**common, bits=4 if args.scheme == "w4a8" else args.bits, group_size=args.group_size,
                      symmetric=not args.asymmetric, observer=args.observer or "minmax", calibration_batches=calibration_batches)
    return MixedPrecision(**common, target_size=args.budget, group_size=args.group_size, calibration_batches=calibration_batches)


def calibration_loader(loaders: Any, samples: int, batch_size: int) -> Any:
    """The first ``samples`` training samples, in order (reproducible calibration)."""
    from torch.utils.data import DataLoader, Subset

    train = loaders.splits.train
    return DataLoader(Subset(train, range(min(samples, len(train)))), batch_size=batch_size, shuffle=False)


def save_artifacts(model: Any, out: Path) -> dict[str, int]:
    """Deployable files beside the run's model folder; returns ``{file: bytes}``."""
    from slimkit.export import OrtModule
    from slimkit.quantization import save_packed

    files: dict[str, Path] = {}
    if isinstance(model, OrtModule):
        files["model.onnx"] = model.save(out / "model.onnx")
    elif getattr(model, "slimkit_quant", {}).get("kind") in ("lowbit", "mixed"):
        files["model.lowbit.safetensors"] = save_packed(model, out / "model.lowbit.safetensors")
    plan = getattr(model, "mixed_plan", None)
    if plan is not None:
        console.print(plan.table())
        plan.plot(out / "mixed_precision.png")
    return {name: path.stat().st_size for name, path in files.items()}


@command("quantize", "quantize a trained run (int8 PTQ/QAT, low-bit, mixed precision) and measure it", add_arguments)
def quantize(args: argparse.Namespace) -> int:
    from rich.table import Table

    from slimkit.commands.evaluate import dataset_of
    from slimkit.evaluate import agreement, artifact_bytes, predict, quality
    from slimkit.quantization import quantize as quantize_model
    from slimkit.rundir import load_run_model, write_run

    model = load_run_model(args.run)
    loaders = load_loaders(args, dataset=dataset_of(args, args.run))
    config = build_config(args)
    quantized = quantize_model(model, config, calibration_loader(loaders, args.calib, args.batch_size))
    out = ensure_out(args.out, f"{str(args.run).rstrip('/')}-{args.scheme}")
    files = save_artifacts(quantized, out)
    before, after = predict(model, loaders.test), predict(quantized, loaders.test)
    acc_a, acc_b = quality(*before.pair(), topk=(1,))["accuracy"], quality(*after.pair(), topk=(1,))["accuracy"]
    size_a = artifact_bytes(model)
    size_b = min(files.values()) if files else artifact_bytes(quantized)
    agree = agreement(before.logits, after.logits, before.targets)["agreement"]
    info = {k: v for k, v in quantized.slimkit_quant.items() if k != "plan"}
    record = {"command": "quantize", "source": str(args.run), "dataset": loaders.splits.name, "config": config.to_dict(),
              "scheme": args.scheme, "test": {"float_accuracy": acc_a, "accuracy": acc_b, "agreement": agree},
              "bytes": {"float": size_a, **files}, "quantization": info}
    write_run(out, quantized, record)
    table = Table("", "float", args.scheme, title=f"{args.run} -> {out}")
    table.add_row("test accuracy", f"{acc_a:.2%}", f"{acc_b:.2%}")
    table.add_row("bytes", f"{size_a:,}", f"{size_b:,}")
    table.add_row("agreement", "", f"{agree:.2%}")
    console.print(table)
    return 0
