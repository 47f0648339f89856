"""`slimkit train`: train a registered model (or the user's own) on a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.commands._common import (
    add_data_arguments,
    build_cli_model,
    console,
    ensure_out,
    load_loaders,
)
from slimkit.commands._registry import command


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=6)
    group.add_argument("--lr", type=float, default=None, help="learning rate (default: the optimizer's)")
    group.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    group.add_argument("--schedule", choices=["cosine", "onecycle", "constant"], default=None,
                       help="learning-rate schedule (default: one-cycle)")
    group.add_argument("--weight-decay", type=float, default=None)
    group.add_argument("--label-smoothing", type=float, default=0.0)
    group.add_argument("--augment", action="store_true", help="light augmentation of the training split")
    group.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda")
    group.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    group.add_argument("--no-progress", action="store_true", help="no live progress bar")


def train_config(args: argparse.Namespace):
    from slimkit.train import TrainConfig

    options = {"epochs": args.epochs, "optimizer": args.optimizer, "label_smoothing": args.label_smoothing, "seed": args.seed, "threads": args.threads,
               "device": args.device, "progress": not args.no_progress}
    if args.schedule is not None:
        options["schedule"] = args.schedule
    if args.lr is not None:
        options["lr"] = args.lr
    if args.weight_decay is not None:
        options["weight_decay"] = args.weight_decay
    return TrainConfig(**options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="cnn",
                        help="registry spec such as cnn or cnn:channels=[8,16],hidden=32, or pkg.module:factory "
                             "(runs YOUR code: it is imported and called with no arguments)")
    parser.add_argument("--out", default=None, help="run folder (default runs/<model>-<dataset>)")
    add_data_arguments(parser)
    add_train_arguments(parser)



def train_run(model: nn.Module, loaders: Any, config: Any, out: Path, record: dict[str, Any], *,
              resume: bool = False) -> dict[str, Any]:
    """Train (resuming when asked), evaluate on the test split, and save model plus record."""
    from slimkit.evaluate import predict, quality
    from slimkit.rundir import write_run
    from slimkit.train import Trainer

    result = Trainer(model, config, out_dir=out).fit(loaders.train, loaders.val, resume=resume)
    test = quality(*predict(model, loaders.test).pair())
    record = {**record, "train": config.to_dict(), "history": result.history,
              "best_epoch": result.best_epoch, "test": {k: test[k] for k in ("accuracy", "f1", "roc_auc", "ece")}}
    write_run(out, model, record)
    return record


@command("train", "train a model on a dataset and save it as a run folder", add_arguments)
def train(args: argparse.Namespace) -> int:
    loaders = load_loaders(args, augment=args.augment)
    splits = loaders.splits
    model = build_cli_model(args.model, in_channels=splits.input_shape[0], num_classes=splits.num_classes,
                            input_size=splits.input_shape[-1], seed=args.seed)
    out = ensure_out(args.out, f"runs/{args.model.split(':')[0]}-{splits.name}")
    record = train_run(model, loaders, train_config(args), out,
                       {"command": "train", "model": args.model, "dataset": args.dataset, "limit": args.limit,
                        "seed": args.seed}, resume=args.resume)
    test = record["test"]
    console.print(f"[bold]{out}[/]: test accuracy {test['accuracy']:.2%}, macro-F1 {test['f1']:.4f}, "
                  f"ROC-AUC {test['roc_auc']:.4f}")
    return 0
