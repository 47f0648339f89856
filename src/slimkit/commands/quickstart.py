"""`slimkit quickstart`: train the default teacher and tiny student, then compare them."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimkit.commands._common import add_data_arguments, console, dataset_config
from slimkit.commands._registry import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quickstart", help="folder for the teacher, student and comparison")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs of each model (default 6)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training and timing")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per model and batch size")
    parser.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live display")
    add_data_arguments(parser)


@command("quickstart", "train the default teacher and tiny student on Fashion-MNIST and compare them", add_arguments)
def quickstart(args: argparse.Namespace) -> int:
    from slimkit.data import DataConfig, load_data
    from slimkit.evaluate import CompareConfig, compare
    from slimkit.fileio import atomic_write_json
    from slimkit.models import DEFAULT_STUDENT, DEFAULT_TEACHER
    from slimkit.recipe import run_recipe
    from slimkit.recipe.runfolder import load_run_model

    out = Path(args.out)
    data = dataset_config(args)
    train = {"type": "train", **({"epochs": args.epochs} if args.epochs else {}),
             **({"threads": args.threads} if args.threads else {})}
    for role, (name, knobs) in (("teacher", DEFAULT_TEACHER), ("student", DEFAULT_STUDENT)):
        recipe = {"name": f"quickstart-{role}", "seed": args.seed or 0, "data": data,
                  "model": {"registry": name, "knobs": dict(knobs)}, "stages": [train],
                  "evaluation": {"latency": False}}
        folder = out / role
        console.rule(f"{role}: {name} {dict(knobs)}")
        # a finished run of the same recipe is reused (resuming restores it); a different one is refused
        run_recipe(_validated(recipe), folder, resume=(folder / "status.json").is_file(),
                   progress="plain" if args.no_progress else True, report=False, console=console)
    loaders = load_data(DataConfig.from_dict(data))
    teacher, student = load_run_model(out / "teacher"), load_run_model(out / "student")
    result = compare(teacher, student, loaders.test, CompareConfig(threads=args.threads, repeats=args.repeats),
                     names=("teacher", "student"))
    atomic_write_json(out / "compare.json", result.to_dict())
    console.print(result.table())
    console.print(f"[bold]{result.summary()}[/]")
    return 0


def _validated(data: dict):
    from slimkit.recipe.loader import validate_recipe

    return validate_recipe(data, source="slimkit quickstart")
