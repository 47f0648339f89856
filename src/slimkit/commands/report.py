"""`slimkit report RUN`: (re)write report.md and report.html of a recipe run from its files."""

from __future__ import annotations

import argparse

from slimkit.commands._common import console
from slimkit.commands._registry import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="the --out folder of `slimkit run`")
    parser.add_argument("--bench", action="append", default=[], metavar="JSON",
                        help="benchmark points to add to the Pareto plots (repeatable): "
                             '{"points": [{"label", "accuracy", "bytes", "latency_ms": {"1": ms}}]}')


@command("report", "write report.md and report.html for a recipe run", add_arguments)
def report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slimkit.errors import CheckpointError
    from slimkit.recipe.records import check_run
    from slimkit.report import write_report

    if (Path(args.run) / "status.json").is_file():
        check_run(Path(args.run))  # a run folder is data: every file typed first, one line if one is not
    try:
        paths = write_report(args.run, benchmarks=args.bench)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{args.run}: a run file holds a value the report cannot show "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})",
                              hint="rerun the recipe into a new --out, or restore the run's files") from None
    console.print(f"report: {paths['html']} and {paths['markdown']}")
    return 0
