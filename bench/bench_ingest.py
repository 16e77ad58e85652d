"""Ingest benchmark: activity and perf rows landed per second through the connector's write path
(`warehouse.ingest.write_batch`, batches as the runner sends them) vs a raw binary COPY of the same rows
into the same Postgres, in one run, alternating so machine noise hits both.

    .venv/bin/python bench/bench_ingest.py [--rows 200000] [--batch 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.providers import Provider  # noqa: E402
from warehouse.cluster import EmbeddedCluster  # noqa: E402
from warehouse.ingest import ACTIVITY, PERF, _activity_row, _perf_row, copy_rows, sync_providers, write_batch  # noqa: E402
from warehouse.migrate import upgrade  # noqa: E402
from warehouse.records import Activity, PerfSample  # noqa: E402


def make_rows(n: int, provider: str) -> tuple[list[Activity], list[PerfSample]]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    acts = [
        Activity(
            provider,
            "e1",
            i + 1,
            t0 + timedelta(seconds=i),
            f"model-{i % 7}",
            "/v1/chat/completions",
            "text/event-stream",
            200,
            100 + i % 50,
            200 + i % 90,
            -1,
            -1,
            -1,
            1500.0 + i % 100,
            45.0 + i % 10,
            1234 + i % 500,
            True,
            None,
            {"fifo_priority": "0"},
        )
        for i in range(n)
    ]
    perf = [
        PerfSample(
            provider,
            t0 + timedelta(seconds=i),
            (t0 + timedelta(seconds=i)).isoformat(),
            12.5,
            [10.0, 15.0],
            64000,
            21000,
            30000,
            8192,
            0,
            0.8,
            0.6,
            0.5,
            None,
        )
        for i in range(n)
    ]
    return acts, perf


def truncate(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE activity, perf_samples")
    conn.commit()


def run_write_path(conn: psycopg.Connection, acts: list, perf: list, batch: int) -> float:
    t = time.perf_counter()
    half = batch // 2
    for i in range(0, len(acts), half):
        write_batch(conn, [*acts[i : i + half], *perf[i : i + half]])
    return time.perf_counter() - t


def run_raw_copy(conn: psycopg.Connection, acts: list, perf: list) -> float:
    a_rows = [_activity_row(a) for a in acts]  # tuple building is not counted for the baseline
    p_rows = [_perf_row(p) for p in perf]
    t = time.perf_counter()
    with conn.transaction():
        cur = conn.cursor()
        copy_rows(cur, "activity", ACTIVITY, a_rows)
        copy_rows(cur, "perf_samples", PERF, p_rows)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000, help="activity rows and perf rows each")
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    cluster = EmbeddedCluster(base, 55499)  # durable settings (fsync on), like a real deployment
    cluster.start()
    try:
        url = cluster.url()
        upgrade(url)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        acts, perf = make_rows(args.rows, "bench")
        with psycopg.connect(dsn) as conn:
            sync_providers(conn, [Provider(id="bench", label="bench", base_url="http://x")])
            conn.commit()
            results: dict[str, list[float]] = {"write_path": [], "raw_copy": []}
            for _ in range(args.rounds):
                truncate(conn)
                results["raw_copy"].append(run_raw_copy(conn, acts, perf))
                truncate(conn)
                results["write_path"].append(run_write_path(conn, acts, perf, args.batch))
            total = 2 * args.rows
            wp = total / min(results["write_path"])
            rc = total / min(results["raw_copy"])
            # the replay case: the same rows again (every one a conflict) through the write path
            t = time.perf_counter()
            half = args.batch // 2
            for i in range(0, len(acts), half):
                write_batch(conn, [*acts[i : i + half], *perf[i : i + half]])
            replay = total / (time.perf_counter() - t)
            n = conn.execute(
                "SELECT (SELECT count(*) FROM activity) + (SELECT count(*) FROM perf_samples)"
            ).fetchone()
        print(
            f"rows per run: {total} ({args.rows} activity + {args.rows} perf), batch {args.batch}, best of {args.rounds}"
        )
        print(
            f"raw binary COPY      : {rc:>10.0f} rows/s  (runs: {', '.join(f'{x:.2f}s' for x in results['raw_copy'])})"
        )
        print(
            f"connector write path : {wp:>10.0f} rows/s  (runs: {', '.join(f'{x:.2f}s' for x in results['write_path'])})"
        )
        print(f"ratio write path / raw COPY = {wp / rc:.2f}   (target >= 0.5)")
        print(
            f"replay of the same rows (all conflicts, staging + ON CONFLICT): {replay:.0f} rows/s; rows after: {n[0]}"
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
