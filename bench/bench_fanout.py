"""Fan-out benchmark: one connector process following N demo-fleet instances at realistic rates.

Starts a throwaway Postgres, the demo fleet (one process) and `boocontrol connect` (another), lets
them run, and reports the connector's CPU (cores used), RSS, and event-to-row lag: for every activity
row, the Postgres commit time (`ingested_at`) minus the request's finish time on the instance
(`finished_at`, which llama-swap reports at whole-second precision, so this overstates the lag by up
to 1 s).

    .venv/bin/python bench/bench_fanout.py [--instances 500] [--rpm 6] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--rpm", type=float, default=6.0, help="requests per minute per instance")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    cluster = EmbeddedCluster(base / "pg", 55498)
    cluster.start()
    url = cluster.url()
    upgrade(url)
    reg = base / "fleet.yaml"
    env = {
        **os.environ,
        "BOOCONTROL_DATABASE_URL": url,
        "BOOCONTROL_DATA_DIR": str(base),
        "BOOCONTROL_LOG_LEVEL": "INFO",
    }
    py = sys.executable
    demo = subprocess.Popen(
        [
            py,
            "-m",
            "cli.main",
            "demo-fleet",
            "-n",
            str(args.instances),
            "--base-port",
            "21000",
            "--rpm",
            str(args.rpm),
            "--registry-out",
            str(reg),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    conn_proc = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if (
                    httpx.get(
                        f"http://127.0.0.1:{21000 + args.instances - 1}/wol-health", timeout=1
                    ).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        conn_proc = subprocess.Popen(
            [py, "-m", "cli.main", "connect", "--registry", str(reg)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(base / "connector.err", "wb"),
        )
        p = psutil.Process(conn_proc.pid)
        time.sleep(args.warmup)
        t0, c0 = time.monotonic(), sum(p.cpu_times()[:2])
        rss_peak = 0
        while time.monotonic() - t0 < args.seconds:
            rss_peak = max(rss_peak, p.memory_info().rss)
            time.sleep(1)
        wall, cpu = time.monotonic() - t0, sum(p.cpu_times()[:2]) - c0
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as db:
            lag = db.execute(
                "SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
                "(ORDER BY extract(epoch FROM ingested_at - finished_at)) FROM activity "
                "WHERE ingested_at > now() - make_interval(secs => %s)",
                (args.seconds,),
            ).fetchone()
            health = db.execute("SELECT status, count(*) FROM connector_health GROUP BY status").fetchall()
            counts = db.execute(
                "SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM perf_samples), "
                "(SELECT count(*) FROM raw_events), (SELECT count(*) FROM gpu_samples)"
            ).fetchone()
        demo_cpu = sum(psutil.Process(demo.pid).cpu_times()[:2])
        print(
            f"instances {args.instances}, {args.rpm} req/min each ({args.instances * args.rpm / 60:.1f} req/s fleet-wide), "
            f"measured over {wall:.0f} s after {args.warmup} s warm-up"
        )
        print(f"connector CPU : {cpu / wall:.2f} cores   (target < 1)")
        print(f"connector RSS : {rss_peak / 2**20:.0f} MB peak   (target < 500 MB)")
        print(
            f"event->row lag: p50 {lag[1][0]:.2f} s, p95 {lag[1][1]:.2f} s, p99 {lag[1][2]:.2f} s over {lag[0]} activity "
            "rows (upper bound: finish times are whole seconds)   (target p95 < 2 s)"
        )
        print(
            f"health: {dict(health)}; rows: activity {counts[0]}, perf {counts[1]}, gpu {counts[3]}, raw events {counts[2]}"
        )
        print(f"(demo fleet process used {demo_cpu:.0f} CPU-s in total)")
    finally:
        for proc in (conn_proc, demo):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        cluster.stop()


if __name__ == "__main__":
    main()
