"""`slimkit lighten RUN`: convert standard convs of a trained run to depthwise-separable blocks, then recover."""

from __future__ import annotations

import argparse

from slimkit.commands._common import (
    add_stage_flags,
    add_technique_arguments,
    run_technique,
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
    add_technique_arguments(parser, "run folder for the result (default RUN-light)")
    add_stage_flags(parser, FLAGS, "lighten", "conversion and recovery")


@command("lighten", "replace standard convs by depthwise-separable blocks and recover by distillation", add_arguments)
def lighten_command(args: argparse.Namespace) -> int:
    return run_technique(args, "lighten", [{"type": "lighten"}], suffix="light",
                         overrides=stage_overrides(args, FLAGS, "lighten"))
