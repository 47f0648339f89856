"""`slimkit export RUN`: write deployable artifacts, check each for parity, and time them."""

from __future__ import annotations

import argparse
import math

from slimkit.commands._common import (
    add_data_arguments,
    add_model_argument,
    add_run_arguments,
    dataset_config,
    run_source,
    run_stages,
    source_data,
)
from slimkit.commands._registry import command

FORMATS = ("onnx", "program", "torchscript")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (or saved model folder) to export")
    parser.add_argument("--format", choices=FORMATS, action="append", default=None,
                        help="onnx (ONNX Runtime), program (torch.export .pt2), torchscript (.pt); repeatable "
                             "(default onnx)")
    parser.add_argument("--int8", action="store_true", help="also write an int8 QDQ ONNX model (static, calibrated)")
    parser.add_argument("--calib", type=int, default=512, help="--int8: calibration samples from the train split")
    parser.add_argument("--observer", default=None,
                        choices=["minmax", "moving_average", "percentile", "entropy", "mse"],
                        help="--int8: how activation ranges are chosen (default: StaticInt8's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per artifact and batch size")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    add_model_argument(parser)
    add_run_arguments(parser, out_help="folder for the artifacts (default RUN-export)")
    add_data_arguments(parser)


@command("export", "export a run to ONNX (fp32 / int8 QDQ), torch.export or TorchScript, with parity checks",
         add_arguments)
def export(args: argparse.Namespace) -> int:
    model, trust = run_source(args, args.run)
    data = dataset_config(args, source_data(args.run))
    stages: list[dict] = [{"type": "export", "name": fmt, "format": fmt} for fmt in (args.format or ["onnx"])]
    if args.int8:
        static: dict = {"calibration_batches": max(1, math.ceil(args.calib / data.get("batch_size", 128)))}
        if args.observer:
            static["observer"] = args.observer
        stages += [{"type": "quantize", "name": "int8", "static_int8": static},
                   {"type": "export", "name": "onnx-int8", "format": "onnx"}]
    evaluation: dict = {"threads": args.threads if args.threads is not None else 1}
    if args.repeats is not None:
        evaluation.update(repeats=args.repeats, final_repeats=args.repeats)
    if args.no_latency:
        evaluation["latency"] = False
    run_stages(args, name="export", model=model, stages=stages, data=data, trust=trust, original="source",
               default_out=f"{str(args.run).rstrip('/')}-export", evaluation=evaluation)
    return 0
