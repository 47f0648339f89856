"""`slimkit prune RUN`: prune a trained run, fine-tune it by distillation, save and compare it."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

from slimkit.commands._common import (
    add_data_arguments,
    console,
    ensure_out,
    load_loaders,
)
from slimkit.commands._registry import command

UNSTRUCTURED = ("magnitude",)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how much (structured: one of ratio/target-*/latency)")
    group.add_argument("--ratio", type=float, default=None, help="share of channels to remove, in (0, 1)")
    group.add_argument("--target-macs", type=float, default=None, help="share of the original MACs to keep (0.5 = 2x fewer)")
    group.add_argument("--target-params", type=float, default=None, help="share of the original parameters to keep")
    group.add_argument("--latency-ms", type=float, default=None, help="latency budget in ms (batch --latency-batch)")
    group.add_argument("--latency-batch", type=int, default=1)
    group.add_argument("--amount", type=float, default=0.5, help="unstructured (magnitude): share of weights zeroed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from slimkit.pruning import IMPORTANCE

    parser.add_argument("run", metavar="RUN", help="a run folder (or saved model folder) to prune")
    parser.add_argument("--method", default="l1", choices=[*IMPORTANCE.names(), *UNSTRUCTURED],
                        help="structured criterion, or 'magnitude' for unstructured weight pruning")
    add_target_arguments(parser)
    parser.add_argument("--allocation", choices=["uniform", "global"], default="uniform")
    parser.add_argument("--scope", choices=["layer", "global"], default="global", help="unstructured: per layer or global")
    parser.add_argument("--round-to", type=int, default=None, help="round kept channel counts to a multiple")
    parser.add_argument("--keep", action="append", default=[], metavar="GLOB", help="layers to leave whole (repeatable)")
    parser.add_argument("--sensitivity", action="store_true",
                        help="choose per-layer ratios by sensitivity analysis to meet --target-macs/--target-params")
    parser.add_argument("--target-latency", type=float, default=None, metavar="SHARE",
                        help="with --sensitivity: also keep at most this share of the measured latency at "
                             "--latency-batch (every single-layer cut is timed)")
    parser.add_argument("--finetune-epochs", type=int, default=1, help="recovery epochs (0 = none)")
    parser.add_argument("--lr", type=float, default=5e-4, help="recovery learning rate")
    parser.add_argument("--no-distill", action="store_true", help="recover with cross-entropy instead of KD from the original")
    parser.add_argument("--out", default=None, help="run folder for the pruned model (default RUN-pruned-METHOD)")
    add_data_arguments(parser, default=None)


def build_config(args: argparse.Namespace, model: Any, loaders: Any) -> Any:
    """The pruning config the arguments describe (per-layer ratios from sensitivity if asked)."""
    from slimkit.errors import ConfigError
    from slimkit.pruning import (
        StructuredPruning,
        UnstructuredPruning,
        choose_ratios,
        sensitivity,
    )

    if args.method in UNSTRUCTURED:
        return UnstructuredPruning(method=args.method, amount=args.amount, scope=args.scope,
                                   exclude=tuple(args.keep))
    target = {"ratio": args.ratio, "target_macs": args.target_macs, "target_params": args.target_params,
              "latency_ms": args.latency_ms}
    common = {"criterion": args.method, "allocation": args.allocation, "round_to": args.round_to,
              "keep": tuple(args.keep), "latency_batch_size": args.latency_batch}
    if args.target_latency is not None and not args.sensitivity:
        raise ConfigError("--target-latency is a sensitivity target", hint="add --sensitivity")
    if not args.sensitivity:
        return StructuredPruning(**common, **{k: v for k, v in target.items() if v is not None})
    if (args.target_macs is None) == (args.target_params is None):
        raise ConfigError("--sensitivity chooses ratios for --target-macs or --target-params; give exactly one")
    result = sensitivity(model, loaders.val, criterion=args.method, keep=tuple(args.keep), round_to=args.round_to,
                         loader=loaders.train, max_batches=20,
                         latency_batch_size=None if args.target_latency is None else args.latency_batch)
    ratios = choose_ratios(result, target_macs=args.target_macs, target_params=args.target_params,
                           target_latency=args.target_latency)
    console.print(f"sensitivity chose {ratios}")
    return StructuredPruning(**{**common, "allocation": "uniform"}, ratios=ratios)


def measure(model: Any, loaders: Any) -> dict[str, Any]:
    import torch

    from slimkit.evaluate import artifact_bytes, count_macs, count_nonzero, count_params
    from slimkit.train import evaluate_loss_acc

    x = next(iter(loaders.test))[0][:1]
    with torch.no_grad():
        accuracy = evaluate_loss_acc(model, loaders.test)[1]
    return {"accuracy": accuracy, "params": count_params(model), "nonzero": count_nonzero(model),
            "macs": count_macs(model, x), "bytes": artifact_bytes(model)}


@command("prune", "prune a trained model (structured channels or unstructured weights) and fine-tune it", add_arguments)
def prune_command(args: argparse.Namespace) -> int:
    from slimkit.commands.evaluate import dataset_of
    from slimkit.fileio import atomic_write_json
    from slimkit.pruning import finetune, make_permanent, prune, save_sparse, sparse_bytes
    from slimkit.rundir import load_run_model, write_run

    original = load_run_model(args.run)
    loaders = load_loaders(args, dataset=dataset_of(args, args.run))
    model = copy.deepcopy(original)
    config = build_config(args, model, loaders)
    prune(model, config, loader=loaders.train)
    if args.finetune_epochs > 0:
        finetune(model, original, loaders.train, val_loader=loaders.val, epochs=args.finetune_epochs, lr=args.lr,
                 distill=not args.no_distill, seed=args.seed)
    out = ensure_out(args.out, f"{str(args.run).rstrip('/')}-pruned-{args.method}")
    if args.method in UNSTRUCTURED:
        make_permanent(model)  # plain sparse weights: what is saved and measured
    before, after = measure(original, loaders), measure(model, loaders)
    record = {"command": "prune", "source": str(args.run), "dataset": dataset_of(args, args.run), "method": args.method,
              "config": config.to_dict(), "finetune_epochs": args.finetune_epochs, "distill": not args.no_distill,
              "original": before, "pruned": after}
    if args.method in UNSTRUCTURED:
        record["pruned"]["sparse_bytes"] = sparse_bytes(model)
        save_sparse(model, Path(out) / "sparse")
    write_run(out, model, record)
    atomic_write_json(Path(out) / "prune.json", record)
    console.print(summary(before, after, out))
    return 0


def summary(before: dict[str, Any], after: dict[str, Any], out: Path) -> str:
    size = after.get("sparse_bytes", after["bytes"])
    return (f"[bold]{out}[/]: accuracy {before['accuracy']:.2%} -> {after['accuracy']:.2%}; "
            f"params {before['params']:,} -> {after['params']:,} ({after['nonzero']:,} nonzero); "
            f"MACs {before['macs'] / max(after['macs'], 1):.2f}x fewer; bytes {before['bytes'] / size:.2f}x smaller")
