"""`slimkit quickstart`: the main job. Train the default teacher and student, then compare them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from slimkit.commands._common import (
    add_data_arguments,
    console,
    ensure_out,
    load_loaders,
)
from slimkit.commands._registry import command
from slimkit.commands.train import add_train_arguments, train_config, train_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quickstart", help="folder for the teacher, student and comparison")
    add_data_arguments(parser)
    add_train_arguments(parser)
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per model and batch size")


def resumable(checkpoint: Path, config: Any) -> bool:
    """An interrupted run with the same settings continues; one with other settings starts over."""
    from slimkit.errors import CheckpointError
    from slimkit.train import load_checkpoint

    try:
        return checkpoint.is_file() and load_checkpoint(checkpoint)["config"] == config.to_dict()
    except CheckpointError:
        return False


@command("quickstart", "train the default teacher and tiny student on Fashion-MNIST and compare them", add_arguments)
def quickstart(args: argparse.Namespace) -> int:
    from slimkit.evaluate import compare
    from slimkit.fileio import atomic_write_json
    from slimkit.models import DEFAULT_STUDENT, DEFAULT_TEACHER, build_model
    from slimkit.rundir import load_run_model, read_run
    from slimkit.train.runtime import seed_everything

    out = ensure_out(args.out, "runs/quickstart")
    loaders = load_loaders(args, augment=args.augment)
    splits = loaders.splits
    shape = {"in_channels": splits.input_shape[0], "num_classes": splits.num_classes,
             "input_size": splits.input_shape[-1]}
    config = train_config(args)
    for role, (name, knobs) in (("teacher", DEFAULT_TEACHER), ("student", DEFAULT_STUDENT)):
        folder = Path(out, role)
        if read_run(folder).get("train") == config.to_dict():
            console.print(f"{role}: reusing {folder} (already trained with these settings)")
            continue
        console.rule(f"{role}: {name} {knobs}")
        seed_everything(args.seed)  # the initial weights must not depend on what ran before
        record = train_run(build_model(name, **shape, **knobs), loaders, config, ensure_out(str(folder), ""),
                           {"command": "quickstart", "role": role, "dataset": args.dataset, "limit": args.limit,
                            "seed": args.seed}, resume=args.resume or resumable(folder / "last.pt", config))
        console.print(f"{role}: test accuracy {record['test']['accuracy']:.2%}")
    teacher, student = load_run_model(out / "teacher"), load_run_model(out / "student")
    result = compare(teacher, student, loaders.test, names=("teacher", "student"), threads=args.threads,
                     repeats=args.repeats)
    atomic_write_json(out / "compare.json", result.to_dict())
    console.print(result.table())
    console.print(f"[bold]{result.summary()}[/]")
    return 0
