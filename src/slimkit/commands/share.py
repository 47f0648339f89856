"""`slimkit share RUN`: k-means weight sharing + Huffman coding (with --sparsity: Deep Compression)."""

from __future__ import annotations

import argparse

from slimkit.commands._common import (
    add_stage_flags,
    add_technique_arguments,
    run_technique,
    stage_overrides,
)
from slimkit.commands._flags import Flag, encode
from slimkit.commands._registry import command
from slimkit.errors import ConfigError

FLAGS = (
    Flag("--bits", "bits", "index bits per weight: k = 2**bits shared values"),
    Flag("--k", "k", "number of shared values (overrides --bits)"),
    Flag("--init", "init", "centroid initialisation"),
    Flag("--include", "include", "layer name globs to share (repeatable)"),
    Flag("--exclude", "exclude", "layer name globs to leave alone (repeatable)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer-bits", nargs="+", default=[], metavar="GLOB=BITS",
                        help="bits for some layers, e.g. 'features.*=8' (first match wins)")
    parser.add_argument("--sparsity", nargs="+", default=None, metavar="[GLOB=]FRACTION",
                        help="prune by magnitude first (Deep Compression), e.g. 0.9 or 'features.*=0.6' '*=0.9'")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tune epochs after each step (0: none; default 1)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of the centroid fine-tune (default: the share stage's, 1e-4)")
    add_technique_arguments(parser, "run folder for the result (default RUN-shared)")
    add_stage_flags(parser, FLAGS, "share", "weight sharing")


def pairs(items: list[str], flag: str, kind: type) -> dict[str, float | int]:
    """``['features.*=8', '4']`` -> ``{'features.*': 8, '*': 4}`` (order kept: first match wins)."""
    out: dict[str, float | int] = {}
    for item in items:
        glob, sep, value = item.rpartition("=")
        try:
            out[glob if sep else "*"] = kind(value)
        except ValueError:
            raise ConfigError(f"{flag} {item!r} is not [GLOB=]{kind.__name__}", hint=f"e.g. {flag} 'features.*=8'") from None
    return out


def prune_stages(sparsity: dict[str, float], epochs: int) -> list[dict]:
    """Magnitude pruning per glob, first match wins (later globs exclude the earlier ones)."""
    stages, earlier = [], []
    for glob, amount in sparsity.items():
        stages.append({"type": "prune", "name": f"prune{len(stages) + 1}" if len(sparsity) > 1 else "prune",
                       "unstructured": {"amount": amount, "include": [glob], "exclude": list(earlier)},
                       "finetune": {"epochs": epochs, "lr": 1e-2}})
        earlier.append(glob)
    return stages


@command("share", "k-means weight sharing + Huffman coding (with --sparsity: full Deep Compression)", add_arguments)
def share_command(args: argparse.Namespace) -> int:
    share: dict = {"type": "share", "finetune": {"epochs": args.epochs}}
    if args.lr is not None:
        share["finetune"]["lr"] = args.lr
    extra = []
    if args.layer_bits:
        extra.append(f"share.bits_by_layer={encode(pairs(args.layer_bits, '--layer-bits', int))}")
    stages = prune_stages(pairs(args.sparsity, "--sparsity", float), args.epochs) if args.sparsity else []
    stages += [share, {"type": "export", "format": "encoded"}]
    return run_technique(args, "share", stages, suffix="shared", overrides=[*stage_overrides(args, FLAGS, "share"), *extra])
