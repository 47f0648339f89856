"""The CLI tests' shared run: a tiny cnn trained by `slimkit train` (helpers live in tests/clitools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import DIGITS, QUICK

from slimkit.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A cnn trained one epoch on digits, as `slimkit train` writes it."""
    out = tmp_path_factory.mktemp("runs") / "teacher"
    assert main(["train", "--model", "cnn:channels=[8,16],hidden=16", *DIGITS, "--epochs", "2", "--out", str(out),
                 "--threads", "1", *QUICK]) == 0
    return out
