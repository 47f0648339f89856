"""When to prune: one-shot, iterative prune-and-fine-tune, and Zhu & Gupta's gradual schedule
(``GradualPruning`` as a Trainer callback, or ``gradual`` to prune and retrain in one call).

The gradual schedule raises sparsity inside training, every ``interval`` optimizer steps:

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3    for t0 <= t <= t0 + n*dt

(fast at first, while the network has redundant weights to lose, then slower). It runs as a
Trainer ``Callback`` (``on_step_end``); the masks are parametrizations, so pruned weights stay
zero between pruning steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import Tensor, nn

from slimkit.distillation.recovery import RecoveryConfig
from slimkit.errors import ConfigError
from slimkit.pruning.config import StructuredPruning, UnstructuredPruning
from slimkit.train.callbacks import Callback

Finetune = Callable[[nn.Module], "nn.Module | None"]


def cubic_sparsity(step: int, *, final: float, steps: int, initial: float = 0.0, start: int = 0,
                   interval: int = 1) -> float:
    """Zhu & Gupta's sparsity at optimizer step ``step`` (held between pruning steps).

    >>> [round(cubic_sparsity(t, final=0.9, steps=4, interval=10), 4) for t in (0, 10, 20, 40, 99)]
    [0.0, 0.5203, 0.7875, 0.9, 0.9]
    """
    if steps < 1 or interval < 1:
        raise ConfigError(f"gradual pruning needs steps >= 1 and interval >= 1, got steps={steps}, interval={interval}")
    if not (0 <= initial <= final < 1):
        raise ConfigError(f"need 0 <= initial ({initial}) <= final ({final}) < 1",
                          hint="final sparsity is the share of weights zeroed at the end")
    if step < start:
        return initial
    done = min((step - start) // interval, steps)  # pruning happens only on the dt grid
    return final + (initial - final) * (1 - done / steps) ** 3


class GradualPruning(Callback):
    """Prune to ``cubic_sparsity`` during training (final sparsity = ``config.amount``).

    ``start`` is the first optimizer step that prunes, ``steps`` the number of pruning steps,
    ``interval`` the optimizer steps between them. The sparsity reached is added to each
    epoch's metrics as ``sparsity``.
    """

    def __init__(self, config: UnstructuredPruning, *, steps: int, interval: int = 1, start: int = 0,
                 initial: float = 0.0) -> None:
        cubic_sparsity(start, final=config.amount, steps=steps, initial=initial, start=start, interval=interval)
        self.config, self.steps, self.interval, self.start, self.initial = config, steps, interval, start, initial
        self.current = 0.0

    def sparsity_at(self, step: int) -> float:
        return cubic_sparsity(step, final=self.config.amount, steps=self.steps, initial=self.initial,
                              start=self.start, interval=self.interval)

    def _apply(self, model: nn.Module, step: int) -> None:
        from slimkit.pruning.unstructured import set_sparsity

        target = self.sparsity_at(step)
        if target > self.current:
            set_sparsity(model, self.config, target)
            self.current = target

    def on_fit_start(self, trainer: Any) -> None:
        self._apply(trainer.model, trainer.global_step)

    def on_step_end(self, trainer: Any, logs: dict[str, float]) -> None:
        self._apply(trainer.model, trainer.global_step)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        metrics["sparsity"] = self.current

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = float(state.get("current", 0.0))


def step_config(config: UnstructuredPruning | StructuredPruning, step: int, steps: int) -> Any:
    """The config of pruning step ``step`` (1-based) of ``steps`` equal steps.

    Unstructured amounts are cumulative: each step removes the same share of what is left.
    Structured targets are relative to the model at each step: each step keeps the
    ``steps``-th root of the final kept share. A latency budget is absolute, so it is left as is
    (``iterative`` meets it with one search, at the last step).

    >>> round(step_config(UnstructuredPruning(amount=0.75), 1, 2).amount, 4)
    0.5
    >>> round(step_config(StructuredPruning(target_macs=0.25), 1, 2).target_macs, 4)
    0.5
    """
    if isinstance(config, UnstructuredPruning):
        return config.replace(amount=1 - (1 - config.amount) ** (step / steps))
    changes: dict[str, Any] = {"ratios": {k: 1 - (1 - v) ** (1 / steps) for k, v in config.ratios.items()}}
    if config.target == "ratio":
        changes["ratio"] = 1 - (1 - config.ratio) ** (1 / steps)  # type: ignore[operator]
    elif config.target in ("target_macs", "target_params"):
        changes[config.target] = getattr(config, config.target) ** (1 / steps)
    return config.replace(**changes)


def iterative(model: nn.Module, config: UnstructuredPruning | StructuredPruning, *, steps: int,
              finetune: Finetune | None = None, example_inputs: Tensor | None = None,
              loader: Iterable[Any] | None = None) -> nn.Module:
    """Prune in ``steps`` equal steps, calling ``finetune(model)`` after each (Han et al.).

    ``finetune`` may return a new model or None (fine-tuned in place). ``steps=1`` is one-shot.
    """
    from slimkit.pruning.api import prune

    if steps < 1:
        raise ConfigError(f"iterative pruning needs steps >= 1, got {steps}")
    for step in range(1, steps + 1):
        current = step_config(config, step, steps)
        if isinstance(config, StructuredPruning) and config.target == "latency_ms" and step < steps:
            continue  # a latency budget is met by one search, at the last step
        model = prune(model, current, loader, example_inputs=example_inputs)
        if finetune is not None:
            model = finetune(model) or model
    return model


def one_shot(model: nn.Module, config: UnstructuredPruning | StructuredPruning, *, finetune: Finetune | None = None,
             example_inputs: Tensor | None = None, loader: Iterable[Any] | None = None) -> nn.Module:
    """Prune once, then ``finetune(model)`` once (if given)."""
    return iterative(model, config, steps=1, finetune=finetune, example_inputs=example_inputs, loader=loader)


def gradual(model: nn.Module, configs: UnstructuredPruning | Sequence[UnstructuredPruning], train_loader: Any,
            recovery: RecoveryConfig, *, original: nn.Module | None = None, ramp: float = 0.5, ramp_steps: int = 20,
            val_loader: Iterable[Any] | None = None, threads: int | None = None) -> nn.Module:
    """Gradual magnitude pruning with retraining, in one call; returns ``model`` (pruned in place,
    masks still attached: ``make_permanent`` bakes them in).

    Each config's sparsity rises to its ``amount`` on Zhu & Gupta's cubic schedule, in
    ``ramp_steps`` steps spread over the first ``ramp`` share of the ``recovery`` fine-tune's
    epochs; the rest trains at the final sparsity. The fine-tune distills from ``original`` (by
    default a frozen copy of ``model`` as it was before pruning) unless ``recovery.distill_from``
    is ``none``. Several configs
    give different layers different amounts (Han et al.'s per-layer rates). The final amounts are
    reached even if training stops early.

    Use a high learning rate: on LeNet-300-100 at 92 % sparsity a short retraining lost 1.8
    points at 1e-3 and 0.5 at 1e-2 (``bench/factorize_share.py``).

    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0); x = torch.randn(64, 8); y = (x[:, 0] > 0).long()
    >>> net = gradual(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), UnstructuredPruning(amount=0.75),
    ...               DataLoader(TensorDataset(x, y), batch_size=16), RecoveryConfig(epochs=2, lr=1e-2))
    >>> from slimkit.pruning import sparsity
    >>> round(sparsity(net)["total"], 2)
    0.75
    """
    from slimkit.distillation.recovery import recover
    from slimkit.pruning.unstructured import set_sparsity

    configs = [configs] if isinstance(configs, UnstructuredPruning) else list(configs)
    if not configs or not all(isinstance(c, UnstructuredPruning) for c in configs):
        raise ConfigError("gradual pruning needs one or more UnstructuredPruning configs",
                          hint="structured pruning changes shapes; use iterative(...) for it")
    if recovery.epochs < 1 or not 0 < ramp <= 1:
        raise ConfigError(f"gradual pruning needs recovery epochs >= 1 and 0 < ramp <= 1, "
                          f"got epochs={recovery.epochs}, ramp={ramp}")
    try:
        total = len(train_loader) * recovery.epochs
    except TypeError:
        raise ConfigError("gradual pruning plans its steps from the loader's length, and this loader has none",
                          hint="pass a DataLoader over a sized dataset, or prune one-shot") from None
    teacher = (original if original is not None else copy.deepcopy(model).eval()) if recovery.kd else None
    steps = max(1, min(ramp_steps, total))
    callbacks = [GradualPruning(c, steps=steps, interval=max(1, int(ramp * total) // steps)) for c in configs]
    recover(model, teacher, train_loader, recovery, val_loader=val_loader, callbacks=callbacks, threads=threads)
    for callback in callbacks:
        if callback.current < callback.config.amount:
            set_sparsity(model, callback.config)
            callback.current = callback.config.amount
    return model
