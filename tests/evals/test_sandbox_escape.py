"""The escape battery: twelve ways generated code tries to get out, each contained with an exact outcome.

Runs on every CI machine on the real bubblewrap backend (the suite runs as root). Every test also checks,
from the host, that the thing it attacks is really there (the Postgres port answers, the files exist),
so a test passes only because the sandbox stopped the attempt.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from engines.evals.sandbox import BubblewrapSandbox
from tests.evals.conftest import UidWatcher, script_job, uid_pids
from warehouse.cluster import EmbeddedCluster

REPO = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def test_network_out_unreachable(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(
        script_job("""
            import errno, socket
            print("interfaces", [name for _, name in socket.if_nameindex()])
            for host in ("1.1.1.1", "8.8.8.8"):
                try:
                    socket.create_connection((host, 53), timeout=5)
                    print(host, "CONNECTED")
                except OSError as e:
                    print(host, errno.errorcode[e.errno])
            try:
                socket.getaddrinfo("example.com", 443)
                print("dns RESOLVED")
            except socket.gaierror as e:
                print("dns gaierror")
        """)
    )
    assert (out.exit_code, out.timed_out, out.stderr) == (0, False, "")
    assert out.stdout == "interfaces ['lo']\n1.1.1.1 ENETUNREACH\n8.8.8.8 ENETUNREACH\ndns gaierror\n"


def test_host_loopback_and_test_postgres_unreachable(
    sandbox: BubblewrapSandbox, pg_cluster: EmbeddedCluster, no_leftovers: None
) -> None:
    port = pg_cluster.port
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the host reaches the suite's Postgres on this port
    out = sandbox.run(
        script_job(f"""
            import errno, socket
            for addr in (("127.0.0.1", {port}), ("127.0.0.1", 22), ("::1", {port})):
                family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
                s = socket.socket(family)
                s.settimeout(5)
                try:
                    s.connect(addr)
                    print(addr[0], "CONNECTED")
                except OSError as e:
                    print(addr[0], errno.errorcode[e.errno])
        """)
    )
    assert (out.exit_code, out.stderr) == (0, "")
    # the sandbox's own loopback is empty: refused at once, the host's listener is not there
    assert out.stdout == "127.0.0.1 ECONNREFUSED\n127.0.0.1 ECONNREFUSED\n::1 ECONNREFUSED\n"


def test_fork_bomb_capped_at_process_limit_then_killed(
    sandbox: BubblewrapSandbox, no_leftovers: None
) -> None:
    job = script_job(
        """
        import os, time
        n = 0
        while True:
            try:
                pid = os.fork()
            except BlockingIOError:
                print("EAGAIN after", n, flush=True)
                break
            if pid == 0:
                while True:  # every child bombs too
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
            n += 1
        time.sleep(3600)
        """,
        processes=16,
        wall_seconds=3,
    )
    with UidWatcher(sandbox.uid_range(0)) as watch:
        out = sandbox.run(job)
    assert (out.timed_out, out.killed_reason, out.exit_code, out.signal) == (
        True,
        "wall_clock",
        None,
        signal.SIGKILL,
    )
    assert out.stdout.startswith("EAGAIN after ")
    assert 0 < int(out.stdout.split()[2]) <= 16
    # seen from the host: never more processes of the job's uid than the limit (bwrap's two included)
    assert 3 <= watch.peak <= 16
    assert out.leftovers_killed == 0  # the pid namespace took them all down with the sandbox's pid 1


def test_memory_bomb_stops_at_address_space_limit(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(
        script_job(
            """
            import sys
            hog = []
            try:
                while True:
                    hog.append(b"x" * (8 * 1024 * 1024))  # touched pages, not just reserved
            except MemoryError:
                print("MemoryError at", len(hog) * 8, "MB")
                sys.exit(3)
            """,
            memory_mb=128,
        )
    )
    assert (out.exit_code, out.killed_reason, out.timed_out) == (3, None, False)
    assert out.stdout.startswith("MemoryError at ")
    assert 0 < int(out.stdout.split()[2]) < 128


def test_huge_file_stops_at_file_size_limit(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(
        script_job(
            """
            import errno, os
            fd = os.open("/job/huge.bin", os.O_WRONLY | os.O_CREAT)
            total, chunk = 0, b"x" * (1024 * 1024)
            try:
                while True:
                    total += os.write(fd, chunk)
            except OSError as e:
                print(errno.errorcode[e.errno], total, os.stat("/job/huge.bin").st_size)
            """,
            file_size_mb=8,
            workdir_mb=32,
        )
    )
    assert (out.exit_code, out.stderr) == (0, "")
    assert out.stdout == f"EFBIG {8 * MB} {8 * MB}\n"


def test_tmp_fill_stops_at_tmpfs_size_and_host_tmp_untouched(
    sandbox: BubblewrapSandbox, no_leftovers: None
) -> None:
    marker = "boocontrol-sandbox-fill-probe"
    assert not any(p.name.startswith(marker) for p in Path("/tmp").iterdir())
    out = sandbox.run(
        script_job(
            f"""
            import errno, os
            total, i = 0, 0
            try:
                while True:
                    with open(f"/tmp/{marker}-{{i}}", "wb") as f:
                        i += 1
                        for _ in range(4):
                            total += f.write(b"x" * (256 * 1024))
                            f.flush()
            except OSError as e:
                print(errno.errorcode[e.errno], total)
            """,
            tmpfs_mb=4,
            file_size_mb=1,
        )
    )
    assert out.exit_code == 0, out.stderr
    code, total = out.stdout.split()
    assert code == "ENOSPC"
    assert 3 * MB <= int(total) <= 4 * MB
    assert not any(p.name.startswith(marker) for p in Path("/tmp").iterdir())


def test_cpu_loop_killed_by_cpu_limit(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(script_job("while True:\n    pass\n", cpu_seconds=1, wall_seconds=60))
    assert (out.exit_code, out.signal, out.killed_reason, out.timed_out) == (
        None,
        signal.SIGXCPU,
        "cpu",
        False,
    )
    assert not out.passed


def test_endless_sleep_killed_at_wall_clock(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(
        script_job(
            """
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # polite termination would not end it
            print("sleeping", flush=True)
            time.sleep(3600)
            """,
            wall_seconds=3,
        )
    )
    assert (out.exit_code, out.signal, out.killed_reason, out.timed_out) == (
        None,
        signal.SIGKILL,
        "wall_clock",
        True,
    )
    assert out.stdout == "sleeping\n"  # output written before the kill is kept
    assert out.duration_s >= 3.0  # the deadline, not earlier
    assert out.leftovers_killed == 0


def test_host_files_not_visible(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    targets = [
        REPO / "README.md",
        REPO / "pyproject.toml",
        Path.home() / ".cache",
        Path("/etc/shadow"),
        Path("/root"),
        Path("/home"),
        Path("/var"),
        Path("/etc/passwd"),
    ]
    assert all(t.exists() for t in targets[:5]), "the host paths the test attacks must exist"
    out = sandbox.run(
        script_job(f"""
            import errno, os
            for path in {[str(t) for t in targets]!r}:
                try:
                    if os.path.isdir(path):
                        print(path, "LISTED", os.listdir(path))
                    else:
                        print(path, "READ", len(open(path, "rb").read()))
                except OSError as e:
                    print(path, errno.errorcode[e.errno])
        """)
    )
    assert (out.exit_code, out.stderr) == (0, "")
    assert out.stdout == "".join(f"{t} ENOENT\n" for t in targets)


def test_writes_outside_job_dir_refused(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    escape = REPO / "sandbox-escape-probe.txt"
    assert not escape.exists()
    out = sandbox.run(
        script_job(f"""
            import errno
            for path in ("/escape", "/usr/escape", "/etc/escape", "/usr/lib/python3/escape", "/dev/escape",
                         "/proc/escape", "{escape}", "/job/inside", "/tmp/inside"):
                try:
                    with open(path, "w") as f:
                        f.write("x")
                    print(path, "WROTE")
                except OSError as e:
                    print(path, errno.errorcode[e.errno])
        """)
    )
    assert (out.exit_code, out.stderr) == (0, "")
    assert out.stdout.splitlines() == [
        "/escape EROFS",
        "/usr/escape EROFS",
        "/etc/escape EROFS",
        "/usr/lib/python3/escape EROFS",
        "/dev/escape EROFS",
        "/proc/escape ENOENT",
        f"{escape} ENOENT",
        "/job/inside WROTE",
        "/tmp/inside WROTE",
    ]
    assert not escape.exists()


def test_privilege_escalation_refused(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    job = script_job("""
        import ctypes, errno, os, time
        libc = ctypes.CDLL(None, use_errno=True)
        def attempt(name, call):
            try:
                call()
                print(name, "ALLOWED")
            except OSError as e:
                print(name, errno.errorcode[e.errno])
        def c(fn, *args):
            def call():
                if fn(*args) != 0:
                    raise OSError(ctypes.get_errno(), "")
            return call
        attempt("setuid0", lambda: os.setuid(0))
        attempt("setgid0", lambda: os.setgid(0))
        attempt("chroot", lambda: os.chroot("/tmp"))
        attempt("unshare-user", c(libc.unshare, 0x10000000))
        attempt("mount", c(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None))
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        print("uid", os.getuid(), os.geteuid(), "CapEff", status["CapEff"], "NoNewPrivs", status["NoNewPrivs"])
        time.sleep(0.5)  # let the host see the process
    """)
    with UidWatcher(sandbox.uid_range(0)) as watch:
        out = sandbox.run(job)
    assert (out.exit_code, out.stderr) == (0, "")
    assert out.stdout.splitlines() == [
        "setuid0 EINVAL",  # host root does not exist in the job's user namespace
        "setgid0 EINVAL",
        "chroot EPERM",
        "unshare-user ENOSPC",  # bwrap --disable-userns: user.max_user_namespaces is 0 inside
        "mount EPERM",
        "uid 1000 1000 CapEff 0000000000000000 NoNewPrivs 1",
    ]
    # on the host, every process of the job (bwrap included) ran as the slot's unprivileged uid
    assert watch.seen and out.host_uid is not None and watch.real_uids == {out.host_uid}


def test_child_outliving_the_job_is_killed(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(
        script_job(
            """
            import os, signal, time
            for keep_stdout in (True, False):
                if os.fork() == 0:
                    os.setsid()  # leave the job's session and process group
                    if os.fork() == 0:  # and its parent: a classic daemon
                        signal.signal(signal.SIGHUP, signal.SIG_IGN)
                        signal.signal(signal.SIGTERM, signal.SIG_IGN)
                        if not keep_stdout:
                            os.close(1)
                            os.close(2)
                        while True:
                            time.sleep(0.1)
                    os._exit(0)
                os.wait()
            print("main exits", flush=True)
            """,
            wall_seconds=20,
        )
    )
    # the job ended when its main process did (not at the wall clock, though a daemon held stdout) ...
    assert (out.exit_code, out.timed_out, out.stdout) == (0, False, "main exits\n")
    # ... and the daemons died with the sandbox's pid namespace, before any sweep
    assert out.leftovers_killed == 0
    assert uid_pids(sandbox.uid_range(0)) == []
    assert os.getuid() == 0
