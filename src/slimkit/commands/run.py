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
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the recipe and print the plan, with every code reference it names; run nothing")
    parser.add_argument("--trust-code", action="store_true",
                        help="import the module:function references this recipe names (model.factory, a stage's "
                             "student or teachers): YOUR code, which slimkit otherwise refuses to run; never a "
                             "reference found only in a run folder")
    parser.add_argument("--force", action="store_true",
                        help="write into --out even though it holds other files (never needed for a new folder)")
    parser.add_argument("--smoke", action="store_true",
                        help="a quick check of the whole recipe: 60 samples, 1 epoch per stage, 2 timing repeats")
    parser.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live display")
    parser.add_argument("--no-report", action="store_true", help="skip report.md / report.html")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes on this machine: training stages run data-parallel (DDP, gloo on CPU, "
                             "nccl on GPU) under torchrun; rank 0 writes the run folder")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@command("run", "run a compression recipe (YAML) and write its report", add_arguments)
def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slimkit.commands._launch import launch, under_torchrun
    from slimkit.imports import Trust
    from slimkit.recipe import resolve, run_recipe, smoke_overrides
    from slimkit.train.distributed import dist_env, shutdown

    if args.nproc != 1 and not under_torchrun() and not args.dry_run:
        return launch(args.nproc, args.argv)  # the same command under torchrun, --nproc dropped (a bad one refused)

    overrides = list(args.overrides)
    recipe = resolve(args.recipe, overrides)
    if args.smoke:
        overrides = smoke_overrides(recipe) + overrides
    out = Path(args.out or f"runs/{recipe.name}")
    # The file never grants trust itself: only --trust-code on the command line, and only for the
    # references this recipe names (a resumed run's folder can name no other: Trust refuses it).
    trust = Trust(recipe.references(), granted_by="--trust-code") if args.trust_code else Trust()
    # SIGTERM (a killed job) becomes an interrupt, so status.json records where the run stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_recipe(args.recipe, out, resume=args.resume, overrides=overrides, dry_run=args.dry_run,
                            progress="plain" if args.no_progress else True, report=not args.no_report,
                            console=console, trust=trust, force=args.force)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if under_torchrun():
        shutdown()  # on success only: after a failure torchrun stops every process itself
    if args.dry_run or result.final is None or not dist_env().is_main:
        return 0
    console.print(f"[bold]{result.final['summary']}[/]")
    for row in result.final.get("targets", []):
        console.print(f"  {'MET' if row['met'] else 'MISSED'}: {row['target']}")
    if result.reports:
        console.print(f"report: {result.reports['html']} and {result.reports['markdown']}")
    return 0
