"""k-means weight sharing as a parametrization: ``weight = centroids[indices]``.

``centroids`` is an ``nn.Parameter``, so training the shared model trains the centroids, and
autograd's backward of the gather sums the gradients of every weight in a cluster: exactly the
centroid update of Deep Compression. ``indices`` is a buffer (uint8 up to 256 codes). Pruned
layers (exact zeros) keep their zeros in code 0, which maps to a constant 0.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor, nn
from torch.nn.utils import parametrize

from slimkit.errors import CheckpointError, ConfigError
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.select import select_modules
from slimkit.sharing.config import ShareConfig
from slimkit.transform.surgery import CompressionWarning, get_layer

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.EmbeddingBag)
#: ``nn.MultiheadAttention``'s own weight parameters (one packed, or three when q, k, v differ in size).
_ATTENTION = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def index_dtype(codes: int) -> torch.dtype:
    """The smallest integer dtype holding ``codes`` distinct indices.

    >>> index_dtype(256), index_dtype(257)
    (torch.uint8, torch.int16)
    """
    return torch.uint8 if codes <= 256 else torch.int16 if codes <= 32768 else torch.int32


class SharedWeight(nn.Module):
    """Parametrization giving ``centroids[indices]`` (with a fixed 0 at code 0 when ``sparse``).

    Registered with ``unsafe=True``: the original weight is replaced by an empty tensor, so the
    state holds only the codebook and the indices.
    """

    def __init__(self, centroids: Tensor, indices: Tensor, sparse: bool) -> None:
        super().__init__()
        self.sparse = bool(sparse)
        self.centroids = nn.Parameter(centroids.detach().clone())
        self.register_buffer("indices", indices.to(index_dtype(len(centroids) + self.sparse)))

    def table(self) -> Tensor:
        return torch.cat([self.centroids.new_zeros(1), self.centroids]) if self.sparse else self.centroids

    def forward(self, original: Tensor) -> Tensor:
        return self.table()[self.indices.long()]

    def right_inverse(self, weight: Tensor) -> Tensor:
        return weight.new_empty(0)

    def extra_repr(self) -> str:
        return f"k={len(self.centroids)}, shape={tuple(self.indices.shape)}, sparse={self.sparse}"


def initial_centroids(values: np.ndarray, k: int, init: str, seed: int = 0) -> np.ndarray:
    """Deep Compression's three initializations of ``k`` centroids for 1-D ``values``.

    >>> initial_centroids(np.array([0.0, 1.0, 2.0, 4.0]), 3, "linear").tolist()
    [0.0, 2.0, 4.0]
    """
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    if init == "density":
        return np.quantile(values, np.linspace(0, 1, k))
    if init == "random":
        return np.random.default_rng(seed).choice(values, size=k, replace=False)
    raise ConfigError(f"unknown centroid init '{init}'", hint="use linear, density or random")


def kmeans_1d(values: np.ndarray, k: int, *, init: str = "linear", iterations: int = 100,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of scalar ``values`` into ``k`` clusters (scikit-learn, Lloyd). Returns
    ``(centroids, labels)``; with at most ``k`` distinct values they are the centroids, exactly.

    >>> c, labels = kmeans_1d(np.array([0.0, 0.1, 5.0, 5.2]), 2)
    >>> np.round(c, 2).tolist(), labels.tolist()
    ([0.05, 5.1], [0, 0, 1, 1])
    """
    from sklearn.cluster import KMeans

    values = np.asarray(values, dtype=np.float64).ravel()
    distinct, inverse = np.unique(values, return_inverse=True)
    if len(distinct) <= k:
        return distinct, inverse
    start = initial_centroids(values, k, init, seed).reshape(-1, 1)
    with threadpool_limits(1):  # 1-D data: threads cost more than they save on a shared machine
        km = KMeans(n_clusters=k, init=start, n_init=1, max_iter=iterations, random_state=seed, algorithm="lloyd")
        labels = km.fit_predict(values.reshape(-1, 1))
    return km.cluster_centers_.ravel(), labels


