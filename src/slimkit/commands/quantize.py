"""`slimkit quantize RUN`: quantize a trained run (int8 PTQ/QAT, low-bit, mixed) and measure it."""

from __future__ import annotations

import argparse
import math

from slimkit.commands._common import (
    add_data_arguments,
    add_model_argument,
    add_run_arguments,
    add_stage_flags,
    dataset_config,
    default_out,
    run_source,
    run_stages,
    source_data,
    stage_overrides,
)
from slimkit.commands._flags import Flag, switch
from slimkit.commands._registry import command
from slimkit.errors import ConfigError

#: CLI scheme -> the quantize stage's field (and fixed settings)
SCHEMES = {"static-int8": ("static_int8", {}), "dynamic-int8": ("dynamic_int8", {}), "qat": ("qat", {}),
           "lowbit": ("lowbit", {}), "w4a8": ("lowbit", {"bits": 4, "activation_bits": 8}), "mixed": ("mixed", {})}
#: Flags, typed by the field they set in the scheme named here; moved to the chosen scheme.
FLAGS = (
    Flag("--observer", "static_int8.observer", "how activation ranges are chosen"),
    Flag("--percentile", "static_int8.percentile", "percentile observer: the percentile kept"),
    switch("--per-tensor", "static_int8.per_channel", False, "one weight scale per tensor instead of per channel"),
    switch("--asymmetric", "static_int8.symmetric", False, "asymmetric (zero-point) weights"),
    Flag("--weight-bits", "static_int8.weight_bits", "weight grid of static-int8/qat (2..8)"),
    Flag("--bits", "lowbit.bits", "lowbit: weight bits"),
    Flag("--group-size", "lowbit.group_size", "lowbit/mixed: quantization group (default per channel)"),
    Flag("--budget", "mixed.target_size", "mixed: weight size as a share of fp32"),
    Flag("--epochs", "qat.recovery.epochs", "qat: fine-tuning epochs"),
    Flag("--lr", "qat.recovery.lr", "qat: learning rate"),
    Flag("--exclude", "static_int8.exclude", "layers kept float (globs; repeatable)"),
    switch("--strict", "static_int8.strict", True, "fail instead of warning when a layer stays float"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (or saved model folder) to quantize")
    parser.add_argument("--scheme", choices=list(SCHEMES), default="static-int8",
                        help="static-int8 (calibrated), dynamic-int8 (Linear), qat, lowbit/w4a8 (low-bit weights, "
                             "8-bit activations), mixed (per-layer bits under --budget); default static-int8")
    parser.add_argument("--calib", type=int, default=512,
                        help="calibration (or QAT training) samples from the train split (default 512)")
    add_model_argument(parser)
    add_run_arguments(parser, out_help="run folder for the result (default RUN-SCHEME)")
    add_data_arguments(parser)
    add_stage_flags(parser, FLAGS, "quantize", "quantization")


def scheme_overrides(args: argparse.Namespace, field: str, data_batch: int) -> list[str]:
    """The flags, moved onto the chosen scheme's config (refused where that scheme has no such field)."""
    from slimkit.quantization.config import QuantConfig
    from slimkit.recipe import STAGES

    scheme = STAGES.get("quantize").config.model_fields[field].annotation
    cls = next(t for t in getattr(scheme, "__args__", (scheme,)) if isinstance(t, type) and issubclass(t, QuantConfig))
    out = []
    for flag in FLAGS:
        if not hasattr(args, flag.dest):
            continue
        rest = flag.path.split(".", 1)[1]
        if rest.split(".")[0] not in cls.model_fields:
            raise ConfigError(f"{flag.name} does not apply to --scheme {args.scheme}",
                              hint=f"{args.scheme} takes: {', '.join(f for f in cls.model_fields)}")
        out += stage_overrides(args, [Flag(flag.name, f"{field}.{rest}", flag.help, flag.value, flag.switch)],
                               "quantize")
    if "calibration_batches" in cls.model_fields:
        out.append(f"quantize.{field}.calibration_batches={max(1, math.ceil(args.calib / data_batch))}")
    return out


@command("quantize", "quantize a trained run (int8 PTQ/QAT, low-bit, mixed precision) and measure it", add_arguments)
def quantize(args: argparse.Namespace) -> int:
    field, fixed = SCHEMES[args.scheme]
    model, trust = run_source(args, args.run)
    data = dataset_config(args, source_data(args.run))
    stages = [{"type": "quantize", field: dict(fixed)}]
    if field in ("static_int8", "dynamic_int8", "qat"):
        stages.append({"type": "export", "format": "onnx"})  # the deployable model.onnx, checked for parity
    run_stages(args, name="quantize", model=model, stages=stages, data=data, trust=trust,
               default_out=default_out(args.run, args.scheme), original="source",
               flag_overrides=scheme_overrides(args, field, data.get("batch_size", 128)))
    return 0
