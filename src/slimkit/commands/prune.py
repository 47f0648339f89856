"""`slimkit prune RUN`: prune a trained run (channels or weights), recover, and measure it."""

from __future__ import annotations

import argparse

from slimkit.commands._common import (
    add_data_arguments,
    add_model_argument,
    add_run_arguments,
    add_stage_flags,
    run_technique,
    stage_overrides,
)
from slimkit.commands._flags import Flag, switch
from slimkit.commands._registry import command
from slimkit.errors import ConfigError

UNSTRUCTURED = ("magnitude",)
#: Flags of structured pruning; those also in UnstructuredPruning are moved there for --method magnitude.
STRUCTURED_FLAGS = (
    Flag("--ratio", "structured.ratio", "share of channels to remove, in (0, 1)"),
    Flag("--target-macs", "structured.target_macs", "share of the original MACs to keep (0.5 = 2x fewer)"),
    Flag("--target-params", "structured.target_params", "share of the original parameters to keep"),
    Flag("--latency-ms", "structured.latency_ms", "latency budget in ms (at --latency-batch)"),
    Flag("--latency-batch", "structured.latency_batch_size", "batch size of latency targets"),
    Flag("--allocation", "structured.allocation", "how the channel budget is spread over layers"),
    Flag("--round-to", "structured.round_to", "round kept channel counts to a multiple"),
    Flag("--keep", "structured.exclude", "layers to leave whole (globs; repeatable)"),
    Flag("--include", "structured.include", "layers that may be pruned (globs; repeatable)"),
)
UNSTRUCTURED_FLAGS = (
    Flag("--amount", "unstructured.amount", "unstructured: share of weights zeroed"),
    Flag("--scope", "unstructured.scope", "unstructured: rank weights per layer, globally, or scaled by each layer's std"),
)
STAGE_FLAGS = (
    switch("--sensitivity", "sensitivity", True,
           "choose per-layer ratios by sensitivity analysis to meet --target-macs/--target-params"),
    Flag("--target-latency", "sensitivity_latency", "with --sensitivity: also keep at most this share of the "
                                                    "measured latency at --latency-batch (every single-layer cut is timed)"),
    Flag("--finetune-epochs", "finetune.epochs", "recovery epochs (0 = none)"),
    Flag("--lr", "finetune.lr", "recovery learning rate"),
    switch("--no-distill", "finetune.distill_from", "none", "recover with cross-entropy instead of KD from the original"),
)
SHARED = {"--keep": "unstructured.exclude", "--include": "unstructured.include"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from slimkit.pruning import IMPORTANCE

    parser.add_argument("run", metavar="RUN", help="a run folder (or saved model folder) to prune")
    parser.add_argument("--method", default="l1", choices=[*IMPORTANCE.names(), *UNSTRUCTURED],
                        help="structured criterion, or magnitude for unstructured weight pruning (default l1)")
    add_model_argument(parser)
    add_run_arguments(parser, out_help="run folder for the pruned model (default RUN-pruned-METHOD)")
    add_data_arguments(parser)
    add_stage_flags(parser, STRUCTURED_FLAGS, "prune", "how much (structured: one of ratio/target-*/latency-ms)")
    add_stage_flags(parser, UNSTRUCTURED_FLAGS, "prune", "unstructured")
    add_stage_flags(parser, STAGE_FLAGS, "prune", "sensitivity and recovery")


def stage_and_overrides(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """The prune stage for ``--method`` and the flags as overrides."""
    structured = stage_overrides(args, STRUCTURED_FLAGS, "prune")
    unstructured = stage_overrides(args, UNSTRUCTURED_FLAGS, "prune")
    if args.method in UNSTRUCTURED:
        moved = []
        for flag in STRUCTURED_FLAGS:
            if hasattr(args, flag.dest) and flag.name not in SHARED:
                raise ConfigError(f"{flag.name} is a structured-pruning flag; --method {args.method} zeroes weights",
                                  hint="use --amount for unstructured pruning, or a structured --method such as l1")
            if hasattr(args, flag.dest):
                moved += stage_overrides(args, [Flag(flag.name, SHARED[flag.name], flag.help)], "prune")
        return {"type": "prune", "unstructured": {"method": args.method}}, [*unstructured, *moved]
    if unstructured:
        raise ConfigError("--amount and --scope are unstructured-pruning flags",
                          hint="add --method magnitude, or use --ratio/--target-macs for structured pruning")
    return {"type": "prune", "structured": {"criterion": args.method}}, structured


@command("prune", "prune a trained model (structured channels or unstructured weights) and fine-tune it", add_arguments)
def prune_command(args: argparse.Namespace) -> int:
    stage, flags = stage_and_overrides(args)
    return run_technique(args, "prune", [stage], suffix=f"pruned-{args.method}",
                         overrides=[*flags, *stage_overrides(args, STAGE_FLAGS, "prune")])
