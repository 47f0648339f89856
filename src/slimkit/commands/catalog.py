"""`slimkit datasets` and `slimkit models`: what is available."""

from __future__ import annotations

import argparse

from rich.table import Table

from slimkit.commands._common import console
from slimkit.commands._registry import command


def no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@command("datasets", "list the registered datasets", no_arguments)
def datasets(args: argparse.Namespace) -> int:
    from slimkit.data import DATASETS

    table = Table("name", "description", title="datasets")
    for name in DATASETS.names():
        table.add_row(name, DATASETS.meta(name).get("doc", ""))
    console.print(table)
    return 0


@command("models", "list the registered models with their default parameter counts", no_arguments)
def models(args: argparse.Namespace) -> int:
    from slimkit.models import LIBRARY_MODELS, MODELS

    table = Table("name", "params (28x28, 10 classes)", "input sizes", "description", title="models")
    for name in MODELS.names():
        meta = MODELS.meta(name)
        table.add_row(name, f"{meta.get('params', 0):,}", ", ".join(map(str, meta.get("input_sizes", ()))),
                      meta.get("doc", ""))
    for name in LIBRARY_MODELS.names():  # built from another library's config (Hugging Face: slimkit[hf])
        table.add_row(name, "-", "-", LIBRARY_MODELS.meta(name).get("doc", ""))
    console.print(table)
    return 0
