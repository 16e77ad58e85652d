"""Operating flows on a demo fleet: one canary cycle and one alert evaluation, wall time and the load they add to
Postgres, as a ratio to one cycle of the connector's own polling, measured side by side in one run.

Starts a throwaway Postgres, the demo fleet (N simulated llama-swap hosts with synthetic traffic, one process) and
``boocontrol connect`` following all of them; after a warm-up (models loaded by the traffic, rows in every table)
it measures, in this order and on the same machine state:

1. **connector baseline**: ``--baseline`` seconds of the connector alone; "one polling cycle" is one
   ``BOOCONTROL_CONNECTOR_PERF_POLL_SECONDS`` (5 s) period of it: every host's performance poll plus the
   activity, events and health the connector writes meanwhile;
2. **canary cycle** (``engines.canary.run_cycle``, what ``flows/canary.py`` runs), ``--cycles`` times, each
   followed by a 5 s settle so the connector has written the probes' own activity rows;
3. **alert evaluation** (``engines.alerts.evaluate_once`` with delivery to nobody, what ``flows/alerts.py`` runs),
   ``--cycles`` times.

Postgres load = the Postgres server processes' CPU seconds (postmaster and backends, psutil) and the buffer
accesses, transactions and rows of ``pg_stat_database``, each over the window; the *added* load of a flow cycle is
the window's load minus the connector baseline rate times the window's length. Prefect's own orchestration (a flow
run record) is not included: it goes to Prefect's database, not BooControl's.

    .venv/bin/python bench/bench_ops_flows.py [--instances 500] [--rpm 6] [--warmup 60] [--baseline 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_shared_fleet import free_block  # noqa: E402
from core.providers import load_registry  # noqa: E402
from engines.alerts import Policy, evaluate_once  # noqa: E402
from engines.canary import run_cycle  # noqa: E402
from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.db import make_engine  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402

POLL_S = 5.0  # the connector's performance poll period (BOOCONTROL_CONNECTOR_PERF_POLL_SECONDS default)
STATS_SQL = """
SELECT xact_commit + xact_rollback, blks_hit + blks_read,
       tup_returned + tup_fetched, tup_inserted + tup_updated + tup_deleted
FROM pg_stat_database WHERE datname = current_database()
"""


@dataclass(frozen=True)
class Load:
    cpu_s: float
    xacts: float
    buffers: float
    rows_read: float
    rows_written: float

    def __sub__(self, o: Load) -> Load:
        return Load(self.cpu_s - o.cpu_s, self.xacts - o.xacts, self.buffers - o.buffers,
                    self.rows_read - o.rows_read, self.rows_written - o.rows_written)

    def scaled(self, k: float) -> Load:
        return Load(self.cpu_s * k, self.xacts * k, self.buffers * k, self.rows_read * k, self.rows_written * k)


def postgres_cpu(pgdata: Path) -> float:
    """CPU seconds of the cluster: the postmaster (with its reaped children) and every live backend."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    pm = psutil.Process(pid)
    t = pm.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in pm.children(recursive=True):
        try:
            ct = child.cpu_times()
            total += ct.user + ct.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(db: psycopg.Connection[Any], pgdata: Path) -> Load:
    time.sleep(1.2)  # backends flush their statistics at most once a second
    db.execute("SELECT pg_stat_clear_snapshot()")
    row = db.execute(STATS_SQL).fetchone()
    assert row is not None
    return Load(postgres_cpu(pgdata), *(float(v) for v in row))


def fmt(load: Load) -> str:
    return (f"{load.cpu_s * 1000:8.0f} ms Postgres CPU, {load.xacts:8.0f} xacts, {load.buffers:10.0f} buffers, "
            f"{load.rows_read:10.0f} rows read, {load.rows_written:8.0f} rows written")


