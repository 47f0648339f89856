"""``--dry-run``: show what a recipe will do, after validating it, without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from slimkit.config import Config
from slimkit.imports import Trust
from slimkit.recipe.schema import ModelSource, Recipe

#: Fields shown for every stage are those the recipe sets, at most this many.
MAX_FIELDS = 8


def _changed(config: Config, prefix: str = "") -> dict[str, Any]:
    """The fields the recipe set explicitly (recursively), e.g. ``{"train.epochs": 2}``."""
    shown: dict[str, Any] = {}
    for name in type(config).model_fields:
        if name not in config.model_fields_set or name in ("type", "name") and not prefix:
            continue
        value = getattr(config, name)
        if isinstance(value, ModelSource):
            shown[prefix + name] = value.describe()
        elif isinstance(value, Config):
            shown.update(_changed(value, f"{prefix}{name}."))
        else:
            shown[prefix + name] = value
    return shown


def plan_table(recipe: Recipe, out: Path) -> Table:
    """A rich table: number, folder, type and the non-default settings of every stage."""
    table = Table(title=f"recipe '{recipe.name}': {len(recipe.stages)} stages -> {out}")
    for column in ("#", "folder", "type", "settings"):
        table.add_column(column)
    original = recipe.original_number()
    table.add_row("0", recipe.folder(0), "source", recipe.model.describe() + ("  [original]" if original == 0 else ""))
    for number, stage in enumerate(recipe.stages, 1):
        settings = ", ".join(f"{k}={v}" for k, v in list(_changed(stage).items())[:MAX_FIELDS])
        mark = "  [original]" if number == original else ""
        table.add_row(str(number), recipe.folder(number), stage.type, (settings or "(defaults)") + mark)
    return table


def print_plan(recipe: Recipe, out: Path, *, console: Console, resume: bool = False, trust: Trust | None = None) -> None:
    """Print the validated plan: data, model, stages, evaluation, targets, and every code
    reference the recipe would import (with whether it is trusted)."""

    console.print(f"[bold]valid recipe[/]: {recipe.name} — {recipe.description}".rstrip(" —"))
    console.print(f"data: {recipe.data.source} (limit {recipe.data.limit}, batch {recipe.data.batch_size}); "
                  f"seed {recipe.seed}")
    console.print(plan_table(recipe, out))
    ev = recipe.evaluation
    console.print(f"after each stage: quality on the {ev.split} split, bytes, MACs, latency at batch "
                  f"{', '.join(map(str, ev.batch_sizes))} ({ev.repeats} repeats, threads {ev.threads or 'default'})")
    if recipe.targets.size_ratio or recipe.targets.speedup or recipe.targets.accuracy_drop is not None:
        console.print(f"targets: {recipe.targets.to_dict()}")
    refs = recipe.references()
    trust = trust or Trust()
    for ref in refs:
        state = "trusted" if trust.allows(ref) else "NOT trusted: the run would stop (pass --trust-code to allow it)"
        console.print(f"code this recipe imports: {ref} ({state})")
    if not refs:
        console.print("code this recipe imports: none (slimkit's registries only)")
    verb = "resume" if resume and (out / "status.json").is_file() else "start"
    console.print(f"dry run: nothing was run; without --dry-run this would {verb} {out}")
