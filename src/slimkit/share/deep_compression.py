"""Deep Compression in one call: prune, then cluster, then Huffman-code (Han et al. 2016).

Every stage's size is the bytes of a file actually written: fp32 safetensors, then the pruned
model in sparse form (float32 values, fixed-width relative indices), then the clustered model
(codebook + fixed-width indices), then the same with Huffman coding. Accuracy after each stage
is measured when an evaluation loader is given; the Huffman stage's accuracy comes from the model
decoded back from its file, which shows the coding is lossless.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.evaluate import artifact_bytes, count_nonzero, count_params
from slimkit.select import select_modules
from slimkit.share.cluster import share
from slimkit.share.config import DeepCompressionConfig
from slimkit.share.storage import encode, load_encoded
from slimkit.train import Callback

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class DeepCompressionResult:
    """The compressed model (shared, still trainable), the encoded file and one row per stage:
    ``stage``, ``bytes``, ``ratio`` (fp32 bytes / bytes), ``nonzero`` weights and ``accuracy``."""

    model: nn.Module
    path: Path | None
    stages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "stages": self.stages}


def magnitude_masks(model: nn.Module, config: DeepCompressionConfig) -> dict[str, torch.Tensor]:
    """Zero the smallest-magnitude weights of each layer matched by ``config.sparsity`` (in
    place) and return the keep-masks by layer name (layer-wise thresholds, as in Han et al.)."""
    masks = {}
    for name, layer in select_modules(model, types=_LAYERS).items():
        fraction = config.sparsity_for(name)
        if not fraction:
            continue
        weight = layer.weight.detach()
        drop = round(fraction * weight.numel())
        if drop == 0:
            continue
        threshold = weight.abs().flatten().kthvalue(drop).values
        mask = weight.abs() > threshold
        with torch.no_grad():
            layer.weight.mul_(mask)
        masks[name] = mask
    return masks


class KeepMasks(Callback):
    """Re-zero pruned weights after every optimizer step, so fine-tuning keeps the sparsity."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
        self.pairs = [(model.get_submodule(name), mask) for name, mask in masks.items()]

    def on_step_end(self, trainer: Any, logs: dict[str, float]) -> None:
        with torch.no_grad():
            for layer, mask in self.pairs:
                layer.weight.mul_(mask)


def _groups(model: nn.Module, config: DeepCompressionConfig) -> dict[float, list[str]]:
    """Layer names by the sparsity ``config`` gives them (one pruning config per amount)."""
    groups: dict[float, list[str]] = {}
    for name in select_modules(model, types=(nn.Linear, nn.Conv2d)):
        amount = config.sparsity_for(name)
        if amount:
            groups.setdefault(amount, []).append(name)
    return groups


