"""Sandbox overhead per sample: the same test script run bare (``python3 test.py``) and in the sandbox.

Each sample is a small HumanEval-shaped job: a solution module and a test script that imports it and
runs a few asserts. The two ways alternate sample by sample (so load on the machine hits both alike):

* bare: ``subprocess.run(["/usr/bin/python3", "test.py"], cwd=<dir with the two files>)``, output captured;
* sandbox: ``BubblewrapSandbox().run(job)`` — writing the files, the uid drop and rlimits, bwrap's
  namespaces and mounts, capped output capture, the wall-clock watch and the uid sweep after the job.

Printed side by side: wall time per sample (median, p95) and the added milliseconds (difference of the
medians, and median and p95 of the per-sample differences). No CPU column: the job's processes in the
sandbox are reaped by the sandbox's pid 1, whose own zombie goes to the host's init, so the kernel's
rusage of this process's children never sees them.
Target (issue 11): ≤ 30 ms added per sample. Needs root and bwrap (as the test suite).

    .venv/bin/python bench/bench_sandbox.py
    .venv/bin/python bench/bench_sandbox.py --samples 200 --workers 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.evals.sandbox import BubblewrapSandbox, SandboxJob, SandboxPool  # noqa: E402

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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1, help="also time this many sandbox jobs at once (pool)")
    args = ap.parse_args()

    sandbox = BubblewrapSandbox()
    sandbox.check()
    job = SandboxJob(command=("python3", "test.py"), files={"solution.py": SOLUTION, "test.py": TEST})
    workdir = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    (workdir / "solution.py").write_text(SOLUTION)
    (workdir / "test.py").write_text(TEST)
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}

    def bare() -> float:
        t0 = time.perf_counter()
        done = subprocess.run([PYTHON, "test.py"], cwd=workdir, env=env, capture_output=True, check=True)
        wall = time.perf_counter() - t0
        assert done.stdout == b"4 passed\n"
        return wall

    def boxed() -> float:
        t0 = time.perf_counter()
        out = sandbox.run(job)
        wall = time.perf_counter() - t0
        assert (out.exit_code, out.stdout, out.leftovers_killed) == (0, "4 passed\n", 0), out
        return wall

    for _ in range(args.warmup):
        bare()
        boxed()
    walls: dict[str, list[float]] = {"bare": [], "sandbox": []}
    added: list[float] = []
    for _ in range(args.samples):
        bw = bare()
        sw = boxed()
        walls["bare"].append(bw)
        walls["sandbox"].append(sw)
        added.append(sw - bw)

    ms = 1000.0
    print(
        f"sandbox overhead: {args.samples} samples each, alternating; python {PYTHON}; load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'':10} {'wall p50':>9} {'wall p95':>9}   (ms per sample)")
    for name in ("bare", "sandbox"):
        w = walls[name]
        print(f"{name:10} {statistics.median(w) * ms:9.1f} {pct(w, 0.95) * ms:9.1f}")
    med_added = statistics.median(walls["sandbox"]) - statistics.median(walls["bare"])
    print(
        f"added      wall: median {med_added * ms:.1f} ms (p50 of per-sample differences"
        f" {statistics.median(added) * ms:.1f}, p95 {pct(added, 0.95) * ms:.1f})"
        f"   target <= 30 ms: {'met' if med_added * ms <= 30 else 'NOT met'}"
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
            list(ex.map(lambda _: bare(), range(n)))
            took_bare = time.perf_counter() - t0
        print(
            f"{args.workers} at once: {n / took:.1f} sandboxed jobs/s vs {n / took_bare:.1f} bare"
            f" ({took / n * ms:.1f} vs {took_bare / n * ms:.1f} ms per job)"
        )


if __name__ == "__main__":
    main()
