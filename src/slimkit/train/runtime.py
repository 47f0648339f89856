"""Where and how training runs: device choice, mixed precision, seeds and thread count."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from contextlib import AbstractContextManager

import numpy as np
import torch

from slimkit.errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda when present, else cpu; other names are checked against this machine.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in {"cpu", "cuda"}
    True
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {name!r} is not a torch device ({exc})", hint='use "auto", "cpu" or "cuda[:N]"') from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for, but CUDA is not available here", hint='use device "auto" or "cpu"')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)",
                hint=f'use "cuda:0" ... "cuda:{torch.cuda.device_count() - 1}" or "auto"',
            )
    return device


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager[object]:
    """Mixed-precision context: float16 on accelerators (with a GradScaler), bfloat16 on CPU,
    where float16 matmuls are slow and bfloat16 needs no loss scaling.

    >>> with autocast(torch.device("cpu"), True):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and random; the Trainer calls this at every epoch start.

    >>> seed_everything(3); a = torch.rand(1); seed_everything(3); bool(torch.rand(1) == a)
    True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` intra-op CPU threads inside the block (unchanged when None), then restore.

    >>> before = torch.get_num_threads()
    >>> with num_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(previous)
