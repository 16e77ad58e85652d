"""A small root helper process that starts sandbox jobs: fork, drop to the job's uid, set rlimits, exec.

Why a helper: changing uid or setting rlimits between fork and exec forces ``subprocess`` to fork the
calling process instead of vfork-ing it, and forking a big Python process (an eval worker with Prefect
loaded) costs tens of milliseconds per job. This helper is a separate, small Python process (stdlib
only, started once per pool slot with ``python -I launcher.py``), so its fork is cheap, and being
single-threaded it can do the uid drop and rlimits in the child safely.

Started as ``launcher.py SOCKET_FD [CGROUP_PROCS_FILE...]``: it first moves itself into its slot's job
cgroup (`engines.evals.sandbox.cgroup`), so the jobs it forks are born there. Protocol on a Unix socket
(one job at a time): the helper says ``{"ready": true}`` once it is in its cgroup; the client sends one
JSON line with the job's argv, uid, rlimits and the target fd numbers of its files, together with the fds
(stdout and stderr write ends, then the files) as SCM_RIGHTS; the helper answers ``{"pid": N}`` once the child is forked and
``{"status": S}`` (Popen-style returncode) once it is reaped. The client kills the job itself (it is
root) by its process group. When the client goes away, the helper kills the running job and exits;
when the helper itself dies, the job gets SIGKILL (parent-death signal).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import select
import signal
import socket
import sys

MAX_FDS = 256
CHILD_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child(req: dict[str, object], fds: list[int], launcher_pid: int) -> None:
    """In the forked child: never returns."""
    try:
        targets = [1, 2, *req["file_targets"]]  # type: ignore[misc]
        floor = max(targets) + 1  # move the received fds above every target first, then into place
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in fds]
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        for src, dst in zip(high, targets, strict=True):
            os.dup2(src, dst)  # inheritable
        keep = sorted({0, *targets})
        prev = -1
        for fd in keep:
            if fd > prev + 1:  # closerange(a, a) would close everything from a on
                os.closerange(prev + 1, fd)
            prev = fd
        os.closerange(prev + 1, 1 << 20)
        os.setsid()
        with open("/proc/self/oom_score_adj", "w") as f:  # the job, never the launcher, is the OOM victim
            f.write("1000\n")
        uid = int(req["uid"])  # type: ignore[call-overload]
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        # after the uid change (which clears it): if the launcher dies before bwrap runs, the child dies
        # too; once bwrap runs, its --die-with-parent does the same for bwrap and the whole sandbox
        if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != launcher_pid:
            os._exit(127)
        for res, soft, hard in req["rlimits"]:  # type: ignore[attr-defined]
            resource.setrlimit(res, (soft, hard))
        argv = [str(a) for a in req["argv"]]  # type: ignore[attr-defined]
        os.execve(argv[0], argv, {"PATH": CHILD_PATH})
    except BaseException as exc:  # noqa: BLE001 - report anything, then leave without cleanup
        try:
            os.write(2, f"sandbox launcher: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(127)


def _status(wait_status: int) -> int:
    return -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)


def serve(sock: socket.socket) -> None:
    launcher_pid = os.getpid()
    buf, fds = b"", []
    while True:
        msg, more_fds, _, _ = socket.recv_fds(sock, 1 << 20, MAX_FDS)
        if not msg:
            return
        buf += msg
        fds += more_fds  # they come with the first bytes of a request
        if not buf.endswith(b"\n"):
            continue
        req = json.loads(buf)
        buf = b""
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(req, fds, launcher_pid)
        for fd in fds:
            os.close(fd)
        fds = []
        sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        pidfd = os.pidfd_open(pid)
        try:
            while True:
                ready, _, _ = select.select([pidfd, sock.fileno()], [], [])
                if pidfd in ready:
                    break
                if not sock.recv(1, socket.MSG_PEEK):  # the client went away: take the job down too
                    for kill in (os.killpg, os.kill):
                        try:
                            kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    os.waitpid(pid, 0)
                    return
        finally:
            os.close(pidfd)
        _, wait_status = os.waitpid(pid, 0)
        sock.sendall(json.dumps({"status": _status(wait_status)}).encode() + b"\n")


def join_cgroups(procs_files: list[str]) -> None:
    """Move this helper into its slot's job cgroup: every job it forks is then born there. (The OOM killer
    takes the job, not the helper: each job's child raises its own ``oom_score_adj`` to 1000, which needs no
    privilege, where lowering the helper's would need CAP_SYS_RESOURCE.)"""
    for procs in procs_files:
        with open(procs, "w") as f:
            f.write(f"{os.getpid()}\n")


def main() -> None:
    fd = int(sys.argv[1])
    join_cgroups(sys.argv[2:])
    with socket.socket(fileno=fd) as sock:
        try:
            sock.sendall(b'{"ready": true}\n')  # in its cgroup: the client may size the first job's limits
            serve(sock)
        except (BrokenPipeError, ConnectionResetError):
            pass


if __name__ == "__main__":
    main()
