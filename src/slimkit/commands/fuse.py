"""`slimkit fuse RUN`: fold BatchNorm into the preceding conv/linear layers of a trained run."""

from __future__ import annotations

import argparse

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
from slimkit.commands._flags import Flag
from slimkit.commands._registry import command

FLAGS = (
    Flag("--relu", "relu", "also pair ReLUs (ConvReLU modules, for quantization)"),
    Flag("--include", "include", "layer name globs to fuse (repeatable)"),
    Flag("--exclude", "exclude", "layer name globs to leave alone (repeatable)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder or saved model folder")
    add_model_argument(parser)
    add_run_arguments(parser, out_help="run folder for the result (default RUN-fused)")
    add_data_arguments(parser)
    add_stage_flags(parser, FLAGS, "fuse", "fusion")


@command("fuse", "fold BatchNorm into the conv/linear before it (same outputs, fewer layers)", add_arguments)
def fuse_command(args: argparse.Namespace) -> int:
    model, trust = run_source(args, args.run)
    run_stages(args, name="fuse", model=model, stages=[{"type": "fuse"}], data=dataset_config(args, source_data(args.run)),
               trust=trust, default_out=default_out(args.run, "fused"), original="source",
               flag_overrides=stage_overrides(args, FLAGS, "fuse"))
    return 0
