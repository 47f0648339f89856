"""`slimkit evaluate` and `slimkit compare`: measure a model, or two models side by side."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from slimkit.commands._common import add_data_arguments, console, dataset_config, source_data
from slimkit.commands._registry import command


def load_model_and_data(args: argparse.Namespace, run: str) -> tuple[Any, Any]:
    """The model a run or model folder holds (a custom one through --model / --trust-code), and
    the loaders of the data it was trained on (or the data flags)."""
    from slimkit.data import DataConfig, load_data
    from slimkit.imports import Trust
    from slimkit.models.spec import parse_model_spec
    from slimkit.recipe.runfolder import load_run_model, model_folder, recorded_factory

    factory, knobs, trust = None, None, Trust()
    if getattr(args, "model", None):
        spec = parse_model_spec(args.model)
        factory, knobs = spec.factory, spec.knobs
    elif getattr(args, "trust_code", False):
        ref = recorded_factory(model_folder(run))
        trust = Trust({ref} if ref else ())
    model = load_run_model(run, trust=trust, factory=factory, knobs=knobs)
    return model, load_data(DataConfig.from_dict(dataset_config(args, source_data(run)), source="data flags"))


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="package.module:factory building a custom model's architecture "
                                                      "(runs YOUR code); registry models need none")
    parser.add_argument("--trust-code", action="store_true",
                        help="import the factory the folder records for its custom model (your own code)")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_OR_MODEL", help="a run folder or a saved model folder")
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")


@command("evaluate", "measure accuracy, F1, ROC-AUC, calibration and robustness of a saved model",
         add_evaluate_arguments)
def evaluate(args: argparse.Namespace) -> int:
    from slimkit.evaluate import predict, quality, robustness
    from slimkit.fileio import atomic_write_json

    model, loaders = load_model_and_data(args, args.run)
    metrics = quality(*predict(model, loaders.test).pair())
    metrics["robustness"] = robustness(model, loaders.test)
    table = Table("metric", "value", title=f"{args.run} on {loaders.splits.name} (test, n={len(loaders.splits.test)})")
    for key in ("accuracy", "top5", "precision", "recall", "f1", "roc_auc", "pr_auc", "ece"):
        if key in metrics:
            table.add_row(key, f"{metrics[key]:.4f}")
    for key, value in metrics["robustness"].items():
        table.add_row(f"robustness {key}", f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    if args.json:
        atomic_write_json(args.json, metrics)
    return 0


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="reference run or model folder (e.g. the original)")
    parser.add_argument("b", metavar="B", help="candidate run or model folder (e.g. the compressed one)")
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--threads", type=int, default=None, help="fixed thread count for timing (default: all cores)")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per model and batch size")
    parser.add_argument("--json", default=None, help="also write the comparison to this JSON file")


@command("compare", "measure two models in one process: quality, size, MACs and latency ratios",
         add_compare_arguments)
def compare(args: argparse.Namespace) -> int:
    from slimkit.evaluate import CompareConfig
    from slimkit.evaluate import compare as compare_models
    from slimkit.fileio import atomic_write_json

    a, loaders = load_model_and_data(args, args.a)
    b, _ = load_model_and_data(args, args.b)
    config = CompareConfig(threads=args.threads, repeats=args.repeats)
    result = compare_models(a, b, loaders.test, config, names=("A", "B"))
    console.print(result.table())
    console.print(result.summary())
    if args.json:
        atomic_write_json(args.json, result.to_dict())
    return 0
