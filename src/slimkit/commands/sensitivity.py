"""`slimkit sensitivity RUN`: per-layer pruning sensitivity as a table, a JSON file and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimkit.commands._common import add_data_arguments, console
from slimkit.commands._registry import command
from slimkit.commands.evaluate import add_model_arguments


def _ratios(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"ratios must be numbers separated by commas, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from slimkit.pruning import IMPORTANCE

    parser.add_argument("run", metavar="RUN", help="a run folder (or saved model folder)")
    parser.add_argument("--criterion", default="l1", choices=IMPORTANCE.names())
    parser.add_argument("--ratios", type=_ratios, default=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                        help="comma-separated shares of each layer's channels to remove")
    parser.add_argument("--keep", action="append", default=[], metavar="GLOB", help="layers to leave out (repeatable)")
    parser.add_argument("--max-batches", type=int, default=20, help="validation batches scored per point")
    parser.add_argument("--target-macs", type=float, default=None, help="also choose per-layer ratios keeping this share of MACs")
    parser.add_argument("--target-params", type=float, default=None, help="... or this share of parameters")
    parser.add_argument("--out", default=None, help="folder for sensitivity.{json,md,png} (default RUN/sensitivity)")
    add_model_arguments(parser)
    add_data_arguments(parser)


@command("sensitivity", "prune each layer alone over a sweep of ratios; write table, JSON and plot", add_arguments)
def sensitivity_command(args: argparse.Namespace) -> int:
    from slimkit.commands.evaluate import load_model_and_data
    from slimkit.fileio import atomic_write_json, atomic_write_text
    from slimkit.pruning import choose_ratios, sensitivity

    model, loaders = load_model_and_data(args, args.run)
    result = sensitivity(model, loaders.val, criterion=args.criterion, ratios=args.ratios, keep=tuple(args.keep),
                         loader=loaders.train, max_batches=args.max_batches)
    out = Path(args.out or Path(args.run) / "sensitivity")
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    if args.target_macs is not None or args.target_params is not None:
        data["chosen"] = choose_ratios(result, target_macs=args.target_macs, target_params=args.target_params)
    atomic_write_json(out / "sensitivity.json", data)
    atomic_write_text(out / "sensitivity.md", result.markdown())
    result.plot(out / "sensitivity.png")
    console.print(result.table())
    if "chosen" in data:
        console.print(f"per-layer ratios: {data['chosen']}  (use them as StructuredPruning(ratios=...))")
    console.print(f"[bold]{out}[/]: sensitivity.json, sensitivity.md, sensitivity.png")
    return 0
