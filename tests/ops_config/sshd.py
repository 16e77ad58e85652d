"""A real OpenSSH server (Debian's openssh-server) on loopback, started by the tests, with a fresh host key and
a fresh client key; the client side is laid out as BooControl expects it (``DATA_DIR/secrets/<key>`` and
``secrets/known_hosts``)."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Sshd:
    port: int
    user: str
    secrets_dir: Path
    key_name: str
    log_path: Path


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextlib.contextmanager
def run_sshd(base: Path) -> Iterator[Sshd]:
    if not SSHD.exists() or shutil.which("ssh-keygen") is None:
        pytest.fail("openssh-server is not installed (scripts/install.sh --test installs it)")
    base.mkdir(parents=True, exist_ok=True)
    host_key, client_key = base / "host_ed25519", base / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    (base / "authorized_keys").write_text((base / "client_ed25519.pub").read_text())
    secrets = base / "secrets"
    secrets.mkdir(mode=0o700)
    shutil.copy(client_key, secrets / "test_ed25519")
    (secrets / "test_ed25519").chmod(0o600)
    port = free_port()
    host_pub = (base / "host_ed25519.pub").read_text().split()
    (secrets / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    user = getpass.getuser()
    cfg = base / "sshd_config"
    cfg.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {base / 'sshd.pid'}",
        f"AuthorizedKeysFile {base / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "UsePAM no", "StrictModes no",
        "PermitRootLogin prohibit-password", f"AllowUsers {user}", "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE", ""]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    log = base / "sshd.log"
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(cfg)], stdout=open(log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(4).startswith(b"SSH-"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield Sshd(port, user, secrets, "test_ed25519", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
