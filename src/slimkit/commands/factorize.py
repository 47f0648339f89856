"""`slimkit factorize`: low-rank factorization (SVD, Tucker-2, CP) of a trained run, then recovery."""

from __future__ import annotations

import argparse
import copy

from slimkit.commands._common import (
    add_data_arguments,
    console,
    ensure_out,
    load_loaders,
)
from slimkit.commands._registry import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `slimkit factorize`."""
    parser.add_argument("run", metavar="RUN", help="a run folder or saved model folder")
    parser.add_argument("--method", choices=["svd", "tucker", "cp"], default="tucker")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--rank", type=int, default=None, help="fixed rank (SVD, CP)")
    target.add_argument("--ranks", type=int, nargs=2, metavar=("R_OUT", "R_IN"), default=None, help="Tucker ranks")
    target.add_argument("--energy", type=float, default=None, help="share of singular-value energy kept per layer")
    target.add_argument("--target-params", type=float, default=None, help="share of the model's parameters to keep")
    target.add_argument("--target-macs", type=float, default=None, help="share of the model's MACs to keep")
    parser.add_argument("--allocation", choices=["uniform", "energy", "vbmf"], default="uniform",
                        help="how a --target-* budget is split across layers")
    parser.add_argument("--round-to", type=int, default=1, help="round ranks to multiples of this (8: faster kernels)")
    parser.add_argument("--include", nargs="+", default=["*"], help="layer name globs to factorize")
    parser.add_argument("--exclude", nargs="+", default=[], help="layer name globs to leave alone")
    parser.add_argument("--epochs", type=int, default=1, help="recovery epochs distilling from the original (0: none)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default=None, help="run folder for the result (default RUN-METHOD)")
    add_data_arguments(parser, default=None)


def build_config(args: argparse.Namespace):
    """The SVD/Tucker/CP config the flags describe (validated like YAML would be)."""
    from slimkit.factorization import CP, SVD, Tucker

    kind = {"svd": SVD, "tucker": Tucker, "cp": CP}[args.method]
    options = {"include": args.include, "exclude": args.exclude, "allocation": args.allocation,
               "round_to": args.round_to, "seed": args.seed}
    for flag, field in (("rank", "rank"), ("ranks", "ranks"), ("energy", "energy"),
                        ("target_params", "target_params"), ("target_macs", "target_macs")):
        if getattr(args, flag) is not None:
            options[field] = getattr(args, flag)
    return kind.from_dict(options, source="slimkit factorize")


@command("factorize", "replace layers by low-rank SVD, Tucker-2 or CP blocks, then recover", add_arguments)
def factorize_command(args: argparse.Namespace) -> int:
    """Factorize RUN, recover by distillation, evaluate, and write the result as a run folder."""
    from slimkit.commands.evaluate import dataset_of
    from slimkit.factorization import factorize
    from slimkit.rundir import load_run_model, write_run
    from slimkit.transform import example_input, recover_from
    from slimkit.transform.summary import before_after_table, cost_summary

    config = build_config(args)
    model = load_run_model(args.run)
    loaders = load_loaders(args, dataset=dataset_of(args, args.run))
    example = example_input(model, next(iter(loaders.test))[0][:1])
    original = copy.deepcopy(model)
    before = cost_summary(original, example, loader=loaders.test)
    factorize(model, config, example_inputs=example)
    if args.epochs > 0:
        recover_from(model, original, loaders.train, val_loader=loaders.val, epochs=args.epochs, lr=args.lr)
    after = cost_summary(model, example, loader=loaders.test)
    report = model.factorize_report
    out = ensure_out(args.out, f"{str(args.run).rstrip('/')}-{args.method}")
    write_run(out, model, {"command": "factorize", "source": str(args.run), "dataset": loaders.splits.name,
                           "config": config.to_dict(), "epochs": args.epochs, "report": report.to_dict(),
                           "before": before, "after": after})
    for skipped in report.skipped:
        console.print(f"skipped {skipped['layer']}: {skipped['reason']}")
    console.print(before_after_table(before, after, f"{args.method} factorization -> {out}"))
    return 0
