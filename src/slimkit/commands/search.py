"""`slimkit search RECIPE`: run a recipe's ``search`` stage on its own: search student
architectures for a trained teacher (in K worker processes sharing one Optuna study), print the
Pareto front, and distill the chosen student fully."""

from __future__ import annotations

import argparse

from slimkit.commands._common import console
from slimkit.commands._registry import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE", help="recipe YAML with a 'search' stage (its data and settings are used)")
    parser.add_argument("--stage", default=None, help="name of the search stage (default: the first 'search' stage)")
    parser.add_argument("--teacher", default=None,
                        help="run or saved-model folder of the trained teacher (default: the recipe's model.run)")
    parser.add_argument("--trials", type=int, default=None, help="finished trials wanted in the study (default: the stage's)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes sharing the study (default: the stage's)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage: search.db, sqlite:///x.db, journal:x.log, postgresql://... "
                             "(default: OUT/search.db)")
    parser.add_argument("--timeout", type=float, default=None, help="time budget for the search in seconds")
    parser.add_argument("--study", default=None, help="study name (default: the stage's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    parser.add_argument("--out", default=None, help="output folder (default runs/<recipe name>-search)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field, as for `slimkit run` (e.g. search.proxy_limit=2000)")
    parser.add_argument("--no-train", action="store_true", help="only search; do not distill the chosen student")


def _teacher_path(args: argparse.Namespace, recipe) -> str:
    from slimkit.errors import ConfigError

    if args.teacher is not None:
        return args.teacher
    if recipe.model.run is not None:
        return recipe.model.run
    raise ConfigError(f"recipe {args.recipe}: the search needs a trained teacher, and model is {recipe.model.describe()}",
                      hint="pass --teacher <run folder> (e.g. runs/quickstart/teacher), or set model.run in the recipe")


def _search_stage(args: argparse.Namespace, recipe):
    from slimkit.errors import ConfigError

    stages = [s for s in recipe.stages if s.type == "search" and (args.stage is None or s.label == args.stage)]
    if not stages:
        what = f"search stage named '{args.stage}'" if args.stage else "'search' stage"
        raise ConfigError(f"recipe {args.recipe} has no {what} (stages: {', '.join(recipe.labels())})",
                          hint="add a stage such as {type: search, trials: 20, constraints: {latency_b1_ms: 1.0x}}")
    return stages[0]


@command("search", "search a student architecture for a teacher (Optuna, K workers), then distill it", add_arguments)
def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.table import Table

    from slimkit.config import derive_seed
    from slimkit.recipe import resolve
    from slimkit.recipe.runfolder import model_folder
    from slimkit.search.nas import NASConfig
    from slimkit.search.outcome import TABLE
    from slimkit.search.storage import shown_url
    from slimkit.search.students import search_students, train_student

    recipe = resolve(args.recipe, list(args.overrides))
    stage = _search_stage(args, recipe)
    nas = NASConfig(**{k: getattr(stage, k) for k in NASConfig.model_fields})
    nas = nas.replace(seed=derive_seed(nas.seed, recipe.seed))
    out = Path(args.out or f"runs/{recipe.name}-search")
    teacher = model_folder(_teacher_path(args, recipe))
    result = search_students(
        teacher, recipe.data, nas, out,
        n_trials=args.trials if args.trials is not None else stage.trials,
        timeout=args.timeout if args.timeout is not None else stage.timeout,
        workers=args.workers if args.workers is not None else stage.workers,
        storage=args.storage if args.storage is not None else stage.storage,
        study_name=args.study or stage.study, threads=args.threads,
    )
    table = Table(title=f"Pareto front ({len(result.front)} of {len(result.rows)} scored, {result.trials} trials)")
    for column in TABLE:
        table.add_column(column, justify="right")
    for row in result.front:
        table.add_row(*(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in TABLE))
    console.print(table)
    console.print(f"chosen: trial {result.chosen['trial']} {result.chosen['knobs']}")
    console.print(f"front: {out / 'front.md'}, plot: {out / 'front.png'}, study: {shown_url(result.storage)}")
    if args.no_train:
        return 0
    from slimkit.data import load_data
    from slimkit.export import load_model, record_report, save_model

    loaders = load_data(recipe.data)
    student, trained = train_student(result.chosen["knobs"], load_model(teacher), loaders, nas,
                                     out_dir=out / "final", resume=(out / "final" / "last.pt").is_file())
    record_report(student, "search", {"knobs": result.chosen["knobs"], "history": trained.history,
                                      "best_val_acc": trained.best_val_acc})
    save_model(student, out / "student")
    console.print(f"student: {out / 'student'} (val acc {trained.history[-1]['val_acc']:.4f})")
    return 0
