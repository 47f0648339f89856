"""The Trainer: epochs of optimizer steps with validation, checkpoints, resume and early stopping.

Determinism: every epoch starts with ``seed_everything(config.seed + epoch)``, which also fixes
the shuffling of a DataLoader without its own generator. Together with checkpoints written at
epoch ends (model, optimizer, schedule, scaler, loss and callback state), a resumed run repeats
the uninterrupted one exactly, even after a crash in the middle of an epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.errors import CheckpointError, ConfigError, TrainingError
from slimkit.fileio import atomic_torch_save, atomic_write_bytes
from slimkit.modelio import batch_size, call, remember_inputs, split, take, to_device
from slimkit.train.callbacks import Callback
from slimkit.train.checkpoint import (
    CHECKPOINT_FORMAT,
    append_metrics,
    load_checkpoint,
    plain_metrics,
    rewrite_metrics,
)
from slimkit.train.config import RESUMABLE_CHANGES, TrainConfig
from slimkit.train.optim import (
    build_optimizer,
    build_scheduler,
    current_lr,
    fast_forward,
)
from slimkit.train.progress import TrainProgress
from slimkit.train.runtime import autocast, num_threads, resolve_device, seed_everything
from slimkit.train.steps import (
    ClassificationLoss,
    LossFn,
    count_correct,
    evaluate_loss_acc,
    split_loss,
)

LAST, BEST, METRICS = "last.pt", "best.pt", "metrics.jsonl"


@dataclass
class TrainResult:
    """What ``Trainer.fit`` returns. ``history`` holds one metrics dict per epoch (epoch,
    train_loss, train_acc, val_loss, val_acc, lr, seconds, train_<loss log>...)."""

    history: list[dict[str, Any]]
    best_epoch: int | None
    best_val_acc: float | None
    stopped_early: bool


class Trainer:
    """Train ``model`` with ``config``; see ``fit``.

    ``loss_fn(outputs, batch)`` defaults to cross-entropy with ``config.label_smoothing``; if it
    is an ``nn.Module`` its parameters are optimized with the model's and its state is
    checkpointed. Attributes callbacks may use: model, optimizer, scheduler, config, epoch (1-based),
    step (batch within the epoch, 1-based), global_step (optimizer steps taken), device, out_dir.

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0); x = torch.randn(32, 4); y = (x[:, 0] > 0).long()
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    >>> result = Trainer(nn.Linear(4, 2), TrainConfig(epochs=2, lr=0.1, progress=False)).fit(loader, loader)
    >>> len(result.history), result.history[-1]["val_acc"] > 0.7
    (2, True)
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig | None = None,
        *,
        loss_fn: LossFn | None = None,
        callbacks: Sequence[Callback] = (),
        out_dir: str | Path | None = None,
    ) -> None:
        config = config if config is not None else TrainConfig()
        if not isinstance(config, TrainConfig):
            raise ConfigError(f"Trainer needs a TrainConfig, got {type(config).__name__}", hint="TrainConfig.from_dict(data)")
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.loss_fn: LossFn = loss_fn if loss_fn is not None else ClassificationLoss(config.label_smoothing)
        modules = [self.model]
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.to(self.device)
            modules.append(self.loss_fn)
        self.callbacks = list(callbacks)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.optimizer = build_optimizer(modules, config)
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None  # needs the loader's length: built in fit
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp and self.device.type != "cpu")
        self.epoch = self.step = self.global_step = self.steps_per_epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.stopped_early = False

    # ---------------------------------------------------------------- public

    def fit(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None, *, resume: bool = False) -> TrainResult:
        """Train for ``config.epochs`` epochs (fewer if early stopping triggers).

        After each epoch: validation (plain cross-entropy and accuracy on ``val_loader``),
        ``out_dir/last.pt``, ``out_dir/best.pt`` when the monitored accuracy (val_acc, or
        train_acc without a val_loader) improved, and a line in ``out_dir/metrics.jsonl``.
        ``resume=True`` continues from ``out_dir/last.pt``; ``config.epochs`` may be raised to
        train longer, other training fields must match the checkpoint's.

        Inside a joined process group (``torchrun``), training is data-parallel: see
        :mod:`slimkit.train.distributed`.
        """
        from slimkit.train.distributed import barrier, prepare_fit

        distributed = prepare_fit(self.model, train_loader, self.loss_fn, self.config.seed)
        if distributed is None:
            return self._fit(train_loader, val_loader, resume=resume)
        if resume:
            raise ConfigError("resume=True is not supported under data-parallel training",
                              hint="resume in a single process, or start the data-parallel run fresh")
        # Every rank trains; rank 0 alone shows progress and writes checkpoints and the log.
        plain, config, out_dir, callbacks = self.model, self.config, self.out_dir, self.callbacks
        self.model, self.callbacks = distributed.model, [*distributed.callbacks, *callbacks]
        if not distributed.main:
            self.config, self.out_dir = config.replace(progress=False), None  # type: ignore[assignment]
        try:
            result = self._fit(distributed.loader, val_loader, resume=False)
        finally:
            self.model, self.config, self.out_dir, self.callbacks = plain, config, out_dir, callbacks
        barrier()  # rank 0's files are complete before anyone reads them
        return result

    def _fit(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None, *, resume: bool) -> TrainResult:
        cfg = self.config
        try:
            self.steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            raise ConfigError("train_loader has no length", hint="use a map-style Dataset; the schedule needs the number of batches") from None
        if self.steps_per_epoch == 0:
            raise TrainingError("train_loader yields no batches", hint="check the dataset size and batch_size/drop_last")
        if cfg.early_stopping_patience is not None and val_loader is None:
            raise ConfigError("early_stopping_patience is set but fit got no val_loader", hint="pass val_loader or set early_stopping_patience=None")
        if resume and self.out_dir is None:
            raise ConfigError("resume=True needs the Trainer's out_dir", hint="Trainer(..., out_dir=<run dir with last.pt>)")
        self.epoch = self.global_step = 0
        self.history, self.stopped_early = [], False
        self.best = {"metric": "val_acc" if val_loader is not None else "train_acc", "value": None, "epoch": None, "bad_epochs": 0}
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        if resume:
            self._restore(self.out_dir / LAST)  # type: ignore[operator]
        elif self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            rewrite_metrics(self.out_dir / METRICS, [])  # a fresh run must not inherit an old log
        with num_threads(cfg.threads), TrainProgress(enabled=cfg.progress, epochs=cfg.epochs) as bar:
            for callback in self.callbacks:
                callback.on_fit_start(self)
            for epoch in range(self.epoch + 1, cfg.epochs + 1):
                if self.stopped_early:
                    break
                self._run_epoch(epoch, train_loader, val_loader, bar)
            for callback in self.callbacks:
                callback.on_fit_end(self)
        return self.result()

    def result(self) -> TrainResult:
        """The TrainResult of what has been trained so far."""
        by_val = self.best.get("metric") == "val_acc"
        return TrainResult(
            history=list(self.history),
            best_epoch=self.best.get("epoch"),
            best_val_acc=self.best.get("value") if by_val else None,
            stopped_early=self.stopped_early,
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (see CHECKPOINT_KEYS in slimkit.train.checkpoint)."""
        if self.scheduler is None:
            raise TrainingError("Trainer.state_dict() is available once fit() has started", hint="call fit() first")
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "loss_fn": self.loss_fn.state_dict() if isinstance(self.loss_fn, nn.Module) else None,
            "callbacks": {self._key(i, cb): cb.state_dict() for i, cb in enumerate(self.callbacks)},
            "best": dict(self.best),
            "stopped_early": self.stopped_early,
            "history": [dict(m) for m in self.history],
            "config": self.config.to_dict(),
        }

    # ---------------------------------------------------------------- epoch

    def _run_epoch(self, epoch: int, train_loader: Iterable[Any], val_loader: Iterable[Any] | None, bar: TrainProgress) -> None:
        self.epoch = epoch
        seed_everything(self.config.seed + epoch)
        for callback in self.callbacks:
            callback.on_epoch_start(self, epoch)
        started = time.perf_counter()
        train = self._train_epoch(train_loader, bar)
        val_loss = val_acc = None
        if val_loader is not None:
            val_loss, val_acc = evaluate_loss_acc(self.model, val_loader, device=self.device)
            if not math.isfinite(val_loss):
                raise self._diverged(f"validation loss is {val_loss} after epoch {epoch}")
        metrics: dict[str, Any] = {
            "epoch": epoch, "train_loss": train.pop("train_loss"), "train_acc": train.pop("train_acc"),
            "val_loss": val_loss, "val_acc": val_acc, "lr": train.pop("lr"),
            "seconds": time.perf_counter() - started, **train,
        }  # fmt: skip
        for callback in self.callbacks:
            callback.on_epoch_end(self, epoch, metrics)
        metrics = plain_metrics(metrics)
        improved = self._update_best(metrics)
        self.history.append(metrics)
        if self.out_dir is not None:
            last = atomic_torch_save(self.state_dict(), self.out_dir / LAST)
            if improved:
                atomic_write_bytes(self.out_dir / BEST, last.read_bytes())  # same bytes: serialize once
            append_metrics(self.out_dir / METRICS, metrics)
        bar.end_epoch(metrics)

    def _train_epoch(self, loader: Iterable[Any], bar: TrainProgress) -> dict[str, Any]:
        cfg = self.config
        self.model.train()
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.train()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        seen = labelled = correct = 0
        loss_sum, log_sums, lr = 0.0, {}, current_lr(self.optimizer)
        bar.start_epoch(self.epoch, total=self.steps_per_epoch)
        for self.step, raw in enumerate(loader, start=1):
            batch = to_device(raw, self.device)
            inputs = split(batch).inputs
            if self.step == 1:
                remember_inputs(self.model, take(inputs, 1))
            with autocast(self.device, cfg.amp):
                outputs = call(self.model, inputs)
                loss, logs = split_loss(self.loss_fn(outputs, batch))
            value = float(loss.detach())
            if not math.isfinite(value):
                raise self._diverged(
                    f"loss is {value} at epoch {self.epoch}, step {self.step} of {self.steps_per_epoch} "
                    f"(global step {self.global_step + 1})"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)  # clipping and callbacks must see true gradients
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            for callback in self.callbacks:
                callback.on_after_backward(self)
            lr = current_lr(self.optimizer)  # the rate this step uses, reported as the epoch's "lr"
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()  # type: ignore[union-attr]
            self.global_step += 1
            size = batch_size(inputs)
            seen += size
            loss_sum += value * size
            hits = count_correct(outputs, batch)
            if hits is not None:
                correct, labelled = correct + hits, labelled + size
            for key, item in logs.items():
                log_sums[key] = log_sums.get(key, 0.0) + item * size
            step_logs = {"loss": value, "acc": hits / size if hits is not None else math.nan, "lr": lr, **logs}
            for callback in self.callbacks:
                callback.on_step_end(self, step_logs)
            bar.step(loss_sum / seen, correct / labelled if labelled else math.nan)
        averaged = {f"train_{key}": total / seen for key, total in log_sums.items()}
        return {"train_loss": loss_sum / seen, "train_acc": correct / labelled if labelled else None, "lr": lr, **averaged}

    def _update_best(self, metrics: dict[str, Any]) -> bool:
        value = metrics.get(self.best["metric"])
        improved = value is not None and (self.best["value"] is None or value > self.best["value"])
        if improved:
            self.best.update(value=value, epoch=metrics["epoch"], bad_epochs=0)
        else:
            self.best["bad_epochs"] += 1
        patience = self.config.early_stopping_patience
        self.stopped_early = patience is not None and self.best["bad_epochs"] >= patience
        return improved

    def _diverged(self, what: str) -> TrainingError:
        if self.out_dir is None:
            kept = "no checkpoint is kept because the Trainer has no out_dir"
        elif self.history:
            kept = f"the last good checkpoint is kept: {self.out_dir / LAST} (epoch {self.history[-1]['epoch']})"
        else:
            kept = "no epoch had finished, so no checkpoint was written"
        return TrainingError(
            f"training diverged: {what}; {kept}",
            hint="lower lr, set grad_clip, check the data for NaN/inf, or turn amp off; resume=True restarts from last.pt",
        )

    # ---------------------------------------------------------------- resume

    @staticmethod
    def _key(index: int, callback: Callback) -> str:
        return f"{index}:{type(callback).__qualname__}"

    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        self._check_config(state["config"], path)
        if state["best"].get("metric") != self.best["metric"]:
            raise CheckpointError(
                f"checkpoint {path} tracked the best epoch by {state['best'].get('metric')}, this fit by {self.best['metric']}",
                hint="resume with a val_loader exactly when the original run had one",
            )
        try:
            self.model.load_state_dict(state["model"])
            if isinstance(self.loss_fn, nn.Module):
                self.loss_fn.load_state_dict(state["loss_fn"] or {})
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model, loss_fn or optimizer: {str(exc).splitlines()[0]}",
                hint="resume with the same model architecture and loss_fn that wrote it, or start fresh with resume=False",
            ) from None
        done, cfg = state["epoch"], self.config
        if done < cfg.epochs:
            if state["steps_per_epoch"] == self.steps_per_epoch and state["config"]["epochs"] == cfg.epochs:
                self.scheduler.load_state_dict(state["scheduler"])  # type: ignore[union-attr]
            else:  # a longer (or re-batched) run: the saved plan had another horizon
                self.scheduler = fast_forward(self.optimizer, cfg, self.steps_per_epoch, state["global_step"])
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        for index, callback in enumerate(self.callbacks):
            saved = state["callbacks"].get(self._key(index, callback))
            if saved is not None:
                callback.load_state_dict(saved)
        self.epoch, self.global_step = done, state["global_step"]
        self.history = [dict(m) for m in state["history"]]
        self.best, self.stopped_early = dict(state["best"]), bool(state["stopped_early"])
        rewrite_metrics(path.parent / METRICS, self.history)  # drop lines of epochs the checkpoint lacks

    def _check_config(self, saved: dict[str, Any], path: Path) -> None:
        current = self.config.to_dict()
        changed = [
            f"{key} {saved.get(key)!r} -> {current.get(key)!r}"
            for key in sorted(set(saved) | set(current))
            if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
        ]
        if changed:
            raise CheckpointError(
                f"checkpoint {path} was written with a different config: {', '.join(changed)}",
                hint=f"resume with the config that wrote it (only {', '.join(sorted(RESUMABLE_CHANGES))} may change), "
                "or start fresh with resume=False",
            )


def train(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    config: TrainConfig | None = None,
    *,
    loss_fn: LossFn | None = None,
    callbacks: Sequence[Callback] = (),
    out_dir: str | Path | None = None,
    resume: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Train ``model`` in place and return it; ``overrides`` change fields of ``config``.

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> loader = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,))), batch_size=8)
    >>> type(train(nn.Linear(4, 2), loader, epochs=1, progress=False)).__name__
    'Linear'
    """
    config = config if config is not None else TrainConfig()
    if overrides:
        config = config.replace(**overrides)  # type: ignore[assignment]
    Trainer(model, config, loss_fn=loss_fn, callbacks=callbacks, out_dir=out_dir).fit(train_loader, val_loader, resume=resume)
    return model
