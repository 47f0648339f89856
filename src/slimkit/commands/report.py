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
    from slimkit.report import write_report

    paths = write_report(args.run, benchmarks=args.bench)
    console.print(f"report: {paths['html']} and {paths['markdown']}")
    return 0
