"""Data-parallel training under ``torchrun``: the Trainer's distributed backend.

Run the same script on every process (``torchrun --nproc-per-node 2 script.py``, or
``slimkit run --nproc 2``). ``init_distributed`` joins the process group from torchrun's
environment (gloo on CPU, nccl on GPU). From then on ``Trainer.fit`` — and so distillation,
recovery and every recipe stage, which all train through it — runs data-parallel by itself
(:func:`prepare_fit`):

- the train loader is re-batched over a ``DistributedSampler``: each rank takes ``batch_size /
  world_size`` samples of every global batch, so the effective batch and the number of steps
  per epoch are those of one process (gradients are averaged over ranks by DDP);
- the sampler's epoch is set at each epoch start, so the shuffling differs per epoch and is the
  same on every rank;
- progress, ``last.pt``/``best.pt`` and ``metrics.jsonl`` come from rank 0 only; checkpoints
  hold the plain model's ``state_dict`` (no ``module.`` prefix), so they load without DDP;
- validation runs on the whole val loader on every rank, so early stopping decides alike, and
  the epoch's training loss and accuracy are averaged over ranks (:class:`ReduceMetrics`);
- parameters of the loss (distillation adapters) are outside DDP: their gradients are averaged
  by :class:`SyncGrads`.

User callbacks run on every rank (a callback that changes training must); wrap logging-only
callbacks in :class:`OnMain`.

BatchNorm statistics stay per rank (SyncBatchNorm needs GPUs), so a net with BatchNorm matches
single-process training within tolerance rather than exactly; without it the weights agree to
float rounding on the same global batches (tests/train/test_distributed.py).

:func:`broadcast_bytes` sends bytes from rank 0 to every rank over the process group (no shared
disk needed: a recipe's stage results travel this way, as safetensors and JSON, never pickle).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler

from slimkit.errors import ConfigError
from slimkit.train.callbacks import Callback

__all__ = ["DistEnv", "DistributedFit", "OnMain", "ReduceMetrics", "SetEpoch", "SyncGrads", "barrier",
           "broadcast_bytes", "dist_env", "init_distributed", "prepare_fit", "shard_loader", "shutdown", "wrap_ddp"]


@dataclass(frozen=True)
class DistEnv:
    """This process's place: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_env() -> DistEnv:
    """The current process group's ranks, else torchrun's environment, else a single process.

    >>> dist_env().world_size >= 1
    True
    """
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    get = lambda key, default: int(os.environ.get(key, default))
    return DistEnv(get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0))


def init_distributed(backend: str = "auto", *, timeout_s: float = 1800.0) -> DistEnv:
    """Join the process group torchrun set up (``env://``); a no-op for a single process.

    ``backend="auto"`` is nccl when CUDA is available, else gloo. On GPU each process uses the
    device of its ``LOCAL_RANK``.
    """
    env = dist_env()
    if not env.distributed or dist.is_initialized():
        return env
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={env.world_size} but {', '.join(missing)} is not set",
                          hint="start the processes with torchrun (or slimkit run --nproc N)")
    dist.init_process_group(backend, init_method="env://", rank=env.rank, world_size=env.world_size,
                            timeout=timedelta(seconds=timeout_s))
    return dist_env()


def shutdown() -> None:
    """Leave the process group (after a last barrier), if one is joined."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard_loader(loader: DataLoader, env: DistEnv | None = None, *, seed: int = 0,
                 shuffle: bool | None = None) -> DataLoader:
    """``loader`` re-batched for this rank: ``batch_size / world_size`` samples of each global
    batch through a ``DistributedSampler`` (shuffled when ``loader`` shuffles, seeded ``seed``)."""
    env = env or dist_env()
    batches = loader.batch_sampler  # a plain DataLoader's, or the one a wrapper (with_indices) shares
    size = loader.batch_size or getattr(batches, "batch_size", None)
    if size is None or not isinstance(batches, BatchSampler):
        raise ConfigError("data-parallel training needs a loader batched by batch_size (not a custom batch sampler)",
                          hint="build the DataLoader with batch_size=...")
    if size % env.world_size:
        raise ConfigError(f"batch size {size} does not split over {env.world_size} processes",
                          hint=f"use a batch size divisible by {env.world_size} (it stays the global batch)")
    shuffle = isinstance(batches.sampler, RandomSampler) if shuffle is None else shuffle
    sampler = DistributedSampler(loader.dataset, num_replicas=env.world_size, rank=env.rank, shuffle=shuffle,
                                 seed=seed, drop_last=batches.drop_last)
    return DataLoader(loader.dataset, batch_size=size // env.world_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      drop_last=batches.drop_last, worker_init_fn=loader.worker_init_fn)


def _distributed_sampler(loader: DataLoader) -> DistributedSampler | None:
    for candidate in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
        if isinstance(candidate, DistributedSampler):
            return candidate
    return None


class SetEpoch(Callback):
    """Calls ``sampler.set_epoch(epoch)`` at each epoch start (a new, rank-consistent shuffle)."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


