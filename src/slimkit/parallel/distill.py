"""Data-parallel distillation with the teacher's outputs cached shard by shard.

``sharded_teacher_cache``: rank r runs the teacher on samples ``r, r + K, r + 2K, ...`` only
(optionally keeping its shard on disk as ``teacher<k>-rank<r>of<K>.safetensors``, validated like
slimkit's single-process cache), then the shards are gathered, so every rank holds the whole
cache for 1/K of the teacher's work. The DistributedSampler hands a rank different samples each
epoch, which is why each rank needs every sample's outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from slimkit.parallel.ddp import DistEnv, fit_ddp, init_distributed, shard_loader

__all__ = ["distill_ddp", "sharded_teacher_cache"]


def _gather_rows(local: Tensor, env: DistEnv, total: int) -> Tensor:
    """Rows ``r::K`` from every rank, put back in sample order."""
    longest = -(-total // env.world_size)
    padded = torch.zeros(longest, *local.shape[1:], dtype=local.dtype)
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(env.world_size)]
    dist.all_gather(parts, padded)
    full = torch.empty(total, *local.shape[1:], dtype=local.dtype)
    for rank, part in enumerate(parts):
        full[rank::env.world_size] = part[: len(range(rank, total, env.world_size))]
    return full


def sharded_teacher_cache(teacher: nn.Module, loader: DataLoader, env: DistEnv, *, index: int = 0,
                          paths: Sequence[str] = (), view: nn.Module | None = None,
                          device: torch.device | None = None, folder: str | Path | None = None) -> Any:
    """The teacher's outputs for every sample of ``loader``'s dataset (a TeacherCache), each
    rank computing (or reading from ``folder``) only its shard; see the module docstring."""
    from slimkit.distillation.batches import IndexedDataset
    from slimkit.distillation.teacher_cache import (
        TeacherCache,
        compute_outputs,
        teacher_meta,
    )

    dataset = loader.dataset.dataset if isinstance(loader.dataset, IndexedDataset) else loader.dataset
    total = len(dataset)  # type: ignore[arg-type]
    mine = Subset(dataset, list(range(env.rank, total, env.world_size)))
    view = view or nn.Identity()
    meta = teacher_meta(teacher, mine, paths, view)
    file = Path(folder) / f"teacher{index}-rank{env.rank}of{env.world_size}.safetensors" if folder else None
    shard = TeacherCache.load(file, meta, samples=len(mine), paths=paths) if file is not None else None
    if shard is None:
        ordered = DataLoader(mine, batch_size=loader.batch_size or 256, shuffle=False, collate_fn=loader.collate_fn)
        shard = compute_outputs(teacher, ordered, paths, view=view, device=device)
        shard.meta = meta
        if file is not None:
            shard.save(file)
    hit = torch.tensor([1 if shard.hit else 0])
    dist.all_reduce(hit, op=dist.ReduceOp.MIN)
    logits = _gather_rows(shard.logits, env, total)
    features = {k: _gather_rows(v, env, total) for k, v in sorted(shard.features.items())}
    return TeacherCache(logits, features, meta={"sharded": str(env.world_size)}, hit=bool(hit.item()))


def distill_ddp(student: nn.Module, teacher: nn.Module, train_loader: DataLoader, config: Any = None, *,
                val_loader: Iterable[Any] | None = None, out_dir: str | Path | None = None,
                callbacks: Sequence[Any] = (), env: DistEnv | None = None) -> Any:
    """``slimkit.distillation.distill`` data-parallel (one teacher): teacher outputs cached by shards
    when ``config.cache_teacher`` allows it and the loader does not augment; student trained by
    :func:`fit_ddp`. A single process simply calls ``distill``. Returns a DistillResult."""
    from slimkit.distillation import DistillConfig, DistillResult, run_distillation
    from slimkit.distillation.batches import augments, with_indices
    from slimkit.distillation.core import DistillationLoss
    from slimkit.distillation.views import Identity, Viewed, build_view
    from slimkit.errors import ConfigError
    from slimkit.modelio import to_device
    from slimkit.train import resolve_device

    config = config or DistillConfig()
    env = env or init_distributed()
    if not env.distributed:
        return run_distillation(student, teacher, train_loader, config, val_loader=val_loader, out_dir=out_dir,
                       callbacks=callbacks)
    if not isinstance(teacher, nn.Module):
        raise ConfigError("distill_ddp takes one teacher module", hint="distill from several teachers in one process")
    device = resolve_device(config.train.device) if dist.get_backend() != "nccl" else torch.device("cuda", env.local_rank)
    teacher.to(device).eval().requires_grad_(False)
    student_view = build_view(config.student_view)
    model = student if isinstance(student_view, Identity) else Viewed(student, student_view)
    loss = DistillationLoss(student, teacher, config.losses, teacher_view=build_view(config.teacher_view))
    try:
        loader = shard_loader(train_loader, env, seed=config.train.seed)
        cached = config.cache_teacher != "off" and getattr(loss.teacher_view, "deterministic", True) \
            and not augments(train_loader)
        mode = "off"
        if cached:
            folder = config.cache_dir or (Path(out_dir) / "teacher_cache" if config.cache_teacher == "disk" and out_dir else None)
            cache = sharded_teacher_cache(teacher, train_loader, env, paths=loss.ensemble.paths(0),
                                          view=loss.teacher_view, device=device, folder=folder)
            loss.use_cache([cache])
            loader, mode = with_indices(loader), "disk" if folder else "memory"
        student.to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train.seed)  # same adapters on every rank
            loss.prepare(model, to_device(next(iter(loader)), device))
        result = fit_ddp(model, loader, val_loader, config.train, loss_fn=loss, callbacks=callbacks,
                         out_dir=out_dir, env=env)
    finally:
        loss.close()
    return DistillResult(student=student, history=result.history, best_epoch=result.best_epoch,
                         best_val_acc=result.best_val_acc, stopped_early=result.stopped_early, cache=mode,
                         cache_hit=mode != "off" and cache.hit)
