"""Run a recipe: stage by stage, each saved and measured, resumable after a crash at any moment.

    OUT/
      recipe.resolved.yaml / .json   the recipe as run (defaults filled in, overrides applied)
      status.json                    per stage: pending / running / done / failed, seconds, error
      00-source/model/               the model as loaded or built
      NN-name/                       one folder per stage: model/, metrics.json, log.txt,
                                     train/ or finetune/ (checkpoints), the exported artifact
      original.json, final.json      the original's figures; original vs final, measured together
      report.md, report.html

Every write is atomic. A stage is done once its ``metrics.json`` exists and status says so; a
resumed run reloads the last done stage's model and reruns the next one, whose training loops
pick up their epoch checkpoints. Each stage reseeds from the recipe seed and its number, and the
next stage always starts from the model *reloaded from disk*, so an interrupted-and-resumed run
follows the same path as an uninterrupted one and ends with the same weights and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from slimkit.errors import CheckpointError, ConfigError
from slimkit.fileio import atomic_write_json, atomic_write_text
from slimkit.recipe.loader import load_recipe, validate_recipe
from slimkit.recipe.overrides import apply_overrides
from slimkit.recipe.schema import Recipe
from slimkit.train import Callback

STATUS, RESOLVED = "status.json", "recipe.resolved"
#: Parts of the recipe a resumed run may change: they only affect measurement, not results.
RESUMABLE = ("evaluation", "description", "targets")


@dataclass
class RunResult:
    """What :func:`run_recipe` returns: the run folder, the recipe, and (after a real run) the final
    comparison (``final.json``) and the report files."""

    out: Path
    recipe: Recipe
    final: dict[str, Any] | None = None
    reports: dict[str, Path] | None = None


def resolve(recipe: Recipe | str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """A Recipe from a file path or a Recipe, with overrides applied and everything validated."""
    if isinstance(recipe, Recipe):
        if not overrides:
            return recipe
        data, origins = apply_overrides(recipe.to_dict(), overrides, list(Recipe.model_fields))
        return validate_recipe(data, source=recipe.name, origins=origins)
    return load_recipe(recipe, overrides=overrides)


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str) for d in _diff(old.get(k), new.get(k), f"{path}.{k}".strip("."))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _diff(a, b, f"{path}.{i}")]
    return [] if old == new else [path or "(recipe)"]


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}", hint="start a new run with another --out") from None


class Status:
    """status.json, rewritten atomically on every change."""

    def __init__(self, out: Path, recipe: Recipe, previous: dict[str, Any] | None) -> None:
        self.path = out / STATUS
        stages = [{"number": i, "name": s.label, "type": s.type, "folder": recipe.folder(i), "state": "pending",
                   "seconds": None, "error": None} for i, s in enumerate(recipe.stages, 1)]
        self.data: dict[str, Any] = previous or {"recipe": recipe.name, "stages": stages, "state": "running",
                                                 "original": recipe.original_number(), "source": "pending"}
        self.data["state"], self.data["error"] = "running", None
        self.save()

    def stage(self, number: int) -> dict[str, Any]:
        return self.data["stages"][number - 1]

    def done(self, number: int) -> bool:
        return (self.data["source"] if number == 0 else self.stage(number)["state"]) == "done"

    def set(self, number: int, **fields: Any) -> None:
        if number == 0:
            self.data["source"] = fields["state"]
        else:
            self.stage(number).update(fields)
        self.save()

    def finish(self, state: str, error: str | None = None) -> None:
        self.data.update(state=state, error=error, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.save()

    def save(self) -> None:
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        atomic_write_json(self.path, self.data)


def _prepare(out: Path, recipe: Recipe, resume: bool) -> dict[str, Any] | None:
    """Check the run folder; returns the previous status when resuming."""
    resolved = recipe.to_dict()
    status_file = out / STATUS
    if status_file.is_file() and not resume:
        raise ConfigError(f"{out} already holds a run", hint="pass --resume to continue it, or choose another --out")
    previous = None
    if status_file.is_file():
        saved = _read_json(out / f"{RESOLVED}.json")
        changed = [p for p in _diff(saved, resolved) if not p.startswith(RESUMABLE)]
        if changed:
            raise CheckpointError(f"{out} was started with a different recipe: {', '.join(changed[:8])} changed",
                                  hint="resume with the same recipe and --set options, or start a new --out")
        previous = _read_json(status_file)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{RESOLVED}.json", resolved)
    atomic_write_text(out / f"{RESOLVED}.yaml", yaml.safe_dump(resolved, sort_keys=False))
    return previous


def run_recipe(recipe: Recipe | str | Path, out: str | Path, *, resume: bool = False, overrides: Sequence[str] = (),
               dry_run: bool = False, callbacks: Sequence[Callback] = (), progress: bool | str = True,
               report: bool = True, console: Console | None = None) -> RunResult:
    """Run ``recipe`` (a file or a Recipe) into the folder ``out``; see the module docstring.

    ``overrides`` are ``KEY=VALUE`` strings (see :mod:`slimkit.recipe.overrides`); ``dry_run``
    validates and prints the plan (on ``console``) without running; ``resume`` continues an
    interrupted run in ``out``; ``callbacks`` are added to every training loop the recipe runs;
    ``progress`` is True (a live display on a terminal, plain lines elsewhere), ``"plain"`` (lines
    only) or False (silent), on stderr; ``report`` writes report.md and report.html at the end.
    """
    from slimkit.recipe.pipeline import Pipeline
    from slimkit.recipe.plan import print_plan

    recipe = resolve(recipe, overrides)
    out = Path(out)
    if dry_run:
        print_plan(recipe, out, console=console or Console(), resume=resume)
        return RunResult(out, recipe)
    from slimkit.recipe.ranks import RankPlan

    ranks = RankPlan(out)  # under torchrun: joins the process group; rank 0 alone writes ``out``
    try:
        if ranks.main:
            status = Status(out, recipe, _prepare(out, recipe, resume))
        ranks.barrier()
        if not ranks.main:  # the same view of what is done as rank 0's, so every rank skips alike
            status = Status(ranks.root, recipe, _read_json(out / STATUS))
        try:
            final = Pipeline(recipe, out, status, callbacks=callbacks, progress=progress if ranks.main else False,
                             ranks=ranks).run()
        except BaseException as exc:  # KeyboardInterrupt too: the status must say where the run stopped
            status.finish("failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            raise
        status.finish("done")
        reports = None
        if report and ranks.main:
            from slimkit.report import write_report

            reports = write_report(out)
        ranks.barrier()
    finally:
        ranks.close()
    return RunResult(out, recipe, final if ranks.main else None, reports)
