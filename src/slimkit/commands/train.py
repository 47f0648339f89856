"""`slimkit train`: train a registered model (or your own) on a dataset, as a one-stage recipe."""

from __future__ import annotations

import argparse

from slimkit.commands._common import (
    add_data_arguments,
    add_model_argument,
    add_run_arguments,
    add_stage_flags,
    dataset_config,
    run_stages,
    stage_overrides,
)
from slimkit.commands._flags import Flag
from slimkit.commands._registry import command

TRAIN_FLAGS = (
    Flag("--epochs", "epochs", "training epochs"),
    Flag("--lr", "lr", "learning rate"),
    Flag("--optimizer", "optimizer", "optimizer"),
    Flag("--schedule", "schedule", "learning-rate schedule"),
    Flag("--weight-decay", "weight_decay", "weight decay"),
    Flag("--label-smoothing", "label_smoothing", "label smoothing of the cross-entropy"),
    Flag("--device", "device", "auto, cpu or cuda"),
    Flag("--augment", "recipe:data.augment", "light augmentation of the training split"),
)


def model_source(spec_text: str) -> tuple[dict, object]:
    """The recipe's ``model`` for ``--model`` and the trust it needs (a factory the user named)."""
    from slimkit.imports import Trust
    from slimkit.models.spec import parse_model_spec

    spec = parse_model_spec(spec_text)
    if spec.factory is not None:
        return {"factory": spec.factory, "knobs": spec.knobs}, Trust({spec.factory})
    return {"registry": spec.name, "knobs": spec.knobs}, Trust()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser, build=True)
    add_run_arguments(parser, out_help="run folder (default runs/<model>-<dataset>)")
    add_data_arguments(parser)
    add_stage_flags(parser, TRAIN_FLAGS, "train", "training")


@command("train", "train a model on a dataset and save it as a run folder", add_arguments)
def train(args: argparse.Namespace) -> int:
    from slimkit.commands._common import console

    model, trust = model_source(args.model)
    data = dataset_config(args)
    label = args.model.split(":")[0] if "registry" in model else model["factory"].split(":")[-1]
    dataset = args.dataset or "fashion-mnist"
    threads = [f"train.threads={args.threads}"] if args.threads is not None else []
    result = run_stages(args, name="train", model=model, stages=[{"type": "train"}], data=data, trust=trust,
                        default_out=f"runs/{label}-{dataset.rstrip('/').split('/')[-1]}", versus=False,
                        flag_overrides=[*stage_overrides(args, TRAIN_FLAGS, "train"), *threads])
    if result.final is not None:
        quality = result.final["final"]["quality"]
        console.print(f"macro-F1 {quality['f1']:.4f}, ROC-AUC {quality['roc_auc']:.4f}")
    return 0
