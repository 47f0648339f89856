"""A throwaway PostgreSQL server for local test runs (SLIMKIT_TEST_POSTGRES=start), made the way
.ci/run makes CI's: a new cluster in a temporary folder, a password, 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bin_dir() -> Path | None:
    """Debian keeps the server programs in /usr/lib/postgresql/<version>/bin, off PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayServer:
    """``start()`` returns the URL of an empty database; ``stop()`` stops the server and removes its folder."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.bin = _bin_dir()

    def _run(self, *command: str | Path, check: bool = True) -> None:
        # initdb and postgres refuse to run as root: run them as nobody, in the folder nobody owns.
        prefix = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *map(str, command)], check=check, cwd=self.folder, capture_output=True, text=True)

    def start(self) -> str:
        if self.bin is None:
            raise RuntimeError("PostgreSQL's initdb was not found (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="slimkit-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "nobody")
        password = secrets.token_hex(16)
        self._run("sh", "-c", f'umask 077; echo {password} > "$0"', self.folder / "password")
        self._run(self.bin / "initdb", "-D", self.folder / "data", "-U", "slimkit", f"--pwfile={self.folder / 'password'}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        port = _free_port()
        self._run(self.bin / "pg_ctl", "-D", self.folder / "data", "-l", self.folder / "server.log", "-w", "-t", "60",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={self.folder} -c fsync=off",
                  "start")
        subprocess.run([self.bin / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "slimkit", "slimkit_test"],
                       check=True, capture_output=True, env={**os.environ, "PGPASSWORD": password})
        return f"postgresql://slimkit:{password}@127.0.0.1:{port}/slimkit_test"

    def stop(self) -> None:
        if self.folder is None:
            return
        self._run(self.bin / "pg_ctl", "-D", self.folder / "data", "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