class SyncGrads(Callback):
    """Averages the gradients of ``params`` over ranks after backward (parameters DDP does not
    own, such as a distillation loss's adapters)."""

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        self.params = [p for p in params if p.requires_grad]

    def on_after_backward(self, trainer: Any) -> None:
        world = dist.get_world_size()
        for param in self.params:
            if param.grad is None:
                param.grad = torch.zeros_like(param)  # every rank must join every all-reduce
            dist.all_reduce(param.grad)
            param.grad /= world


class ReduceMetrics(Callback):
    """Averages the epoch's training metrics (``train_*``) over ranks, so rank 0 logs the figures
    of the whole global batch rather than of its own shard (every shard has the same size)."""

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        keys = sorted(k for k, v in metrics.items() if k.startswith("train_") and isinstance(v, float))
        if keys:
            values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
            dist.all_reduce(values)
            metrics.update(zip(keys, (values / dist.get_world_size()).tolist()))


class OnMain(Callback):
    """Runs the wrapped callback's hooks on rank 0 only (for callbacks that only log)."""

    def __init__(self, callback: Callback) -> None:
        self.callback, self.main = callback, dist_env().is_main

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") and not object.__getattribute__(self, "main"):
            return lambda *args, **kwargs: None
        if name.startswith("on_") or name in ("state_dict", "load_state_dict"):
            return getattr(object.__getattribute__(self, "callback"), name)
        return object.__getattribute__(self, name)


class _DDP(DistributedDataParallel):
    """DDP whose state dict is the wrapped model's: checkpoints stay loadable without DDP."""

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def wrap_ddp(model: nn.Module, env: DistEnv | None = None) -> nn.Module:
    """``model`` in DDP (on this rank's GPU when CUDA is used); unchanged for one process."""
    env = env or dist_env()
    if not env.distributed:
        return model
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        model.to(torch.device("cuda", env.local_rank))
        return _DDP(model, device_ids=[env.local_rank])
    return _DDP(model)


@dataclass
class DistributedFit:
    """What ``Trainer.fit`` trains on under DDP: the wrapped model, this rank's loader, the extra
    callbacks, and whether this rank writes files."""

    model: nn.Module
    loader: DataLoader
    callbacks: list[Callback]
    main: bool


def prepare_fit(model: nn.Module, train_loader: Any, loss_fn: Any, seed: int) -> DistributedFit | None:
    """The data-parallel setup for one fit, or None in a single process (nothing to change)."""
    env = dist_env()
    if not (env.distributed and dist.is_available() and dist.is_initialized()):
        return None
    if not isinstance(train_loader, DataLoader):
        raise ConfigError(f"data-parallel training needs a torch DataLoader, got {type(train_loader).__name__}",
                          hint="wrap the dataset in torch.utils.data.DataLoader")
    sharded = _distributed_sampler(train_loader) is not None
    loader = train_loader if sharded else shard_loader(train_loader, env, seed=seed)
    sampler = _distributed_sampler(loader)
    extra: list[Callback] = [ReduceMetrics(), *([SetEpoch(sampler)] if sampler is not None else [])]
    if isinstance(loss_fn, nn.Module) and any(p.requires_grad for p in loss_fn.parameters()):
        extra.append(SyncGrads(loss_fn.parameters()))
    return DistributedFit(wrap_ddp(model, env), loader, extra, env.is_main)


def barrier() -> None:
    """Wait for every rank (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_bytes(data: bytes | None, src: int = 0) -> bytes:
    """``data`` from rank ``src`` on every rank (``data`` is ignored elsewhere); a single process
    gets ``data`` back. Sizes first, then the bytes as a uint8 tensor.

    >>> broadcast_bytes(b"abc")
    b'abc'
    """
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return data or b""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    size = torch.tensor([len(data) if dist.get_rank() == src and data is not None else 0], dtype=torch.int64,
                        device=device)
    dist.broadcast(size, src)
    buffer = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
              if dist.get_rank() == src and data else torch.empty(int(size.item()), dtype=torch.uint8, device=device))
    if int(size.item()):
        dist.broadcast(buffer, src)
    return bytes(buffer.cpu().numpy().tobytes())
