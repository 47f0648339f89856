"""Checkpoints, metrics.jsonl and exact resume of the Trainer."""

from __future__ import annotations

import json
import math

import pytest
import torch

from slimkit.errors import CheckpointError
from slimkit.train import Callback, TrainConfig, Trainer, load_checkpoint
from slimkit.train.checkpoint import CHECKPOINT_KEYS


def cfg(**changes) -> TrainConfig:
    # onecycle + AdamW + clipping + smoothing: the schedule and optimizer state must both survive a resume.
    base = {"epochs": 3, "lr": 0.02, "schedule": "onecycle", "grad_clip": 1.0, "label_smoothing": 0.1,
            "early_stopping_patience": 5, "progress": False, "threads": 1, "seed": 7}  # fmt: skip
    return TrainConfig(**{**base, **changes})


class Counter(Callback):
    """Stateful callback: its count must continue across a resume."""

    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, trainer, logs):
        self.steps += 1

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


class KillAt(Callback):
    """Simulates Ctrl-C / a kill at (epoch, step); step 0 means at the epoch's start."""

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step = epoch, step

    def on_epoch_start(self, trainer, epoch):
        if (epoch, 0) == (self.epoch, self.step):
            raise KeyboardInterrupt

    def on_step_end(self, trainer, logs):
        if (trainer.epoch, trainer.step) == (self.epoch, self.step):
            raise KeyboardInterrupt


def strip_time(history):
    return [{k: v for k, v in m.items() if k != "seconds"} for m in history]


def jsonl_epochs(path):
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture
def straight(model_factory, loaders, tmp_path):
    """The uninterrupted 3-epoch run."""
    model, counter = model_factory(), Counter()
    result = Trainer(model, cfg(), callbacks=[counter], out_dir=tmp_path / "straight").fit(*loaders)
    return model, result, counter


@pytest.mark.parametrize("kill", [(3, 0), (2, 3)], ids=["between-epochs", "mid-epoch"])
def test_resume_is_exact(kill, straight, model_factory, loaders, tmp_path):
    straight_model, straight_result, straight_counter = straight
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        Trainer(model_factory(), cfg(), callbacks=[Counter(), KillAt(*kill)], out_dir=run).fit(*loaders)
    assert load_checkpoint(run / "last.pt")["epoch"] == kill[0] - 1

    model, counter = model_factory(seed=123), Counter()  # different init: everything must come from last.pt
    result = Trainer(model, cfg(), callbacks=[counter], out_dir=run).fit(*loaders, resume=True)

    assert_same_weights(model, straight_model)
    assert strip_time(result.history) == strip_time(straight_result.history)
    assert (result.best_epoch, result.best_val_acc) == (straight_result.best_epoch, straight_result.best_val_acc)
    assert counter.steps == straight_counter.steps == 3 * len(loaders[0])
    assert jsonl_epochs(run / "metrics.jsonl") == [1, 2, 3]


def test_resume_can_extend_epochs(model_factory, loaders, tmp_path):
    # A constant schedule does not depend on the horizon, so 2 + 1 epochs must equal 3 straight.
    straight = model_factory()
    Trainer(straight, cfg(schedule="constant"), out_dir=tmp_path / "a").fit(*loaders)
    model = model_factory()
    Trainer(model, cfg(schedule="constant", epochs=2), out_dir=tmp_path / "b").fit(*loaders)
    result = Trainer(model, cfg(schedule="constant"), out_dir=tmp_path / "b").fit(*loaders, resume=True)
    assert_same_weights(model, straight)
    assert [m["epoch"] for m in result.history] == [1, 2, 3]


def test_resume_extends_cosine_from_the_same_step(model_factory, loaders, tmp_path):
    Trainer(model_factory(), cfg(schedule="cosine", epochs=2), out_dir=tmp_path).fit(*loaders)
    trainer = Trainer(model_factory(), cfg(schedule="cosine", epochs=4), out_dir=tmp_path)
    result = trainer.fit(*loaders, resume=True)
    assert len(result.history) == 4 and trainer.global_step == 4 * len(loaders[0])
    # epoch 3 ran on the 4-epoch cosine plan: its last step used lr(t) with t = 3*8-1 of 32
    assert result.history[2]["lr"] == pytest.approx(0.02 * (1 + math.cos(math.pi * 23 / 32)) / 2)


