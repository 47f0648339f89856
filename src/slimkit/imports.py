"""Explicit references to a user's own code (``package.module:function``).

This is the only way slimkit runs code it did not ship, and it happens only when the user
names the reference on the command line or in Python (see :class:`Trust`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from slimkit.errors import ConfigError


def import_reference(ref: str) -> Any:
    """Import ``package.module:attribute`` and return the attribute.

    >>> import_reference("math:sqrt")(16.0)
    4.0
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"'{ref}' is not a code reference",
            hint="write it as package.module:function, for example mypkg.nets:build_model",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module '{module_name}' from '{ref}': {exc}",
                          hint="check the module is installed or on PYTHONPATH") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module '{module_name}' has no attribute '{attr}' (from '{ref}')")
        obj = getattr(obj, part)
    return obj


class Trust:
    """The code references a run may import: only those the user named explicitly.

    Recipes, run folders and model files are data. A ``module:function`` reference read from
    one of them is imported only when it is in ``refs`` (named on the command line, e.g.
    ``--model mypkg.nets:make``, or in a recipe run with ``--trust-code``, which trusts the
    references *that recipe* names). A reference found only in a run folder is never trusted
    by resuming: the recipe passed on the command line must name it.

    >>> Trust({"math:sqrt"}).require("math:sqrt", "the recipe's model.factory")
    >>> Trust().require("os:system", "runs/x/model.json")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: runs/x/model.json names code to import ('os:system'), and slimkit runs no code that you did not name yourself
      hint: if you trust it, name it on the command line (--model os:system) or run the recipe with --trust-code
    """

    def __init__(self, refs: Iterable[str] = (), *, granted_by: str | None = None) -> None:
        self.refs = frozenset(refs)
        #: How the trust was granted (``"--trust-code"``), for a refusal that explains its limits.
        self.granted_by = granted_by

    def allows(self, ref: str) -> bool:
        return ref in self.refs

    def require(self, ref: str, where: str) -> None:
        """Raise ConfigError unless ``ref`` is trusted; ``where`` says where it was read."""
        if ref in self.refs:
            return
        if self.granted_by:
            named = ", ".join(sorted(self.refs)) or "none"
            hint = (f"{self.granted_by} trusts only the references the recipe names ({named}); "
                    "a run or model folder cannot add one: resume with the recipe that started the run")
        else:
            hint = f"if you trust it, name it on the command line (--model {ref}) or run the recipe with --trust-code"
        raise ConfigError(f"{where} names code to import ({ref!r}), and slimkit runs no code that you did not "
                          "name yourself", hint=hint)

    def load(self, ref: str, where: str) -> Any:
        """``import_reference(ref)`` once ``ref`` is trusted."""
        self.require(ref, where)
        return import_reference(ref)

    def __or__(self, other: Trust) -> Trust:
        return Trust(self.refs | other.refs, granted_by=self.granted_by or other.granted_by)

    def __repr__(self) -> str:
        return f"Trust({sorted(self.refs)})"
