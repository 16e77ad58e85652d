"""The bubblewrap backend: each job runs as its own unprivileged uid inside fresh namespaces.

The job's chain: fork; in the child drop from root to the job's own uid (no supplementary groups) and set
the rlimits; exec ``bwrap`` (user, pid, net, ipc, uts, cgroup namespaces; no nested user
namespaces; read-only /usr; size-capped tmpfs /tmp and /job; the root remounted read-only; dies with its
parent) -> the job's command. The wall clock is enforced from outside: the chain is SIGKILLed, which
takes the sandbox's pid 1 and so every process of its pid namespace with it, and a final sweep kills
anything still running as the job's uid. See docs/evals-sandbox.md.
"""

from __future__ import annotations

import os
import random
import resource
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Container, Sequence

from engines.evals.sandbox.model import (
    JOB_DIR,
    CappedBuffer,
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

    def __init__(self, *, base_uid: int = DEFAULT_BASE_UID, bwrap: str | None = None) -> None:
        self.base_uid = base_uid
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
        uid = self.next_uid(slot)
        fds: list[tuple[str, int, bool]] = []
        try:
            for path, data in job.file_bytes().items():
                fd = os.memfd_create("sandbox-file")  # close-on-exec; Popen(pass_fds) hands it to bwrap only
                fds.append((path, fd, path in job.executable))
                _write_all(fd, data)
                os.lseek(fd, 0, os.SEEK_SET)
            argv = self.command_line(job, fds)
            return self._execute(job, argv, uid, [fd for _, fd, _ in fds])
        finally:
            for _, fd, _ in fds:
                os.close(fd)

    def _execute(self, job: SandboxJob, argv: list[str], uid: int, pass_fds: list[int]) -> SandboxOutcome:
        lim = job.limits
        out, err = CappedBuffer(lim.output_bytes), CappedBuffer(lim.output_bytes)
        start = time.monotonic()
        deadline = start + lim.wall_seconds
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            start_new_session=True,
            user=uid,
            group=uid,
            extra_groups=[],
            preexec_fn=_rlimits_setter(lim),
        )
        timed_out = False
        assert proc.stdout is not None and proc.stderr is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, out)
            sel.register(proc.stderr, selectors.EVENT_READ, err)
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
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            _kill_tree(proc)
            proc.wait()
        duration = time.monotonic() - start
        leftovers = kill_uid_processes(uid)
        _drain(proc, out, err)
        exit_code, sig = split_status(proc.returncode)
        if timed_out:
            exit_code, sig = None, signal.SIGKILL
        return SandboxOutcome(
            exit_code=exit_code,
            signal=sig,
            timed_out=timed_out,
            killed_reason=killed_reason(sig, timed_out),
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
        )


def rlimits(limits: SandboxLimits) -> list[tuple[int, tuple[int, int]]]:
    """(resource, (soft, hard)) for a job; set in the child between fork and exec of bwrap, after the
    uid drop, so bwrap and everything it starts inherit them."""
    mb = 1024 * 1024
    return [
        (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)),
        (resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2),
        (resource.RLIMIT_NPROC, (limits.processes,) * 2),
        (resource.RLIMIT_FSIZE, (limits.file_size_mb * mb,) * 2),
        (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ]


def _rlimits_setter(limits: SandboxLimits) -> Callable[[], None]:
    # Built before fork: the child only makes setrlimit calls (no imports, no locks), which is what
    # keeps preexec_fn safe next to the pool's other threads.
    pairs = rlimits(limits)
    setrlimit = resource.setrlimit

    def apply() -> None:
        for res, value in pairs:
            setrlimit(res, value)

    return apply


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the chain's process group; bwrap's --die-with-parent then kills the sandbox's pid 1, and
    the kernel kills the rest of its pid namespace (including processes that called setsid)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _drain(proc: subprocess.Popen[bytes], out: CappedBuffer, err: CappedBuffer) -> None:
    """Read what is left in the pipes without blocking (every writer is dead by now), then close them."""
    for pipe, buf in ((proc.stdout, out), (proc.stderr, err)):
        if pipe is None:
            continue
        os.set_blocking(pipe.fileno(), False)
        try:
            while chunk := os.read(pipe.fileno(), 65536):
                buf.add(chunk)
        except (BlockingIOError, OSError):
            pass
        pipe.close()


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
