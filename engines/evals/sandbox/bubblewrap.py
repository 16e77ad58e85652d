"""The bubblewrap backend: each job runs as its own unprivileged uid inside fresh namespaces.

The job's chain: a small root helper (launcher.py, one per pool slot) forks; the child drops from root to
the job's own uid (no supplementary groups), sets the rlimits and execs ``bwrap`` (user, pid, net, ipc, uts,
cgroup namespaces; no nested user namespaces; read-only /usr; size-capped tmpfs /tmp and /job; the root
remounted read-only; dies with its parent) -> bwrap's reaper as pid 1 -> the job's command. (Not
``--as-pid-1``: it saves a process hop, ~8 ms under load, but a pid 1 ignores the signals it has no handler for,
so a job that kills itself with SIGTERM or aborts would hang until the wall clock.) The wall clock is enforced from outside: the chain is SIGKILLed, which
takes the sandbox's pid 1 and so every process of its pid namespace with it, and a final sweep kills
anything still running as the job's uid. See docs/evals-sandbox.md.
"""

from __future__ import annotations

import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Container, Sequence
from pathlib import Path
from typing import Any

from engines.evals.sandbox.cgroup import JobCgroups, JobGroup, JobUsage
from engines.evals.sandbox.model import (
    JOB_DIR,
    CappedBuffer,
    SandboxError,
    SandboxJob,
    SandboxLimits,
    SandboxOutcome,
    SandboxUnavailable,
    killed_reason,
    split_status,
)

DEFAULT_BASE_UID = 2_100_000_000
"""Jobs of slot n run as uids DEFAULT_BASE_UID + n * UIDS_PER_SLOT + k (k cycling through the slot's
range): far above login, system, systemd-dynamic and subuid ranges. No passwd entry is needed; nothing
else may use these uids (the sweep kills their processes). A fresh uid per job, not one per slot: the
sandbox's pid 1 is reaped by the host's init, which may take seconds (~2 s in some containers), and
until then its zombie counts against its uid's process limit."""

UIDS_PER_SLOT = 4096
MAX_FILES = 200
"""Files per job (each reaches bwrap as one fd; the launcher takes up to 256 fds per job)."""
FIRST_FILE_FD = 10
"""The job's files reach bwrap as memfds at fds 10, 11, ... (``--file FD DEST``)."""
LAUNCHER_PATH = str(Path(__file__).with_name("launcher.py"))
_TURNS: dict[int, int] = {}
_TURN_LOCK = threading.Lock()

SANDBOX_UID = 1000
"""The uid (and gid) the job sees inside its user namespace."""

_MERGED_USR = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
)
_ENV_DEFAULTS = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": JOB_DIR,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


