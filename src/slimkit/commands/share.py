"""`slimkit share`: k-means weight sharing of a trained run (optionally the full Deep Compression)."""

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
from slimkit.errors import ConfigError

ENCODED = "model.skc"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `slimkit share`."""
    parser.add_argument("run", metavar="RUN", help="a run folder or saved model folder")
    parser.add_argument("--bits", type=int, default=5, help="index bits per weight: k = 2**bits shared values")
    parser.add_argument("--k", type=int, default=None, help="number of shared values (overrides --bits)")
    parser.add_argument("--layer-bits", nargs="+", default=[], metavar="GLOB=BITS",
                        help="bits for some layers, e.g. 'features.*=8' (first match wins)")
    parser.add_argument("--init", choices=["linear", "density", "random"], default="linear")
    parser.add_argument("--include", nargs="+", default=["*"], help="layer name globs to share")
    parser.add_argument("--exclude", nargs="+", default=[], help="layer name globs to leave alone")
    parser.add_argument("--sparsity", nargs="+", default=None, metavar="[GLOB=]FRACTION",
                        help="prune by magnitude first (Deep Compression), e.g. 0.9 or 'features.*=0.6' '*=0.9'")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tune epochs after each stage (0: none)")
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate of the centroid fine-tune")
    parser.add_argument("--out", default=None, help="run folder for the result (default RUN-shared)")
    add_data_arguments(parser, default=None)


def _pairs(items: list[str], flag: str, kind: type) -> dict:
    out = {}
    for item in items:
        glob, sep, value = item.rpartition("=")
        try:
            out[glob if sep else "*"] = kind(value)
        except ValueError:
            raise ConfigError(f"{flag} {item!r} is not [GLOB=]{kind.__name__}",
                              hint=f"e.g. {flag} 'features.*=8'") from None
    return out


@command("share", "k-means weight sharing + Huffman coding (with --sparsity: full Deep Compression)", add_arguments)
def share_command(args: argparse.Namespace) -> int:
    """Share weights of RUN (after pruning with --sparsity), fine-tune, encode, write a run folder."""
    from slimkit.commands.evaluate import dataset_of
    from slimkit.rundir import load_run_model, write_run
    from slimkit.sharing import (
        DeepCompressionConfig,
        ShareConfig,
        deep_compress,
        encode,
        share,
    )
    from slimkit.transform import example_input, recover_from
    from slimkit.transform.summary import before_after_table, cost_summary

    config = ShareConfig.from_dict({"bits": args.bits, "k": args.k, "bits_by_layer": _pairs(args.layer_bits, "--layer-bits", int),
                                    "init": args.init, "include": args.include, "exclude": args.exclude,
                                    "seed": args.seed}, source="slimkit share")
    model = load_run_model(args.run)
    loaders = load_loaders(args, dataset=dataset_of(args, args.run))
    example = example_input(model, next(iter(loaders.test))[0][:1])
    original = copy.deepcopy(model)
    before = cost_summary(original, example, loader=loaders.test)
    out = ensure_out(args.out, f"{str(args.run).rstrip('/')}-shared")
    record = {"command": "share", "source": str(args.run), "dataset": loaders.splits.name, "config": config.to_dict()}
    train = loaders.train if args.epochs else None
    if args.sparsity:
        dc = DeepCompressionConfig(sparsity=_pairs(args.sparsity, "--sparsity", float), share=config,
                                   prune_epochs=args.epochs, share_epochs=args.epochs, share_lr=args.lr)
        result = deep_compress(model, dc, train_loader=train, val_loader=loaders.val, eval_loader=loaders.test,
                               out=out / ENCODED)
        record["stages"] = result.stages
        size = result.stages[-1]["bytes"]
    else:
        share(model, config)
        if train is not None:
            recover_from(model, original, train, val_loader=loaders.val, epochs=args.epochs, lr=args.lr)
        size = encode(model, out / ENCODED)
    after = cost_summary(model, example, loader=loaders.test, size=size)
    record.update(before=before, after=after, encoded=ENCODED, report=model.share_report)
    write_run(out, model, record)
    for stage in record.get("stages", []):
        acc = f", accuracy {stage['accuracy']:.2%}" if stage["accuracy"] is not None else ""
        console.print(f"{stage['stage']:>9}: {stage['bytes']:,} bytes ({stage['ratio']:.1f}x){acc}")
    console.print(before_after_table(before, after, f"weight sharing -> {out / ENCODED}"))
    return 0
