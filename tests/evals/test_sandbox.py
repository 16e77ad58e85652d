"""The sandbox as the code suites use it: test scripts that pass and fail, exit codes, capped output,
files and environment, invalid jobs, and the pool (one uid per parallel job). Real bubblewrap."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from engines.evals.sandbox import (
    BubblewrapSandbox,
    SandboxError,
    SandboxJob,
    SandboxLimits,
    SandboxOutcome,
    SandboxPool,
    SandboxUnavailable,
)
from engines.evals.sandbox.bubblewrap import Launcher, kill_uid_processes, uid_pids
from engines.evals.sandbox.model import split_status
from tests.evals.conftest import TEST_BASE_UID, UidWatcher, script_job

SOLUTION = "def add(a, b):\n    return a + b\n"
BUGGY = "def add(a, b):\n    return a - b\n"
TESTS = """\
from solution import add

def test_small():
    assert add(2, 2) == 4, f"add(2, 2) == {add(2, 2)}"

def test_negative():
    assert add(-1, 1) == 0, f"add(-1, 1) == {add(-1, 1)}"

if __name__ == "__main__":
    for name, fn in sorted(globals().items()):
        if name.startswith("test_"):
            fn()
    print("2 passed")
"""


def code_job(solution: str) -> SandboxJob:
    return SandboxJob(
        command=("python3", "test_solution.py"),
        files={"solution.py": solution, "test_solution.py": TESTS},
    )


def test_passing_test_script(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(code_job(SOLUTION))
    assert (out.exit_code, out.signal, out.killed_reason, out.timed_out) == (0, None, None, False)
    assert (out.stdout, out.stderr) == ("2 passed\n", "")
    assert out.passed and out.backend == "bubblewrap" and out.leftovers_killed == 0


def test_failing_test_script(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(code_job(BUGGY))
    assert (out.exit_code, out.signal, out.killed_reason, out.stdout) == (1, None, None, "")
    assert out.stderr.splitlines()[-1] == "AssertionError: add(-1, 1) == -2"
    assert not out.passed


@pytest.mark.parametrize(
    ("code", "exit_code", "sig", "reason"),
    [
        ("import sys; sys.exit(7)", 7, None, None),
        ("raise SystemExit(0)", 0, None, None),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", None, signal.SIGTERM, "signal"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", None, signal.SIGSEGV, "signal"),
    ],
)
def test_exit_codes_and_signals(
    sandbox: BubblewrapSandbox, code: str, exit_code: int | None, sig: int | None, reason: str | None
) -> None:
    out = sandbox.run(script_job(code))
    assert (out.exit_code, out.signal, out.killed_reason, out.timed_out) == (exit_code, sig, reason, False)


def test_stdout_capped_and_flagged(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    out = sandbox.run(
        script_job(
            """
            import sys
            sys.stdout.write("a" * 300_000)
            sys.stderr.write("err line\\n")
            """,
            output_bytes=1000,
        )
    )
    assert out.exit_code == 0
    assert (out.stdout, out.stdout_truncated, out.stdout_total_bytes) == ("a" * 1000, True, 300_000)
    assert (out.stderr, out.stderr_truncated, out.stderr_total_bytes) == ("err line\n", False, 9)


def test_files_environment_and_workdir(sandbox: BubblewrapSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOCONTROL_SANDBOX_PROBE_SECRET", "must-not-leak")
    job = SandboxJob(
        command=("./run.sh",),
        files={
            "run.sh": "#!/bin/sh\nexec python3 pkg/main.py\n",
            "pkg/main.py": (
                "import os\n"
                "open('pkg/main.py', 'a').write('# the job may change its own files\\n')\n"
                "print(os.getcwd(), os.environ['HOME'], os.environ.get('GIVEN'),\n"
                "      os.environ.get('BOOCONTROL_SANDBOX_PROBE_SECRET'), sorted(os.listdir('.')),\n"
                "      oct(os.stat('run.sh').st_mode & 0o777), oct(os.stat('pkg/main.py').st_mode & 0o777))\n"
            ),
        },
        executable=frozenset({"run.sh"}),
        env={"GIVEN": "yes"},
    )
    out = sandbox.run(job)
    assert (out.exit_code, out.stderr) == (0, "")
    assert out.stdout == "/job /job yes None ['pkg', 'run.sh'] 0o755 0o644\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"command": ()},
        {"command": ("python3", "")},
        {"command": ("true",), "files": {"../escape.py": ""}},
        {"command": ("true",), "files": {"/etc/x": ""}},
        {"command": ("true",), "files": {"a/./b": ""}},
        {"command": ("true",), "executable": frozenset({"missing.sh"})},
        {"command": ("true",), "env": {"A=B": "x"}},
    ],
)
def test_invalid_jobs_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(SandboxError):
        SandboxJob(**kwargs)  # type: ignore[arg-type]


def test_invalid_limits_refused() -> None:
    with pytest.raises(SandboxError, match="wall_seconds must be positive"):
        SandboxLimits(wall_seconds=0)


def test_not_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable, match="must start as root") as err:
        BubblewrapSandbox().run(script_job("pass"))
    assert "\n" not in str(err.value)


def test_split_status() -> None:
    assert split_status(0) == (0, None)
    assert split_status(1) == (1, None)
    assert split_status(128 + 9) == (None, 9)
    assert split_status(-15) == (None, 15)
    assert split_status(255) == (255, None)  # 127 is no signal


def test_pool_runs_parallel_jobs_as_separate_uids(sandbox: BubblewrapSandbox) -> None:
    # each job holds 6 processes of its uid for a second (bwrap's monitor and pid 1, python, 3 children):
    # exactly its limit, so two jobs sharing a uid would fail to fork
    code = """
        import os, sys, time
        kids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                time.sleep(1)
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
        print(sys.argv[1])
    """
    jobs = [
        SandboxJob(
            command=("python3", "main.py", str(i)),
            files={"main.py": script_job(code).files["main.py"]},
            limits=SandboxLimits(processes=6),
        )
        for i in range(4)
    ]
    with UidWatcher(sandbox.uid_range(0)) as w0, UidWatcher(sandbox.uid_range(1)) as w1:
        with SandboxPool(sandbox, workers=2) as pool:
            outcomes = pool.run_all(jobs)
    assert [(o.exit_code, o.stdout, o.stderr) for o in outcomes] == [(0, f"{i}\n", "") for i in range(4)]
    # both slots ran jobs at once, each job as its own uid from its slot's range
    assert w0.seen and w1.seen
    assert set(w0.real_uids) <= set(sandbox.uid_range(0)) and set(w1.real_uids) <= set(sandbox.uid_range(1))
    assert len({o.host_uid for o in outcomes}) == 4
    assert uid_pids(sandbox.uid_range(0)) == uid_pids(sandbox.uid_range(1)) == []


class RecordingBackend:
    """The real backend behind the interface, recording which slots were busy at the same time."""

    name = "recording"

    def __init__(self, inner: BubblewrapSandbox) -> None:
        self.inner = inner
        self.busy: set[int] = set()
        self.clashes = 0
        self.max_busy = 0

    def run(self, job: SandboxJob, *, slot: int = 0) -> SandboxOutcome:
        self.clashes += slot in self.busy
        self.busy.add(slot)
        self.max_busy = max(self.max_busy, len(self.busy))
        try:
            return self.inner.run(job, slot=slot)
        finally:
            self.busy.discard(slot)


def test_pool_never_gives_one_slot_to_two_running_jobs(sandbox: BubblewrapSandbox) -> None:
    backend = RecordingBackend(sandbox)
    with SandboxPool(backend, workers=3) as pool:
        outcomes = pool.run_all([script_job("import time; time.sleep(0.2)") for _ in range(7)])
    assert [o.exit_code for o in outcomes] == [0] * 7
    assert backend.clashes == 0 and 1 <= backend.max_busy <= 3


def test_sweep_kills_processes_of_the_uid(sandbox: BubblewrapSandbox) -> None:
    # what the sweep does when something escaped the namespaces: a process of the slot's uid started
    # outside any sandbox is found and killed, and counted
    import subprocess

    uid = sandbox.next_uid(5)
    proc = subprocess.Popen(["sleep", "60"], user=uid, group=uid, extra_groups=[])
    try:
        assert kill_uid_processes(uid, grace_s=0.05) == 1
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        proc.kill()


def test_launcher_takes_the_job_down_when_its_client_goes_away(sandbox: BubblewrapSandbox) -> None:
    uid = sandbox.next_uid(7)
    launcher = Launcher()
    r, w = os.pipe()
    try:
        pid = launcher.start(argv=["/bin/sleep", "3600"], uid=uid, rlimits=[], fds=[w, w], targets=[])
        os.close(w)
        for _ in range(500):  # the launcher answers right after fork, before the child's uid drop
            if uid_pids((uid,)):
                break
            time.sleep(0.01)
        assert uid_pids((uid,)) == [pid]  # the job runs, as the job's uid
        launcher.sock.close()  # the client dies
        assert launcher.proc.wait(10) == 0
        assert uid_pids((uid,)) == []
        assert os.read(r, 10) == b""  # every holder of the job's stdout is gone
    finally:
        os.close(r)
        launcher.sock.close()
        launcher.proc.kill()
        launcher.proc.wait()


def test_job_dies_with_a_killed_launcher(sandbox: BubblewrapSandbox) -> None:
    # bwrap's --die-with-parent (parent = the launcher) and the pid namespace do it; fails without them
    uid = sandbox.next_uid(7)
    launcher = Launcher()
    r, w = os.pipe()
    try:
        argv = sandbox.command_line(SandboxJob(command=("sleep", "3600")), [])
        pid = launcher.start(argv=argv, uid=uid, rlimits=[], fds=[w, w], targets=[])
        os.close(w)
        for _ in range(500):  # bwrap's monitor, the sandbox's pid 1 and sleep
            if len(uid_pids((uid,))) == 3:
                break
            time.sleep(0.01)
        assert pid in uid_pids((uid,)) and len(uid_pids((uid,))) == 3
        launcher.proc.kill()  # SIGKILL: the launcher cannot clean up
        launcher.proc.wait()
        assert os.read(r, 10) == b""  # returns once every process holding the job's stdout is dead
        for _ in range(500):
            if not uid_pids((uid,)):
                break
            time.sleep(0.01)
        assert uid_pids((uid,)) == []
    finally:
        os.close(r)
        launcher.sock.close()
        kill_uid_processes(uid, grace_s=0)


def test_many_files_reach_the_job_and_no_fd_leaks_in(sandbox: BubblewrapSandbox) -> None:
    files: dict[str, bytes | str] = {f"d/f{i}.txt": str(i) for i in range(199)}
    files["main.py"] = (
        "import os\n"
        "names = os.listdir('d')\n"
        "print(len(names), sum(int(open('d/' + n).read()) for n in names), sorted(os.listdir('/proc/self/fd')))\n"
    )
    out = sandbox.run(SandboxJob(command=("python3", "main.py"), files=files))  # 200 files: the most allowed
    # every file arrived; the job holds only stdin/stdout/stderr (+ the fd listing /proc/self/fd)
    assert (out.exit_code, out.stdout, out.stderr) == (0, "199 19701 ['0', '1', '2', '3']\n", "")
    with pytest.raises(SandboxError, match="at most 200 files"):
        sandbox.run(SandboxJob(command=("true",), files={**files, "one-more": ""}))


def test_forked_memory_bomb_capped_for_the_whole_job(sandbox: BubblewrapSandbox, no_leftovers: None) -> None:
    if sandbox.cgroups is None:
        pytest.skip("no writable cgroup hierarchy here: jobs run on per-process rlimits only")
    # six processes, each allowed 128 MB of address space: 6 x ~120 MB without a job-wide limit
    code = """
        import os, time
        for _ in range(6):
            if os.fork() == 0:
                hog = []
                try:
                    while True:
                        hog.append(b"x" * (4 * 1024 * 1024))
                except MemoryError:
                    time.sleep(2)
                os._exit(0)
        print(sorted(os.wait()[1] for _ in range(6)))
    """
    out = sandbox.run(script_job(code, memory_mb=128, wall_seconds=60))
    mb = 1024 * 1024
    assert out.memory_peak_bytes is not None and 64 * mb < out.memory_peak_bytes <= 128 * mb
    assert out.oom_kills >= 1
    if out.exit_code == 0:  # the small parent survived and saw its children killed by the OOM killer
        statuses = [int(s) for s in out.stdout.strip("[]\n").split(", ")]
        assert statuses.count(signal.SIGKILL) == out.oom_kills
    else:
        assert (out.signal, out.killed_reason) == (signal.SIGKILL, "memory")


def test_jobs_are_born_in_their_slots_cgroup_with_their_own_peak() -> None:
    """One cgroup per slot, the launcher inside it (so no job pays for a cgroup move); each job's peak and OOM
    kills are its own (reset before it), the job (never the launcher) is the OOM victim, and the group goes
    with the sandbox."""
    sb = BubblewrapSandbox(base_uid=TEST_BASE_UID)
    sb.check()
    if sb.cgroups is None:
        pytest.skip("no writable cgroup hierarchy here: jobs run on per-process rlimits only")
    mb = 1024 * 1024
    try:
        big = sb.run(script_job("hog = b'x' * (96 * 1024 * 1024)\nprint(open('/proc/self/oom_score_adj').read().strip())",
                                memory_mb=256))  # fmt: skip
        small = sb.run(script_job("print('small')", memory_mb=256))
        launcher = sb._launcher(0)
        assert launcher.group is not None
        dirs = launcher.group.dirs
        assert all(str(launcher.proc.pid) in (d / "cgroup.procs").read_text().split() for d in dirs)
        assert Path(f"/proc/{launcher.proc.pid}/oom_score_adj").read_text().strip() == "0"
    finally:
        sb.close()
    assert (big.exit_code, big.stdout, small.exit_code, small.oom_kills) == (0, "1000\n", 0, 0)
    assert big.memory_peak_bytes is not None and big.memory_peak_bytes > 96 * mb
    assert small.memory_peak_bytes is not None and small.memory_peak_bytes < 64 * mb
    deadline = time.monotonic() + 15  # removed in the background once the launcher has gone
    while any(d.exists() for d in dirs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(d.exists() for d in dirs)


def test_cgroups_can_be_turned_off() -> None:
    sb = BubblewrapSandbox(base_uid=TEST_BASE_UID, cgroups=False)
    try:
        out = sb.run(script_job("print('x')"))
    finally:
        sb.close()
    assert (out.exit_code, out.stdout, out.memory_peak_bytes, out.oom_kills, sb.cgroups) == (
        0,
        "x\n",
        None,
        0,
        None,
    )
