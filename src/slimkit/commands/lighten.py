"""`slimkit lighten RUN`: convert standard convs of a trained run to depthwise-separable blocks, then recover."""

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
from slimkit.commands._flags import Flag, switch
from slimkit.commands._registry import command

FLAGS = (
    Flag("--include", "include", "conv name globs to convert (repeatable)"),
    Flag("--exclude", "exclude", "conv name globs to leave alone (repeatable)"),
    switch("--convert-stem", "skip_single_channel", False,
           "also convert convs with one input channel (skipped by default: see the docs)"),
    Flag("--epochs", "finetune.epochs", "recovery epochs distilling from the original (0: none)"),
    Flag("--lr", "finetune.lr", "recovery learning rate"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder or saved model folder")
    add_model_argument(parser)
    add_run_arguments(parser, out_help="run folder for the result (default RUN-light)")
    add_data_arguments(parser)
    add_stage_flags(parser, FLAGS, "lighten", "conversion and recovery")


@command("lighten", "replace standard convs by depthwise-separable blocks and recover by distillation", add_arguments)
def lighten_command(args: argparse.Namespace) -> int:
    model, trust = run_source(args, args.run)
    run_stages(args, name="lighten", model=model, stages=[{"type": "lighten"}],
               data=dataset_config(args, source_data(args.run)), trust=trust,
               default_out=default_out(args.run, "light"), original="source",
               flag_overrides=stage_overrides(args, FLAGS, "lighten"))
    return 0
