"""What a sandbox job is, what limits it runs under, and what came out of it (backend-independent)."""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol

JOB_DIR = "/job"
"""Where the job's files are placed and its command starts, inside every backend."""


class SandboxError(ValueError):
    """The job itself is invalid (a file path leaving the job dir, an empty command, a bad limit)."""


class SandboxUnavailable(RuntimeError):
    """The backend cannot run here (no bwrap, not root, no docker engine); the message says what to do."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-job limits. Memory is per process (RLIMIT_AS on bubblewrap, the container's limit on docker)."""

    cpu_seconds: int = 10
    """CPU time per process; then SIGXCPU (SIGKILL one second later)."""
    memory_mb: int = 512
    """Address space per process (bubblewrap's RLIMIT_AS), and memory of the whole job where it has a
    cgroup (bubblewrap with a writable cgroup hierarchy; docker's container limit)."""
    processes: int = 64
    """Processes and threads of the job (bubblewrap: its uid and its cgroup, bwrap's own two included;
    docker: the container's pids)."""
    file_size_mb: int = 16
    """Largest file the job may write (EFBIG beyond it; Python ignores SIGXFSZ)."""
    open_files: int = 64
    """Open file descriptors per process."""
    wall_seconds: float = 30.0
    """Wall-clock deadline, enforced from outside: the whole process tree is killed."""
    tmpfs_mb: int = 64
    """Size of the private /tmp, and of /dev/shm (each a tmpfs: ENOSPC beyond it)."""
    workdir_mb: int = 64
    """Size of the job dir /job (a tmpfs holding the job's files: ENOSPC beyond it)."""
    output_bytes: int = 64 * 1024
    """Bytes of stdout and of stderr kept each; the rest is read and dropped (flagged as truncated)."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise SandboxError(f"sandbox limit {name} must be positive, got {value!r}")


@dataclass(frozen=True)
class SandboxJob:
    """Files to place in the job dir and a command to run there (argv, no shell)."""

    command: tuple[str, ...]
    files: Mapping[str, bytes | str] = field(default_factory=dict)
    """Relative path under /job -> content (str is written as UTF-8)."""
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment; nothing of the caller's environment reaches the job."""
    executable: frozenset[str] = frozenset()
    """Paths among ``files`` written with mode 0755 (others 0644)."""

    def __post_init__(self) -> None:
        if not self.command or not all(isinstance(a, str) and a for a in self.command):
            raise SandboxError("sandbox job needs a non-empty command of non-empty strings")
        for path in self.files:
            p = PurePosixPath(path)
            if p.is_absolute() or not p.parts or ".." in p.parts or path != str(p):
                raise SandboxError(
                    f"sandbox file path must be a plain relative path inside the job dir: {path!r}"
                )
        unknown = self.executable - set(self.files)
        if unknown:
            raise SandboxError(f"executable paths not among the job's files: {sorted(unknown)}")
        for key in self.env:
            if not key or "=" in key:
                raise SandboxError(f"invalid environment variable name: {key!r}")

    def file_bytes(self) -> dict[str, bytes]:
        return {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in self.files.items()}


@dataclass(frozen=True)
class SandboxOutcome:
    """What happened. ``killed_reason``: None (exited by itself), "wall_clock", "cpu", "file_size",
    "memory" (docker's OOM killer) or "signal" (any other fatal signal)."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    killed_reason: str | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_total_bytes: int
    stderr_total_bytes: int
    duration_s: float
    backend: str
    leftovers_killed: int = 0
    """Processes of the job found alive after it ended and killed (bubblewrap's uid sweep); 0 expected."""
    host_uid: int | None = None
    """The unprivileged host uid the job ran as (bubblewrap); None on docker."""
    memory_peak_bytes: int | None = None
    """Peak memory of the whole job (its cgroup), when the backend had one."""
    oom_kills: int = 0
    """Processes of the job the kernel's OOM killer killed at the job's memory limit (cgroup)."""

    @property
    def passed(self) -> bool:
        """Exited 0 by itself (the usual "tests passed" for a test script)."""
        return self.exit_code == 0 and self.killed_reason is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SandboxBackend(Protocol):
    name: str

    def run(self, job: SandboxJob, *, slot: int = 0) -> SandboxOutcome:
        """Run one job; ``slot`` (0..pool size-1) keeps parallel jobs apart (bubblewrap: one uid per slot)."""
        ...


class CappedBuffer:
    """Keeps the first ``cap`` bytes written and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self._parts: list[bytes] = []
        self._kept = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - self._kept
        if room > 0:
            piece = data[:room]
            self._parts.append(piece)
            self._kept += len(piece)

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def text(self) -> str:
        return b"".join(self._parts).decode("utf-8", errors="replace")


def split_status(returncode: int) -> tuple[int | None, int | None]:
    """(exit_code, signal) from a status where death by signal N is reported as 128+N (bwrap, docker)
    or as -N (Popen). An exit code above 128 that is a signal number + 128 is read as that signal."""
    if returncode < 0:
        return None, -returncode
    if returncode > 128 and (returncode - 128) in _SIGNALS:
        return None, returncode - 128
    return returncode, None


_SIGNALS = {int(s) for s in _signal.Signals}


def killed_reason(signal: int | None, timed_out: bool, oom_kills: int = 0) -> str | None:
    if timed_out:
        return "wall_clock"
    if signal == _signal.SIGKILL and oom_kills:
        return "memory"
    if signal is None:
        return None
    if signal == _signal.SIGXCPU:
        return "cpu"
    if signal == _signal.SIGXFSZ:
        return "file_size"
    return "signal"
