"""Read a recipe run folder into one object the report writers and plots share."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimkit.errors import CheckpointError

BENCHMARKS_FILE = "benchmarks.json"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})", hint="rerun the recipe with --resume") from None


@dataclass
class RunData:
    """Everything a report shows: the resolved recipe, status, original, stages, final comparison.

    ``stages`` holds the ``metrics.json`` of every finished stage, in order. ``benchmarks`` are
    extra points for the Pareto plots: ``{"label", "accuracy", "bytes", "latency_ms": {batch: ms}}``.
    """

    out: Path
    recipe: dict[str, Any]
    status: dict[str, Any]
    original: dict[str, Any] | None
    stages: list[dict[str, Any]]
    final: dict[str, Any] | None
    benchmarks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.recipe.get("name", self.out.name))

    @property
    def batch_sizes(self) -> list[str]:
        return [str(b) for b in self.recipe.get("evaluation", {}).get("batch_sizes", [])]

    def points(self) -> list[dict[str, Any]]:
        """One point per measured model: the original, then each stage (label, accuracy, bytes, latency)."""
        out = []
        if self.original:
            out.append({"label": "original", "accuracy": self.original["quality"]["accuracy"],
                        "bytes": self.original["cost"]["bytes"], "latency_ms": _medians(self.original.get("latency")),
                        "kind": "original", "same_data": True})
        for stage in self.stages:
            same = self.original is None or stage.get("data") == self.original.get("data")
            out.append({"label": f"{stage['number']}. {stage['name']}", "accuracy": stage["quality"]["accuracy"],
                        "bytes": stage["cost"]["bytes"], "latency_ms": _medians(stage.get("latency")),
                        "kind": "stage", "same_data": same})
        for point in self.benchmarks:
            out.append({**point, "kind": "benchmark", "same_data": True})
        return out


def _medians(latency: dict[str, Any] | None) -> dict[str, float]:
    return {b: s["median_ms"] for b, s in (latency or {}).items() if s and s.get("median_ms") is not None}


def _benchmark_points(files: Sequence[Path]) -> list[dict[str, Any]]:
    points = []
    for file in files:
        data = _read(Path(file))
        if data is None:
            raise CheckpointError(f"no benchmark file at {file}")
        for point in data.get("points", []) if isinstance(data, dict) else []:
            if {"label", "accuracy", "bytes"} <= set(point):
                points.append({"latency_ms": {}, **point})
    return points


def read_run(out: str | Path, *, benchmarks: Sequence[str | Path] = ()) -> RunData:
    """Read the run folder ``out`` written by ``slimkit run`` (finished or not)."""
    out = Path(out)
    recipe = _read(out / "recipe.resolved.json")
    status = _read(out / "status.json")
    if recipe is None or status is None:
        raise CheckpointError(f"{out} is not a recipe run (no recipe.resolved.json or status.json)",
                              hint="pass the --out folder of `slimkit run`")
    stages = []
    for entry in status.get("stages", []):
        metrics = _read(out / entry["folder"] / "metrics.json")
        if metrics is not None:
            stages.append(metrics)
    files = [Path(b) for b in benchmarks]
    if (out / BENCHMARKS_FILE).is_file():
        files.append(out / BENCHMARKS_FILE)
    return RunData(out, recipe, status, _read(out / "original.json"), stages, _read(out / "final.json"),
                   _benchmark_points(files))


# ---------------------------------------------------------------------- formatting
def fmt_int(n: float | None) -> str:
    """``1234567`` -> ``1.23M``."""
    if n is None:
        return "n/a"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{int(n)}"


def fmt_bytes(n: float | None) -> str:
    """``2048`` -> ``2.0 KB``."""
    if n is None:
        return "n/a"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def fmt_times(ratio: float | None, more: str = "", less: str = "") -> str:
    """``4.12`` -> ``4.1x``; below 1 shown as a fraction when no words are given."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return "n/a"
    if more and ratio < 1:
        return f"{1 / ratio:.1f}x {less}"
    return f"{ratio:.1f}x" + (f" {more}" if more else "")


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def fmt_delta(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}{unit}"


def fmt_float(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
