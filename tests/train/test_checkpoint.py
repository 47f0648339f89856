"""Atomic writes, checkpoint loading errors and the metrics.jsonl helpers."""

from __future__ import annotations

import json

import pytest
import torch

from slimkit.errors import CheckpointError
from slimkit.fileio import atomic_torch_save, atomic_write_bytes, atomic_write_text
from slimkit.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEYS,
    append_metrics,
    load_checkpoint,
    rewrite_metrics,
)


def test_atomic_writes_replace_and_leave_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["w"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["f.bin", "sub", "x.pt"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "x.pt"
    atomic_torch_save({"v": 1}, target)
    before = target.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_torch_save({"v": Unpicklable()}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def _valid() -> dict:
    state = {key: {} for key in CHECKPOINT_KEYS}
    state["format"] = CHECKPOINT_FORMAT
    return state


def test_load_checkpoint_accepts_valid_and_names_file_on_errors(tmp_path):
    good = atomic_torch_save(_valid(), tmp_path / "good.pt")
    assert load_checkpoint(good)["format"] == CHECKPOINT_FORMAT

    with pytest.raises(CheckpointError, match=r"missing\.pt does not exist"):
        load_checkpoint(tmp_path / "missing.pt")

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=r"truncated\.pt is corrupt"):
        load_checkpoint(truncated)

    other = atomic_torch_save({"format": "something/9"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt is not a slimkit training checkpoint \(format 'something/9'"):
        load_checkpoint(other)

    partial = _valid()
    del partial["optimizer"], partial["history"]
    atomic_torch_save(partial, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"partial\.pt lacks optimizer, history"):
        load_checkpoint(tmp_path / "partial.pt")


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    import argparse  # any class outside weights_only's allow-list stands in for arbitrary code

    torch.save({"format": CHECKPOINT_FORMAT, "obj": argparse.Namespace(a=1)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"evil\.pt is corrupt or not a torch file"):
        load_checkpoint(tmp_path / "evil.pt")


def test_metrics_helpers_write_valid_json_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_metrics(path, {"epoch": 1, "loss": float("inf")})
    append_metrics(path, {"epoch": 2, "loss": 0.5})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"epoch": 1, "loss": None},
        {"epoch": 2, "loss": 0.5},
    ]
    rewrite_metrics(path, [{"epoch": 1}])
    assert path.read_text() == '{"epoch": 1}\n'
