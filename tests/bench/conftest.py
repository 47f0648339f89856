"""Run a benchmark script's --quick version in a fresh process and read back what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

QuickBench = Callable[..., tuple[dict[str, Any], str]]


def run_quick(name: str, out: Path, *args: str, timeout: int = 300) -> tuple[dict[str, Any], str]:
    """``python bench/NAME.py --quick --out OUT ARGS``; returns (NAME.json, NAME.md)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick", "--out", str(out), *args],
                          env=env, timeout=timeout, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / f"{name}.json").read_text()), (out / f"{name}.md").read_text()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every benchmark test is a `bench` test: a quick `pytest` skips them; `scripts/test.sh`
    (the README's test command, which CI runs) runs them too."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.bench)


@pytest.fixture
def quick_bench(tmp_path: Path) -> QuickBench:
    return lambda name, *args, timeout=300: run_quick(name, tmp_path, *args, timeout=timeout)
