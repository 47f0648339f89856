"""Peak memory of one inference call, measured where it can be and labelled how.

Every method reports the same quantity, ``peak_bytes`` = resident model state (parameters and
buffers) + the input batch + the peak of memory allocated during the forward pass above what
was allocated before it. ``method`` says how the last term was obtained:

- ``"cuda"``: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.
- ``"profiler"`` (CPU): ``torch.profiler`` with ``profile_memory=True``; the allocation and
  free events of the c10 CPU allocator are replayed in time order and the peak of their
  running sum is taken. Memory a backend allocates outside the c10 allocator (some oneDNN
  scratch space) is not seen, so this is a lower bound on the true transient peak.
- ``"estimated"``: used only when the profiler cannot run (e.g. another profiler is active);
  the largest single module output found by forward hooks stands in for the transient peak.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.modelio import call, tensors

__all__ = ["peak_memory", "state_bytes"]


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers held in memory (shared tensors once).

    >>> state_bytes(nn.Linear(3, 2))
    32
    """
    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def _cuda_transient(run: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Mute file descriptor 2 for a moment: Kineto prints start/stop lines from C++ on every profile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiler_transient(run: Callable[[], object]) -> int:
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    # The public event list attributes allocations to ops without their times; the event tree
    # (what torch.profiler's own memory profiler reads) keeps each allocation with its timestamp.
    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
        stack.extend(node.children)
    running = peak = 0
    for _, size in sorted(events, key=lambda e: e[0]):
        running += size
        peak = max(peak, running)
    return peak


def _estimated_transient(model: nn.Module, run: Callable[[], object]) -> int:
    largest = [0]

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        if isinstance(output, Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return largest[0]


def peak_memory(model: nn.Module, inputs: Any) -> dict:
    """Peak memory of ``model(inputs)`` without gradients (see the module docstring).

    Returns ``peak_bytes``, ``transient_bytes`` (the part allocated during the call) and
    ``method`` (``"cuda"``, ``"profiler"`` or ``"estimated"``).

    >>> r = peak_memory(nn.Linear(3, 2), torch.zeros(4, 3))
    >>> r["method"] in ("profiler", "estimated"), r["peak_bytes"] >= 32 + 48
    (True, True)
    """

    def run() -> None:
        with torch.no_grad():
            call(model, inputs)

    first = tensors(inputs)[0][1]
    if first.device.type == "cuda":
        transient, method = _cuda_transient(run, first.device), "cuda"
    else:
        try:
            transient, method = _profiler_transient(run), "profiler"
        except Exception:  # noqa: BLE001 profiler busy or its private tree changed: fall back, labelled
            transient, method = _estimated_transient(model, run), "estimated"
    resident = state_bytes(model) + sum(t.numel() * t.element_size() for _, t in tensors(inputs))
    return {"peak_bytes": resident + transient, "transient_bytes": transient, "method": method}
