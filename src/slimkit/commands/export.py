"""`slimkit export RUN`: write deployable artifacts, check each for parity, and time them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from slimkit.commands._common import (
    add_data_arguments,
    console,
    ensure_out,
    load_loaders,
)
from slimkit.commands._registry import command

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "program": ".pt2"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (or saved model folder) to export")
    parser.add_argument("--format", choices=sorted(FORMATS), action="append", default=None,
                        help="onnx (ONNX Runtime), program (torch.export .pt2), torchscript (.pt); repeatable")
    parser.add_argument("--int8", action="store_true", help="also write an int8 QDQ ONNX model (static, calibrated)")
    parser.add_argument("--calib", type=int, default=512, help="--int8: calibration samples from the train split")
    parser.add_argument("--observer", default="minmax",
                        choices=["minmax", "moving_average", "percentile", "entropy", "mse"])
    parser.add_argument("--threads", type=int, default=1, help="fixed thread count for the latency runs")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats per artifact and batch size")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--out", default=None, help="folder for the artifacts (default RUN/export)")
    add_data_arguments(parser, default=None)


def export_all(model: Any, formats: list[str], out: Path, example: Any, parity_data: Any, *,
               int8: Any = None) -> dict[str, dict[str, Any]]:
    """Write each artifact, load it back and check parity; ``{name: {path, bytes, parity}}``."""
    from slimkit.export import (
        FP32,
        Tolerance,
        check_parity,
        export_onnx,
        export_program,
        export_torchscript,
        load_artifact,
    )

    writers = {"onnx": export_onnx, "torchscript": export_torchscript, "program": export_program}
    results: dict[str, dict[str, Any]] = {}
    for fmt in formats:
        path = writers[fmt](model, out / f"model{FORMATS[fmt]}", example)
        report = check_parity(model, load_artifact(path), parity_data, tolerance=FP32, name=f"{fmt} fp32")
        results[fmt] = {"path": str(path), "bytes": path.stat().st_size, "parity": report.to_dict()}
    if int8 is not None:
        path = int8.save(out / "model.int8.onnx")
        # against the float model the tolerance is the quantization error, so only predictions
        # are held to account here; the int8 artifact was already checked against its
        # simulated int8 graph (INT8 tolerance) when it was made
        tolerance = Tolerance(atol=1e9, rtol=0.0, min_agreement=0.9)
        report = check_parity(model, load_artifact(path), parity_data, tolerance=tolerance, name="onnx int8 vs float")
        results["onnx-int8"] = {"path": str(path), "bytes": path.stat().st_size, "parity": report.to_dict(),
                                "int8_parity": int8.slimkit_quant.get("parity")}
    return results


@command("export", "export a run to ONNX (fp32 / int8 QDQ), torch.export or TorchScript, with parity checks",
         add_arguments)
def export(args: argparse.Namespace) -> int:
    from rich.table import Table

    from slimkit.commands.evaluate import dataset_of
    from slimkit.commands.quantize import calibration_loader
    from slimkit.export import artifact_latency
    from slimkit.fileio import atomic_write_json
    from slimkit.quantization import StaticInt8, quantize
    from slimkit.rundir import load_run_model

    model = load_run_model(args.run).eval()
    loaders = load_loaders(args, dataset=dataset_of(args, args.run))
    out = ensure_out(args.out, str(Path(args.run) / "export"))
    parity_data = next(iter(loaders.test))[0]
    example = parity_data[:2]
    formats = args.format or ["onnx"]
    int8 = None
    if args.int8:
        config = StaticInt8(observer=args.observer, calibration_batches=max(1, -(-args.calib // args.batch_size)))
        int8 = quantize(model, config, calibration_loader(loaders, args.calib, args.batch_size))
    results = export_all(model, formats, out, example, parity_data, int8=int8)
    if not args.no_latency:
        artifacts = {"pytorch": model, **{k: Path(v["path"]) for k, v in results.items()}}
        latency = artifact_latency(artifacts, example, batch_sizes=(1, 256), threads=args.threads,
                                   repeats=args.repeats, warmup=3)
        for name, row in results.items():
            row["speedup"] = {b: latency["pytorch"][b]["median_ms"] / latency[name][b]["median_ms"] for b in (1, 256)}
    atomic_write_json(out / "export.json", {"source": str(args.run), "artifacts": results})
    table = Table("artifact", "bytes", "max |diff|", "agreement", "speedup b1", "speedup b256", title=str(out))
    for name, row in results.items():
        speed = row.get("speedup", {})
        table.add_row(name, f"{row['bytes']:,}", f"{row['parity']['max_abs_diff']:.2g}", f"{row['parity']['agreement']:.2%}",
                      *(f"{speed[b]:.2f}x" if b in speed else "-" for b in (1, 256)))
    console.print(table)
    return 0
