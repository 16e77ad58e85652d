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

Postgres load is read from ``pg_stat_statements`` (the bench's cluster preloads it), per database role: the
connector connects as ``postgres``, the flows as ``ops_flows``, so each one's load is its own even while both run
(subtracting a baseline rate from whole-server figures was tried first: the connector's own rate moves too much
under a 2-core machine's load for that to mean anything). Load = statements executed, their execution time, shared
buffers touched (hit + read) and rows returned/affected. A canary cycle also makes the connector ingest the probes'
own activity rows: reported as those rows against the connector's rows per cycle. Prefect's own orchestration (a
flow run record) goes to Prefect's database, not BooControl's, and is not included.

    .venv/bin/python bench/bench_ops_flows.py [--instances 500] [--rpm 6] [--warmup 60] [--baseline 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import atexit
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
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_shared_fleet import free_block, stop_all  # noqa: E402
from core.providers import load_registry  # noqa: E402
from engines.alerts import Policy, evaluate_once  # noqa: E402
from engines.canary import run_cycle  # noqa: E402
from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.db import make_engine  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402

POLL_S = 5.0  # the connector's performance poll period (BOOCONTROL_CONNECTOR_PERF_POLL_SECONDS default)
OPS_ROLE = "ops_flows"
STATS_SQL = """
SELECT r.rolname, coalesce(sum(s.calls), 0), coalesce(sum(s.total_exec_time), 0),
       coalesce(sum(s.shared_blks_hit + s.shared_blks_read), 0), coalesce(sum(s.rows), 0)
FROM pg_roles r LEFT JOIN pg_stat_statements s ON s.userid = r.oid
WHERE r.rolname IN ('postgres', %s) GROUP BY r.rolname
"""


@dataclass(frozen=True)
class Load:
    calls: float
    exec_ms: float
    buffers: float
    rows: float

    def __sub__(self, o: Load) -> Load:
        return Load(self.calls - o.calls, self.exec_ms - o.exec_ms, self.buffers - o.buffers, self.rows - o.rows)

    def scaled(self, k: float) -> Load:
        return Load(self.calls * k, self.exec_ms * k, self.buffers * k, self.rows * k)


def enable_statement_stats(cluster: EmbeddedCluster) -> None:
    dsn = cluster.url("postgres").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    cluster.stop()
    cluster.start()


def measure(db: psycopg.Connection[Any]) -> dict[str, Load]:
    """Cumulative statement load per role (``postgres`` = the connector, ``ops_flows`` = the flows)."""
    return {str(r[0]): Load(*(float(v) for v in r[1:])) for r in db.execute(STATS_SQL, (OPS_ROLE,)).fetchall()}


def fmt(load: Load) -> str:
    return (f"{load.calls:8.0f} statements, {load.exec_ms:9.1f} ms executing, {load.buffers:10.0f} buffers, "
            f"{load.rows:8.0f} rows")


def ratio(a: Load, b: Load) -> str:
    def r(x: float, y: float) -> str:
        return f"{x / y:.2f}" if y else "n/a"
    return (f"statements {r(a.calls, b.calls)}, execution time {r(a.exec_ms, b.exec_ms)}, "
            f"buffers {r(a.buffers, b.buffers)}, rows {r(a.rows, b.rows)}")


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
    atexit.register(cluster.stop)  # also when the setup below fails (stop() is a no-op once stopped)
    enable_statement_stats(cluster)
    url = cluster.url()
    cluster.ensure_database("boocontrol")
    upgrade(url)
    admin = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        db.execute(f"CREATE ROLE {OPS_ROLE} LOGIN SUPERUSER")  # the bench's own cluster; a name, not input
    ops_url = url.replace("postgres@", f"{OPS_ROLE}@", 1)
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
        engine = make_engine(ops_url, pool_size=8)
        with psycopg.connect(admin, autocommit=True) as db:
            s0 = measure(db)
            t0 = time.monotonic()
            time.sleep(args.baseline)
            s1 = measure(db)
            base_wall = time.monotonic() - t0
            poll_cycle = (s1["postgres"] - s0["postgres"]).scaled(POLL_S / base_wall)  # the connector, per cycle

            canary_walls, canary_added, probed, skipped, failed, unmatched = [], [], [], [], [], []
            errors: dict[str, int] = {}
            for _ in range(args.cycles):
                a = measure(db)
                ta = time.monotonic()
                _, cycle = run_cycle(engine, providers, concurrency=args.concurrency)
                canary_walls.append(time.monotonic() - ta)
                canary_added.append(measure(db)[OPS_ROLE] - a[OPS_ROLE])
                probed.append(len(cycle.probes))
                failed.append(sum(1 for p in cycle.probes if not p.ok))
                unmatched.append(sum(1 for p in cycle.probes if p.activity_upstream_id is None))
                skipped.append(len(cycle.skipped))
                for p in cycle.probes:
                    if not p.ok:
                        key = (p.error or f"HTTP {p.status_code}").split(":")[0]
                        errors[key] = errors.get(key, 0) + 1

            alert_walls, alert_added, findings = [], [], []
            for _ in range(args.cycles):
                a = measure(db)
                ta = time.monotonic()
                ev = evaluate_once(engine, datetime.now(UTC), Policy(), lambda n, only=None: {})
                alert_walls.append(time.monotonic() - ta)
                alert_added.append(measure(db)[OPS_ROLE] - a[OPS_ROLE])
                findings.append(ev.findings)
            la1 = os.getloadavg()
            with db.cursor() as cur:
                counts = cur.execute("SELECT (SELECT count(*) FROM activity), (SELECT count(*) FROM model_transitions),"
                                     " (SELECT count(*) FROM perf_samples), (SELECT count(*) FROM canary_probes)"
                                     ).fetchone()

        def mean(loads: list[Load]) -> Load:
            return Load(*(statistics.mean(getattr(x, f) for x in loads) for f in ("calls", "exec_ms", "buffers", "rows")))

        print(f"{args.instances} demo hosts, {args.rpm} req/min each; warm-up {args.warmup} s; load average "
              f"{la0[0]:.2f} at start, {la1[0]:.2f} at end (2 cores shared); rows: activity, transitions, perf, "
              f"probes = {counts}")
        print(f"connector alone, one {POLL_S:.0f} s polling cycle: {fmt(poll_cycle)}")
        c_add = mean(canary_added)
        print(f"canary cycle   : wall {', '.join(f'{w:.1f}' for w in canary_walls)} s (median "
              f"{statistics.median(canary_walls):.1f} s); probed {probed}, failed {failed}, row not found "
              f"{unmatched}, hosts skipped {skipped}")
        print(f"  failures by error: {errors}")
        print(f"  added load   : {fmt(c_add)}")
        print(f"  / one connector polling cycle: {ratio(c_add, poll_cycle)}")
        print(f"  plus the probes' own activity rows the connector ingests: {statistics.mean(probed):.0f} per cycle "
              f"(the connector writes {poll_cycle.rows:.0f} rows per polling cycle)")
        a_add = mean(alert_added)
        print(f"alert cycle    : wall {', '.join(f'{w:.2f}' for w in alert_walls)} s (median "
              f"{statistics.median(alert_walls):.2f} s); findings {findings}")
        print(f"  added load   : {fmt(a_add)}")
        print(f"  / one connector polling cycle: {ratio(a_add, poll_cycle)}")
        engine.dispose()
    finally:
        stop_all((conn_p, demo), cluster, base)


if __name__ == "__main__":
    main()
