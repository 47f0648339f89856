"""`slimkit fuse RUN`: fold BatchNorm into the preceding conv/linear layers of a trained run."""

from __future__ import annotations

import argparse

from slimkit.commands._common import (
    add_stage_flags,
    add_technique_arguments,
    run_technique,
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
    add_technique_arguments(parser, "run folder for the result (default RUN-fused)")
    add_stage_flags(parser, FLAGS, "fuse", "fusion")


@command("fuse", "fold BatchNorm into the conv/linear before it (same outputs, fewer layers)", add_arguments)
def fuse_command(args: argparse.Namespace) -> int:
    return run_technique(args, "fuse", [{"type": "fuse"}], suffix="fused", overrides=stage_overrides(args, FLAGS, "fuse"))
