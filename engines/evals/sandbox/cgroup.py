"""Per-job cgroups for the bubblewrap backend, where the machine allows them: one memory limit and one
process limit for the whole job (rlimits are per process), its peak memory and its OOM kills.

cgroup v2: a ``boocontrol-sandbox`` group under the root of the unified hierarchy (memory and pids
enabled for its children), one ``job-<uid>-<random>`` group per job. cgroup v1: ``boocontrol-sandbox``
groups under this process's own memory and pids groups, the job groups in them. The parents stay (empty)
for the next run. Without a writable hierarchy (a container that
mounts /sys/fs/cgroup read-only, no root), ``JobCgroups.detect()`` returns None and jobs run on rlimits
alone.
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
