"""Data-parallel training and distillation under ``torchrun`` (DDP: gloo on CPU, nccl on GPU).

>>> from slimkit.parallel import dist_env
>>> dist_env().is_main
True
"""

from slimkit.parallel.ddp import (
    DistEnv,
    OnMain,
    SetEpoch,
    SyncGrads,
    dist_env,
    fit_ddp,
    init_distributed,
    shard_loader,
    shutdown,
    wrap_ddp,
)
from slimkit.parallel.distill import distill_ddp, sharded_teacher_cache
from slimkit.parallel.launch import launch, launch_command, strip_flag, under_torchrun

__all__ = [
    "DistEnv",
    "OnMain",
    "SetEpoch",
    "SyncGrads",
    "dist_env",
    "distill_ddp",
    "fit_ddp",
    "init_distributed",
    "launch",
    "launch_command",
    "shard_loader",
    "sharded_teacher_cache",
    "shutdown",
    "strip_flag",
    "under_torchrun",
    "wrap_ddp",
]
