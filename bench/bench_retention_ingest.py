"""Benchmark: connector ingest rate while a retention prune runs, against the rate without it, in one run.

Ingest goes through the connector's write path (``warehouse.ingest.write_batch``, batches of 2000 perf +
GPU samples as the runner sends them, one transaction each). The prune deletes old ``perf_samples`` and
``gpu_samples`` oldest-first through ``warehouse.retention.delete_before`` (batches of 5000 rows, the
default ``RetentionSettings.batch_rows``, each its own transaction, sleeping ``--throttle`` times the batch's
duration after each, default the product's ``RetentionPolicy.throttle``) from another connection, with the cutoff advancing ten minutes
of old data at a time so a phase can end on time. Phases alternate ``A B A B ... A`` (A = ingest alone, B =
ingest while the prune runs), all of ``--seconds``, so drift and machine noise hit both.
Target: ingest rate during B >= 90 % of A (both as means over all phases and as the median of each B
against the mean of the A phases either side of it).

    .venv/bin/python bench/bench_retention_ingest.py [--hosts 100] [--seconds 12] [--rounds 6] [--throttle 9]
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

from warehouse import ingest
from warehouse.cluster import EmbeddedCluster
from warehouse.db import make_engine, psycopg_dsn
from warehouse.migrate import upgrade
from warehouse.records import GpuSample, PerfSample
from warehouse.retention import RetentionPolicy, delete_before

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
    engine: Engine,
    start: datetime,
    step: timedelta,
    batch: int,
    pause_s: float,
    throttle: float,
    stop: threading.Event,
    out: dict[str, float],
) -> None:
    """Delete old samples oldest-first through ``delete_before`` with a cutoff advancing by ``step``,
    until ``stop`` is set (what one retention run does, cut into pieces so the phase can end on time)."""
    t0 = time.perf_counter()
    cutoff, n = start, 0
    while not stop.is_set() and cutoff < NOW - timedelta(days=2):
        cutoff += step
        for table in ("perf_samples", "gpu_samples"):
            n += delete_before(
                engine, table, "sampled_at", cutoff, batch_rows=batch, pause_s=pause_s, throttle=throttle
            )
    out["deleted"] = n
    out["rate"] = n / (time.perf_counter() - t0)
    out["ran_out"] = float(not stop.is_set())


def min_old(dsn: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT min(sampled_at) FROM perf_samples").fetchone()
    return row[0] if row and row[0] < NOW - timedelta(days=2) else NOW - timedelta(days=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--old-hours", type=float, default=24.0, help="hours of old samples per host to prune")
    ap.add_argument("--old-every-s", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each phase")
    ap.add_argument("--batch-rows", type=int, default=2000)
    ap.add_argument("--prune-batch", type=int, default=5000)
    ap.add_argument(
        "--pause-s", type=float, default=RetentionPolicy().pause_s, help="sleep between prune batches"
    )
    ap.add_argument("--throttle", type=float, default=RetentionPolicy().throttle, help="sleep/work ratio")
    ap.add_argument("--rounds", type=int, default=6)
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
        old = load_old(dsn, args.hosts, args.old_hours, args.old_every_s)
        print(f"loaded {old:,} old perf + GPU samples to prune")
        writer.run(None, 3.0)  # warm-up
        a_rates: list[float] = []
        b_rates: list[float] = []
        prune_rates: list[float] = []
        cursor = OLD
        for rnd in range(args.rounds):
            rows, took = writer.run(None, args.seconds)
            a_rates.append(rows / took)
            print(
                f"A{rnd + 1} ingest alone:        {rows / took:10,.0f} rows/s ({rows:,} rows in {took:.1f} s)"
            )
            stop = threading.Event()
            out: dict[str, float] = {}
            th = threading.Thread(
                target=prune,
                args=(
                    engine,
                    cursor,
                    timedelta(minutes=10),
                    args.prune_batch,
                    args.pause_s,
                    args.throttle,
                    stop,
                    out,
                ),
            )
            th.start()
            rows, took = writer.run(None, args.seconds)
            stop.set()
            th.join()
            cursor = min_old(dsn)
            b_rates.append(rows / took)
            prune_rates.append(out["rate"])
            print(
                f"B{rnd + 1} ingest during prune: {rows / took:10,.0f} rows/s ({rows:,} rows in {took:.1f} s); "
                f"prune deleted {int(out['deleted']):,} rows at {out['rate']:,.0f} rows/s"
                + (" (ran out of old rows before the phase ended)" if out["ran_out"] else "")
            )
        rows, took = writer.run(None, args.seconds)
        a_rates.append(rows / took)
        print(
            f"A{args.rounds + 1} ingest alone:        {rows / took:10,.0f} rows/s ({rows:,} rows in {took:.1f} s)"
        )
        a, b = statistics.mean(a_rates), statistics.mean(b_rates)
        # each B against the mean of the A phases either side of it, so slow drift cancels
        paired = [b_rates[i] / ((a_rates[i] + a_rates[i + 1]) / 2) for i in range(len(b_rates))]
        print("per-round B / neighbouring A: " + ", ".join(f"{r:.0%}" for r in paired))
        med = statistics.median(paired)
        print(
            f"RESULT ingest during retention prune: {b:,.0f} rows/s vs {a:,.0f} rows/s alone = {b / a:.1%} of the "
            f"mean, median per-round {med:.1%} (target >= 90 %: {'PASS' if min(b / a, med) >= 0.9 else 'FAIL'}); "
            f"prune {statistics.mean(prune_rates):,.0f} rows/s in batches of {args.prune_batch}, "
            f"pause {args.pause_s} s, throttle {args.throttle}"
        )
        writer.conn.close()
        engine.dispose()
    finally:
        cluster.stop("immediate")


if __name__ == "__main__":
    main()
