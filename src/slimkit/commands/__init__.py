"""CLI commands, one module per family. Each registers ``(add_arguments, run)`` in COMMANDS.

Every public module in this package is imported, so adding a command is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

from slimkit.commands._registry import COMMANDS, command

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["COMMANDS", "command"]
