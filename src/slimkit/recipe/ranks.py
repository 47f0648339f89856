"""Where each process of a data-parallel recipe run (``slimkit run --nproc N``) writes and reads.

Every process runs every stage, so the training loops inside them (``StageContext.fit`` and
``StageContext.distill``) can run data-parallel, and every other step (pruning, calibration,
export) is computed alike from the same input. Only rank 0 writes the run folder: the status,
each stage's model and metrics, the report. The other ranks write into a private scratch folder
that is removed at the end, and after every stage they wait for rank 0 and then *reload* the
stage's result from rank 0's folder, exactly as a resumed run would. So all ranks start each
stage from the same model, whatever differed while computing it (BatchNorm statistics stay per
rank under DDP on CPU).

In a single process this is a no-op: the run folder is the write folder and barriers return.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch.distributed as dist

from slimkit.parallel.ddp import DistEnv, init_distributed


class RankPlan:
    """This process's place in a run: ``out`` is rank 0's run folder (read by every rank),
    ``root`` the folder this process writes (``out`` itself on rank 0)."""

    def __init__(self, out: Path) -> None:
        self.env: DistEnv = init_distributed()  # a no-op outside torchrun
        self.out = out
        self.root = out if self.main else Path(tempfile.mkdtemp(prefix=f"slimkit-rank{self.env.rank}-"))

    @property
    def main(self) -> bool:
        return self.env.is_main

    @property
    def distributed(self) -> bool:
        return self.env.distributed

    def barrier(self) -> None:
        """Wait until every rank gets here (rank 0's files are then complete)."""
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if not self.main:
            shutil.rmtree(self.root, ignore_errors=True)
