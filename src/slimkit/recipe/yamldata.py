"""YAML read as plain data, within limits: no tags, no alias bombs, no absurd nesting.

Recipes and ``--set`` values are YAML that anyone may have written. Before anything is built
from them, one pass over the parser's events (iterative: no recursion, no object is made)
measures what the text would expand to, counting every alias as the whole value it repeats.
A "billion laughs" of a few hundred bytes, a list nested 5000 deep or a megabyte string
repeated by aliases is refused in milliseconds, with one line naming the file and line.
Only then is the text composed and constructed (``yaml.SafeLoader``: no Python objects).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import yaml

from slimkit.errors import ConfigError

#: A recipe file larger than this is refused unread: real recipes are a few kilobytes.
MAX_BYTES = 1 << 20
#: Values (scalars, lists and mappings) a document may hold once its aliases are expanded: a
#: recipe of a few hundred lines holds about a thousand; every later step (validation, overrides,
#: the resolved copy written to the run folder) walks the expanded data.
MAX_VALUES = 100_000
#: Characters of text a document may hold once its aliases are expanded (a long string repeated
#: by aliases would otherwise fill recipe.resolved.yaml).
MAX_CHARS = 4 << 20
#: Aliases (``*name``) a document may use; recipes use a handful to share a block.
MAX_ALIASES = 1_000
#: Nesting depth of lists and mappings, aliases expanded: recipes nest about six deep, and
#: composing, validating and copying the data recurse once per level.
MAX_DEPTH = 50
#: The plain-data tags YAML resolves by itself; anything else (``!!python/...``, ``!include``,
#: timestamps, sets, binary) is refused before anything is constructed.
PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge"))
STR, MERGE = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
HINT = "a recipe is plain data of modest size; write the values out instead of nesting or repeating them"


@dataclass
class _Size:
    """What a value expands to: values, characters of text, and depth."""

    values: int = 1
    chars: int = 0
    depth: int = 0
    anchor: str | None = None
    line: int = 0

    def add(self, other: _Size) -> None:
        self.values += other.values
        self.chars += other.chars
        self.depth = max(self.depth, other.depth)


def check_limits(text: str, source: str) -> list[yaml.Event]:
    """The parser's events for ``text``; ConfigError if it expands beyond the limits above (see
    the module docstring).

    >>> bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
    ...     f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\\n" for p, c in zip("abcdefgh", "bcdefghi"))
    >>> check_limits(bomb, "bomb.yaml")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: bomb.yaml:5: the YAML expands to more than 100,000 values (aliases repeat whole blocks)
      hint: a recipe is plain data of modest size; write the values out instead of nesting or repeating them
    """
    open_: list[_Size] = []
    anchors: dict[str, _Size] = {}
    aliases = 0
    top = _Size(values=0)
    events: list[yaml.Event] = []
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            events.append(event)
            line = event.start_mark.line + 1 if event.start_mark is not None else 0
            where = f"{source}:{line}"
            if isinstance(event, yaml.CollectionStartEvent):
                if len(open_) >= MAX_DEPTH:
                    raise ConfigError(f"{where}: the YAML is nested more than {MAX_DEPTH} levels deep", hint=HINT)
                open_.append(_Size(anchor=event.anchor, line=line))
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                done = open_.pop()
                done.depth += 1  # the collection itself is a level
            elif isinstance(event, yaml.ScalarEvent):
                done = _Size(chars=len(event.value), anchor=event.anchor)
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise ConfigError(f"{where}: the YAML uses more than {MAX_ALIASES:,} aliases", hint=HINT)
                if any(item.anchor == event.anchor for item in open_):
                    raise ConfigError(f"{where}: the alias *{event.anchor} is inside the block it names "
                                      "(a value that contains itself)", hint=HINT)
                known = anchors.get(event.anchor or "")
                done = _Size(known.values, known.chars, known.depth) if known else _Size()  # compose names an unknown one
            else:
                continue
            if done.anchor is not None:
                anchors[done.anchor] = done
            parent = open_[-1] if open_ else top
            parent.add(done)
            if parent.values > MAX_VALUES or top.values > MAX_VALUES:
                raise ConfigError(f"{where}: the YAML expands to more than {MAX_VALUES:,} values "
                                  "(aliases repeat whole blocks)", hint=HINT)
            if parent.chars > MAX_CHARS:
                raise ConfigError(f"{where}: the YAML expands to more than {MAX_CHARS:,} characters of text", hint=HINT)
            if done.depth > MAX_DEPTH:
                raise ConfigError(f"{where}: the YAML is nested more than {MAX_DEPTH} levels deep "
                                  "once its aliases are expanded", hint=HINT)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None
    return events


class _Composer(yaml.composer.Composer, yaml.resolver.Resolver):
    """PyYAML's composer (with the safe loader's resolver) fed the events already checked, so the
    text is parsed once."""

    def __init__(self, events: list[yaml.Event]) -> None:
        self.events = deque(events)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.Resolver.__init__(self)

    def check_event(self, *choices: type) -> bool:
        return bool(self.events) and (not choices or isinstance(self.events[0], choices))

    def peek_event(self) -> yaml.Event:
        return self.events[0]

    def get_event(self) -> yaml.Event:
        return self.events.popleft()


def yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """One line for a YAML syntax error: the file, the line and what the parser expected."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ConfigError(f"{where}: not valid YAML: {problem}", hint="check indentation, colons and quotes around that line")


def compose(text: str, source: str) -> yaml.Node | None:
    """The YAML node tree of ``text`` (one document), once it is known to be within the limits."""
    events = check_limits(text, source)
    try:
        return _Composer(events).get_single_node()
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None


def construct(node: yaml.Node | None, source: str) -> Any:
    """Plain Python data (dicts, lists, strings, numbers, booleans, None) from a checked node tree."""
    if node is None:
        return None
    check_tags(node, source)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits
        line = node.start_mark.line + 1
        raise ConfigError(f"{source}:{line}: a value cannot be read ({str(exc)[:120]})",
                          hint="write numbers in ordinary notation") from None
    finally:
        loader.dispose()


def check_tags(node: yaml.Node, source: str) -> None:
    """Refuse any tag but plain data's, and any mapping key that is not a plain scalar (iteratively)."""
    seen: set[int] = set()
    todo = [node]
    while todo:
        item = todo.pop()
        if id(item) in seen:  # an alias: the same node again
            continue
        seen.add(id(item))
        line = item.start_mark.line + 1
        if item.tag not in PLAIN_TAGS:
            raise ConfigError(f"{source}:{line}: the YAML tag '{item.tag}' is not allowed",
                              hint="a recipe is plain data and cannot run code; remove the tag")
        if isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise ConfigError(f"{source}:{key.start_mark.line + 1}: a mapping key must be a plain name, "
                                      "not a list or mapping", hint="write the key as text")
                if key.tag not in (STR, MERGE):  # 1:, true:, null: are keys of other types
                    raise ConfigError(f"{source}:{key.start_mark.line + 1}: the mapping key {key.value[:40]!r} is "
                                      f"read as {key.tag.rsplit(':', 1)[-1]}, not text", hint="put it in quotes")
                todo += [key, value]
        elif isinstance(item, yaml.SequenceNode):
            todo += item.value


def load_plain(text: str, source: str) -> Any:
    """``text`` as plain data, within the limits and without tags (for ``--set`` values).

    >>> load_plain("[16, 32]", "--set x")
    [16, 32]
    >>> load_plain("!!python/object/apply:os.system [ls]", "--set x")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: --set x:1: the YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed
      hint: a recipe is plain data and cannot run code; remove the tag
    """
    return construct(compose(text, source), source)
