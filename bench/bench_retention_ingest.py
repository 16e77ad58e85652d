"""Benchmark: connector ingest rate while a retention prune runs, against the rate without it, in one run.

Ingest goes through the connector's write path (``warehouse.ingest.write_batch``, batches of 2000 perf +
GPU samples as the runner sends them, one transaction each). The prune is ``warehouse.retention.prune_table``
deleting old ``perf_samples`` (then ``gpu_samples``) in batches of 5000 rows (the default
``RetentionSettings.batch_rows``) from another connection. Phases alternate ``A B A B A`` (A = ingest
alone, B = ingest while the prune runs) so drift and machine noise hit both; each B phase lasts as long as
its prune has rows left to delete (capped at ``--seconds``), each A phase as long as the B before it.
Target: ingest rate during B >= 90 % of A.

    .venv/bin/python bench/bench_retention_ingest.py [--old-hours 24] [--hosts 100] [--seconds 25]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import Engine

from connectors.records import GpuSample, PerfSample
from warehouse import ingest
from warehouse.cluster import EmbeddedCluster
from warehouse.db import make_engine, psycopg_dsn
from warehouse.migrate import upgrade
from warehouse.retention import prune_table

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_old(dsn: str, hosts: int, hours: float, every_s: int) -> int:
    """Old samples for the prune to delete (binary COPY), at ``every_s`` spacing per host."""
    n = int(hours * 3600 / every_s)
    ts = [OLD + timedelta(seconds=i * every_s) for i in range(n)]
    with psycopg.connect(dsn) as conn:
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
                            t,
                            t.isoformat(),
                            10.0,
                            [1.0, 2.0],
                            64000.0,
                            1000.0,
                            5e4,
                            0.0,
                            0.0,
                            0.5,
                            0.5,
                            0.5,
                            None,
                        )
                        for t in ts
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
                            t,
                            t.isoformat(),
                            0,
                            "RTX",
                            50.0,
                            0.0,
                            50.0,
                            50.0,
                            1e4,
                            2.4e4,
                            30.0,
                            200.0,
                        )
                        for t in ts
                    ),
                )
            conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE perf_samples")
        conn.execute("VACUUM ANALYZE gpu_samples")
    return 2 * n * hosts


class Ingest:
    """Connector-shaped batches of fresh samples: every host, one timestamp per round."""

    def __init__(self, dsn: str, hosts: int, batch_rows: int) -> None:
        self.conn = psycopg.connect(dsn)
        self.hosts = hosts
        self.batch_rows = batch_rows
        self.tick = 0

    def batch(self) -> list[PerfSample | GpuSample]:
        out: list[PerfSample | GpuSample] = []
        while len(out) < self.batch_rows:
            t = NOW + timedelta(milliseconds=100 * self.tick)
            raw = t.isoformat()
            self.tick += 1
            for h in range(self.hosts):
                pid = f"h{h:03d}"
                out.append(
                    PerfSample(
                        pid, t, raw, 12.5, [10.0, 15.0], 64000, 21000, 30000, 0, 0, 0.8, 0.6, 0.5, None
                    )
                )
                out.append(GpuSample(pid, "gpu0", t, raw, 0, "RTX", 61, 0, 97, 81, 19900, 24564, 45, 310.5))
        return out

    def run(self, until: threading.Event | None, max_s: float) -> tuple[int, float]:
        rows, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < max_s and not (until is not None and until.is_set()):
            rows += ingest.write_batch(self.conn, self.batch())
        return rows, time.perf_counter() - t0


def prune(
    engine: Engine, batch: int, pause_s: float, done: threading.Event, deleted: list[int], rates: list[float]
) -> None:
    t0 = time.perf_counter()
    n = sum(
        prune_table(engine, t, NOW - timedelta(days=2), batch_rows=batch, pause_s=pause_s)
        for t in ("perf_samples", "gpu_samples")
    )
    deleted.append(n)
    rates.append(n / (time.perf_counter() - t0))
    done.set()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--old-hours", type=float, default=24.0, help="hours of old samples per host to prune")
    ap.add_argument("--old-every-s", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=25.0, help="cap on each phase")
    ap.add_argument("--batch-rows", type=int, default=2000)
    ap.add_argument("--prune-batch", type=int, default=5000)
    ap.add_argument("--pause-s", type=float, default=0.0, help="sleep between prune batches")
    args = ap.parse_args()

    cluster = EmbeddedCluster(
        Path(tempfile.mkdtemp(prefix="boocontrol-bench-")), free_port(), fast_unsafe=True
    )
    cluster.start()
    cluster.ensure_database("bench")
    url = cluster.url("bench")
    try:
        upgrade(url)
        dsn = psycopg_dsn(url)
        with psycopg.connect(dsn) as conn:
            conn.cursor().executemany(
                "INSERT INTO providers (id, label, base_url, kind) VALUES (%s, %s, %s, 'llama-swap')",
                [(f"h{h:03d}", f"host {h}", f"http://h{h}:8080") for h in range(args.hosts)],
            )
        engine = make_engine(url)
        writer = Ingest(dsn, args.hosts, args.batch_rows)
        writer.run(None, 3.0)  # warm-up
        a_rates: list[float] = []
        b_rates: list[float] = []
        prune_rates: list[float] = []
        for rnd in range(2):
            old = load_old(dsn, args.hosts, args.old_hours / 2, args.old_every_s)
            rows, took = writer.run(None, args.seconds)
            a_rates.append(rows / took)
            print(
                f"A{rnd + 1} ingest alone:        {rows / took:10,.0f} rows/s ({rows:,} rows in {took:.1f} s)"
            )
            done = threading.Event()
            deleted: list[int] = []

            th = threading.Thread(
                target=prune, args=(engine, args.prune_batch, args.pause_s, done, deleted, prune_rates)
            )
            th.start()
            rows, took = writer.run(done, args.seconds)
            b_rates.append(rows / took)
            print(
                f"B{rnd + 1} ingest during prune: {rows / took:10,.0f} rows/s ({rows:,} rows in {took:.1f} s); "
                f"prune still running at the end: {not done.is_set()}"
            )
            th.join()
            print(f"   prune deleted {deleted[0]:,} of {old:,} old rows at {prune_rates[-1]:,.0f} rows/s")
        rows, took = writer.run(None, args.seconds)
        a_rates.append(rows / took)
        print(f"A3 ingest alone:        {rows / took:10,.0f} rows/s ({rows:,} rows in {took:.1f} s)")
        a, b = statistics.mean(a_rates), statistics.mean(b_rates)
        print(
            f"RESULT ingest during retention prune: {b:,.0f} rows/s vs {a:,.0f} rows/s alone = {b / a:.0%} "
            f"(target >= 90 %: {'PASS' if b / a >= 0.9 else 'FAIL'}); prune {statistics.mean(prune_rates):,.0f} "
            f"rows/s in batches of {args.prune_batch}, pause {args.pause_s} s"
        )
        writer.conn.close()
        engine.dispose()
    finally:
        cluster.stop("immediate")


if __name__ == "__main__":
    main()
