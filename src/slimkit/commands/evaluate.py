"""`slimkit evaluate` and `slimkit compare`: measure a model, or two models side by side."""

from __future__ import annotations

import argparse

from rich.table import Table

from slimkit.commands._common import add_data_arguments, console, load_loaders
from slimkit.commands._registry import command


def dataset_of(args: argparse.Namespace, run: str) -> str | None:
    """The dataset given on the command line, else the one the run was trained on."""
    from slimkit.rundir import read_run

    return args.dataset or read_run(run).get("dataset")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_OR_MODEL", help="a run folder or a saved model folder")
    add_data_arguments(parser, default=None)
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")


@command("evaluate", "measure accuracy, F1, ROC-AUC, calibration and robustness of a saved model",
         add_evaluate_arguments)
def evaluate(args: argparse.Namespace) -> int:
    from slimkit.evaluate import predict, quality, robustness
    from slimkit.fileio import atomic_write_json
    from slimkit.rundir import load_run_model

    model = load_run_model(args.run)
    loaders = load_loaders(args, dataset=dataset_of(args, args.run))
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
    add_data_arguments(parser, default=None)
    parser.add_argument("--threads", type=int, default=None, help="fixed thread count for timing (default: all cores)")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per model and batch size")
    parser.add_argument("--json", default=None, help="also write the comparison to this JSON file")


@command("compare", "measure two models in one process: quality, size, MACs and latency ratios",
         add_compare_arguments)
def compare(args: argparse.Namespace) -> int:
    from slimkit.evaluate import compare as compare_models
    from slimkit.fileio import atomic_write_json
    from slimkit.rundir import load_run_model

    a, b = load_run_model(args.a), load_run_model(args.b)
    loaders = load_loaders(args, dataset=dataset_of(args, args.a))
    result = compare_models(a, b, loaders.test, names=("A", "B"), threads=args.threads, repeats=args.repeats)
    console.print(result.table())
    console.print(result.summary())
    if args.json:
        atomic_write_json(args.json, result.to_dict())
    return 0
