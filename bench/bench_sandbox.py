"""Sandbox overhead per sample: the same test script run bare (``python3 test.py``) and in the sandbox.

Each sample is a small HumanEval-shaped job: a solution module and a test script that imports it and
runs a few asserts. The two ways alternate sample by sample (so load on the machine hits both alike):

* bare: ``subprocess.run(["/usr/bin/python3", "test.py"], cwd=<dir with the two files>)``, output captured;
* sandbox: ``BubblewrapSandbox().run(job)`` — writing the files, the uid drop and rlimits, bwrap's
  namespaces and mounts, capped output capture, the wall-clock watch and the uid sweep after the job;
* with ``--no-cgroup-row`` left out, also ``BubblewrapSandbox(cgroups=False)`` (no job cgroup: rlimits only),
  so what the job cgroup adds is measured in the same run;
* ``--also DIR`` (e.g. ``git archive <rev> engines | tar -x -C DIR``): the sandbox of another tree too, run by
  a worker process that imports it from DIR and is timed from here (its wall time includes a pipe round
  trip, ~0.1 ms) — a change and its predecessor side by side.

Printed side by side: wall time per sample (median, p95) and the added milliseconds (difference of the
medians, and median and p95 of the per-sample differences). Wall time on a loaded machine stretches
with the load (every step waits for a core), so the CPU time per sample is printed too, from two cgroup
v1 ``cpuacct`` groups: one holding this process (its children's CPU: the bare runs, minus this
process's own), one holding the sandbox's launcher helper and so everything it starts (launcher, bwrap,
the job). rusage cannot do it: the sandbox's pid 1 is reaped by the host's init. Without a writable
/sys/fs/cgroup/cpuacct the CPU columns say n/a.
Target (issue 11): ≤ 30 ms added per sample. Needs root and bwrap (as the test suite).

    .venv/bin/python bench/bench_sandbox.py
    .venv/bin/python bench/bench_sandbox.py --samples 200 --workers 2
    chrt -f 10 .venv/bin/python bench/bench_sandbox.py --samples 200 --workers 2

On a machine shared with other work, ``chrt -f 10`` (real-time priority for the benchmark and every
process it starts, a few seconds) measures what an unloaded machine would see; without it the wall
times stretch with the load, sandbox more than bare (more processes to schedule).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.evals.sandbox import BubblewrapSandbox, SandboxJob, SandboxPool  # noqa: E402

CPUACCT = Path("/sys/fs/cgroup/cpuacct")

PYTHON = "/usr/bin/python3"
SOLUTION = '''\
def is_palindrome(text: str) -> bool:
    """True when text reads the same both ways, ignoring case and non-letters."""
    letters = [c.lower() for c in text if c.isalpha()]
    return letters == letters[::-1]
'''
TEST = """\
from solution import is_palindrome

assert is_palindrome("A man, a plan, a canal: Panama")
assert is_palindrome("")
assert not is_palindrome("hello")
assert is_palindrome("No 'x' in Nixon")
print("4 passed")
"""


class CpuGroup:
    """A cgroup v1 cpuacct group: total CPU of its processes and their descendants, in seconds."""

    def __init__(self, name: str) -> None:
        self.path = CPUACCT / f"boocontrol-bench-sandbox-{name}-{os.getpid()}"
        self.path.mkdir()

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def usage(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (CPUACCT / "cgroup.procs").write_text(f"{pid}\n")
            except OSError:
                pass
        try:
            self.path.rmdir()
        except OSError:
            pass


WORKER = f"""
import sys
sys.path.insert(0, sys.argv[1])
from engines.evals.sandbox import BubblewrapSandbox, SandboxJob
sb = BubblewrapSandbox()
sb.check()
job = SandboxJob(command=("python3", "test.py"), files={{"solution.py": {SOLUTION!r}, "test.py": {TEST!r}}})
sb.run(job)
print(sb._launcher(0).proc.pid, flush=True)
for _ in sys.stdin:
    out = sb.run(job)
    assert (out.exit_code, out.stdout) == (0, "4 passed\\n"), out
    print("ok", flush=True)
