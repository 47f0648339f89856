"""Where each process of a data-parallel recipe run (``slimkit run --nproc N``) writes and reads.

Every process runs every stage, so the training loops inside them (the Trainer's distributed
backend) run data-parallel, and every other step (pruning, calibration, export) is computed
alike from the same input. Only rank 0 writes the run folder: the status, each stage's model and
metrics, the report. After each stage rank 0 *sends* the stage's saved model (safetensors and
JSON, never pickle) and records over the process group; the other ranks write them into a
private scratch folder and reload them from there, exactly as a resumed run would. So no shared
filesystem is needed: the ranks may run on different machines.

In a single process this is a no-op: the run folder is the write folder and sharing returns it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from slimkit.train.distributed import DistEnv, barrier, broadcast_bytes, init_distributed

#: What a stage folder holds that the other ranks need, relative to the folder.
SHARED_FILES = ("model/model.json", "model/model.safetensors", "metrics.json")


class RankPlan:
    """This process's place in a run: ``out`` is rank 0's run folder, ``root`` the folder this
    process writes (``out`` itself on rank 0, a private scratch folder elsewhere)."""

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
        """Wait until every rank gets here."""
        barrier()

    def share_file(self, path: Path) -> bytes:
        """The bytes of rank 0's file ``path`` on every rank (``b""`` where rank 0 has none)."""
        data = path.read_bytes() if self.main and path.is_file() else None
        return broadcast_bytes(data)

    def share_stage(self, folder: Path) -> Path:
        """Rank 0's stage ``folder`` (its model and record) on this rank: the folder itself on
        rank 0, a copy under this rank's scratch folder elsewhere."""
        if not self.distributed:
            return folder
        local = self.root / folder.name
        for name in SHARED_FILES:
            data = self.share_file(folder / name)
            if not self.main and data:
                (local / name).parent.mkdir(parents=True, exist_ok=True)
                (local / name).write_bytes(data)
        return folder if self.main else local

    def close(self) -> None:
        if not self.main:
            shutil.rmtree(self.root, ignore_errors=True)
