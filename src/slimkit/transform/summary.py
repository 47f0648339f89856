"""Before/after cost summaries shared by the compression commands (factorize, share, fuse, lighten)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from torch import nn


def cost_summary(model: nn.Module, example: Any, *, loader: Iterable | None = None,
                 size: int | None = None) -> dict[str, Any]:
    """``params``, ``macs`` (per sample, when ``example`` is known: model inputs as
    :mod:`slimkit.modelio` reads them), ``bytes`` (the saved file, or ``size`` when the caller
    measured another artifact) and ``accuracy`` (with ``loader``).

    >>> import torch
    >>> cost_summary(nn.Linear(3, 2), torch.zeros(1, 3))["macs"]
    6
    """
    from slimkit.evaluate import (
        accuracy,
        artifact_bytes,
        count_macs,
        count_params,
        predict,
    )
    from slimkit.modelio import take

    row: dict[str, Any] = {"params": count_params(model), "macs": count_macs(model, take(example, 1)) if example is not None else None,
                           "bytes": size if size is not None else artifact_bytes(model)}
    if loader is not None:
        row["accuracy"] = float(accuracy(*predict(model, loader).pair()))
    return row


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if key == "accuracy" else f"{value:,}"


def _ratio(key: str, before: Any, after: Any) -> str:
    if before is None or after is None:
        return ""
    if key == "accuracy":
        return f"{(after - before) * 100:+.2f} pts"
    return f"{before / after:.2f}x smaller" if after else ""


def before_after_table(before: dict[str, Any], after: dict[str, Any], title: str) -> Table:
    """A rich table of every shared key: before, after, and the ratio (or accuracy delta)."""
    table = Table("", "before", "after", "change", title=title)
    for key in ("params", "macs", "bytes", "accuracy"):
        if key in before or key in after:
            table.add_row(key, _fmt(key, before.get(key)), _fmt(key, after.get(key)),
                          _ratio(key, before.get(key), after.get(key)))
    return table
