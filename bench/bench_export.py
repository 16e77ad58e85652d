"""Benchmark: Parquet export rows/s against a raw COPY export of the same rows, in one run.

One UTC day of ``perf_samples`` (100 hosts at llama-swap's default 5 s sampling: 1.73 M rows, with the
per-core array and the net_io JSON) and of ``activity`` (``--requests`` rows) is loaded with binary COPY into a
throwaway database. Then, alternating, each table's day is exported

* raw: ``COPY (the export query) TO STDOUT (FORMAT CSV)`` streamed into a file (the ceiling), and
* Parquet: ``warehouse.exports.export_day`` (the same COPY, parsed by pyarrow, written as zstd Parquet).

The best of ``--rounds`` is kept for each. Target: Parquet rows/s >= 50 % of raw COPY rows/s.

    .venv/bin/python bench/bench_export.py [--hosts 100] [--every-s 5] [--requests 500000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from warehouse import ingest
from warehouse.cluster import EmbeddedCluster
from warehouse.db import make_engine, psycopg_dsn
from warehouse.exports import EXPORTS, day_window, export_day
from warehouse.migrate import upgrade

DAY = date(2026, 3, 2)
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(dsn: str, hosts: int, every_s: int, requests: int) -> dict[str, int]:
    n = 86_400 // every_s
    ts = [T0 + timedelta(seconds=i * every_s) for i in range(n)]
    net = Jsonb([{"name": "eth0", "bytes_recv": 123456789, "bytes_sent": 98765432}])
    with psycopg.connect(dsn) as conn:
        conn.cursor().executemany(
            "INSERT INTO providers (id, label, base_url, kind) VALUES (%s, %s, %s, 'llama-swap')",
            [(f"h{h:03d}", f"host {h}", f"http://h{h}:8080") for h in range(hosts)],
        )
        for h in range(hosts):
            with conn.cursor() as cur:
                ingest.copy_rows(
                    cur,
                    "perf_samples",
                    ingest.PERF,
                    (
                        (
                            f"h{h:03d}",
                            t,
                            t.isoformat(),
                            12.5 + i % 50,
                            [10.0 + i % 7, 15.5, 3.25, 99.0],
                            64000.0,
                            21000.0 + i % 1000,
                            30000.0,
                            8192.0,
                            0.0,
                            0.8,
                            0.6,
                            0.5,
                            net,
                        )
                        for i, t in enumerate(ts)
                    ),
                )
            conn.commit()
        step = 86_400_000 // max(requests, 1)
        with conn.cursor() as cur:
            ingest.copy_rows(
                cur,
                "activity",
                ingest.ACTIVITY,
                (
                    (
                        f"h{i % hosts:03d}",
                        "e1",
                        i + 1,
                        T0 + timedelta(milliseconds=i * step),
                        f"model-{i % 7}",
                        "/v1/chat/completions",
                        "text/event-stream",
                        200 if i % 50 else 500,
                        100 + i % 50,
                        200 + i % 90,
                        -1,
                        -1,
                        -1,
                        1500.0 + i % 100,
                        45.0 + i % 10,
                        1234 + i % 500,
                        True,
                        None if i % 50 else "upstream error",
                        Jsonb({"fifo_priority": "0"}),
                    )
                    for i in range(requests)
                ),
            )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE perf_samples")
        conn.execute("VACUUM ANALYZE activity")
    return {"perf_samples": n * hosts, "activity": requests}


def raw_copy(dsn: str, table: str, dest: Path) -> int:
    """The same query as the export, COPY'd to a CSV file; returns bytes written."""
    start, end = day_window(DAY)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur, dest.open("wb") as f:
        conn.execute("SET TIME ZONE 'UTC'")
        with cur.copy(
            f"COPY ({EXPORTS[table].query()}) TO STDOUT (FORMAT CSV)", {"start": start, "end": end}
        ) as cp:
            for chunk in cp:
                f.write(chunk)
    return dest.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--every-s", type=int, default=5)
    ap.add_argument("--requests", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    cluster = EmbeddedCluster(
        Path(tempfile.mkdtemp(prefix="boocontrol-bench-")), free_port(), fast_unsafe=True
    )
    cluster.start()
    cluster.ensure_database("bench")
    url = cluster.url("bench")
    work = Path(tempfile.mkdtemp(prefix="boocontrol-bench-lake-"))
    try:
        upgrade(url)
        dsn = psycopg_dsn(url)
        t0 = time.perf_counter()
        counts = load(dsn, args.hosts, args.every_s, args.requests)
        print(f"loaded {counts} with binary COPY in {time.perf_counter() - t0:.1f} s")
        engine = make_engine(url)
        results = []
        for table, rows in counts.items():
            raw_best = pq_best = float("inf")
            csv_bytes = pq_bytes = 0
            for _ in range(args.rounds):
                t = time.perf_counter()
                csv_bytes = raw_copy(dsn, table, work / f"{table}.csv")
                raw_best = min(raw_best, time.perf_counter() - t)
                t = time.perf_counter()
                res = export_day(engine, table, DAY, work / "lake")
                pq_best = min(pq_best, time.perf_counter() - t)
                assert res.rows == rows, (res.rows, rows)
                pq_bytes = res.bytes
            ratio = raw_best / pq_best
            results.append((table, ratio))
            print(
                f"{table:13s} {rows:>10,} rows | raw COPY -> CSV {rows / raw_best:>10,.0f} rows/s "
                f"({raw_best:.2f} s, {csv_bytes / 1e6:.0f} MB) | Parquet {rows / pq_best:>10,.0f} rows/s "
                f"({pq_best:.2f} s, {pq_bytes / 1e6:.1f} MB) | Parquet/raw = {ratio:.0%}"
            )
        worst = min(r for _, r in results)
        print(
            f"RESULT Parquet export at {worst:.0%} of raw COPY rows/s (worst table; target >= 50 %: "
            f"{'PASS' if worst >= 0.5 else 'FAIL'})"
        )
        engine.dispose()
    finally:
        cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
