"""Job cgroups for the bubblewrap backend, where the machine allows them: one memory limit and one process
limit for the whole job (rlimits are per process), its peak memory and its OOM kills.

One group per pool slot, not per job: the slot's launcher helper lives in it (moved in once, when it starts),
so every job it forks is born in the group. Moving a task into a cgroup (and creating and removing a memory
cgroup) waits for an RCU grace period, which took 7-12 ms per job on an idle machine and ~16 ms under load;
being born in the group costs nothing. A slot runs one job at a time, so the group holds one job (plus the
launcher, which the OOM killer never picks: ``oom_score_adj`` -1000, reset to 0 in each job's child). Before a
job, `JobGroup.start_job` sets its limits (``pids.max`` counts the launcher and any zombie still waiting for
the host's init on top of the job's own processes), resets the peak and notes the OOM-kill count; its
`JobUsage` says the job's peak and OOM kills afterwards.

cgroup v2: a ``boocontrol-sandbox`` group under the root of the unified hierarchy (memory and pids
enabled for its children), one ``slot-…`` group per launcher. cgroup v1: ``boocontrol-sandbox`` groups under
this process's own memory and pids groups, the slot groups in them. The parents stay (empty) for the next
run. Without a writable hierarchy (a container that mounts /sys/fs/cgroup read-only, no root),
``JobCgroups.detect()`` returns None and jobs run on rlimits alone.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class JobGroup:
    """The cgroup directories of one job (one per v1 controller, or one v2 group)."""

    version: int
    dirs: tuple[Path, ...]

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def _memory_dir(self) -> Path:
        return self.dirs[0]

    def memory_peak_bytes(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self._memory_dir() / name).read_text())
        except (OSError, ValueError):
            return None

    def _pids_dir(self) -> Path:
        return self.dirs[-1]

    def start_job(self, *, memory_bytes: int, processes: int) -> JobUsage:
        """Limits for the next job (``processes`` of its own on top of what the group holds now) and a fresh
        peak; returns what reads the job's usage afterwards."""
        mem = self._memory_dir()
        held = int((self._pids_dir() / "pids.current").read_text())
        _write_if_changed(self._pids_dir() / "pids.max", processes + held)
        _write_if_changed(mem / ("memory.max" if self.version == 2 else "memory.limit_in_bytes"), memory_bytes)
        peak_fd: int | None = None
        if self.version == 1:
            (mem / "memory.max_usage_in_bytes").write_text("0\n")
        else:  # kernel >= 6.12: a write resets the peak as read through the same open file
            try:
                peak_fd = os.open(mem / "memory.peak", os.O_RDWR)
                os.write(peak_fd, b"reset\n")
            except OSError:
                if peak_fd is not None:
                    os.close(peak_fd)
                peak_fd = -1  # the peak cannot be reset here: unknown
        return JobUsage(self, self.oom_kills(), peak_fd)

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self._memory_dir() / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self, attempts: int = 100) -> bool:
        """Remove the job's groups; True when gone. A group stays busy for a moment after its last
        process died (until the kernel has released it), so this retries every 5 ms."""
        for d in self.dirs:
            for _ in range(attempts):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)
            else:
                return False
        return True

    def remove_later(self) -> None:
        """Remove the groups from a background thread (off the job's critical path)."""
        global _remover
        with _remover_lock:
            if _remover is None:
                _remover = threading.Thread(target=_remove_loop, name="sandbox-cgroup-removal", daemon=True)
                _remover.start()
        _removals.put(self)


@dataclass
class JobUsage:
    """One job's memory peak and OOM kills in its slot's group (`JobGroup.start_job`)."""

    group: JobGroup
    oom_before: int
    peak_fd: int | None  # v2: the memory.peak file reset for this job (-1: could not be reset)

    def memory_peak_bytes(self) -> int | None:
        if self.peak_fd is None:
            return self.group.memory_peak_bytes()
        if self.peak_fd < 0:
            return None
        try:
            return int(os.pread(self.peak_fd, 64, 0))
        except (OSError, ValueError):
            return None
        finally:
            os.close(self.peak_fd)
            self.peak_fd = -1

    def oom_kills(self) -> int:
        return self.group.oom_kills() - self.oom_before


