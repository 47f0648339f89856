"""Choose layers by qualified-name globs and types, so a selection can be saved in YAML."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from slimkit.errors import ConfigError


def select_modules(
    model: nn.Module,
    include: Sequence[str] = ("*",),
    *,
    exclude: Sequence[str] = (),
    types: Sequence[type[nn.Module]] = (),
    strict: bool = False,
) -> dict[str, nn.Module]:
    """Return ``{qualified_name: module}`` for modules matching the globs and types.

    ``include`` and ``exclude`` are ``fnmatch`` globs on names such as ``"features.0.conv"``.
    With ``strict=True`` an include pattern that matches nothing raises ConfigError, which
    catches typos in recipes.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> list(select_modules(net, types=[nn.Linear], exclude=["2"]))
    ['0']
    """
    if isinstance(include, str) or isinstance(exclude, str):
        raise ConfigError("include and exclude take a list of globs, not a single string")
    chosen: dict[str, nn.Module] = {}
    used: set[str] = set()
    for name, module in model.named_modules():
        if not name:
            continue
        hits = [p for p in include if fnmatch.fnmatchcase(name, p)]
        if not hits or any(fnmatch.fnmatchcase(name, p) for p in exclude):
            continue
        used.update(hits)
        if types and not isinstance(module, tuple(types)):
            continue
        chosen[name] = module
    if strict:
        missing = [p for p in include if p not in used]
        if missing:
            names = [n for n, _ in model.named_modules() if n][:20]
            raise ConfigError(
                f"layer pattern(s) {missing} match no module of {type(model).__name__}",
                hint=f"module names look like: {', '.join(names)}",
            )
    return chosen