def _cluster(weight: Tensor, k: int, name: str, init: str, iterations: int, seed: int) -> SharedWeight:
    """The k-means codebook and indices of ``weight`` (nothing is registered)."""
    weight = weight.detach()
    flat = weight.cpu().double().numpy().ravel()
    sparse = bool((flat == 0).any())
    chosen = np.flatnonzero(flat) if sparse else np.arange(flat.size)
    if k > len(chosen):
        kind = "nonzero weights" if sparse else "weights"
        raise ConfigError(f"layer '{name}' has {len(chosen)} {kind}, fewer than k={k} clusters",
                          hint=f"use k <= {len(chosen)} (fewer bits) for '{name}', or exclude it")
    centroids, labels = kmeans_1d(flat[chosen], k, init=init, iterations=iterations, seed=seed)
    indices = np.zeros(flat.size, dtype=np.int64)
    indices[chosen] = labels + (1 if sparse else 0)
    return SharedWeight(torch.from_numpy(centroids).to(weight), torch.from_numpy(indices).reshape(weight.shape),
                        sparse).to(weight.device)


def _register(layer: nn.Module, tensor: str, shared: SharedWeight) -> None:
    parametrize.register_parametrization(layer, tensor, shared, unsafe=True)
    getattr(layer.parametrizations, tensor).original.requires_grad_(False)


def share_layer(layer: nn.Module, k: int, *, name: str = "layer", init: str = "linear", iterations: int = 100,
                seed: int = 0, tensor: str = "weight") -> SharedWeight:
    """Cluster ``layer``'s ``tensor`` (its weight) into ``k`` shared values and register the parametrization."""
    shared = _cluster(getattr(layer, tensor), k, name, init, iterations, seed)
    _register(layer, tensor, shared)
    return shared


def shareable(module: nn.Module) -> list[str]:
    """The weight tensors of ``module`` that sharing clusters: the ``weight`` of Linear, Conv and
    Embedding layers, and the input projections of ``nn.MultiheadAttention`` (which it holds as
    its own parameters; its ``out_proj`` is a Linear of its own).

    >>> shareable(nn.Embedding(5, 3)), shareable(nn.MultiheadAttention(8, 2)), shareable(nn.LayerNorm(3))
    (['weight'], ['in_proj_weight'], [])
    """
    if isinstance(module, _LAYERS):
        return ["weight"]
    if isinstance(module, nn.MultiheadAttention):
        return [n for n in _ATTENTION if isinstance(getattr(module, n, None), Tensor)]
    return []


def cluster_weights(model: nn.Module, config: ShareConfig | None = None) -> nn.Module:
    """Share weights within each selected layer by k-means (in place): the weights of Linear, Conv
    and Embedding layers and the input projections of ``nn.MultiheadAttention``.

    Every selected tensor is clustered before any is replaced, so an error (``k`` larger than a
    layer's weight count) leaves the model as it was. Train the returned model as usual to
    fine-tune the centroids. Returns the model; ``report_of(model, "share")`` lists per layer k,
    whether zeros were kept and the weight count, and the skipped layers; changes are recorded so
    that ``load_model`` restores the structure.

    >>> from slimkit.models import build_model
    >>> net = cluster_weights(build_model("mlp", hidden=[16], input_size=8), ShareConfig(bits=2))
    >>> len(torch.unique(net.features[0].fc.weight)) <= 4
    True
    """
    config = config or ShareConfig()
    report: dict[str, list[dict[str, Any]]] = {"layers": [], "skipped": []}
    planned: list[tuple[str, nn.Module, str, SharedWeight]] = []
    for name, layer in select_modules(model, config.include, exclude=config.exclude).items():
        for tensor in shareable(layer):
            label = name if tensor == "weight" else f"{name}.{tensor}"
            if parametrize.is_parametrized(layer, tensor):
                report["skipped"].append({"layer": label, "reason": "weight is already parametrized (shared or masked)"})
                continue
            shared = _cluster(getattr(layer, tensor), config.k_for(name), label, config.init, config.iterations,
                              config.seed)
            planned.append((name, layer, tensor, shared))
    for name, layer, tensor, shared in planned:
        _register(layer, tensor, shared)
        extra = {} if tensor == "weight" else {"tensor": tensor}
        record_change(model, "share", layer=name, k=len(shared.centroids), sparse=shared.sparse, **extra)
        report["layers"].append({"layer": name, **extra, "k": len(shared.centroids), "sparse": shared.sparse,
                                 "weights": shared.indices.numel()})
    if not planned:
        warnings.warn(f"share clustered no weight of {type(model).__name__}: no selected Linear, Conv, Embedding "
                      "or attention weight" + (f" ({len(report['skipped'])} already parametrized)"
                                               if report["skipped"] else ""), CompressionWarning, stacklevel=2)
    record_report(model, "share", report)
    return model


