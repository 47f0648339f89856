"""Start a command on N processes under ``torchrun`` (``torch.distributed.run``), on this machine.

``slimkit run recipe.yaml --nproc 2`` re-executes itself as
``python -m torch.distributed.run --standalone --nproc-per-node 2 -m slimkit.cli run recipe.yaml``:
each child sees torchrun's RANK/WORLD_SIZE/MASTER_* variables, so ``under_torchrun()`` is true
there and the ``--nproc`` flag is dropped from its arguments (no recursion).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from slimkit.errors import ConfigError

__all__ = ["launch", "launch_command", "strip_flag", "under_torchrun"]


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher setting RANK/WORLD_SIZE).

    >>> import os; os.environ.get("WORLD_SIZE") is None and not under_torchrun()
    True
    """
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def strip_flag(argv: Sequence[str], flag: str = "--nproc") -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE``.

    >>> strip_flag(["run", "r.yaml", "--nproc", "2", "--resume"]), strip_flag(["run", "--nproc=4"])
    (['run', 'r.yaml', '--resume'], ['run'])
    """
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(f"{flag}="):
            out.append(arg)
    return out


def launch_command(nproc: int, argv: Sequence[str], *, module: str | None = "slimkit.cli",
                   script: str | Path | None = None) -> list[str]:
    """The torchrun command line that runs ``module`` (or ``script``) with ``argv`` on ``nproc`` processes.

    >>> launch_command(2, ["run", "r.yaml", "--nproc", "2"])[3:]
    ['--standalone', '--nproc-per-node=2', '-m', 'slimkit.cli', 'run', 'r.yaml']
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"--nproc must be a positive integer, got {nproc!r}", hint="e.g. --nproc 2")
    target = [str(script)] if script is not None else ["-m", str(module)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            *target, *strip_flag(argv)]


def launch(nproc: int, argv: Sequence[str], *, module: str | None = "slimkit.cli",
           script: str | Path | None = None, env: dict[str, str] | None = None) -> int:
    """Run ``module``/``script`` with ``argv`` on ``nproc`` local processes under torchrun and
    return its exit code (non-zero if any process failed). Each process gets one intra-op
    thread per core it can have (``OMP_NUM_THREADS``), unless the caller set it."""
    command = launch_command(nproc, argv, module=module, script=script)
    child_env = {**os.environ, **(env or {})}
    child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        return subprocess.run(command, env=child_env, check=False).returncode
    except KeyboardInterrupt:  # torchrun forwards the signal to its workers and exits
        return 130
