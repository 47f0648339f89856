"""One registry class for every named thing: models, datasets, losses, criteria, stages."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from slimkit.errors import ConfigError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


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


class Dispatch(Generic[F]):
    """The implementations of one verb, chosen by the *type* of the config it is given.

    Every verb (``prune``, ``quantize``, ``factorize``, ``share``, ``fuse``, ``lighten``,
    ``distill``) owns one ``Dispatch``; each technique module registers the config type it
    implements. Lookup walks the config's class hierarchy, so a subclass of a registered
    config is handled by its parent's implementation unless it registers its own.
    ``modules`` are imported on first lookup, so implementations may live in modules that the
    verb's package does not import eagerly.

    >>> class Small: pass
    >>> verb = Dispatch("shrink")
    >>> @verb.register(Small)
    ... def shrink_small(model, config): return model[:1]
    >>> verb.lookup(Small())("ab", None)
    'a'
    >>> verb.lookup("small")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: shrink() takes a config object (Small), got str 'small'
      hint: build one, e.g. Small.from_dict(data)
    """

    def __init__(self, verb: str, *, modules: tuple[str, ...] = ()) -> None:
        self.verb = verb
        self._modules = modules
        known = VERBS.get(verb)
        # A module imported twice (pytest collecting doctests) makes a second Dispatch for the
        # same verb: it shares the first one's implementations rather than starting empty.
        self._impls: dict[type, F] = known._impls if known is not None else {}
        VERBS.setdefault(verb, self)

    def register(self, config_type: type) -> Callable[[F], F]:
        """Decorator: ``fn`` implements the verb for ``config_type`` (and its subclasses)."""

        def decorate(fn: F) -> F:
            known = self._impls.get(config_type)
            if known is not None and _origin(known) != _origin(fn):
                raise ConfigError(f"{self.verb}() already has an implementation for {config_type.__name__}")
            self._impls[config_type] = fn
            return fn

        return decorate

    def _load(self) -> None:
        for name in self._modules:
            importlib.import_module(name)

    def types(self) -> list[type]:
        """Every config type the verb accepts, in registration order."""
        self._load()
        return list(self._impls)

    def lookup(self, config: object) -> F:
        """The implementation for ``config``'s type; a ConfigError naming the accepted types if none."""
        self._load()
        for cls in type(config).__mro__:
            if cls in self._impls:
                return self._impls[cls]
        names = ", ".join(t.__name__ for t in self._impls)
        shown = f" {config!r}" if isinstance(config, (str, int, float)) else ""
        first = next(iter(self._impls), None)
        raise ConfigError(
            f"{self.verb}() takes a config object ({names}), got {type(config).__name__}{shown}",
            hint=f"build one, e.g. {first.__name__ if first else 'Config'}.from_dict(data)",
        )


#: Every verb's dispatcher by name, so tests can walk each verb and each config type it takes.
VERBS: dict[str, Dispatch[Any]] = {}
