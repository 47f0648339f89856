"""CLI commands, one module per family. Each registers ``(add_arguments, run)`` in COMMANDS."""

from __future__ import annotations

from slimkit.commands._registry import COMMANDS
from slimkit.commands import catalog, evaluate, quickstart, train  # noqa: F401  (registers commands)

__all__ = ["COMMANDS"]
