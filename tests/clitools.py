"""Helpers for tests that run CLI commands: quick measurement flags, tiny data, run-folder readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Measure quickly: two timed repeats at batch 1 and 8, no report files.
QUICK = ["--no-progress", "--no-report", "--set", "evaluation.repeats=2", "--set", "evaluation.final_repeats=2",
         "--set", "evaluation.warmup=0", "--set", "evaluation.batch_sizes=[1, 8]"]
#: Train on a slice of scikit-learn's digits (8x8, bundled: nothing to download).
DIGITS = ["--dataset", "digits", "--limit", "160", "--batch-size", "32"]


def final(out: Path) -> dict[str, Any]:
    return json.loads((out / "final.json").read_text())


def stage(out: Path, number: int = -1) -> dict[str, Any]:
    """The metrics.json of stage ``number`` (the last by default)."""
    folders = sorted(p for p in out.iterdir() if p.is_dir() and p.name[:2].isdigit() and p.name != "00-source")
    return json.loads((folders[number] / "metrics.json").read_text())
