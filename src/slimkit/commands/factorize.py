"""`slimkit factorize RUN`: low-rank factorization (SVD, Tucker-2, CP) of a trained run, then recovery."""

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

#: Typed by the Tucker config; moved onto the chosen method's config.
METHOD_FLAGS = (
    Flag("--rank", "svd.rank", "fixed rank (SVD, CP)"),
    Flag("--ranks", "tucker.ranks", "Tucker ranks R_OUT R_IN"),
    Flag("--energy", "tucker.energy", "share of singular-value energy kept per layer"),
    Flag("--target-params", "tucker.target_params", "share of the model's parameters to keep"),
    Flag("--target-macs", "tucker.target_macs", "share of the model's MACs to keep"),
    Flag("--allocation", "tucker.allocation", "how a --target-* budget is split across layers"),
    Flag("--round-to", "tucker.round_to", "round ranks to multiples of this (8: faster kernels)"),
    Flag("--include", "tucker.include", "layer name globs to factorize (repeatable)"),
    Flag("--exclude", "tucker.exclude", "layer name globs to leave alone (repeatable)"),
)
RECOVERY_FLAGS = (
    Flag("--epochs", "finetune.epochs", "recovery epochs distilling from the original (0: none)"),
    Flag("--lr", "finetune.lr", "recovery learning rate"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_technique_arguments(parser, "run folder for the result (default RUN-METHOD)")
    parser.add_argument("--method", choices=["svd", "tucker", "cp"], default="tucker", help="default tucker")
    add_stage_flags(parser, METHOD_FLAGS, "factorize", "ranks (one of rank/ranks/energy/target-*)")
    add_stage_flags(parser, RECOVERY_FLAGS, "factorize", "recovery")


def method_overrides(args: argparse.Namespace) -> list[str]:
    """The rank flags, moved onto ``--method``'s config (its validation refuses what it lacks)."""
    moved = [Flag(f.name, f"{args.method}.{f.path.split('.', 1)[1]}", f.help) for f in METHOD_FLAGS]
    return stage_overrides(args, moved, "factorize")


@command("factorize", "replace layers by low-rank SVD, Tucker-2 or CP blocks, then recover", add_arguments)
def factorize_command(args: argparse.Namespace) -> int:
    return run_technique(args, "factorize", [{"type": "factorize", args.method: {}}], suffix=args.method,
                         overrides=[*method_overrides(args), *stage_overrides(args, RECOVERY_FLAGS, "factorize")])