"""


class OtherTree:
    """The sandbox of another source tree, in a worker process: one job per line sent."""

    def __init__(self, tree: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(Path(tree).resolve())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd="/")  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.launcher_pid = int(self.stdout.readline())

    def run(self) -> None:
        self.stdin.write("go\n")
        self.stdin.flush()
        assert self.stdout.readline() == "ok\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1, help="also time this many sandbox jobs at once (pool)")
    ap.add_argument("--no-cgroup-row", action="store_true", help="leave out the sandbox without a job cgroup")
    ap.add_argument("--also", metavar="DIR", help="also time the sandbox of the tree in DIR (its engines/ package)")
    args = ap.parse_args()

    sandbox = BubblewrapSandbox()
    sandbox.check()
    plain = None if args.no_cgroup_row else BubblewrapSandbox(cgroups=False)
    if plain is not None:
        plain.check()
    job = SandboxJob(command=("python3", "test.py"), files={"solution.py": SOLUTION, "test.py": TEST})
    workdir = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    (workdir / "solution.py").write_text(SOLUTION)
    (workdir / "test.py").write_text(TEST)
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}

    groups: dict[str, CpuGroup] = {}

    def cpu_now(name: str) -> float:
        if name not in groups:
            return 0.0
        used = groups[name].usage()
        return used - time.process_time() if name == "bare" else used

    def bare() -> tuple[float, float]:
        c0, t0 = cpu_now("bare"), time.perf_counter()
        done = subprocess.run([PYTHON, "test.py"], cwd=workdir, env=env, capture_output=True, check=True)
        wall, cpu = time.perf_counter() - t0, cpu_now("bare") - c0
        assert done.stdout == b"4 passed\n"
        return wall, cpu

    def boxed(name: str = "sandbox", box: BubblewrapSandbox = sandbox) -> tuple[float, float]:
        c0, t0 = cpu_now(name), time.perf_counter()
        out = box.run(job)
        wall, cpu = time.perf_counter() - t0, cpu_now(name) - c0
        assert (out.exit_code, out.stdout, out.leftovers_killed) == (0, "4 passed\n", 0), out
        return wall, cpu

    runs: dict[str, Callable[[], tuple[float, float]]] = {"bare": bare, "sandbox": boxed}
    if plain is not None:
        runs["no cgroup"] = lambda: boxed("no cgroup", plain)
    other = OtherTree(args.also) if args.also else None
    if other is not None:

        def other_run() -> tuple[float, float]:
            c0, t0 = cpu_now("--also"), time.perf_counter()
            other.run()
            return time.perf_counter() - t0, cpu_now("--also") - c0

        runs["--also"] = other_run
    for _ in range(args.warmup):
        for run in runs.values():
            run()
    try:
        groups["sandbox"] = CpuGroup("box")
        groups["sandbox"].add(sandbox._launcher(0).proc.pid)
        if plain is not None:
            groups["no cgroup"] = CpuGroup("plain")
            groups["no cgroup"].add(plain._launcher(0).proc.pid)
        if other is not None:
            groups["--also"] = CpuGroup("also")
            groups["--also"].add(other.launcher_pid)
        groups["bare"] = CpuGroup("bare")
        groups["bare"].add(os.getpid())
    except OSError as exc:
        for g in groups.values():
            g.remove()
        groups.clear()
        print(f"(no CPU columns: {exc})")
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    added: list[float] = []
    try:
        for _ in range(args.samples):
            for name, run in runs.items():
                wall_s, cpu_s = run()
                walls[name].append(wall_s)
                cpus[name].append(cpu_s)
            added.append(walls["sandbox"][-1] - walls["bare"][-1])
    finally:
        for g in groups.values():
            g.remove()

    ms = 1000.0
    load = os.getloadavg()
    print(f"sandbox overhead: {args.samples} samples each, alternating; python {PYTHON}; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (1/5/15 min)")  # fmt: skip

    def cpu_cols(c: list[float]) -> str:
        return (
            f" {statistics.median(c) * ms:9.1f} {pct(c, 0.95) * ms:9.1f}"
            if groups
            else f" {'n/a':>9} {'n/a':>9}"
        )

    print(f"{'':10} {'wall p50':>9} {'wall p95':>9} {'cpu p50':>9} {'cpu p95':>9}   (ms per sample)")
    for name in runs:
        w = walls[name]
        print(f"{name:10} {statistics.median(w) * ms:9.1f} {pct(w, 0.95) * ms:9.1f}" + cpu_cols(cpus[name]))
    med_added = statistics.median(walls["sandbox"]) - statistics.median(walls["bare"])
    cpu_added = statistics.median(cpus["sandbox"]) - statistics.median(cpus["bare"])
    print(
        f"added      wall: median {med_added * ms:.1f} ms (p50 of per-sample differences"
        f" {statistics.median(added) * ms:.1f}, p95 {pct(added, 0.95) * ms:.1f})"
        + (f"; cpu: median {cpu_added * ms:.1f} ms" if groups else "")
        + f"   target <= 30 ms: {'met' if med_added * ms <= 30 else 'NOT met'} (wall)"
    )

    if args.workers > 1:
        n = args.samples
        with SandboxPool(sandbox, workers=args.workers) as pool:
            t0 = time.perf_counter()
            outcomes = pool.run_all([job] * n)
            took = time.perf_counter() - t0
        assert all(o.passed for o in outcomes)
        with ThreadPoolExecutor(args.workers) as ex:
            t0 = time.perf_counter()
            list(
                ex.map(
                    lambda _: subprocess.run([PYTHON, "test.py"], cwd=workdir, env=env, capture_output=True),
                    range(n),
                )
            )
            took_bare = time.perf_counter() - t0
        print(
            f"{args.workers} at once: {n / took:.1f} sandboxed jobs/s vs {n / took_bare:.1f} bare"
            f" ({took / n * ms:.1f} vs {took_bare / n * ms:.1f} ms per job)"
        )


if __name__ == "__main__":
    main()
