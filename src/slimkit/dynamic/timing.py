"""Time models sample by sample on real inputs, taking turns (see :mod:`slimkit.dynamic.measure`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from slimkit.errors import ConfigError
from slimkit.evaluate.latency import fixed_threads
from slimkit.modelio import batch_size, call, map_tensors, split

__all__ = ["per_sample_latency", "samples_of"]


def samples_of(loader: Iterable[Any], count: int, *, size: int = 1) -> list[Any]:
    """The first ``count`` model inputs of ``loader`` cut into batches of ``size`` samples
    (a loader batch smaller than ``size`` gives none)."""
    out: list[Any] = []
    for raw in loader:
        inputs = split(raw).inputs
        n = batch_size(inputs)
        for start in range(0, n - size + 1, size):
            out.append(_rows(inputs, start, size))
            if len(out) == count:
                return out
    return out  # fewer (or none) when the loader's batches are smaller than ``size``


def _rows(inputs: Any, start: int, size: int) -> Any:
    return map_tensors(inputs, lambda t: t[start:start + size].contiguous())


def _stats(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {"mean_ms": float(ms.mean()), "p90_ms": float(np.percentile(ms, 90)), "median_ms": float(np.median(ms)),
            "samples": len(times)}


def per_sample_latency(models: Mapping[str, Callable[..., Any]], inputs: Sequence[Any], *, warmup: int = 20,
                       threads: int | None = 1) -> dict[str, dict[str, float]]:
    """Time every model on every input (model inputs as :mod:`slimkit.modelio` reads them),
    the models taking turns in a rotating order; returns mean, p90 and median ms per model."""
    if not models or not inputs:
        raise ConfigError("per_sample_latency needs models and inputs")
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    with fixed_threads(threads), torch.no_grad():
        for i in range(min(warmup, len(inputs))):
            for name in names:
                call(models[name], inputs[i])
        for i, x in enumerate(inputs):
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                start = time.perf_counter()
                call(models[name], x)
                times[name].append(time.perf_counter() - start)
    return {name: _stats(times[name]) for name in names}
