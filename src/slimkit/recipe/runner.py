"""Run a recipe: stage by stage, each saved and measured, resumable after a crash at any moment.

    OUT/
      recipe.resolved.yaml / .json   the recipe as run (defaults filled in, overrides applied)
      status.json                    per stage: pending / running / done / failed, seconds, error
      00-source/model/               the model as loaded or built
      NN-name/                       one folder per stage: model/, metrics.json, log.txt,
                                     train/ or finetune/ (checkpoints), the exported artifact
      original.json, final.json      the original's figures; original vs final, measured together
      report.md, report.html
      .slimkit.lock                  held (an OS lock) by the process working in the folder; holds its PID

Every write is atomic. A stage is done once its ``metrics.json`` exists and status says so; a
resumed run reloads the last done stage's model and reruns the next one, whose training loops
pick up their epoch checkpoints. Each stage reseeds from the recipe seed and its number, and the
next stage always starts from the model *reloaded from disk*, so an interrupted-and-resumed run
follows the same path as an uninterrupted one and ends with the same weights and metrics.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml
from rich.console import Console

from slimkit.errors import CheckpointError, ConfigError
from slimkit.fileio import atomic_write_json, atomic_write_text
from slimkit.imports import Trust
from slimkit.recipe.loader import load_recipe, validate_recipe
from slimkit.recipe.overrides import apply_overrides
from slimkit.recipe.records import StatusFile, read_json, read_status
from slimkit.recipe.schema import Recipe
from slimkit.train import Callback

STATUS, RESOLVED, LOCK = "status.json", "recipe.resolved", ".slimkit.lock"
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


class Status:
    """status.json, rewritten atomically on every change."""

    def __init__(self, out: Path, recipe: Recipe, previous: StatusFile | None) -> None:
        self.path = out / STATUS
        stages = [{"number": i, "name": s.label, "type": s.type, "folder": recipe.folder(i), "state": "pending",
                   "seconds": None, "error": None} for i, s in enumerate(recipe.stages, 1)]
        self.data: dict[str, Any] = previous.model_dump() if previous is not None else {
            "recipe": recipe.name, "stages": stages, "state": "running", "original": recipe.original_number(),
            "source": "pending"}
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


def _prepare(out: Path, recipe: Recipe, resume: bool, force: bool) -> StatusFile | None:
    """Check the run folder; returns the previous status when resuming.

    A folder that already holds a run needs ``resume`` (and the same recipe); a folder with other
    files in it is never written into without ``force``: the user's files are not slimkit's to
    overwrite.
    """
    resolved = recipe.to_dict()
    status_file = out / STATUS
    if status_file.is_file() and not resume:
        raise ConfigError(f"{out} already holds a run", hint="pass --resume to continue it, or choose another --out")
    _refuse_foreign(out, force)
    previous = None
    if status_file.is_file():
        saved = read_json(out / f"{RESOLVED}.json", what="resolved recipe")
        changed = [p for p in _diff(saved, resolved) if not p.startswith(RESUMABLE)]
        if changed:
            raise CheckpointError(f"{out} was started with a different recipe: {', '.join(changed[:8])} changed",
                                  hint="resume with the same recipe and --set options, or start a new --out")
        previous = read_status(status_file)
        if len(previous.stages) != len(recipe.stages):
            raise CheckpointError(f"{status_file}: lists {len(previous.stages)} stages, the recipe has "
                                  f"{len(recipe.stages)}", hint="resume with the recipe that started the run")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{RESOLVED}.json", resolved)
    atomic_write_text(out / f"{RESOLVED}.yaml", yaml.safe_dump(resolved, sort_keys=False))
    return previous


def _refuse_foreign(out: Path, force: bool) -> None:
    """Refuse a non-empty folder that holds no run, unless ``force``: the user's files are not
    slimkit's to overwrite. Checked before the lock too, so a refused folder gains no lock file."""
    if not (out / STATUS).is_file() and out.is_dir() and not force:
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK)
        if others:
            raise ConfigError(f"{out} is not empty and is not a slimkit run ({', '.join(others[:4])}"
                              f"{', ...' if len(others) > 4 else ''}): slimkit will not write over your files",
                              hint="choose a new or empty --out, or pass --force to write into this folder anyway")