def shared_layers(model: nn.Module) -> dict[str, SharedWeight]:
    """``{"layer.weight": SharedWeight}`` for every shared weight of ``model``."""
    found = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for tensor_name, plist in module.parametrizations.items():
                if len(plist) == 1 and isinstance(plist[0], SharedWeight):
                    found[f"{name}.{tensor_name}" if name else tensor_name] = plist[0]
    return found


def bake(model: nn.Module) -> nn.Module:
    """Replace every parametrization (sharing, masks) and ``torch.nn.utils.prune`` reparametrization
    by the plain tensor it computes (in place), dropping the matching ``share`` records."""
    from torch.nn.utils import prune

    for name, module in list(model.named_modules()):
        if parametrize.is_parametrized(module):
            # A deep copy shares the dynamically made Parametrized* class with its source, and
            # removing a parametrization edits that class: give this module its own class first.
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for tensor_name in list(module.parametrizations):
                value = getattr(module, tensor_name).detach().clone()
                parametrize.remove_parametrizations(module, tensor_name, leave_parametrized=False)
                setattr(module, tensor_name, nn.Parameter(value))
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    history = [c for c in getattr(model, "slimkit_history", [])
               if c.get("kind") != "share" and not (c.get("kind") == "report" and c.get("verb") == "share")]
    model.slimkit_history = history
    return model


def replay_share(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Rebuild a recorded sharing's structure (codebook and indices come from the saved file).

    The record is data: ``k`` is checked against the weight it clusters (at most one code per
    value) before the codebook is allocated, so ``k: 1e11`` is an error, not a 400 GB allocation.
    """
    name, tensor = change.get("layer"), change.get("tensor", "weight")
    if not isinstance(name, str) or not isinstance(tensor, str):
        raise CheckpointError("the share record needs a 'layer' and 'tensor' naming the shared weight, got "
                              f"{str(name)[:60]!r} and {str(tensor)[:60]!r}")
    layer = get_layer(model, name)
    weight = getattr(layer, tensor, None)
    if not isinstance(weight, Tensor) or weight.numel() == 0:
        raise CheckpointError(f"the share record names '{name}.{tensor}', which is not a weight of the model",
                              hint="the model.json does not belong to this architecture")
    k, sparse = change.get("k"), change.get("sparse", False)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= weight.numel() or not isinstance(sparse, bool):
        raise CheckpointError(f"the share record of '{name}' has k={str(k)[:40]} and sparse={str(sparse)[:10]}: k must "
                              f"be a whole number from 1 to the weight's {weight.numel():,} values, sparse true or false")
    weight = weight.detach()
    shared = SharedWeight(weight.new_zeros(k), torch.zeros(weight.shape, dtype=torch.int64), sparse)
    _register(layer, tensor, shared.to(weight.device))
    return model


CHANGES.add("share", replay_share)
