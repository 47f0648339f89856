"""`slimkit distill`: distill a trained teacher run into a smaller student and save it as a run."""

from __future__ import annotations

import argparse
from typing import Any

from slimkit.commands._common import (
    add_data_arguments,
    console,
    ensure_out,
    load_loaders,
    parse_model_spec,
)
from slimkit.commands._registry import command
from slimkit.commands.train import add_train_arguments, train_config
from slimkit.errors import ConfigError

METHOD_NAMES = ("kd", "kd+ce", "fitnet", "at", "sp", "rkd", "pkt", "dkd", "logit_std")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", action="append", required=True, metavar="RUN",
                        help="run folder (or saved model folder) of a trained teacher; repeat for several teachers")
    parser.add_argument("--student", default=None,
                        help="registry spec such as cnn:width=0.25 or cnn:channels=[8,16],hidden=16, or "
                             "width=0.25[,depth=0.5] to shrink the (first) teacher; default: the zoo's default student")
    parser.add_argument("--out", default=None, help="run folder (default runs/distill-<method>-<dataset>)")
    group = parser.add_argument_group("distillation")
    group.add_argument("--method", choices=METHOD_NAMES, default="kd+ce", help="loss preset (default kd+ce)")
    group.add_argument("--temperature", type=float, default=None, help="softening temperature (default: the method's)")
    group.add_argument("--alpha", type=float, default=0.9, help="weight of KD; hard-label CE gets 1 - alpha")
    group.add_argument("--features", action="append", default=None, metavar="S_PATH=T_PATH",
                       help="student=teacher module paths for feature methods (repeatable; default: matching stages)")
    group.add_argument("--cache", choices=["auto", "memory", "disk", "off"], default="auto",
                       help="cache the teachers' outputs (auto: when the data is not augmented and they fit)")
    group.add_argument("--cache-dir", default=None, help="folder for the disk cache of teacher outputs")
    group.add_argument("--teacher-weighting", choices=["mean", "weighted", "confidence"], default="mean")
    group.add_argument("--teacher-weights", type=float, nargs="+", default=None, help="one weight per --teacher")
    group.add_argument("--student-view", default=None, help="input view of the student, e.g. downsample:size=14 or "
                       "mask:fraction=0.5,patch=4 (cross-modal distillation)")
    group.add_argument("--teacher-view", default=None, help="input view of the teachers (default: identity)")
    add_data_arguments(parser, default=None)
    add_train_arguments(parser)


def view_spec(text: str | None) -> dict[str, Any]:
    """``downsample:size=14`` -> ``{"name": "downsample", "size": 14}`` (None -> identity)."""
    if not text:
        return {"name": "identity"}
    name, knobs = parse_model_spec(text)
    return {"name": name, **knobs}


def feature_pairs(items: list[str] | None) -> list[tuple[str, str]] | None:
    """``["features.1=features.2"]`` -> ``[("features.1", "features.2")]``."""
    if not items:
        return None
    pairs = []
    for item in items:
        student, sep, teacher = item.partition("=")
        if not sep or not student.strip() or not teacher.strip():
            raise ConfigError(f"--features '{item}' is not student_path=teacher_path",
                              hint="for example --features features.1=features.2")
        pairs.append((student.strip(), teacher.strip()))
    return pairs


@command("distill", "distill a trained teacher run into a smaller student", add_arguments)
def distill_command(args: argparse.Namespace) -> int:
    from slimkit.distillation import DistillConfig, Viewed, build_view, run_distillation, student_spec
    from slimkit.distillation.methods import default_features, method_losses
    from slimkit.evaluate import predict, quality
    from slimkit.models import DEFAULT_STUDENT, build_model
    from slimkit.rundir import load_run_model, read_run, write_run

    teachers = [load_run_model(path).eval().requires_grad_(False) for path in args.teacher]  # trained: frozen
    dataset = args.dataset or read_run(args.teacher[0]).get("dataset") or "fashion-mnist"
    loaders = load_loaders(args, dataset=dataset, augment=args.augment)
    splits = loaders.splits
    student_view, teacher_view = view_spec(args.student_view), view_spec(args.teacher_view)
    size = build_view(student_view).output_size(splits.input_shape[-1])
    if args.student:
        name, knobs = student_spec(args.student, teachers[0])
    else:
        name, knobs = DEFAULT_STUDENT[0], dict(DEFAULT_STUDENT[1])
    shape = {"in_channels": splits.input_shape[0], "num_classes": splits.num_classes, "input_size": size}
    student = build_model(name, **{**knobs, **shape})
    features: list[tuple[Any, Any]] = []
    if args.method in ("fitnet", "at", "sp", "rkd", "pkt"):
        features = feature_pairs(args.features) or default_features(args.method, student, teachers[0])
    elif args.features:
        raise ConfigError(f"--features is only used by feature methods, not --method {args.method}",
                          hint="use --method fitnet, at, sp, rkd or pkt")
    config = DistillConfig(
        losses=method_losses(args.method, temperature=args.temperature, alpha=args.alpha, features=features),
        train=train_config(args), cache_teacher=args.cache, cache_dir=args.cache_dir,
        teacher_weighting=args.teacher_weighting, teacher_weights=args.teacher_weights,
        student_view=student_view, teacher_view=teacher_view,
    )
    out = ensure_out(args.out, f"runs/distill-{args.method}-{splits.name}")
    result = run_distillation(student, teachers, loaders.train, config, val_loader=loaders.val,
                     out_dir=out, resume=args.resume)
    # Each model is scored on the view it was built for, on the same test samples.
    roles = [(f"teacher{k}" if len(teachers) > 1 else "teacher", t, teacher_view) for k, t in enumerate(teachers)]
    test = {}
    for role, model, view in [*roles, ("student", student, student_view)]:
        scores = quality(*predict(Viewed(model, build_view(view)).eval(), loaders.test).pair())
        test[role] = {k: scores[k] for k in ("accuracy", "f1", "roc_auc", "ece")}
    record = {"command": "distill", "teacher": args.teacher, "student": {"spec": args.student or "default", "name": name, "kwargs": knobs},
              "method": args.method, "dataset": dataset, "limit": args.limit, "seed": args.seed,
              "distill": config.to_dict(), "train": config.train.to_dict(), "history": result.history,
              "best_epoch": result.best_epoch, "cache": result.cache, "cache_hit": result.cache_hit,
              "test": test["student"], "teachers_test": {k: v for k, v in test.items() if k != "student"}}
    write_run(out, student, record)
    for role, scores in test.items():
        console.print(f"{role}: test accuracy {scores['accuracy']:.2%}")
    console.print(f"[bold]{out}[/]: {args.method} student (teacher outputs: {result.cache}"
                  f"{', from disk cache' if result.cache_hit else ''})")
    return 0

