"""Pareto fronts of search results: which rows no other row beats, as a table and a plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slimkit.errors import ConfigError

__all__ = ["OBJECTIVES", "dominates", "front_markdown", "pareto_front", "plot_front"]

#: Every objective a search can use: the row key and whether higher is better.
OBJECTIVES: dict[str, str] = {
    "accuracy": "maximize",
    "latency_b1_ms": "minimize",
    "latency_b256_ms": "minimize",
    "params": "minimize",
    "macs": "minimize",
}


def _directions(directions: Mapping[str, str]) -> dict[str, str]:
    bad = {k: v for k, v in directions.items() if v not in ("maximize", "minimize")}
    if not directions or bad:
        raise ConfigError(f"objective directions must be 'maximize' or 'minimize', got {dict(directions)}",
                          hint="e.g. {'accuracy': 'maximize', 'latency_b1_ms': 'minimize'}")
    return dict(directions)


def dominates(a: Mapping[str, float], b: Mapping[str, float], directions: Mapping[str, str]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one.

    >>> d = {"accuracy": "maximize", "latency": "minimize"}
    >>> dominates({"accuracy": 0.9, "latency": 1.0}, {"accuracy": 0.8, "latency": 1.0}, d)
    True
    >>> dominates({"accuracy": 0.9, "latency": 2.0}, {"accuracy": 0.8, "latency": 1.0}, d)
    False
    """
    better = False
    for key, direction in directions.items():
        x, y = (a[key], b[key]) if direction == "maximize" else (-a[key], -b[key])
        if x < y:
            return False
        better = better or x > y
    return better


def pareto_front(rows: Sequence[Mapping[str, Any]], directions: Mapping[str, str]) -> list[int]:
    """Indices of the rows no other row dominates, in input order (equal rows are all kept).

    >>> rows = [{"acc": 0.9, "ms": 2.0}, {"acc": 0.8, "ms": 1.0}, {"acc": 0.7, "ms": 1.5}]
    >>> pareto_front(rows, {"acc": "maximize", "ms": "minimize"})
    [0, 1]
    """
    directions = _directions(directions)
    for i, row in enumerate(rows):
        missing = [k for k in directions if not isinstance(row.get(k), (int, float))]
        if missing:
            raise ConfigError(f"row {i} has no numeric value for objective(s) {missing}: {dict(row)}",
                              hint=f"every row needs {sorted(directions)}")
    return [i for i, row in enumerate(rows)
            if not any(dominates(other, row, directions) for j, other in enumerate(rows) if j != i)]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return str(value)


def front_markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` showing ``columns`` (lists shown as ``8-16``).

    >>> print(front_markdown([{"trial": 3, "widths": [8, 16], "accuracy": 0.9}], ["trial", "widths", "accuracy"]))
    | trial | widths | accuracy |
    |---|---|---|
    | 3 | 8-16 | 0.9000 |
    """
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def plot_front(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    x: str = "latency_b1_ms",
    y: str = "accuracy",
    directions: Mapping[str, str] | None = None,
    highlight: Mapping[str, Mapping[str, Any]] | None = None,
    title: str = "student search",
) -> Path:
    """Scatter every row (``x`` against ``y``), draw the Pareto front as a step line, mark the
    ``highlight`` rows by label (e.g. ``{"chosen": row, "default student": row}``); write a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and workers
    import matplotlib.pyplot as plt

    from slimkit.fileio import atomic_path

    directions = directions or {x: OBJECTIVES.get(x, "minimize"), y: OBJECTIVES.get(y, "maximize")}
    front = sorted((rows[i] for i in pareto_front(rows, directions)), key=lambda r: r[x])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.scatter([r[x] for r in rows], [r[y] for r in rows], s=14, c="#9aa5b1", label="trials")
    if front:
        ax.step([r[x] for r in front], [r[y] for r in front], where="post", c="#1f6feb", lw=1.5)
        ax.scatter([r[x] for r in front], [r[y] for r in front], s=26, c="#1f6feb", label="Pareto front")
    for (label, row), marker in zip((highlight or {}).items(), "*Dsv^"):
        ax.scatter([row[x]], [row[y]], s=110, marker=marker, label=label, zorder=3)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
