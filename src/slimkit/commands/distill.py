"""`slimkit distill`: distill a trained teacher run into a smaller student, as a one-stage recipe."""

from __future__ import annotations

import argparse
from typing import Any

from slimkit.commands._common import (
    add_data_arguments,
    add_run_arguments,
    add_stage_flags,
    dataset_config,
    run_source,
    run_stages,
    source_data,
    stage_overrides,
)
from slimkit.commands._flags import Flag
from slimkit.commands._registry import command
from slimkit.errors import ConfigError

METHOD_NAMES = ("kd", "kd+ce", "fitnet", "at", "sp", "rkd", "pkt", "dkd", "logit_std")
FEATURE_METHODS = ("fitnet", "at", "sp", "rkd", "pkt")
FLAGS = (
    Flag("--cache", "cache_teacher", "cache the teachers' outputs (auto: when the data is not augmented and they fit)"),
    Flag("--cache-dir", "cache_dir", "folder for the disk cache of teacher outputs"),
    Flag("--teacher-weighting", "teacher_weighting", "how several teachers' logits are combined"),
    Flag("--teacher-weights", "teacher_weights", "one weight per --teacher"),
    Flag("--epochs", "train.epochs", "training epochs"),
    Flag("--lr", "train.lr", "learning rate"),
    Flag("--optimizer", "train.optimizer", "optimizer"),
    Flag("--schedule", "train.schedule", "learning-rate schedule"),
    Flag("--weight-decay", "train.weight_decay", "weight decay"),
    Flag("--label-smoothing", "train.label_smoothing", "label smoothing of the cross-entropy term"),
    Flag("--device", "train.device", "auto, cpu or cuda"),
    Flag("--augment", "recipe:data.augment", "light augmentation of the training split"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", action="append", required=True, metavar="RUN",
                        help="run folder (or saved model folder) of a trained teacher; repeat for several teachers")
    parser.add_argument("--student", default=None,
                        help="registry spec such as cnn:width=0.25 or cnn:channels=[8,16],hidden=16, or "
                             "width=0.25[,depth=0.5] to shrink the (first) teacher; default: the zoo's default student")
    group = parser.add_argument_group("distillation")
    group.add_argument("--method", choices=METHOD_NAMES, default="kd+ce", help="loss preset (default kd+ce)")
    group.add_argument("--temperature", type=float, default=None, help="softening temperature (default: the method's)")
    group.add_argument("--alpha", type=float, default=0.9, help="weight of KD; hard-label CE gets 1 - alpha (default 0.9)")
    group.add_argument("--features", action="append", default=None, metavar="S_PATH=T_PATH",
                       help="student=teacher module paths for feature methods (repeatable; default: matching stages)")
    group.add_argument("--student-view", default=None, help="input view of the student, e.g. downsample:size=14 or "
                       "mask:fraction=0.5,patch=4 (cross-modal distillation)")
    group.add_argument("--teacher-view", default=None, help="input view of the teachers (default: identity)")
    parser.add_argument("--model", default=None, help="package.module:factory building the (first) teacher, when it "
                                                      "is a custom model (runs YOUR code)")
    parser.add_argument("--trust-code", action="store_true",
                        help="import the factory the teacher's folder records for its custom model (your own code)")
    add_run_arguments(parser, out_help="run folder (default runs/distill-<method>-<dataset>)")
    add_data_arguments(parser)
    add_stage_flags(parser, FLAGS, "distill", "training")


def view_spec(text: str | None) -> dict[str, Any]:
    """``downsample:size=14`` -> ``{"name": "downsample", "size": 14}`` (None -> identity)."""
    from slimkit.models.spec import parse_model_spec

    if not text:
        return {"name": "identity"}
    spec = parse_model_spec(text)
    return {"name": spec.describe(), **spec.knobs}


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


def teacher_spec(run: str) -> tuple[str, dict[str, Any]] | None:
    """The registry name and knobs a teacher folder records (None for a custom model)."""
    from slimkit.export.serialize import read_spec
    from slimkit.recipe.runfolder import model_folder

    spec = read_spec(model_folder(run))["spec"]
    return (spec["name"], dict(spec.get("kwargs", {}))) if spec.get("name") else None


def student_source(args: argparse.Namespace, teacher: tuple[str, dict[str, Any]] | None) -> dict[str, Any]:
    from slimkit.distillation import student_spec
    from slimkit.models import DEFAULT_STUDENT

    if not args.student:
        name, knobs = DEFAULT_STUDENT[0], dict(DEFAULT_STUDENT[1])
    elif teacher is None and "=" in args.student.split(":", 1)[0]:
        raise ConfigError(f"--student {args.student} shrinks the teacher, but {args.teacher[0]} is a custom model",
                          hint="name the student: --student cnn:channels=[8,16],hidden=16")
    else:
        from slimkit.models import build_model

        name, knobs = student_spec(args.student, build_model(*teacher[:1], **teacher[1]) if teacher else None)
    for shape in ("in_channels", "num_classes", "input_size"):
        knobs.pop(shape, None)  # the data decides these
    return {"registry": name, "knobs": knobs}


def losses(args: argparse.Namespace, student: dict[str, Any], teacher: tuple[str, dict[str, Any]] | None) -> list:
    """The loss specs of ``--method``; feature pairs default to the models' matching stages."""
    import torch

    from slimkit.distillation.methods import default_features, method_losses
    from slimkit.models import build_model

    features: Any = ()
    if args.method in FEATURE_METHODS:
        features = feature_pairs(args.features)
        if features is None:
            if teacher is None:
                raise ConfigError(f"--method {args.method} needs --features for a custom teacher",
                                  hint="e.g. --features features.1=features.2")
            with torch.device("meta"):  # module names only: nothing is allocated
                features = default_features(args.method, build_model(student["registry"], **student["knobs"]),
                                            build_model(teacher[0], **teacher[1]))
    elif args.features:
        raise ConfigError(f"--features is only used by feature methods, not --method {args.method}",
                          hint="use --method fitnet, at, sp, rkd or pkt")
    return method_losses(args.method, temperature=args.temperature, alpha=args.alpha, features=features)


@command("distill", "distill a trained teacher run into a smaller student", add_arguments)
def distill_command(args: argparse.Namespace) -> int:
    first, *others = args.teacher
    model, trust = run_source(args, first)
    teacher = teacher_spec(first)
    student = student_source(args, teacher)
    stage = {"type": "distill", "student": student, "losses": losses(args, student, teacher),
             "student_view": view_spec(args.student_view), "teacher_view": view_spec(args.teacher_view),
             "teachers": [{"run": run} for run in others]}
    data = dataset_config(args, source_data(first))
    threads = [f"distill.train.threads={args.threads}"] if args.threads is not None else []
    dataset = str(data.get("name") or data.get("path") or "data").rstrip("/").split("/")[-1]
    run_stages(args, name="distill", model=model, stages=[stage], data=data, trust=trust, original="source",
               default_out=f"runs/distill-{args.method}-{dataset}",
               flag_overrides=[*stage_overrides(args, FLAGS, "distill"), *threads])
    return 0
