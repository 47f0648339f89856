"""The verb: ``share(model, config, loader=None, ...) -> model``.

:class:`ShareConfig` clusters each selected layer's weights by k-means (in place; train the model
afterwards to fine-tune the centroids). :class:`DeepCompressionConfig` runs Han et al.'s whole
pipeline: magnitude pruning with retraining, k-means sharing with centroid fine-tuning, and a
Huffman-coded file; ``loader`` is its training data.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.export.serialize import record_report
from slimkit.registry import Dispatch
from slimkit.sharing.config import DeepCompressionConfig, ShareConfig

#: ``share``'s implementations by config type.
SHARE: Dispatch = Dispatch("share")


def share(model: nn.Module, config: ShareConfig | DeepCompressionConfig | None = None,
          loader: Iterable[Any] | None = None, *, val_loader: Iterable[Any] | None = None,
          eval_loader: Iterable[Any] | None = None, out: str | Path | None = None) -> nn.Module:
    """Share ``model``'s weights as ``config`` says (in place) and return it.

    For Deep Compression, ``loader`` trains the fine-tunes (skipped without one), ``eval_loader``
    scores each step and ``out`` receives the encoded file; ``report_of(model, "share")`` holds
    the per-step sizes and accuracies.

    >>> from torch import nn
    >>> net = share(nn.Sequential(nn.Linear(32, 4)), ShareConfig(bits=3))
    >>> len(net[0].weight.unique()) <= 8
    True
    """
    config = config if config is not None else ShareConfig()
    return SHARE.lookup(config)(model, config, loader, val_loader=val_loader, eval_loader=eval_loader, out=out)


@SHARE.register(ShareConfig)
def _cluster(model: nn.Module, config: ShareConfig, loader: Any, **_: Any) -> nn.Module:
    from slimkit.sharing.cluster import cluster_weights

    return cluster_weights(model, config)


@SHARE.register(DeepCompressionConfig)
def _deep_compression(model: nn.Module, config: DeepCompressionConfig, loader: Any, *, val_loader: Any,
                      eval_loader: Any, out: str | Path | None) -> nn.Module:
    from slimkit.sharing.deep_compression import deep_compress

    result = deep_compress(model, config, train_loader=loader, val_loader=val_loader, eval_loader=eval_loader, out=out)
    record_report(model, "deep_compression", result.to_dict())
    return model