def system_binds() -> list[str]:
    """bwrap arguments exposing the system read-only: /usr, the merged-usr links (or dirs) and the few
    /etc files the dynamic loader and Python read. Nothing else of the host (no /home, /root, /work,
    /var, /run, /sys, /etc/shadow, /etc/passwd)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for path in _MERGED_USR:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    return args


class BubblewrapSandbox:
    """``run(job, slot=n)``: one job as the next uid of slot n's range. Needs root (to give each job its
    own uid); the job never runs as root on the host. Thread-safe; give parallel jobs different slots."""

    name = "bubblewrap"

    def __init__(
        self, *, base_uid: int = DEFAULT_BASE_UID, bwrap: str | None = None, cgroups: bool | None = None
    ) -> None:
        """``cgroups``: None = a cgroup per job where the machine allows it, True = required, False = off."""
        self.base_uid = base_uid
        self.want_cgroups = cgroups
        self._cgroups: JobCgroups | None = None
        self._cgroups_checked = False
        self._launchers: dict[int, Launcher] = {}
        self._launchers_lock = threading.Lock()
        self.bwrap = bwrap or shutil.which("bwrap") or ""
        self._system_binds = system_binds()

    def check(self) -> None:
        """Raise SandboxUnavailable with a one-line reason when this machine cannot run the backend."""
        if not self.bwrap:
            raise SandboxUnavailable(
                "the bubblewrap sandbox needs bwrap (Debian: apt-get install bubblewrap)"
            )
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "the bubblewrap sandbox must start as root to run each job as its own unprivileged uid "
                "(run the eval as root, or use the docker backend)"
            )
        if not self._cgroups_checked:
            self._cgroups = JobCgroups.detect() if self.want_cgroups is not False else None
            self._cgroups_checked = True
        if self.want_cgroups and self._cgroups is None:
            raise SandboxUnavailable("no writable cgroup hierarchy with memory and pids controllers here")

    @property
    def cgroups(self) -> JobCgroups | None:
        """Where per-job cgroups are made (None: rlimits only); known after ``check()``."""
        return self._cgroups

    def uid_range(self, slot: int) -> range:
        """The uids slot ``slot`` hands out, one per job, in turn."""
        if slot < 0:
            raise ValueError(f"slot must be >= 0, got {slot}")
        start = self.base_uid + slot * UIDS_PER_SLOT
        return range(start, start + UIDS_PER_SLOT)

    def next_uid(self, slot: int) -> int:
        """The slot's next uid. The turn is kept per process for all instances, from a random start, so
        sandboxes created one after another (or another process using the same base) do not reuse a uid
        whose last job's zombie is still waiting for the host's init."""
        uids = self.uid_range(slot)
        with _TURN_LOCK:
            k = _TURNS.get(uids.start)
            if k is None:
                k = random.randrange(len(uids))
            _TURNS[uids.start] = (k + 1) % len(uids)
        return uids[k]

    def command_line(self, job: SandboxJob, file_fds: Sequence[tuple[str, int, bool]]) -> list[str]:
        """bwrap's argv for a job whose files are readable from ``file_fds`` (path, fd, executable)."""
        lim = job.limits
        mb = 1024 * 1024
        argv = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox",
            *self._system_binds,
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(lim.tmpfs_mb * mb), "--perms", "1777", "--tmpfs", "/dev/shm",
            "--remount-ro", "/dev",
            "--size", str(lim.tmpfs_mb * mb), "--perms", "1777", "--tmpfs", "/tmp",
            "--size", str(lim.workdir_mb * mb), "--tmpfs", JOB_DIR,
        ]  # fmt: skip
        for path, fd, executable in file_fds:
            argv += ["--perms", "0755" if executable else "0644", "--file", str(fd), f"{JOB_DIR}/{path}"]
        argv += ["--remount-ro", "/", "--chdir", JOB_DIR, "--clearenv"]
        for key, value in {**_ENV_DEFAULTS, **job.env}.items():
            argv += ["--setenv", key, value]
        argv += ["--", *job.command]
        return argv

    def run(self, job: SandboxJob, *, slot: int = 0) -> SandboxOutcome:
        self.check()
        if len(job.files) > MAX_FILES:
            raise SandboxError(f"a bubblewrap job holds at most {MAX_FILES} files, got {len(job.files)}")
        uid = self.next_uid(slot)
        launcher = self._launcher(slot)
        fds: list[int] = []
        try:
            for data in job.file_bytes().values():
                fd = os.memfd_create("sandbox-file")
                fds.append(fd)
                _write_all(fd, data)
                os.lseek(fd, 0, os.SEEK_SET)
            targets = [FIRST_FILE_FD + i for i in range(len(fds))]
            file_fds = [(path, t, path in job.executable) for path, t in zip(job.files, targets, strict=True)]
            argv = self.command_line(job, file_fds)
            with launcher.lock:
                usage = (launcher.group.start_job(memory_bytes=job.limits.memory_mb * 1024 * 1024,
                                                  processes=job.limits.processes)
                         if launcher.group is not None else None)  # fmt: skip
                return self._execute(job, argv, uid, launcher, fds, targets, usage)
        finally:
            for fd in fds:
                os.close(fd)

    def _launcher(self, slot: int) -> Launcher:
        with self._launchers_lock:
            launcher = self._launchers.get(slot)
            if launcher is None or not launcher.alive():
                if launcher is not None:
                    launcher.close()
                group = None
                if self._cgroups is not None:  # the slot's job group: the launcher moves itself in
                    group = self._cgroups.create(f"slot-{slot}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                                                 memory_bytes=SandboxLimits().memory_mb * 1024 * 1024,
                                                 processes=SandboxLimits().processes + 1)  # fmt: skip
                launcher = self._launchers[slot] = Launcher(group)
            return launcher

    def close(self) -> None:
        """Stop the launcher helpers (they also stop by themselves when this process ends)."""
        with self._launchers_lock:
            for launcher in self._launchers.values():
                launcher.close()
            self._launchers.clear()

    def _execute(
        self,
        job: SandboxJob,
        argv: list[str],
        uid: int,
        launcher: Launcher,
        fds: list[int],
        targets: list[int],
        usage: JobUsage | None,
    ) -> SandboxOutcome:
        lim = job.limits
        out, err = CappedBuffer(lim.output_bytes), CappedBuffer(lim.output_bytes)
        start = time.monotonic()
        deadline = start + lim.wall_seconds
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid = launcher.start(
                argv=argv,
                uid=uid,
                rlimits=rlimits(lim),
                fds=[out_w, err_w, *fds],
                targets=targets,
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        timed_out = False
        status: int | None = None
        with selectors.DefaultSelector() as sel:
            sel.register(out_r, selectors.EVENT_READ, out)
            sel.register(err_r, selectors.EVENT_READ, err)
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(remaining):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data.add(chunk)
                    else:
                        sel.unregister(key.fileobj)
        if not timed_out:
            status = launcher.status(timeout=max(0.0, deadline - time.monotonic()))
            timed_out = status is None
        if timed_out:
            _kill_tree(pid)
            status = launcher.status(timeout=None)
        duration = time.monotonic() - start
        leftovers = kill_uid_processes(uid)
        peak = usage.memory_peak_bytes() if usage else None
        ooms = usage.oom_kills() if usage else 0
        for fd, buf in ((out_r, out), (err_r, err)):
            _drain(fd, buf)
        assert status is not None
        exit_code, sig = split_status(status)
        if timed_out:
            exit_code, sig = None, int(signal.SIGKILL)
        return SandboxOutcome(
            exit_code=exit_code,
            signal=sig,
            timed_out=timed_out,
            killed_reason=killed_reason(sig, timed_out, ooms),
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            stdout_total_bytes=out.total,
            stderr_total_bytes=err.total,
            duration_s=duration,
            backend=self.name,
            leftovers_killed=leftovers,
            host_uid=uid,
            memory_peak_bytes=peak,
            oom_kills=ooms,
        )


class Launcher:
    """Client of one launcher helper (engines/evals/sandbox/launcher.py), one job at a time (``lock``)."""

    def __init__(self, group: JobGroup | None = None) -> None:
        """``group``: the slot's job cgroup, which the helper joins before serving (None: no cgroup)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.group = group
        self.proc = subprocess.Popen(
            [sys.executable, "-I", LAUNCHER_PATH, str(theirs.fileno()), *(group.procs_files if group else ())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self._buf = b""
        ready = self._line(30.0)
        if not ready or not ready.get("ready"):
            self.close()
            raise SandboxUnavailable(f"the sandbox launcher did not start (answered {ready!r})")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(self, *, argv: list[str], uid: int, rlimits: list[tuple[int, tuple[int, int]]], fds: list[int],
              targets: list[int]) -> int:  # fmt: skip
        req = {
            "argv": argv,
            "uid": uid,
            "rlimits": [[r, s, h] for r, (s, h) in rlimits],
            "file_targets": targets,
        }
        self.sock.settimeout(None)
        socket.send_fds(self.sock, [json.dumps(req).encode() + b"\n"], fds)
        reply = self._line(None)
        if reply is None or "pid" not in reply:
            raise SandboxUnavailable(f"the sandbox launcher did not start the job (answered {reply!r})")
        return int(reply["pid"])

    def status(self, timeout: float | None) -> int | None:
        """The job's Popen-style returncode, or None if it is still running after ``timeout`` seconds."""
        reply = self._line(timeout)
        if reply is None:
            return None
        if "status" not in reply:
            raise SandboxUnavailable(f"the sandbox launcher answered {reply!r}")
        return int(reply["status"])

    def _line(self, timeout: float | None) -> dict[str, Any] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise SandboxUnavailable("the sandbox launcher exited (see its stderr)")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.group is not None:
            self.group.remove_later()
            self.group = None


def rlimits(limits: SandboxLimits) -> list[tuple[int, tuple[int, int]]]:
    """(resource, (soft, hard)) for a job; the launcher sets them in the child after the uid drop and
    before exec of bwrap, so bwrap and everything it starts inherit them."""
    mb = 1024 * 1024
    return [
        (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)),
        (resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2),
        (resource.RLIMIT_NPROC, (limits.processes,) * 2),
        (resource.RLIMIT_FSIZE, (limits.file_size_mb * mb,) * 2),
        (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _kill_tree(pid: int) -> None:
    """SIGKILL the job's process group (the launcher made bwrap a session leader); bwrap's
    --die-with-parent then kills the sandbox's pid 1, and the kernel kills the rest of its pid namespace
    (including processes that called setsid)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _drain(fd: int, buf: CappedBuffer) -> None:
    """Read what is left in a pipe without blocking (every writer is dead by now), then close it."""
    os.set_blocking(fd, False)
    try:
        while chunk := os.read(fd, 65536):
            buf.add(chunk)
    except OSError:
        pass
    os.close(fd)


def uid_pids(uids: Container[int], proc_root: str = "/proc") -> list[int]:
    """Live (not zombie) processes whose /proc entry belongs to one of ``uids``."""
    pids = []
    for entry in os.scandir(proc_root):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid in uids and _state(entry.path) not in (b"Z", b"X"):
                pids.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return pids


def kill_uid_processes(uid: int, *, grace_s: float = 0.5) -> int:
    """After a job: wait up to ``grace_s`` for the job's processes to finish dying on their own (the
    sandbox's pid 1 and its namespace go down a moment after bwrap's monitor), then SIGKILL whatever still
    runs as ``uid``. Returns how many had to be killed (0 when the namespaces did their job)."""
    deadline = time.monotonic() + grace_s
    while (pids := uid_pids((uid,))) and time.monotonic() < deadline:
        time.sleep(0.002)
    killed: set[int] = set()
    for _ in range(100):  # a leftover may fork between the scan and the kill: repeat until none is seen
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.002)
        pids = uid_pids((uid,))
    return len(killed)


def _state(proc_dir: str) -> bytes:
    """The state letter from /proc/<pid>/stat."""
    with open(f"{proc_dir}/stat", "rb") as f:
        return f.read().rpartition(b")")[2].split()[0]
