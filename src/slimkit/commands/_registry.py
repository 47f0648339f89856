from __future__ import annotations

import argparse
from collections.abc import Callable

from slimkit.registry import Registry

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
COMMANDS: Registry[tuple[AddArguments, Run]] = Registry("command")


def command(name: str, help: str, add_arguments: AddArguments) -> Callable[[Run], Run]:
    """Register ``run`` as the command ``name`` with its argument builder."""

    def decorate(run: Run) -> Run:
        COMMANDS.add(name, (add_arguments, run), help=help)
        return run

    return decorate