def _prune(model: nn.Module, config: DeepCompressionConfig, steps_per_epoch: int = 0) -> list[Callback]:
    """Layer-wise magnitude pruning with slimkit.prune's masks (which keep pruned weights at zero
    while training); returns the callbacks the prune fine-tune needs.

    One-shot pruning masks every layer now. ``schedule="gradual"`` (given the fine-tune's
    ``steps_per_epoch``) returns one GradualPruning callback per sparsity level instead, which
    ramps the masks during the fine-tune; :func:`_finish_pruning` makes sure the final
    sparsity is reached even when the fine-tune was too short for the ramp."""
    try:
        from slimkit.prune import UnstructuredPruning, prune
        from slimkit.prune.schedule import GradualPruning
    except ImportError:  # slimkit.prune is optional here: re-zero after every step instead
        return [KeepMasks(model, magnitude_masks(model, config))]
    groups = _groups(model, config)
    total = steps_per_epoch * config.prune_epochs
    if config.schedule == "gradual" and total > 0:
        steps = min(config.ramp_steps, total)
        interval = max(1, int(config.ramp * total) // steps)
        return [GradualPruning(UnstructuredPruning(amount=amount, include=tuple(names)), steps=steps, interval=interval)
                for amount, names in groups.items()]
    for amount, names in groups.items():
        prune(model, UnstructuredPruning(amount=amount, include=tuple(names)))
    return []


def _finish_pruning(model: nn.Module, callbacks: list[Callback]) -> None:
    """Bring every gradually pruned group to its final sparsity (a no-op once the ramp ended)."""
    from slimkit.prune.schedule import GradualPruning
    from slimkit.prune.unstructured import set_sparsity

    for callback in callbacks:
        if isinstance(callback, GradualPruning) and callback.current < callback.config.amount:
            set_sparsity(model, callback.config)
            callback.current = callback.config.amount


def _make_permanent(model: nn.Module) -> None:
    try:
        from slimkit.prune import make_permanent
    except ImportError:
        return
    make_permanent(model)


def _steps_per_epoch(loader: Iterable) -> int:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:  # an iterable without a length: the gradual ramp cannot be planned
        return 0


def _accuracy(model: nn.Module, loader: Iterable | None) -> float | None:
    if loader is None:
        return None
    from slimkit.evaluate import accuracy, predict

    return float(accuracy(*predict(model, loader).pair()))


def deep_compress(
    model: nn.Module,
    config: DeepCompressionConfig | None = None,
    *,
    train_loader: Iterable | None = None,
    val_loader: Iterable | None = None,
    eval_loader: Iterable | None = None,
    out: str | Path | None = None,
    seed: int = 0,
) -> DeepCompressionResult:
    """Prune, fine-tune, share weights by k-means, fine-tune the centroids, Huffman-code.

    ``model`` is changed in place. Without ``train_loader`` the fine-tunes are skipped. ``out``
    is where the final encoded file goes (a temporary file is measured and removed otherwise).
    ``seed`` seeds the fine-tunes (data order).

    >>> from slimkit.models import build_model
    >>> _ = torch.manual_seed(0)
    >>> result = deep_compress(build_model("mlp", hidden=[32], input_size=8))
    >>> [s["stage"] for s in result.stages]
    ['fp32', 'pruned', 'clustered', 'huffman']
    >>> result.stages[-1]["bytes"] < result.stages[0]["bytes"] / 5
    True
    """
    from slimkit.transform.recovery import recover_from

    config = config or DeepCompressionConfig()
    original = copy.deepcopy(model).eval()
    fp32 = artifact_bytes(model)
    stages: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="slimkit-dc-") as tmp:

        def row(stage: str, size: int, accuracy: float | None) -> None:
            stages.append({"stage": stage, "bytes": size, "ratio": fp32 / size, "params": count_params(original),
                           "nonzero": count_nonzero(model), "accuracy": accuracy})

        row("fp32", fp32, _accuracy(original, eval_loader))
        tuning = train_loader is not None and config.prune_epochs > 0
        callbacks = _prune(model, config, _steps_per_epoch(train_loader) if tuning else 0)
        if tuning:
            recover_from(model, original, train_loader, val_loader=val_loader, epochs=config.prune_epochs,
                         lr=config.lr, callbacks=callbacks, seed=seed)
        if callbacks and not isinstance(callbacks[0], KeepMasks):
            _finish_pruning(model, callbacks)
        _make_permanent(model)
        row("pruned", encode(model, Path(tmp) / "pruned.skc", huffman=False), _accuracy(model, eval_loader))
        share(model, config.share)
        if train_loader is not None and config.share_epochs:
            recover_from(model, original, train_loader, val_loader=val_loader, epochs=config.share_epochs,
                         lr=config.share_lr, seed=seed)
        row("clustered", encode(model, Path(tmp) / "clustered.skc", huffman=False), _accuracy(model, eval_loader))
        path = Path(out) if out is not None else Path(tmp) / "model.skc"
        size = encode(model, path, huffman=True)
        decoded = load_encoded(path, copy.deepcopy(original))
        row("huffman", size, _accuracy(decoded, eval_loader))
    return DeepCompressionResult(model, Path(out) if out is not None else None, stages)
