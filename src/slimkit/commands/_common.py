"""What every command shares: the common flags, and running a command as a one-stage recipe.

A technique command (train, distill, prune, quantize, factorize, share, fuse, lighten, export)
builds a small recipe from its flags and runs it through the recipe runner, so every command
writes the same run folder, measures the same way against the original, resumes the same way,
and takes ``--set`` like ``slimkit run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from slimkit.commands._flags import Flag, add_flags, overrides
from slimkit.errors import ConfigError

console = Console()


# --------------------------------------------------------------------------------- arguments
def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --limit, --batch-size, --workers, --seed (no defaults here: a
    command on a run folder reuses that run's data, and the recipe's data defaults apply)."""
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default=None,
                       help="registered dataset (see `slimkit datasets`), a .npz file with x and y arrays, or a folder "
                            "of images with one subfolder per class (default: the run's own data, else fashion-mnist)")
    group.add_argument("--data-dir", default=None, help="folder holding the dataset files (overrides $SLIMKIT_DATA)")
    group.add_argument("--limit", type=int, default=None, help="cap every split at N samples, for quick runs")
    group.add_argument("--batch-size", type=int, default=None, help="training batch size (default 128)")
    group.add_argument("--workers", type=int, default=None, help="DataLoader worker processes (default 0)")
    group.add_argument("--seed", type=int, default=None, help="seed of the data split, initial weights and training "
                                                              "(default 0)")


def add_model_argument(parser: argparse.ArgumentParser, *, build: bool = False) -> None:
    """--model: what to build (``build``), or the architecture of a custom model to load."""
    if build:
        help_ = ("registry spec such as cnn or cnn:channels=[8,16],hidden=32, or package.module:factory[:key=value] "
                 "(runs YOUR code: it is imported and called with the knobs)")
    else:
        help_ = ("package.module:factory[:key=value] that builds the architecture of a custom model saved in the run "
                 "(runs YOUR code); registry models need none")
    parser.add_argument("--model", default="cnn" if build else None, help=help_)
    parser.add_argument("--trust-code", action="store_true",
                        help="import the factory the run folder records for its custom model (your own code)")


def add_run_arguments(parser: argparse.ArgumentParser, *, out_help: str) -> None:
    """--out, --resume, --force, --set, --threads, --no-progress, --no-report."""
    group = parser.add_argument_group("run folder")
    group.add_argument("--out", default=None, help=out_help)
    group.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    group.add_argument("--force", action="store_true",
                       help="write into --out even though it holds other files (never needed for a new folder)")
    group.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a field of the recipe this command runs (repeatable), e.g. "
                            "evaluation.repeats=5 or data.limit=100; `--dry-run` shows the recipe")
    group.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads for training and timing (default: torch's choice)")
    group.add_argument("--dry-run", action="store_true", help="print the recipe this command would run; run nothing")
    group.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live display")
    group.add_argument("--no-report", action="store_true", help="skip report.md / report.html")


def add_stage_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag], stage_type: str, title: str) -> None:
    from slimkit.recipe import STAGES, Recipe

    add_flags(parser.add_argument_group(title), flags, STAGES.get(stage_type).config, Recipe)


# ------------------------------------------------------------------------------- sources
def dataset_config(args: argparse.Namespace, base: Any = None) -> dict[str, Any]:
    """The recipe's ``data``: the source run's data (``base``) with the data flags applied."""
    data = base.to_dict() if base is not None else {}
    data.pop("type", None), data.pop("version", None)
    if args.dataset is not None:
        for key in ("name", "path", "options"):
            data.pop(key, None)
        data["path" if Path(args.dataset).is_dir() else "name"] = args.dataset
    for flag, field in (("data_dir", "root"), ("limit", "limit"), ("batch_size", "batch_size"), ("workers", "workers"),
                        ("seed", "seed")):
        if getattr(args, flag, None) is not None:
            data[field] = getattr(args, flag)
    return data


