"""Data-parallel training with 2 processes (torchrun, gloo): the plain Trainer and distillation
match one process on the same global batches; only rank 0 writes; bytes travel between ranks."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
import torch

from slimkit.commands._launch import launch
from slimkit.distillation import DistillConfig, run_distillation
from slimkit.train import Callback, Trainer
from slimkit.train.distributed import DistEnv, OnMain, shard_loader

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_script.py")


def _script():
    spec = importlib.util.spec_from_file_location("ddp_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    out = tmp_path_factory.mktemp("ddp")
    if launch(2, [str(out)], script=SCRIPT, env=env) != 0:
        # Seen once in CI and never here: a gloo rank aborting in C++ ("terminate called without an
        # active exception", no Python traceback). One fresh retry, loudly; a real failure fails twice.
        warnings.warn("the 2-process DDP run failed once; retrying in a fresh folder", stacklevel=1)
        out = tmp_path_factory.mktemp("ddp-retry")
        assert launch(2, [str(out)], script=SCRIPT, env=env) == 0
    return out


@pytest.fixture(scope="module")
def single():
    torch.set_num_threads(1)
    s = _script()
    train, val = s.data()
    model = s.net(16, 0)
    Trainer(model, s.CONFIG).fit(train, val)
    student, teacher = s.net(8, 1), s.net(32, 2)
    result = run_distillation(student, teacher.eval().requires_grad_(False), train, DistillConfig(train=s.CONFIG), val_loader=val)
    return model, student, result


def test_two_processes_match_one_process(ddp_run, single):
    model, student, result = single
    weights = torch.load(ddp_run / "weights.pt", weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.allclose(weights["fit"][name], tensor, atol=1e-5), name
    for name, tensor in student.state_dict().items():
        assert torch.allclose(weights["distill"][name], tensor, atol=1e-5), name
    summary = json.loads((ddp_run / "summary.json").read_text())
    assert summary["world"] == 2 and summary["cache"] == "memory"
    assert (ddp_run / "received.txt").read_bytes() == b"from rank 0"
    for ours, theirs in zip(summary["distill_history"], result.history):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-5)
        assert ours["val_acc"] == pytest.approx(theirs["val_acc"])


def test_rank_zero_alone_writes_checkpoints_without_ddp_prefix(ddp_run):
    lines = (ddp_run / "fit" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one line per epoch: only rank 0 logged
    state = torch.load(ddp_run / "fit" / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and not any(k.startswith("module.") for k in state["model"])


def test_shard_loader_splits_each_global_batch():
    s = _script()
    train, _ = s.data()
    ranks = [shard_loader(train, DistEnv(rank, 2, rank)) for rank in (0, 1)]
    assert all(len(loader) == len(train) and loader.batch_size == 8 for loader in ranks)
    first = torch.cat([next(iter(loader))[0] for loader in ranks])
    assert {tuple(r.flatten()[:3].tolist()) for r in first} == {tuple(r.flatten()[:3].tolist()) for r in next(iter(train))[0]}
    with pytest.raises(Exception, match="does not split over 3"):
        shard_loader(train, DistEnv(0, 3, 0))


def test_on_main_silences_other_ranks(monkeypatch):
    class Count(Callback):
        def __init__(self):
            self.epochs = 0

        def on_epoch_end(self, trainer, epoch, metrics):
            self.epochs += 1

        def state_dict(self):
            return {"epochs": self.epochs}

    main, other = Count(), Count()
    OnMain(main).on_epoch_end(None, 1, {})
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    wrapped = OnMain(other)
    wrapped.on_epoch_end(None, 1, {})
    assert (main.epochs, other.epochs) == (1, 0) and wrapped.state_dict() == {"epochs": 0}
