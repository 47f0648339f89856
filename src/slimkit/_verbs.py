"""Let a technique's package also be its verb: ``slimkit.distill(...)`` and ``slimkit.distill.DistillConfig``.

A subpackage and a function of the same name cannot both live on ``slimkit``: importing
``slimkit.distill`` binds the package there. Making the package callable keeps the one-verb API
of DESIGN.md without renaming either.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class VerbModule(types.ModuleType):
    """A module that, when called, calls its verb function of the same name."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make ``module_name`` callable; its verb is the function named like the module's last part."""
    sys.modules[module_name].__class__ = VerbModule
