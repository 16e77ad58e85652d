"""An embedded Postgres cluster in a data directory.

`up` and the test suite both start a private cluster with Debian's PostgreSQL binaries (initdb and
pg_ctl). As root the server must run as the ``postgres`` system user, so commands go through
``runuser`` and the data directory is owned by that user; as a normal user they run directly.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    pass


def find_pg_bin() -> Path:
    """Directory holding initdb/pg_ctl: PATH first, then Debian's versioned directories."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for cand in reversed(candidates):
        if (Path(cand) / "initdb").exists():
            return Path(cand)
    raise ClusterError(
        "PostgreSQL server binaries not found: install them with `apt-get install -y postgresql` "
        "or set BOOCONTROL_DATABASE_URL to an existing server"
    )


@dataclass
class EmbeddedCluster:
    data_dir: Path
    port: int
    fast_unsafe: bool = False  # fsync off etc., for throwaway test clusters only

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "sock"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "postgres.log"

    def url(self, dbname: str = "boocontrol") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def _as_pg(self) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"]
        return []

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        cmd = self._as_pg() + args
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            for p in (self.data_dir, self.socket_dir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            # every parent must be traversable by the postgres user
            for parent in self.data_dir.resolve().parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
            if self.logfile.exists():
                os.chown(self.logfile, pw.pw_uid, pw.pw_gid)

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        bindir = find_pg_bin()
        proc = subprocess.run(
            self._as_pg() + [str(bindir / "pg_ctl"), "-D", str(self.pgdata), "status"],
            capture_output=True,
            text=True,
        )
        return proc.returncode == 0

    def init(self) -> None:
        self._prepare_dirs()
        if self.initialised():
            return
        bindir = find_pg_bin()
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
            ]
        )

    def start(self, timeout_s: int = 30) -> None:
        self.init()
        if self.running():
            return
        bindir = find_pg_bin()
        opts = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if self.fast_unsafe:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._prepare_dirs()
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.logfile),
                "-o",
                opts,
                "-w",
                "-t",
                str(timeout_s),
                "start",
            ]
        )
        self.ensure_database("boocontrol")

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        bindir = find_pg_bin()
        self._run([str(bindir / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"])

    def ensure_database(self, name: str) -> None:
        import psycopg

        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
                ) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, never user input
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