_written: dict[Path, int] = {}
_written_lock = threading.Lock()


def _write_if_changed(path: Path, value: int) -> None:
    """Write a limit only when it differs from what this process last wrote there."""
    with _written_lock:
        if _written.get(path) == value:
            return
        path.write_text(f"{value}\n")
        _written[path] = value


def _remove_loop() -> None:
    while True:
        group = _removals.get()
        group.remove(attempts=2000)  # up to 10 s, then the empty group is left behind


_removals: queue.SimpleQueue[JobGroup] = queue.SimpleQueue()
_remover: threading.Thread | None = None
_remover_lock = threading.Lock()


class JobCgroups:
    """Creates a group per job under a parent this process owns."""

    def __init__(self, version: int, parents: tuple[Path, ...]) -> None:
        self.version = version
        self.parents = parents

    @classmethod
    def detect(cls, root: Path = CGROUP_ROOT) -> JobCgroups | None:
        """Job groups where this machine allows them (and a probe process could be put in one), else None."""
        try:
            found = cls._v2(root) if (root / "cgroup.controllers").exists() else cls._v1(root)
            if found is not None:
                found.probe()
            return found
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def probe(self) -> None:
        """Create a job group, move a short-lived process into it, remove it: raises OSError if any step fails."""
        group = self.create(f"probe-{os.getpid()}-{uuid.uuid4().hex[:8]}", memory_bytes=64 << 20, processes=4)
        try:
            with subprocess.Popen(["sleep", "5"]) as proc:
                try:
                    for procs in group.procs_files:
                        Path(procs).write_text(f"{proc.pid}\n")
                finally:
                    proc.kill()
        finally:
            group.remove()

    @classmethod
    def _v2(cls, root: Path) -> JobCgroups | None:
        if not {"memory", "pids"} <= set((root / "cgroup.controllers").read_text().split()):
            return None
        for controller in ("memory", "pids"):
            if controller not in (root / "cgroup.subtree_control").read_text().split():
                (root / "cgroup.subtree_control").write_text(f"+{controller}\n")
        parent = root / "boocontrol-sandbox"
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids\n")
        return cls(2, (parent,))

    @classmethod
    def _v1(cls, root: Path) -> JobCgroups | None:
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(","):
                own[c] = path
        parents = []
        for controller in ("memory", "pids"):
            if controller not in own or not (root / controller).is_dir():
                return None
            parent = root / controller / own[controller].lstrip("/") / "boocontrol-sandbox"
            parent.mkdir(exist_ok=True)
            parents.append(parent)
        if (parents[0] / "memory.use_hierarchy").exists() and (
            parents[0] / "memory.use_hierarchy"
        ).read_text().strip() != "1":
            return None  # the limit would not cover the job's children
        return cls(1, tuple(parents))

    def create(self, name: str, *, memory_bytes: int, processes: int) -> JobGroup:
        dirs = tuple(p / name for p in self.parents)
        for d in dirs:
            d.mkdir()
        if self.version == 2:
            (dirs[0] / "memory.max").write_text(f"{memory_bytes}\n")
            if (dirs[0] / "memory.swap.max").exists():
                (dirs[0] / "memory.swap.max").write_text("0\n")
            (dirs[0] / "pids.max").write_text(f"{processes}\n")
        else:
            (dirs[0] / "memory.limit_in_bytes").write_text(f"{memory_bytes}\n")
            swap = dirs[0] / "memory.memsw.limit_in_bytes"
            if swap.exists():
                try:
                    swap.write_text(f"{memory_bytes}\n")
                except OSError:
                    pass
            (dirs[1] / "pids.max").write_text(f"{processes}\n")
        return JobGroup(self.version, dirs)