def ratio(a: Load, b: Load) -> str:
    def r(x: float, y: float) -> str:
        return f"{x / y:.2f}" if y else "n/a"
    return (f"CPU {r(a.cpu_s, b.cpu_s)}, xacts {r(a.xacts, b.xacts)}, buffers {r(a.buffers, b.buffers)}, "
            f"rows read {r(a.rows_read, b.rows_read)}, rows written {r(a.rows_written, b.rows_written)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--rpm", type=float, default=6.0, help="synthetic requests per minute per host")
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--baseline", type=int, default=30, help="seconds of the connector alone")
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64, help="hosts probed at a time")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    cluster = EmbeddedCluster(base / "pg", 55497)
    cluster.start()
    url = cluster.url()
    cluster.ensure_database("boocontrol")
    upgrade(url)
    reg = base / "fleet.yaml"
    env = {**os.environ, "BOOCONTROL_DATA_DIR": str(base), "BOOCONTROL_DATABASE_URL": url}
    py = sys.executable
    base_port = free_block(args.instances)
    demo = subprocess.Popen(
        [py, "-m", "cli.main", "demo-fleet", "-n", str(args.instances), "--base-port", str(base_port),
         "--rpm", str(args.rpm), "--registry-out", str(reg)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn_p: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 180
        while True:
            if demo.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the demo fleet did not come up")
            try:
                if httpx.get(f"http://127.0.0.1:{base_port + args.instances - 1}/wol-health",
                             timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        conn_p = subprocess.Popen([py, "-m", "cli.main", "connect", "--registry", str(reg)], cwd=ROOT,
                                  env={**env, "BOOCONTROL_DATA_DIR": str(base / "conn")},
                                  stdout=subprocess.DEVNULL, stderr=open(base / "connector.err", "wb"))
        la0 = os.getloadavg()
        time.sleep(args.warmup)
        providers = load_registry(reg).providers
        engine = make_engine(url, pool_size=8)
        pgdata = cluster.pgdata
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as db:
            s0 = measure(db, pgdata)
            t0 = time.monotonic()
            time.sleep(args.baseline)
            s1 = measure(db, pgdata)
            base_wall = time.monotonic() - t0
            rate = (s1 - s0).scaled(1 / base_wall)  # per second, the connector alone
            poll_cycle = rate.scaled(POLL_S)

            canary_walls, canary_added, probed, skipped, failed, unmatched = [], [], [], [], [], []
            for _ in range(args.cycles):
                a = measure(db, pgdata)
                ta = time.monotonic()
                _, cycle = run_cycle(engine, providers, concurrency=args.concurrency)
                wall = time.monotonic() - ta
                time.sleep(POLL_S)  # the connector writes the probes' activity rows
                b = measure(db, pgdata)
                window = time.monotonic() - ta
                canary_walls.append(wall)
                canary_added.append((b - a) - rate.scaled(window))
                probed.append(len(cycle.probes))
                failed.append(sum(1 for p in cycle.probes if not p.ok))
                unmatched.append(sum(1 for p in cycle.probes if p.activity_upstream_id is None))
                skipped.append(len(cycle.skipped))

            alert_walls, alert_added, findings = [], [], []
            for _ in range(args.cycles):
                a = measure(db, pgdata)
                ta = time.monotonic()
                ev = evaluate_once(engine, datetime.now(UTC), Policy(), lambda n: {})
                wall = time.monotonic() - ta
                b = measure(db, pgdata)
                window = time.monotonic() - ta
                alert_walls.append(wall)
                alert_added.append((b - a) - rate.scaled(window))
                findings.append(ev.findings)
            la1 = os.getloadavg()
            with db.cursor() as cur:
                counts = cur.execute("SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM model_transitions),"
                                     " (SELECT count(*) FROM perf_samples), (SELECT count(*) FROM canary_probes)"
                                     ).fetchone()

        def mean(loads: list[Load]) -> Load:
            return Load(*(statistics.mean(getattr(x, f) for x in loads)
                          for f in ("cpu_s", "xacts", "buffers", "rows_read", "rows_written")))

        print(f"{args.instances} demo hosts, {args.rpm} req/min each; warm-up {args.warmup} s; load average "
              f"{la0[0]:.2f} at start, {la1[0]:.2f} at end (2 cores shared); rows: activity, transitions, perf, "
              f"probes = {counts}")
        print(f"connector alone, one {POLL_S:.0f} s polling cycle: {fmt(poll_cycle)}")
        c_add = mean(canary_added)
        print(f"canary cycle   : wall {', '.join(f'{w:.1f}' for w in canary_walls)} s (median "
              f"{statistics.median(canary_walls):.1f} s); probed {probed}, failed {failed}, row not found "
              f"{unmatched}, hosts skipped {skipped}")
        print(f"  added load   : {fmt(c_add)}")
        print(f"  / one connector polling cycle: {ratio(c_add, poll_cycle)}")
        a_add = mean(alert_added)
        print(f"alert cycle    : wall {', '.join(f'{w:.2f}' for w in alert_walls)} s (median "
              f"{statistics.median(alert_walls):.2f} s); findings {findings}")
        print(f"  added load   : {fmt(a_add)}")
        print(f"  / one connector polling cycle: {ratio(a_add, poll_cycle)}")
        engine.dispose()
    finally:
        for proc in (conn_p, demo):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.stop()
        print(f"(logs in {base})")


if __name__ == "__main__":
    main()