def test_resume_of_finished_run_trains_nothing(model_factory, loaders, tmp_path):
    first = Trainer(model_factory(), cfg(epochs=2), out_dir=tmp_path).fit(*loaders)
    again = Trainer(model_factory(), cfg(epochs=2), out_dir=tmp_path)
    assert strip_time(again.fit(*loaders, resume=True).history) == strip_time(first.history)
    assert again.global_step == 2 * len(loaders[0])


def test_checkpoints_and_metrics_log(model_factory, loaders, tmp_path):
    result = Trainer(model_factory(), cfg(), out_dir=tmp_path).fit(*loaders)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]  # no temp files
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(last) == set(CHECKPOINT_KEYS)
    assert (last["epoch"], last["global_step"], last["steps_per_epoch"]) == (3, 24, 8)
    assert last["config"] == cfg().to_dict()
    assert last["best"] == {"metric": "val_acc", "value": result.best_val_acc, "epoch": result.best_epoch,
                            "bad_epochs": 3 - result.best_epoch}  # fmt: skip
    assert last["callbacks"] == {} and last["loss_fn"] == {}  # default loss is a Module without state
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == result.best_epoch
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert strip_time(lines) == strip_time(result.history) == strip_time(last["history"])


def test_fresh_run_truncates_old_metrics_and_resume_drops_stray_lines(model_factory, loaders, tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 99}\n')
    with pytest.raises(KeyboardInterrupt):
        Trainer(model_factory(), cfg(), callbacks=[KillAt(3, 0)], out_dir=tmp_path).fit(*loaders)
    assert jsonl_epochs(tmp_path / "metrics.jsonl") == [1, 2]
    with open(tmp_path / "metrics.jsonl", "a") as f:  # a line the checkpoint does not know (crash after logging)
        f.write('{"epoch": 3, "val_acc": 0.1}\n{"epo')
    Trainer(model_factory(), cfg(), out_dir=tmp_path).fit(*loaders, resume=True)
    assert jsonl_epochs(tmp_path / "metrics.jsonl") == [1, 2, 3]


def test_resume_with_other_optimizer_is_refused(model_factory, loaders, tmp_path):
    Trainer(model_factory(), cfg(epochs=1), out_dir=tmp_path).fit(*loaders)
    with pytest.raises(CheckpointError, match=r"last\.pt was written with a different config: optimizer 'adamw' -> 'sgd'") as info:
        Trainer(model_factory(), cfg(optimizer="sgd"), out_dir=tmp_path).fit(*loaders, resume=True)
    assert "resume=False" in str(info.value)


def test_resume_without_val_loader_when_run_had_one_is_refused(model_factory, loaders, tmp_path):
    Trainer(model_factory(), cfg(epochs=1, early_stopping_patience=None), out_dir=tmp_path).fit(*loaders)
    with pytest.raises(CheckpointError, match="tracked the best epoch by val_acc"):
        Trainer(model_factory(), cfg(early_stopping_patience=None), out_dir=tmp_path).fit(loaders[0], resume=True)


def test_resume_missing_or_corrupt_checkpoint(model_factory, loaders, tmp_path):
    with pytest.raises(CheckpointError, match=r"last\.pt does not exist") as info:
        Trainer(model_factory(), cfg(), out_dir=tmp_path).fit(*loaders, resume=True)
    assert "resume=False" in str(info.value)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"last\.pt is corrupt") as info:
        Trainer(model_factory(), cfg(), out_dir=tmp_path).fit(*loaders, resume=True)
    assert "delete" in str(info.value)


def test_resume_into_other_architecture_is_refused(loaders, tmp_path):
    Trainer(torch.nn.Linear(8, 3), cfg(epochs=1), out_dir=tmp_path).fit(*loaders)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        Trainer(torch.nn.Sequential(torch.nn.Linear(8, 3)), cfg(), out_dir=tmp_path).fit(*loaders, resume=True)
