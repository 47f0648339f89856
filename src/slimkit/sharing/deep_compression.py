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

from torch import nn

from slimkit.evaluate import artifact_bytes, count_nonzero, count_params
from slimkit.select import select_modules
from slimkit.sharing.cluster import cluster_weights
from slimkit.sharing.config import DeepCompressionConfig
from slimkit.sharing.storage import encode, load_encoded
from slimkit.transform.surgery import restore


@dataclass
class DeepCompressionResult:
    """The compressed model (shared, still trainable), the encoded file and one row per stage:
    ``stage``, ``bytes``, ``ratio`` (fp32 bytes / bytes), ``nonzero`` weights and ``accuracy``."""

    model: nn.Module
    path: Path | None
    stages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "stages": self.stages}


def _pruning_configs(model: nn.Module, config: DeepCompressionConfig) -> list[Any]:
    """One layer-wise magnitude-pruning config per sparsity level ``config`` gives (Han et al.'s
    per-layer thresholds), over the Linear and Conv2d layers it matches."""
    from slimkit.pruning import UnstructuredPruning

    groups: dict[float, list[str]] = {}
    for name in select_modules(model, types=(nn.Linear, nn.Conv2d)):
        amount = config.sparsity_for(name)
        if amount:
            groups.setdefault(amount, []).append(name)
    return [UnstructuredPruning(amount=amount, include=tuple(names)) for amount, names in groups.items()]


def _prune_and_retrain(model: nn.Module, original: nn.Module, config: DeepCompressionConfig, train_loader: Any,
                       val_loader: Iterable | None, seed: int) -> None:
    """slimkit.pruning's magnitude pruning (masks keep pruned weights at zero while training),
    retrained by distilling from ``original``: gradually (``prune.gradual``, the procedure
    ``bench/prune.py`` measures too) or one-shot, then masks baked in."""
    from slimkit.distillation.recovery import recover
    from slimkit.pruning import gradual, make_permanent, prune

    configs = _pruning_configs(model, config)
    recovery = config.prune_recovery.replace(seed=seed)
    tuning = train_loader is not None and recovery.epochs > 0
    if tuning and config.schedule == "gradual" and configs:
        gradual(model, configs, train_loader, recovery, original=original, ramp=config.ramp,
                ramp_steps=config.ramp_steps, val_loader=val_loader)
    else:
        for pruning in configs:
            prune(model, pruning)
        if tuning:
            recover(model, original, train_loader, recovery, val_loader=val_loader)
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

    ``model`` is changed in place (and left as it was if a step fails). Without ``train_loader`` the fine-tunes are skipped. ``out``
    is where the final encoded file goes (a temporary file is measured and removed otherwise).
    ``seed`` seeds the fine-tunes (data order).

    >>> import torch
    >>> from slimkit.models import build_model
    >>> _ = torch.manual_seed(0)
    >>> result = deep_compress(build_model("mlp", hidden=[32], input_size=8))
    >>> [s["stage"] for s in result.stages]
    ['fp32', 'pruned', 'clustered', 'huffman']
    >>> result.stages[-1]["bytes"] < result.stages[0]["bytes"] / 5
    True
    """
    config = config or DeepCompressionConfig()
    snapshot = copy.deepcopy(model)
    try:
        return _pipeline(model, config, train_loader, val_loader, eval_loader, out, seed)
    except BaseException:
        restore(model, snapshot)  # a failing step (a fine-tune, a write) leaves the model as it was
        raise


def _pipeline(model: nn.Module, config: DeepCompressionConfig, train_loader: Iterable | None,
              val_loader: Iterable | None, eval_loader: Iterable | None, out: str | Path | None,
              seed: int) -> DeepCompressionResult:
    from slimkit.distillation.recovery import recover

    original = copy.deepcopy(model).eval()
    fp32 = artifact_bytes(model)
    stages: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="slimkit-dc-") as tmp:

        def row(stage: str, size: int, accuracy: float | None) -> None:
            stages.append({"stage": stage, "bytes": size, "ratio": fp32 / size, "params": count_params(original),
                           "nonzero": count_nonzero(model), "accuracy": accuracy})

        row("fp32", fp32, _accuracy(original, eval_loader))
        _prune_and_retrain(model, original, config, train_loader, val_loader, seed)
        row("pruned", encode(model, Path(tmp) / "pruned.skc", huffman=False), _accuracy(model, eval_loader))
        cluster_weights(model, config.share)
        if train_loader is not None:
            recover(model, original, train_loader, config.share_recovery.replace(seed=seed), val_loader=val_loader)
        row("clustered", encode(model, Path(tmp) / "clustered.skc", huffman=False), _accuracy(model, eval_loader))
        path = Path(out) if out is not None else Path(tmp) / "model.skc"
        size = encode(model, path, huffman=True)
        decoded = load_encoded(path, copy.deepcopy(original))
        row("huffman", size, _accuracy(decoded, eval_loader))
    return DeepCompressionResult(model, Path(out) if out is not None else None, stages)
