"""One registry class for every named thing: models, datasets, losses, criteria, stages."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from slimkit.errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """Maps names to objects (usually factories or classes), with helpful lookups.

    >>> models = Registry("model")
    >>> @models.register("tiny", doc="a tiny net")
    ... def tiny(): return "net"
    >>> models.get("tiny")()
    'net'
    >>> models.names("t*")
    ['tiny']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator that registers an object under ``name`` with optional metadata."""

        def decorate(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return decorate

    def add(self, name: str, obj: T, **meta: Any) -> None:
        if name in self._items and _origin(self._items[name]) != _origin(obj):
            raise ConfigError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj
        self._meta[name] = meta

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = sorted(self._items)
            raise ConfigError(
                f"unknown {self.kind} '{name}'.{did_you_mean(name, known)}",
                hint=f"known {self.kind}s: {', '.join(known)}",
            ) from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._meta[name])

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _origin(obj: Any) -> Any:
    """Where an object was defined, so a module imported twice (doctest collection) may register again."""
    if isinstance(obj, tuple):
        return tuple(_origin(item) for item in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (type(obj).__qualname__, *(_origin(getattr(obj, f.name)) for f in dataclasses.fields(obj)))
    qualname = getattr(obj, "__qualname__", None)
    if qualname is None:
        return id(obj)
    # The file, not the module name: pytest's importlib mode imports a module a second time
    # under another name when it collects its doctests.
    try:
        return (inspect.getfile(obj), qualname)
    except TypeError:
        return (getattr(obj, "__module__", None), qualname)
