"""``--set KEY=VALUE`` overrides, applied to the recipe's data before it is validated.

KEY is a dotted path. Its first part is one of:

- a recipe field: ``data.limit=100``, ``seed=1``, ``model.knobs.hidden=32``;
- a stage's name (its ``name``, or its ``type`` when unnamed) when exactly one stage has it:
  ``distill.train.epochs=1``, ``teacher.epochs=2``;
- ``stages.N`` for the N-th stage, counted from 1 as the run folders are (``02-distill``):
  ``stages.2.epochs=1``. Use this when several stages share a name.

VALUE is read as YAML, so ``1``, ``0.5``, ``true``, ``null``, ``[16, 32]`` and ``{a: 1}`` have
their types; anything else is a string. Missing keys are created (validation still checks them).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from slimkit.config import Config
from slimkit.errors import ConfigError
from slimkit.registry import did_you_mean

Path = tuple[str | int, ...]


def display_path(path: Path) -> str:
    """``("stages", 1, "epochs")`` -> ``"stages.2.epochs"`` (stage numbers count from 1).

    >>> display_path(("stages", 1, "structured", "ratio"))
    'stages.2.structured.ratio'
    """
    parts = []
    for i, part in enumerate(path):
        parts.append(str(part + 1) if i == 1 and path[0] == "stages" and isinstance(part, int) else str(part))
    return ".".join(parts)


def internal_path(text: str) -> Path:
    """The inverse of :func:`display_path`.

    >>> internal_path("stages.2.epochs")
    ('stages', 1, 'epochs')
    """
    parts: list[str | int] = list(text.split("."))
    if len(parts) > 1 and parts[0] == "stages" and str(parts[1]).isdigit():
        parts[1] = int(parts[1]) - 1
    return tuple(int(p) if isinstance(p, str) and p.isdigit() and i > 1 else p for i, p in enumerate(parts))


def stage_label(stage: Any) -> str | None:
    return (stage.get("name") or stage.get("type")) if isinstance(stage, dict) else None


def resolve_key(data: dict[str, Any], key: str, fields: Sequence[str]) -> Path:
    """The internal path a KEY names (see the module docstring)."""
    head, *rest = key.split(".")
    stages = data.get("stages") if isinstance(data.get("stages"), list) else []
    if head == "stages":
        if not rest or not rest[0].isdigit() or not 1 <= int(rest[0]) <= len(stages):
            raise ConfigError(f"--set {key}: 'stages.N' needs a stage number from 1 to {len(stages)}")
        return ("stages", int(rest[0]) - 1, *rest[1:])
    if head in fields:
        return (head, *rest)
    labels = [stage_label(s) for s in stages]
    matches = [i for i, label in enumerate(labels) if label == head]
    if len(matches) == 1:
        return ("stages", matches[0], *rest)
    if len(matches) > 1:
        numbers = ", ".join(f"stages.{i + 1}" for i in matches)
        raise ConfigError(f"--set {key}: {len(matches)} stages are named '{head}'",
                          hint=f"address one by number: {numbers}, or give the stages distinct names")
    known = [*fields, *(label for label in labels if label)]
    raise ConfigError(f"--set {key}: '{head}' is neither a recipe field nor a stage name.{did_you_mean(head, known)}",
                      hint=f"recipe fields: {', '.join(fields)}; stages: {', '.join(l for l in labels if l)}")


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=1"`` -> ``("a.b", 1)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text}: expected KEY=VALUE", hint="for example --set distill.train.epochs=1")
    from slimkit.recipe.yamldata import load_plain

    return key.strip(), load_plain(value, f"--set {key.strip()}") if value.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], fields: Sequence[str]) -> tuple[dict, dict[Path, str]]:
    """A copy of ``data`` with ``overrides`` applied, and which override set each path.

    >>> d, origin = apply_overrides({"stages": [{"type": "train"}]}, ["train.epochs=1"], ["data"])
    >>> d["stages"][0]["epochs"], origin
    (1, {('stages', 0, 'epochs'): 'train.epochs=1'})
    """
    data = copy.deepcopy(data)
    origins: dict[Path, str] = {}
    for text in overrides:
        key, value = parse_override(text)
        path = resolve_key(data, key, fields)
        node: Any = data
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list) and isinstance(part, int):
                node = node[part]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: '{display_path(path[:i])}' is not a mapping, so it has no '{part}'")
            if node.get(part) is None:  # a missing (or null) section: create it
                node[part] = {}
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"--set {text}: '{display_path(path[:-1])}' is not a mapping")
        for other in renamed_twins(path[-1]):
            node.pop(other, None)  # the override replaces the field under its old (or new) name too
        node[path[-1]] = value
        origins[path] = text
    return data, origins


def renamed_twins(name: Any) -> set[str]:
    """The other names a field goes by in any config (``calib_batches`` and ``calibration_batches``).

    >>> import slimkit.quantization  # registers the configs that renamed it
    >>> sorted(renamed_twins("calibration_batches"))
    ['calib_batches']
    """
    from slimkit.config import CONFIG_TYPES

    twins: set[str] = set()
    for cls in list(CONFIG_TYPES.values()):
        for old, new in cls.renamed.items():
            if name == new:
                twins.add(old)
            elif name == old:
                twins.add(new)
    return twins


def _tiny(config: Config, prefix: str, limit: int) -> list[str]:
    from slimkit.data import DataConfig

    out = []
    for name in type(config).model_fields:
        value = getattr(config, name)
        key = f"{prefix}.{name}"
        if name.endswith("epochs") and isinstance(value, int) and value > 1:
            out.append(f"{key}=1")
        elif name in ("sensitivity_batches", "calibration_batches") and isinstance(value, int) and value > 2:
            out.append(f"{key}=2")
        elif isinstance(value, DataConfig):
            out.append(f"{key}.limit={limit}")
        elif isinstance(value, Config):
            out.extend(_tiny(value, key, limit))
    return out


def smoke_overrides(recipe: Any, *, limit: int = 60) -> list[str]:
    """Overrides that make ``recipe`` a smoke test: ``limit`` samples, 1 epoch, quick timing.

    >>> from slimkit.recipe.schema import Recipe
    >>> r = Recipe.from_dict({"model": {"registry": "mlp"}, "stages": [{"type": "train", "epochs": 5}]})
    >>> smoke_overrides(r, limit=50)[:2]
    ['data.limit=50', 'stages.1.epochs=1']
    """
    out = [f"data.limit={limit}"]
    for number, stage in enumerate(recipe.stages, 1):
        out.extend(_tiny(stage, f"stages.{number}", limit))
    out += ["evaluation.repeats=2", "evaluation.final_repeats=2", "evaluation.warmup=0",
            "evaluation.batch_sizes=[1, 8]", "targets.speedup={}"]
    return out
