"""Fan-out benchmark: connector processes following N demo-fleet instances at realistic rates.

Starts a throwaway Postgres, the demo fleet (one process) and `boocontrol connect` (another), lets
them run, and reports the connector's CPU (cores used, and CPU per followed host), RSS, and event-to-row lag.

Lag: for every activity row, the commit time of the transaction that made it visible in Postgres
(``pg_xact_commit_timestamp(xmin)``; the bench's cluster runs with ``track_commit_timestamp = on``) minus the
request's finish time on the instance (``finished_at``). llama-swap reports finish times truncated to whole
seconds, so the true finish lies in ``[finished_at, finished_at + 1 s)``: the figure as measured is an upper
bound of the true lag (the one targets are judged on), and the same figure minus 1 s a lower bound.

``--compare-root DIR`` runs a second connector from another checkout of this repository (e.g. a
``git worktree add /tmp/wt-before <commit>``) side by side, following the same hosts at the same time into a
database of its own: both see the same traffic under the same machine load, so their CPU per host compares.

    .venv/bin/python bench/bench_fanout.py [--instances 500] [--rpm 6] [--seconds 120] [--compare-root DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_shared_fleet import free_block, start_cluster, stop_all  # noqa: E402

# upper bound (as measured) and lower bound (finish time rounded up to the next whole second) of the lag
LAG_SQL = """
SELECT count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM c - finished_at)),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM c - finished_at) - 1)
FROM (SELECT pg_xact_commit_timestamp(xmin) AS c, finished_at FROM activity) a
WHERE c BETWEEN %s AND %s
"""


def lag_figures(db: psycopg.Connection[Any], t0: Any, t1: Any) -> str:
    row = db.execute(LAG_SQL, (t0, t1)).fetchone()
    if row is None or not row[0]:
        return "no rows"
    hi, lo = row[1], row[2]
    return (f"p50 {hi[0]:.2f} s, p95 {hi[1]:.2f} s, p99 {hi[2]:.2f} s over {row[0]} rows "
            f"(whole-second finish times: true p95 between {lo[1]:.2f} and {hi[1]:.2f} s)")


def migrate(root: Path, url: str) -> None:
    subprocess.run([sys.executable, "-c", f"from warehouse.migrate import upgrade; upgrade({url!r})"],
                   cwd=root, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--rpm", type=float, default=6.0, help="requests per minute per instance")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--compare-root", type=Path, help="another checkout: its connector runs side by side")
    ap.add_argument("--demo-nice", type=int, default=0,
                    help="run the demo fleet at this nice level (it stands in for other machines)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    cluster = start_cluster(base / "pg")
    runs: list[tuple[str, Path, str]] = []  # (label, checkout, database url)
    if args.compare_root is not None:
        admin = cluster.url("postgres").replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute("CREATE DATABASE boocontrol_compare")
        runs.append((f"compare ({args.compare_root})", args.compare_root.resolve(), cluster.url("boocontrol_compare")))
    runs.append(("this tree", ROOT, cluster.url()))
    for _, root, url in runs:
        migrate(root, url)
    reg = base / "fleet.yaml"
    env = {**os.environ, "BOOCONTROL_DATA_DIR": str(base), "BOOCONTROL_LOG_LEVEL": "INFO",
           "BOOCONTROL_DATABASE_URL": runs[-1][2]}
    py = sys.executable
    base_port = free_block(args.instances)
    demo = subprocess.Popen(
        [py, "-m", "cli.main", "demo-fleet", "-n", str(args.instances), "--base-port", str(base_port),
         "--rpm", str(args.rpm), "--registry-out", str(reg)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.nice(args.demo_nice)) if args.demo_nice else None)
    conns: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            if demo.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the demo fleet did not come up")
            try:
                if httpx.get(f"http://127.0.0.1:{base_port + args.instances - 1}/wol-health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        for k, (_, root, url) in enumerate(runs):
            conns.append(subprocess.Popen(
                [py, "-m", "cli.main", "connect", "--registry", str(reg)], cwd=root,
                env={**env, "BOOCONTROL_DATABASE_URL": url, "BOOCONTROL_DATA_DIR": str(base / f"conn{k}")},
                stdout=subprocess.DEVNULL, stderr=open(base / f"connector{k}.err", "wb")))
        ps = [psutil.Process(c.pid) for c in conns]
        demo_p = psutil.Process(demo.pid)
        time.sleep(args.warmup)
        dsns = [url.replace("postgresql+psycopg://", "postgresql://") for _, _, url in runs]
        dbs = [psycopg.connect(d, autocommit=True) for d in dsns]
        t0 = time.monotonic()
        c0 = [sum(p.cpu_times()[:2]) for p in ps]
        d0 = sum(demo_p.cpu_times()[:2])
        w0 = [db.execute("SELECT now()").fetchone()[0] for db in dbs]  # type: ignore[index]
        la0 = os.getloadavg()
        rss_peak = [0] * len(ps)
        while time.monotonic() - t0 < args.seconds:
            rss_peak = [max(r, p.memory_info().rss) for r, p in zip(rss_peak, ps, strict=True)]
            time.sleep(1)
        wall = time.monotonic() - t0
        cpu = [(sum(p.cpu_times()[:2]) - c) / wall for p, c in zip(ps, c0, strict=True)]
        demo_cpu = (sum(demo_p.cpu_times()[:2]) - d0) / wall
        w1 = [db.execute("SELECT now()").fetchone()[0] for db in dbs]  # type: ignore[index]
        la1 = os.getloadavg()
        print(f"instances {args.instances}, {args.rpm} req/min each ({args.instances * args.rpm / 60:.1f} req/s "
              f"fleet-wide), measured over {wall:.0f} s after {args.warmup} s warm-up; load average "
              f"{la0[0]:.2f} -> {la1[0]:.2f}; demo fleet {demo_cpu:.2f} cores"
              + (f" (nice {args.demo_nice})" if args.demo_nice else ""))
        for (label, _, _), db, c, rss, a, b in zip(runs, dbs, cpu, rss_peak, w0, w1, strict=True):
            health = dict(db.execute("SELECT status, count(*) FROM connector_health GROUP BY status").fetchall())
            counts = db.execute("SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM perf_samples), "
                                "(SELECT count(*) FROM raw_events), (SELECT count(*) FROM gpu_samples)").fetchone()
            assert counts is not None
            print(f"[{label}]")
            print(f"  connector CPU : {c:.3f} cores = {1000 * c / args.instances:.3f} ms CPU per host per second"
                  "   (target < 1 core)")
            print(f"  connector RSS : {rss / 2**20:.0f} MB peak   (target < 500 MB)")
            print(f"  event->row lag: {lag_figures(db, a, b)}   (target p95 < 2 s, on the upper bound)")
            print(f"  health: {health}; rows: activity {counts[0]}, perf {counts[1]}, gpu {counts[3]}, "
                  f"raw events {counts[2]}")
        if len(cpu) == 2:
            print(f"CPU per host, this tree / compare: {cpu[1] / cpu[0]:.2f}")
        for db in dbs:
            db.close()
    finally:
        stop_all((*conns, demo), cluster, base)


if __name__ == "__main__":
    main()
