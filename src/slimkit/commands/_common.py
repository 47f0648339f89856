"""Arguments and helpers shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from torch import nn

from slimkit.errors import ConfigError

console = Console()


def add_data_arguments(parser: argparse.ArgumentParser, *, default: str | None = "fashion-mnist") -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default=default,
                       help="registered dataset name (see `slimkit datasets`) or a .npz file with x and y arrays")
    group.add_argument("--data-dir", default=None, help="folder holding the dataset files (overrides $SLIMKIT_DATA)")
    group.add_argument("--limit", type=int, default=None, help="cap every split at N samples, for quick runs")
    group.add_argument("--batch-size", type=int, default=128)
    group.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    group.add_argument("--seed", type=int, default=0)


def load_loaders(args: argparse.Namespace, *, dataset: str | None = None, augment: bool = False):
    """Build the loaders named by the data arguments; a path ending in .npz is the user's own data."""
    from slimkit.data import DataConfig, load_data, load_npz, make_loaders

    name = dataset or args.dataset
    if name is None:
        raise ConfigError("no dataset given", hint="pass --dataset NAME or --dataset data.npz")
    if name.endswith(".npz"):
        return make_loaders(load_npz(name, seed=args.seed, limit=args.limit), batch_size=args.batch_size,
                            workers=args.workers, augment=augment)
    config = DataConfig(name=name, root=args.data_dir, limit=args.limit, seed=args.seed,
                        batch_size=args.batch_size, workers=args.workers, augment=augment)
    return load_data(config)


def parse_model_spec(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``cnn``, ``cnn:width=0.5,channels=[8,16]`` into a name and knobs.

    Values are read as YAML scalars or lists, so numbers, booleans and lists need no quoting.
    """
    name, _, rest = text.partition(":")
    knobs: dict[str, Any] = {}
    for item in split_top_level(rest):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"model knob '{item}' in '{text}' is not key=value",
                              hint="write the model as name:key=value,key=value, e.g. cnn:channels=[8,16]")
        knobs[key.strip()] = yaml.safe_load(value)
    return name.strip(), knobs


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[("
        depth -= char in "])"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def build_cli_model(text: str, *, in_channels: int, num_classes: int, input_size: int, seed: int = 0) -> nn.Module:
    """A registered model (``cnn:width=0.5``) or the user's own factory (``pkg.mod:factory``).

    The initial weights come from ``seed``, so the same command gives the same run.
    """
    from slimkit.imports import import_reference
    from slimkit.models import MODELS, build_model
    from slimkit.train.runtime import seed_everything

    seed_everything(seed)
    name, knobs = parse_model_spec(text)
    shape = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}
    if name in MODELS or ":" not in text:
        return build_model(name, **{**shape, **knobs})
    factory = import_reference(text)  # the user named their own code explicitly
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{text} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def ensure_out(path: str | None, default: str) -> Path:
    out = Path(path or default)
    out.mkdir(parents=True, exist_ok=True)
    return out
