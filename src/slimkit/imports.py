"""Explicit references to a user's own code (``package.module:function``).

This is the only way slimkit runs code it did not ship, and it happens only when the user
names the reference on the command line or in Python.
"""

from __future__ import annotations

import importlib
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
