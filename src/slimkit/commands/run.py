"""`slimkit run RECIPE`: run a recipe (resumable), then write report.md and report.html."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from slimkit.commands._common import console
from slimkit.commands._registry import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE", help="recipe YAML file, e.g. recipes/fashion-mnist.yaml")
    parser.add_argument("--out", default=None, help="run folder (default runs/<recipe name>)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field (repeatable): data.limit=100, distill.train.epochs=1, "
                             "stages.2.epochs=1 (stage numbers count from 1)")
    parser.add_argument("--dry-run", action="store_true", help="validate the recipe and print the plan; run nothing")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick check of the whole recipe: 60 samples, 1 epoch per stage, 2 timing repeats")
    parser.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live display")
    parser.add_argument("--no-report", action="store_true", help="skip report.md / report.html")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@command("run", "run a compression recipe (YAML) and write its report", add_arguments)
def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slimkit.recipe import resolve, run_recipe, smoke_overrides

    overrides = list(args.overrides)
    recipe = resolve(args.recipe, overrides)
    if args.smoke:
        overrides = smoke_overrides(recipe) + overrides
    out = Path(args.out or f"runs/{recipe.name}")
    # SIGTERM (a killed job) becomes an interrupt, so status.json records where the run stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_recipe(args.recipe, out, resume=args.resume, overrides=overrides, dry_run=args.dry_run,
                            progress="plain" if args.no_progress else True, report=not args.no_report,
                            console=console)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.dry_run or result.final is None:
        return 0
    console.print(f"[bold]{result.final['summary']}[/]")
    for row in result.final.get("targets", []):
        console.print(f"  {'MET' if row['met'] else 'MISSED'}: {row['target']}")
    if result.reports:
        console.print(f"report: {result.reports['html']} and {result.reports['markdown']}")
    return 0
