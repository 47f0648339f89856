"""`slimkit lighten`: convert standard convs of a trained run to depthwise-separable blocks, then recover."""

from __future__ import annotations

import argparse
import copy

from slimkit.commands._common import (
    add_data_arguments,
    console,
    ensure_out,
    load_loaders,
)
from slimkit.commands._registry import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `slimkit lighten`."""
    parser.add_argument("run", metavar="RUN", help="a run folder or saved model folder")
    parser.add_argument("--include", nargs="+", default=["*"], help="conv name globs to convert")
    parser.add_argument("--exclude", nargs="+", default=[], help="conv name globs to leave alone")
    parser.add_argument("--convert-stem", action="store_true",
                        help="also convert convs with one input channel (skipped by default: see the docs)")
    parser.add_argument("--epochs", type=int, default=1, help="recovery epochs distilling from the original (0: none)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default=None, help="run folder for the result (default RUN-light)")
    add_data_arguments(parser, default=None)


@command("lighten", "replace standard convs by depthwise-separable blocks and recover by distillation", add_arguments)
def lighten_command(args: argparse.Namespace) -> int:
    """Convert RUN's convs to depthwise-separable blocks, recover, write a run folder."""
    from slimkit.commands.evaluate import dataset_of
    from slimkit.rundir import load_run_model, write_run
    from slimkit.transform import LightenConfig, example_input, lighten
    from slimkit.transform.summary import before_after_table, cost_summary

    config = LightenConfig(include=args.include, exclude=args.exclude, skip_single_channel=not args.convert_stem,
                           epochs=args.epochs, lr=args.lr)
    model = load_run_model(args.run)
    loaders = load_loaders(args, dataset=dataset_of(args, args.run))
    example = example_input(model, next(iter(loaders.test))[0][:1])
    before = cost_summary(copy.deepcopy(model), example, loader=loaders.test)
    lighten(model, config, train_loader=loaders.train if args.epochs else None, val_loader=loaders.val)
    after = cost_summary(model, example, loader=loaders.test)
    out = ensure_out(args.out, f"{str(args.run).rstrip('/')}-light")
    write_run(out, model, {"command": "lighten", "source": str(args.run), "dataset": loaders.splits.name,
                           "config": config.to_dict(), "report": model.lighten_report, "before": before, "after": after})
    for skipped in model.lighten_report["skipped"]:
        console.print(f"skipped {skipped['layer']}: {skipped['reason']}")
    console.print(before_after_table(before, after, f"lightweight conversion -> {out}"))
    return 0
