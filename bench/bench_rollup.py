"""Benchmark: roll up 24 h of raw host telemetry for 100 hosts at one sample per second.

8.64 M ``perf_samples`` rows plus 8.64 M ``gpu_samples`` rows (one GPU per host) are loaded with binary COPY
(the connector's ``warehouse.ingest.copy_rows``) into a throwaway database, then ``rollup_perf`` rolls the
day into 5-minute and hourly host and GPU rollups, once fresh and once more over existing rows (the
ON CONFLICT DO UPDATE path every scheduled re-run takes). Target: under 60 s.

    .venv/bin/python bench/bench_rollup.py                 # throwaway EmbeddedCluster(fast_unsafe=True)
    .venv/bin/python bench/bench_rollup.py --hosts 10      # smaller
    .venv/bin/python bench/bench_rollup.py --url postgresql+psycopg://...   # an existing empty server DB
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import event

from warehouse import ingest
from warehouse.cluster import EmbeddedCluster
from warehouse.db import make_engine, psycopg_dsn
from warehouse.migrate import upgrade
from warehouse.rollups import rollup_perf

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(dsn: str, hosts: int, seconds: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO providers (id, label, base_url, kind) VALUES (%s, %s, %s, 'llama-swap')",
                [(f"h{h:03d}", f"host {h}", f"http://h{h}:8080") for h in range(hosts)],
            )
        conn.commit()
        ts = [DAY + timedelta(seconds=s) for s in range(seconds)]
        raw = [t.isoformat() for t in ts]
        for h in range(hosts):
            pid = f"h{h:03d}"
            with conn.cursor() as cur:
                ingest.copy_rows(
                    cur,
                    "perf_samples",
                    ingest.PERF,
                    (
                        (
                            pid,
                            ts[s],
                            raw[s],
                            float(s % 100),
                            [1.0, 2.0],
                            64000.0,
                            1000.0 + s % 500,
                            50000.0,
                            0.0,
                            0.0,
                            0.5,
                            0.5,
                            0.5,
                            None,
                        )
                        for s in range(seconds)
                    ),
                )
                ingest.copy_rows(
                    cur,
                    "gpu_samples",
                    ingest.GPU,
                    (
                        (
                            pid,
                            "gpu0",
                            ts[s],
                            raw[s],
                            0,
                            "RTX Bench",
                            40.0 + s % 40,
                            0.0,
                            float(s % 100),
                            50.0,
                            12000.0,
                            24000.0,
                            30.0,
                            100.0 + s % 300,
                        )
                        for s in range(seconds)
                    ),
                )
            conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE perf_samples")
        conn.execute("VACUUM ANALYZE gpu_samples")
    return hosts * seconds, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=86_400)
    ap.add_argument("--url", help="an empty database to use instead of a throwaway cluster")
    args = ap.parse_args()

    cluster = None
    url = args.url
    if url is None:
        cluster = EmbeddedCluster(
            Path(tempfile.mkdtemp(prefix="boocontrol-bench-")), free_port(), fast_unsafe=True
        )
        cluster.start()
        cluster.ensure_database("bench")
        url = cluster.url("bench")
    try:
        upgrade(url)
        rows, load_s = load(psycopg_dsn(url), args.hosts, args.seconds)
        print(
            f"loaded {rows:,} perf_samples + {rows:,} gpu_samples rows with binary COPY in {load_s:.1f} s "
            f"({2 * rows / load_s:,.0f} rows/s)"
        )
        engine = make_engine(url)
        end = DAY + timedelta(seconds=args.seconds)
        started: list[float] = []
        per_statement: dict[str, float] = {}

        @event.listens_for(engine, "before_cursor_execute")
        def _before(*_: object) -> None:
            started.append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: object, cursor: object, statement: str, *_: object) -> None:
            if statement.lstrip().startswith("INSERT INTO rollup_"):
                table = statement.split()[2]
                per_statement[table] = per_statement.get(table, 0.0) + time.perf_counter() - started[-1]

        timings = []
        for label in ("fresh", "re-run (upsert over existing rows)"):
            t0 = time.perf_counter()
            with engine.begin() as conn:
                res = rollup_perf(conn, DAY, end)
            took = time.perf_counter() - t0
            timings.append(took)
            print(
                f"rollup_perf {label}: {took:.1f} s for {2 * rows:,} raw rows "
                f"({2 * rows / took:,.0f} raw rows/s) -> {res.rows}"
            )
            print("  per statement: " + ", ".join(f"{t} {v:.1f} s" for t, v in per_statement.items()))
            per_statement.clear()
        print(
            f"RESULT rollup of 24 h x {args.hosts} hosts at 1 Hz (perf + gpu, {2 * rows:,} rows): "
            f"fresh {timings[0]:.1f} s, re-run {timings[1]:.1f} s, target < 60 s: "
            f"{'PASS' if max(timings) < 60 else 'FAIL'}"
        )
        engine.dispose()
    finally:
        if cluster is not None:
            cluster.stop("immediate")


if __name__ == "__main__":
    main()