def run_source(args: argparse.Namespace, run: str) -> tuple[dict[str, Any], Any]:
    """The recipe's ``model`` for an existing run or model folder, and the trust it needs.

    A custom model's architecture comes from ``--model`` (the user's code, trusted by naming it)
    or, with ``--trust-code``, from the factory the folder records; never otherwise.
    """
    from slimkit.imports import Trust
    from slimkit.models.spec import parse_model_spec
    from slimkit.recipe.runfolder import model_folder, recorded_source

    folder = model_folder(run)  # a clear error for a folder that holds no model
    source: dict[str, Any] = {"run": str(run)}
    trust = Trust()
    if getattr(args, "model", None):
        spec = parse_model_spec(args.model)
        if spec.factory is None:
            raise ConfigError(f"--model {args.model}: {run} already records its architecture; --model names the "
                              "factory of a custom model", hint="drop --model, or pass package.module:factory")
        source.update(factory=spec.factory, knobs=spec.knobs)
        trust = Trust({spec.factory})
    elif getattr(args, "trust_code", False):
        ref, knobs = recorded_source(folder)
        trust = Trust({ref} if ref else ())
        if ref:  # its knobs too: the architecture is the factory called with them
            source.update(factory=ref, knobs=knobs)
    return source, trust


def source_data(run: str) -> Any:
    from slimkit.recipe.runfolder import run_data

    return run_data(run)


# ------------------------------------------------------------------------------- running
def run_stages(args: argparse.Namespace, *, name: str, model: dict[str, Any], stages: list[dict[str, Any]],
               data: dict[str, Any], trust: Any, default_out: str, flag_overrides: Sequence[str] = (),
               original: str | None = None, evaluation: dict[str, Any] | None = None, versus: bool = True) -> Any:
    """Build the command's recipe, apply its flags and ``--set`` overrides, run it into ``--out``
    and print the outcome; returns the RunResult."""
    from slimkit.recipe import Recipe, apply_overrides, run_recipe
    from slimkit.recipe.loader import validate_recipe

    recipe_data: dict[str, Any] = {"name": name, "data": data, "model": model, "stages": stages,
                                   "seed": args.seed if args.seed is not None else 0}
    if original is not None:
        recipe_data["original"] = original
    evaluation = dict(evaluation or {})
    if args.threads is not None:
        evaluation.setdefault("threads", args.threads)
    if evaluation:
        recipe_data["evaluation"] = evaluation
    recipe_data, origins = apply_overrides(recipe_data, [*flag_overrides, *args.overrides], list(Recipe.model_fields))
    recipe = validate_recipe(recipe_data, source=f"slimkit {name}", origins=origins)
    out = Path(args.out or default_out)
    result = run_recipe(recipe, out, resume=args.resume, dry_run=args.dry_run, console=console, trust=trust,
                        force=args.force, progress="plain" if args.no_progress else True,
                        report=not args.no_report)
    if not args.dry_run and result.final is not None:
        print_outcome(result, versus=versus)
    return result


def stage_overrides(args: argparse.Namespace, flags: Sequence[Flag], stage: str) -> list[str]:
    return overrides(args, flags, stage)


def print_outcome(result: Any, *, versus: bool = True) -> None:
    """What the command did, in the run's own measured words (``versus``: against the original)."""
    final = result.final
    quality = final["final"]["quality"]
    console.print(f"[bold]{result.out}[/]: test accuracy {100 * quality['accuracy']:.2f}%"
                  + (f"; against the original: {final['summary']}" if versus and final.get("summary") else ""))
    for row in final.get("targets", []):
        console.print(f"  {'MET' if row['met'] else 'MISSED'}: {row['target']}")
    if result.reports:
        console.print(f"report: {result.reports['html']}")


def add_technique_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """What every command that compresses a run takes: ``RUN``, ``--model``, the run flags
    (``--out`` with ``out_help``, ...) and the data flags."""
    parser.add_argument("run", metavar="RUN", help="a run folder or saved model folder")
    add_model_argument(parser)
    add_run_arguments(parser, out_help=out_help)
    add_data_arguments(parser)


def run_technique(args: argparse.Namespace, name: str, stages: list[dict[str, Any]], *, suffix: str,
                  overrides: list[str]) -> int:
    """Run ``stages`` on the model of ``args.run`` (its data unless ``--dataset``) into a new run
    folder (default ``RUN-suffix``), measured against that model."""
    model, trust = run_source(args, args.run)
    run_stages(args, name=name, model=model, stages=stages, data=dataset_config(args, source_data(args.run)),
               trust=trust, default_out=default_out(args.run, suffix), original="source", flag_overrides=overrides)
    return 0


def default_out(run: str, suffix: str) -> str:
    """``runs/teacher`` + ``pruned-l1`` -> ``runs/teacher-pruned-l1``."""
    return f"{str(run).rstrip('/')}-{suffix}"
