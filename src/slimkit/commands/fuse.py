"""`slimkit fuse`: fold BatchNorm into the preceding Conv/Linear of a trained run."""

from __future__ import annotations

import argparse
import copy

from slimkit.commands._common import console, ensure_out
from slimkit.commands._registry import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `slimkit fuse`."""
    parser.add_argument("run", metavar="RUN", help="a run folder or saved model folder")
    parser.add_argument("--relu", action="store_true", help="also pair ReLUs (ConvReLU modules, for quantization)")
    parser.add_argument("--include", nargs="+", default=["*"], help="layer name globs to fuse")
    parser.add_argument("--exclude", nargs="+", default=[], help="layer name globs to leave alone")
    parser.add_argument("--out", default=None, help="run folder for the result (default RUN-fused)")


@command("fuse", "fold BatchNorm into the conv/linear before it (same outputs, fewer layers)", add_arguments)
def fuse_command(args: argparse.Namespace) -> int:
    """Fold RUN's BatchNorms, check parity on random inputs, write a run folder."""
    import torch

    from slimkit.rundir import load_run_model, read_run, write_run
    from slimkit.transform import FuseConfig, example_input, fuse
    from slimkit.transform.summary import before_after_table, cost_summary

    config = FuseConfig(include=args.include, exclude=args.exclude, relu=args.relu)
    model = load_run_model(args.run).eval()
    original = copy.deepcopy(model)
    example = example_input(model)
    before = cost_summary(original, example)
    fuse(model, config)
    after = cost_summary(model, example)
    diff = None
    if example is not None:
        x = torch.randn(8, *example.shape[1:], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            diff = float((model(x) - original(x)).abs().max())
    out = ensure_out(args.out, f"{str(args.run).rstrip('/')}-fused")
    write_run(out, model, {"command": "fuse", "source": str(args.run), "dataset": read_run(args.run).get("dataset"),
                           "config": config.to_dict(), "fused": model.fuse_report.fused, "max_abs_diff": diff,
                           "before": before, "after": after})
    console.print(before_after_table(before, after, f"fused {len(model.fuse_report.fused)} BatchNorms -> {out}"))
    if diff is not None:
        console.print(f"max |fused - original| on random inputs: {diff:.2e}")
    return 0
