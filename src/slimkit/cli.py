"""The ``slimkit`` command: parse arguments, call the library, print results.

Every command is a thin layer over a library function. Errors derived from SlimkitError are
printed as one line plus a hint; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from slimkit.errors import SlimkitError

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from slimkit.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="slimkit",
        description="Make trained PyTorch models smaller and faster, and prove it.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS.names():
        add_arguments, run = COMMANDS.get(name)
        meta = COMMANDS.meta(name)
        cmd = sub.add_parser(name, help=meta["help"], description=meta.get("description", meta["help"]))
        add_arguments(cmd)
        cmd.set_defaults(handler=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given: a command may start itself again (--nproc)
    try:
        return int(args.handler(args) or 0)
    except SlimkitError as exc:
        if args.debug:
            raise
        message, _, hint = str(exc).partition("\n  hint: ")
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