class RunLock:
    """An OS lock on a run folder while a process works in it: a second process (two
    ``--resume`` at once) gets a one-line refusal naming the holder's PID."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK
        self.handle: Any = None

    def __enter__(self) -> Self:
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise ConfigError(f"{self.path.parent} is in use by process {holder}",
                              hint="wait for it to finish (or stop it), then rerun with --resume") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()


def run_recipe(recipe: Recipe | str | Path, out: str | Path, *, resume: bool = False, overrides: Sequence[str] = (),
               dry_run: bool = False, callbacks: Sequence[Callback] = (), progress: bool | str = True,
               report: bool = True, console: Console | None = None, trust: Trust | None = None,
               force: bool = False) -> RunResult:
    """Run ``recipe`` (a file or a Recipe) into the folder ``out``; see the module docstring.

    ``overrides`` are ``KEY=VALUE`` strings (see :mod:`slimkit.recipe.overrides`); ``dry_run``
    validates and prints the plan (on ``console``) without running; ``resume`` continues an
    interrupted run in ``out``; ``callbacks`` are added to every training loop the recipe runs;
    ``progress`` is True (a live display on a terminal, plain lines elsewhere), ``"plain"`` (lines
    only) or False (silent), on stderr; ``report`` writes report.md and report.html at the end.

    ``trust`` names the code references the run may import (a recipe's ``model.factory``); by
    default none, so a recipe naming code is refused before anything runs (see
    :class:`slimkit.imports.Trust`). ``force`` writes into a non-empty folder that is not a run.
    """
    from slimkit.recipe.plan import print_plan

    recipe = resolve(recipe, overrides)
    out = Path(out)
    trust = trust or Trust()
    if dry_run:
        print_plan(recipe, out, console=console or Console(), resume=resume, trust=trust)
        return RunResult(out, recipe)
    for ref in recipe.references():  # refuse untrusted code before anything is written
        trust.require(ref, f"the recipe {recipe.name!r}")
    from slimkit.recipe.ranks import RankPlan

    _refuse_foreign(out, force)  # before the lock file is made: a refused folder is left as it was
    ranks = RankPlan(out)  # under torchrun: joins the process group; rank 0 alone writes ``out``
    lock = RunLock(out) if ranks.main else contextlib.nullcontext()
    try:
        with lock:
            final, reports = _run_locked(recipe, out, ranks, resume=resume, force=force, callbacks=callbacks,
                                         progress=progress, report=report, trust=trust)
    finally:
        ranks.close()
    return RunResult(out, recipe, final if ranks.main else None, reports)


def _run_locked(recipe: Recipe, out: Path, ranks: Any, *, resume: bool, force: bool, callbacks: Sequence[Callback],
                progress: bool | str, report: bool, trust: Trust) -> tuple[dict[str, Any] | None, dict[str, Path] | None]:
    """The run itself, once this process holds the folder's lock."""
    from slimkit.recipe.pipeline import Pipeline

    if ranks.main:
        status = Status(out, recipe, _prepare(out, recipe, resume, force))
    ranks.barrier()
    shared = ranks.share_file(out / STATUS) if ranks.distributed else b""
    if not ranks.main:  # rank 0's view of what is done, sent to every rank, so every rank skips alike
        (ranks.root / STATUS).write_bytes(shared)
        status = Status(ranks.root, recipe, read_status(ranks.root / STATUS))
    try:
        final = Pipeline(recipe, out, status, callbacks=callbacks, progress=progress if ranks.main else False,
                         ranks=ranks, trust=trust).run()
    except BaseException as exc:  # KeyboardInterrupt too: the status must say where the run stopped
        status.finish("failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise
    status.finish("done")
    reports = None
    if report and ranks.main:
        from slimkit.report import write_report

        reports = write_report(out)
    ranks.barrier()
    return final, reports
