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


def _prune(model: nn.Module, config: DeepCompressionConfig) -> list[Callback]:
    """Layer-wise magnitude pruning with slimkit.prune's masks (which keep pruned weights at zero
    while training); the callbacks the fine-tune needs (none with slimkit.prune)."""
    try:
        from slimkit.prune import UnstructuredPruning, prune
    except ImportError:  # slimkit.prune is optional here: re-zero after every step instead
        return [KeepMasks(model, magnitude_masks(model, config))]
    groups: dict[float, list[str]] = {}
    for name in select_modules(model, types=(nn.Linear, nn.Conv2d)):
        amount = config.sparsity_for(name)
        if amount:
            groups.setdefault(amount, []).append(name)
    for amount, names in groups.items():
        prune(model, UnstructuredPruning(amount=amount, include=tuple(names)))
    return []


def _make_permanent(model: nn.Module) -> None:
    try:
        from slimkit.prune import make_permanent
    except ImportError:
        return
    make_permanent(model)


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
        callbacks = _prune(model, config)
        if train_loader is not None and config.prune_epochs:
            recover_from(model, original, train_loader, val_loader=val_loader, epochs=config.prune_epochs,
                         lr=config.lr, callbacks=callbacks, seed=seed)
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
