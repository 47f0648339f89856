"""Trainer behaviour: loss plug-ins, label smoothing, clipping, early stopping, NaN, amp, threads."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slimkit.errors import ConfigError, TrainingError
from slimkit.train import Callback, TrainConfig, Trainer, load_checkpoint, train


def cfg(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "lr": 0.01, "progress": False, "threads": 1, **changes})


class GradNorms(Callback):
    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_after_backward(self, trainer):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


def test_default_loss_uses_label_smoothing(model_factory, loaders):
    outputs = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    batch = (None, torch.tensor([0, 2]))
    eps = 0.2
    logp = outputs.log_softmax(dim=1)
    nll = -logp.gather(1, batch[1][:, None]).squeeze(1)
    expected = ((1 - eps) * nll - eps * logp.mean(dim=1)).mean()  # smoothed target: (1-eps)*onehot + eps/C
    smoothed = Trainer(model_factory(), cfg(label_smoothing=eps)).loss_fn(outputs, batch)
    plain = Trainer(model_factory(), cfg()).loss_fn(outputs, batch)
    assert float(smoothed) == pytest.approx(float(expected), rel=1e-6)
    assert float(plain) == pytest.approx(float(nll.mean()), rel=1e-6)
    assert float(smoothed) > float(plain)  # confident-and-right predictions cost more under smoothing


def test_label_smoothing_changes_training_loss_not_validation_loss(model_factory, loaders):
    smooth_model = model_factory()
    smooth = Trainer(smooth_model, cfg(epochs=1, label_smoothing=0.3)).fit(*loaders).history[0]
    plain = Trainer(model_factory(), cfg(epochs=1)).fit(*loaders).history[0]
    assert smooth["train_loss"] > plain["train_loss"]  # same data order and init; only the loss differs
    # validation loss is plain cross-entropy, whatever the training loss
    smooth_model.eval()
    with torch.no_grad():
        x, y = loaders[1].dataset.tensors
        assert smooth["val_loss"] == pytest.approx(float(F.cross_entropy(smooth_model(x), y)), rel=1e-5)


def test_grad_clip_bounds_the_norm(model_factory, loaders):
    loose, clipped = GradNorms(), GradNorms()
    Trainer(model_factory(), cfg(epochs=1), callbacks=[loose]).fit(loaders[0])
    Trainer(model_factory(), cfg(epochs=1, grad_clip=0.05), callbacks=[clipped]).fit(loaders[0])
    assert max(loose.norms) > 0.05  # clipping had something to do
    assert max(clipped.norms) <= 0.05 * (1 + 1e-5)
    assert len(clipped.norms) == len(loaders[0])


def test_early_stopping_stops_after_patience(loaders, tmp_path):
    # lr so small (and no BatchNorm statistics) that accuracy never changes: epoch 1 is the best.
    config = cfg(epochs=10, optimizer="sgd", lr=1e-12, weight_decay=0.0, early_stopping_patience=2)
    result = Trainer(nn.Linear(8, 3), config, out_dir=tmp_path).fit(*loaders)
    assert result.stopped_early is True
    assert [m["epoch"] for m in result.history] == [1, 2, 3]
    assert result.best_epoch == 1
    assert result.best_val_acc == result.history[0]["val_acc"]
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "last.pt")["stopped_early"] is True


def test_early_stopping_needs_val_loader(model_factory, loaders):
    with pytest.raises(ConfigError, match="early_stopping_patience .* no val_loader"):
        Trainer(model_factory(), cfg(early_stopping_patience=1)).fit(loaders[0])


class NaNAt:
    """Cross-entropy, except NaN at one global step."""

    def __init__(self, step: int) -> None:
        self.step, self.calls = step, 0

    def __call__(self, outputs, batch):
        self.calls += 1
        loss = F.cross_entropy(outputs, batch[1])
        return loss * math.nan if self.calls == self.step else loss


def test_nan_loss_raises_and_keeps_last_good_checkpoint(model_factory, loaders, tmp_path):
    steps = len(loaders[0])  # 8
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            snapshots[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    trainer = Trainer(model_factory(), cfg(epochs=3), loss_fn=NaNAt(steps + 3), callbacks=[Snapshot()], out_dir=tmp_path)
    with pytest.raises(TrainingError, match=r"epoch 2, step 3 of 8") as info:
        trainer.fit(*loaders)
    assert "last good checkpoint is kept" in str(info.value)
    assert str(tmp_path / "last.pt") in str(info.value)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1 and state["global_step"] == steps
    assert all(torch.equal(state["model"][k], v) for k, v in snapshots[1].items())
    assert [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_inf_loss_without_out_dir_says_nothing_is_kept(model_factory, loaders):
    loss_fn = lambda outputs, batch: F.cross_entropy(outputs, batch[1]) * math.inf
    with pytest.raises(TrainingError, match=r"loss is inf at epoch 1, step 1 .*no checkpoint is kept"):
        Trainer(model_factory(), cfg(), loss_fn=loss_fn).fit(loaders[0])


class ScaledCE(nn.Module):
    """A loss with its own parameter (like a distillation adapter), logging two values."""

    def __init__(self) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, outputs, batch):
        self.calls += 1
        loss = F.cross_entropy(outputs / self.log_temperature.exp(), batch[1])
        return loss, {"call": float(self.calls), "temp": self.log_temperature.exp()}


def test_loss_module_parameters_are_trained_and_checkpointed(model_factory, loaders, tmp_path):
    loss_fn = ScaledCE()
    trainer = Trainer(model_factory(), cfg(), loss_fn=loss_fn, out_dir=tmp_path)
    assert any(p is loss_fn.log_temperature for g in trainer.optimizer.param_groups for p in g["params"])
    trainer.fit(*loaders)
    assert float(loss_fn.log_temperature.detach()) != 0.0
    saved = load_checkpoint(tmp_path / "last.pt")["loss_fn"]
    assert torch.equal(saved["log_temperature"], loss_fn.log_temperature.detach())


def test_loss_logs_are_averaged_over_samples(model_factory, loader_factory):
    train_loader, _ = loader_factory(n=72, batch_size=16)  # batches of 16, 16, 16, 16, 8
    sizes = [16, 16, 16, 16, 8]
    result = Trainer(model_factory(), cfg(), loss_fn=ScaledCE()).fit(train_loader)
    for epoch, metrics in enumerate(result.history):
        calls = [epoch * 5 + i + 1 for i in range(5)]
        assert metrics["train_call"] == pytest.approx(sum(c * s for c, s in zip(calls, sizes)) / 72)
        assert metrics["val_acc"] is None
    assert result.best_val_acc is None and result.best_epoch is not None  # best by train_acc


def test_extra_batch_elements_reach_the_loss(model_factory, loader_factory):
    seen = []

    def loss_fn(outputs, batch):
        x, y, index = batch
        seen.append(index)
        assert x.device == y.device == index.device == torch.device("cpu")
        return F.cross_entropy(outputs, y)

    train_loader, _ = loader_factory(extra=True)
    Trainer(model_factory(), cfg(epochs=1), loss_fn=loss_fn).fit(train_loader)
    assert sorted(torch.cat(seen).tolist()) == list(range(128))


def test_tuple_outputs_use_first_element_as_logits(loaders):
    class WithFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.head = nn.Linear(8, 16), nn.Linear(16, 3)

        def forward(self, x):
            features = self.body(x).relu()
            return self.head(features), features

    result = Trainer(WithFeatures(), cfg(lr=0.05)).fit(*loaders)
    assert result.history[-1]["val_acc"] > 0.5


def test_amp_on_cpu_runs_model_in_bfloat16(model_factory, loaders):
    model = model_factory()
    dtypes = []
    model[0].register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    result = Trainer(model, cfg(epochs=1, amp=True)).fit(*loaders)
    assert torch.bfloat16 in dtypes
    assert math.isfinite(result.history[0]["train_loss"])
    assert model[0].weight.dtype == torch.float32  # master weights stay fp32


def test_threads_apply_during_fit_and_are_restored(model_factory, loaders):
    before, during = torch.get_num_threads(), []

    class Threads(Callback):
        def on_epoch_start(self, trainer, epoch):
            during.append(torch.get_num_threads())

    Trainer(model_factory(), cfg(threads=1), callbacks=[Threads()]).fit(loaders[0])
    assert during == [1, 1]
    assert torch.get_num_threads() == before


def test_callback_hooks_order_and_trainer_attributes(model_factory, loaders):
    events = []

    class Spy(Callback):
        def on_fit_start(self, trainer):
            events.append(("fit_start", trainer.epoch, trainer.global_step))

        def on_epoch_start(self, trainer, epoch):
            events.append(("epoch_start", epoch, trainer.global_step))

        def on_after_backward(self, trainer):
            if trainer.step == 1:
                events.append(("after_backward", trainer.epoch, trainer.global_step))

        def on_step_end(self, trainer, logs):
            if trainer.step == 1:
                events.append(("step_end", trainer.epoch, trainer.global_step, sorted(logs)))

        def on_epoch_end(self, trainer, epoch, metrics):
            metrics["custom"] = torch.tensor(epoch * 10.0)  # callbacks may add metrics, even as tensors
            events.append(("epoch_end", epoch, trainer.global_step))

        def on_fit_end(self, trainer):
            events.append(("fit_end", trainer.epoch, trainer.global_step))

    result = Trainer(model_factory(), cfg(epochs=1), callbacks=[Spy()]).fit(*loaders)
    assert events == [
        ("fit_start", 0, 0),
        ("epoch_start", 1, 0),
        ("after_backward", 1, 0),
        ("step_end", 1, 1, ["acc", "loss", "lr"]),
        ("epoch_end", 1, 8),
        ("fit_end", 1, 8),
    ]
    assert result.history[0]["custom"] == 10.0 and type(result.history[0]["custom"]) is float


def test_train_verb_applies_overrides(model_factory, loaders):
    model = model_factory()
    before = model[0].weight.detach().clone()
    assert train(model, *loaders, epochs=1, lr=0.05, progress=False) is model
    assert not torch.equal(before, model[0].weight)
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        train(model, *loaders, epoch=1)


def test_trainer_rejects_non_config(model_factory):
    with pytest.raises(ConfigError, match="needs a TrainConfig, got dict"):
        Trainer(model_factory(), {"epochs": 1})  # type: ignore[arg-type]
