"""Latency, throughput and peak memory of several models, measured fairly in one process.

Fairness rules (DESIGN.md, BENCHMARKS.md): every model sees the same seeded input; the thread
count is fixed for the whole measurement and restored afterwards; each model is warmed up;
then the models alternate call by call (A B A B ...) so that drift in the machine's load
(other processes, frequency scaling) falls on all of them alike; the median and p90 of the
repeats are reported, and throughput is samples per second at the median.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError
from slimkit.evaluate.memory import peak_memory
from slimkit.evaluate.predict import eval_mode, model_device
from slimkit.modelio import call, map_tensors, tile, to_device

__all__ = ["fixed_threads", "make_input", "measure_latency"]


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count inside the block and restore the old value after.

    ``None`` keeps the current count (it is still held fixed and reported).

    >>> before = torch.get_num_threads()
    >>> with fixed_threads(1) as n:
    ...     n, torch.get_num_threads()
    (1, 1)
    >>> torch.get_num_threads() == before
    True
    """
    old = torch.get_num_threads()
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}", hint="use threads=1 or more")
    torch.set_num_threads(threads or old)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def make_input(example_input: Any, batch_size: int, *, seed: int = 0) -> Any:
    """A batch of ``batch_size`` shaped like one sample of ``example_input`` (model inputs as
    :mod:`slimkit.modelio` reads them): seeded standard normal values for float tensors, the
    example's rows tiled for integer ones (token IDs and masks stay valid).

    >>> make_input(torch.zeros(2, 3, 4), 5).shape
    torch.Size([5, 3, 4])
    >>> a = make_input(torch.zeros(1, 3), 2, seed=1)
    >>> torch.equal(a, make_input(torch.ones(7, 3), 2, seed=1))
    True
    >>> make_input({"ids": torch.tensor([[3, 4]])}, 3)["ids"].tolist()
    [[3, 4], [3, 4], [3, 4]]
    """
    generator = torch.Generator().manual_seed(seed)

    def one(t: Tensor) -> Tensor:
        if t.is_floating_point():
            return torch.randn((batch_size, *t.shape[1:]), generator=generator).to(t.dtype)
        return tile(t.cpu(), batch_size)

    return map_tensors(example_input, one)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stats(times_s: list[float], batch_size: int) -> dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    median = float(np.median(ms))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "throughput": batch_size / (median / 1e3) if median > 0 else float("inf"),
        "repeats": len(times_s),
    }


def balanced_orders(n: int) -> list[list[int]]:
    """Orders of ``n`` models in which each model directly follows each other one equally often
    (a Williams design: ``n`` rows for even ``n``, ``2n`` for odd), so a carry-over from one
    model into the next call is charged to every model alike. Cycling the same order would
    always put the same model after the slow-to-settle one.

    >>> balanced_orders(4)
    [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]
    >>> pairs = {(row[j], row[j + 1]) for row in balanced_orders(5) for j in range(4)}
    >>> len(pairs) == 5 * 4  # every ordered pair of distinct models, in 10 rows of 4 pairs each
    True
    """
    first, low, high = [0], 1, n - 1
    for j in range(1, n):
        if j % 2:
            first.append(low)
            low += 1
        else:
            first.append(high)
            high -= 1
    rows = [[(k + r) % n for k in first] for r in range(n)]
    return rows + [row[::-1] for row in rows] if n % 2 else rows


def measure_latency(
    models: Mapping[str, nn.Module],
    example_input: Any,
    *,
    batch_sizes: Sequence[int] = (1, 256),
    warmup: int = 5,
    repeats: int = 30,
    threads: int | None = None,
    seed: int = 0,
    memory: bool = True,
    settle: bool = False,
) -> dict[str, dict[int, dict]]:
    """Time each model's forward pass at each batch size, alternating the models call by call.

    Each model runs on its own device (of its first parameter) in eval mode without gradients.
    Returns ``{name: {batch_size: stats}}`` where stats has ``median_ms``, ``p90_ms``,
    ``mean_ms``, ``min_ms``, ``throughput`` (samples/s at the median), ``repeats``,
    ``threads`` and, with ``memory=True``, ``peak_memory_bytes`` and ``memory_method``
    (see :func:`slimkit.evaluate.memory.peak_memory`).

    ``settle`` precedes each timed call with an untimed call of the same model, so what the
    previous model left running is charged to nobody: OpenVINO's worker threads stay busy a
    moment after a call (measured: an ONNX Runtime model timed right after an OpenVINO one was
    25% slower at batch 1 on a loaded 2-core machine than the same file timed after itself, and
    one untimed call does not absorb all of it), and the rounds follow a balanced order
    (:func:`balanced_orders`): over every ``len(models)`` rounds (twice that for an odd count)
    each model follows each other model once, so whatever remains is spread over all models
    instead of charged to the one listed after it.

    >>> r = measure_latency({"a": nn.Linear(3, 2)}, torch.zeros(1, 3), batch_sizes=(1,),
    ...                     warmup=1, repeats=3, memory=False)
    >>> r["a"][1]["p90_ms"] >= r["a"][1]["median_ms"] > 0
    True
    """
    if not models:
        raise ConfigError("measure_latency needs at least one model", hint="pass {'name': model}")
    if repeats < 1 or warmup < 0 or any(int(b) < 1 for b in batch_sizes):
        raise ConfigError(
            f"need repeats >= 1, warmup >= 0 and batch sizes >= 1, got repeats={repeats}, "
            f"warmup={warmup}, batch_sizes={tuple(batch_sizes)}",
            hint="e.g. warmup=5, repeats=30, batch_sizes=(1, 256)",
        )
    names = list(models)
    devices = {name: model_device(models[name]) for name in names}
    result: dict[str, dict[int, dict]] = {name: {} for name in names}
    with ExitStack() as stack:
        n_threads = stack.enter_context(fixed_threads(threads))
        for name in names:
            stack.enter_context(eval_mode(models[name]))
        stack.enter_context(torch.no_grad())
        for b in (int(b) for b in batch_sizes):
            base = make_input(example_input, b, seed=seed)
            inputs = {name: to_device(base, devices[name]) for name in names}
            times: dict[str, list[float]] = {name: [] for name in names}
            orders = balanced_orders(len(names)) if settle else [list(range(len(names)))]
            for i in range(warmup + repeats):
                # alternate A B A B so drift hits every model alike; settling rounds also vary the
                # order so that every model follows every other equally often
                for name in (names[k] for k in orders[i % len(orders)]):
                    if settle:
                        call(models[name], inputs[name])
                    _sync(devices[name])
                    start = time.perf_counter()
                    call(models[name], inputs[name])
                    _sync(devices[name])
                    if i >= warmup:
                        times[name].append(time.perf_counter() - start)
            for name in names:
                stats = _stats(times[name], b)
                stats["threads"] = n_threads
                if memory:
                    mem = peak_memory(models[name], inputs[name])
                    stats["peak_memory_bytes"] = mem["peak_bytes"]
                    stats["memory_method"] = mem["method"]
                result[name][b] = stats
    return result
