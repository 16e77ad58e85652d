"""Retention: delete what is older than its keep-period, in small batches that never stall ingestion.

Each batch is one short transaction that deletes at most ``batch_rows`` rows chosen through a time index
(``DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... LIMIT n))``, a TID scan), so row locks are few and
held for milliseconds, and the connector's inserts of *new* rows never wait on them. Tables whose only time
index leads with ``provider_id`` (``logs``, ``inflight_snapshots``) are pruned provider by provider so the
index is used. After each batch the prune sleeps ``throttle`` times as long as the batch took (default 9),
so it keeps at most a tenth of one connection busy and backs off by itself when the database is slow;
``pause_s`` adds a fixed sleep. At the default 5000-row batches that is still tens of thousands of rows per
second, far more than one hour of a 100-host fleet's samples per hourly run.

Cutoffs (all relative to an explicit ``now``; a re-run with the same ``now`` deletes nothing new):

* raw host/GPU samples: ``floor_hour(now - raw_perf) - rollup_gap``. Aligning to the hour keeps every hour
  either complete or gone, and the extra ``rollup_gap`` (the rollups' ``max_gap_s``) keeps the sample just
  before the first kept hour, so re-rolling any kept hour gives the same energy.
* request activity: ``floor_day(now - activity)``, so a kept day is complete.
* rollups (every grain): ``floor_day(now - rollups)``.
* raw events and in-flight snapshots: ``now - raw_events``; logs: ``now - logs``.
* captures: first each row is capped at ``capture_row_bytes`` of headers plus bodies, with the same rule
  as ``warehouse.captures.decode_capture`` at ingest (a body within half the body budget is kept whole,
  the other gets the rest; ``truncated`` is set, ``size_bytes`` is what the row now stores). This only
  changes rows stored under a larger cap. Then the newest captures are kept while their total
  ``size_bytes`` fits ``capture_total_bytes``; older ones are deleted, oldest first.

A row exactly at a cutoff is kept (deletes are ``< cutoff``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from warehouse.rollups import floor_to

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

ROLLUP_TABLES = (
    "rollup_host_5m",
    "rollup_host_1h",
    "rollup_gpu_5m",
    "rollup_gpu_1h",
    "rollup_activity_5m",
    "rollup_activity_1h",
    "rollup_activity_1d",
)


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep-periods and batch sizes; built from ``RetentionSettings`` by the task shell."""

    raw_perf: timedelta = timedelta(hours=48)
    rollups: timedelta = timedelta(days=90)
    activity: timedelta = timedelta(days=90)
    raw_events: timedelta = timedelta(days=14)
    logs: timedelta = timedelta(days=7)
    capture_row_bytes: int = 256 * 1024
    capture_total_bytes: int = 512 * 1024 * 1024
    batch_rows: int = 5000
    pause_s: float = 0.0
    throttle: float = 9.0
    rollup_gap: timedelta = timedelta(seconds=60)


@dataclass
class PruneResult:
    """Rows deleted (or, for ``captures_truncated``, rewritten) per table, and the cutoffs used."""

    rows: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, datetime] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def cutoffs(now: datetime, policy: RetentionPolicy) -> dict[str, datetime]:
    """The cutoff of every time-pruned table for ``now`` (see the module docstring)."""
    raw_perf = floor_to(now - policy.raw_perf, HOUR) - policy.rollup_gap
    out = {
        "perf_samples": raw_perf,
        "gpu_samples": raw_perf,
        "activity": floor_to(now - policy.activity, DAY),
        "raw_events": now - policy.raw_events,
        "inflight_snapshots": now - policy.raw_events,
        "logs": now - policy.logs,
    }
    rollups = floor_to(now - policy.rollups, DAY)
    out.update({t: rollups for t in ROLLUP_TABLES})
    return out


TIME_COLUMNS = {
    "perf_samples": "sampled_at",
    "gpu_samples": "sampled_at",
    "activity": "finished_at",
    "raw_events": "received_at",
    "inflight_snapshots": "observed_at",
    "logs": "received_at",
    **{t: "bucket_start" for t in ROLLUP_TABLES},
}
PER_PROVIDER = frozenset({"logs", "inflight_snapshots"})


def delete_before(
    engine: Engine,
    table: str,
    column: str,
    cutoff: datetime,
    *,
    batch_rows: int = 5000,
    pause_s: float = 0.0,
    throttle: float = 0.0,
    provider_id: str | None = None,
) -> int:
    """Delete rows of ``table`` with ``column < cutoff`` in batches of ``batch_rows``, one transaction each.

    After each full batch it sleeps ``pause_s + throttle * (the batch's duration)``.
    """
    if table not in TIME_COLUMNS or TIME_COLUMNS[table] != column:
        raise ValueError(f"unknown retention target {table}.{column}")
    where = f"{column} < :cutoff" + (" AND provider_id = :pid" if provider_id is not None else "")
    sql = text(
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {table} WHERE {where} LIMIT :n)) AND {where}"
    )
    params = {"cutoff": cutoff, "n": batch_rows, "pid": provider_id}
    total = 0
    while True:
        t0 = time.monotonic()
        with engine.begin() as conn:
            deleted = conn.execute(sql, params).rowcount
        total += deleted
        if deleted < batch_rows:
            return total
        nap = pause_s + throttle * (time.monotonic() - t0)
        if nap > 0:
            time.sleep(nap)


def prune_table(
    engine: Engine,
    table: str,
    cutoff: datetime,
    *,
    batch_rows: int,
    pause_s: float = 0.0,
    throttle: float = 0.0,
) -> int:
    """Prune one table (``logs`` and ``inflight_snapshots`` provider by provider)."""
    column = TIME_COLUMNS[table]
    if table not in PER_PROVIDER:
        return delete_before(
            engine, table, column, cutoff, batch_rows=batch_rows, pause_s=pause_s, throttle=throttle
        )
    with engine.connect() as conn:
        pids = [r[0] for r in conn.execute(text(f"SELECT DISTINCT provider_id FROM {table}"))]
    return sum(
        delete_before(
            engine,
            table,
            column,
            cutoff,
            batch_rows=batch_rows,
            pause_s=pause_s,
            throttle=throttle,
            provider_id=pid,
        )
        for pid in pids
    )


_CAP_ROWS = text(
    """
    UPDATE captures c SET
        req_body = substring(c.req_body FROM 1 FOR k.req_keep),
        resp_body = substring(c.resp_body FROM 1 FOR k.resp_keep),
        size_bytes = k.req_keep + k.resp_keep + k.hdr,
        truncated = true
    FROM (
        SELECT provider_id, epoch, upstream_id, hdr, req_keep, least(resp_len, budget - req_keep) AS resp_keep
        FROM (
            SELECT *, least(req_len, greatest(budget / 2, budget - resp_len)) AS req_keep
            FROM (
                SELECT provider_id, epoch, upstream_id, req_len, resp_len, hdr,
                       greatest(:cap - hdr, 0) AS budget
                FROM (
                    SELECT provider_id, epoch, upstream_id,
                           coalesce(octet_length(req_body), 0) AS req_len,
                           coalesce(octet_length(resp_body), 0) AS resp_len,
                           coalesce(octet_length(req_headers::text), 0)
                               + coalesce(octet_length(resp_headers::text), 0) AS hdr
                    FROM captures
                    WHERE size_bytes > :cap
                ) sizes
                WHERE req_len + resp_len > greatest(:cap - hdr, 0)
                LIMIT :n
            ) b
        ) r
    ) k
    WHERE (c.provider_id, c.epoch, c.upstream_id) = (k.provider_id, k.epoch, k.upstream_id)
    """
)

_BUDGET_EDGE = text(
    """
    SELECT fetched_at, provider_id, epoch, upstream_id FROM (
        SELECT fetched_at, provider_id, epoch, upstream_id,
               sum(size_bytes) OVER (ORDER BY fetched_at DESC, provider_id DESC, epoch DESC,
                                     upstream_id DESC ROWS UNBOUNDED PRECEDING) AS running
        FROM captures
    ) x
    WHERE running > :budget
    ORDER BY fetched_at DESC, provider_id DESC, epoch DESC, upstream_id DESC
    LIMIT 1
    """
)

_BUDGET_DELETE = text(
    """
    DELETE FROM captures WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM captures
        WHERE (fetched_at, provider_id, epoch, upstream_id) <= (:t, :p, :e, :u)
        LIMIT :n))
    """
)


def cap_capture_rows(engine: Engine, max_row_bytes: int, *, batch_rows: int = 500) -> int:
    """Truncate the bodies of captures bigger than ``max_row_bytes``; returns the rows rewritten."""
    total = 0
    while True:
        with engine.begin() as conn:
            n = conn.execute(_CAP_ROWS, {"cap": max_row_bytes, "n": batch_rows}).rowcount
        total += n
        if n < batch_rows:
            return total


def prune_captures_to_budget(engine: Engine, total_bytes: int, *, batch_rows: int = 500) -> int:
    """Delete the oldest captures until the newest ones' total ``size_bytes`` fits ``total_bytes``."""
    with engine.connect() as conn:
        edge = conn.execute(_BUDGET_EDGE, {"budget": total_bytes}).first()
    if edge is None:
        return 0
    params = {"t": edge[0], "p": edge[1], "e": edge[2], "u": edge[3], "n": batch_rows}
    total = 0
    while True:
        with engine.begin() as conn:
            n = conn.execute(_BUDGET_DELETE, params).rowcount
        total += n
        if n < batch_rows:
            return total


def prune(engine: Engine, now: datetime, policy: RetentionPolicy | None = None) -> PruneResult:
    """Apply every keep-period of ``policy`` as of ``now``."""
    policy = policy or RetentionPolicy()
    result = PruneResult(cutoffs=cutoffs(now, policy))
    for table, cutoff in result.cutoffs.items():
        result.rows[table] = prune_table(
            engine,
            table,
            cutoff,
            batch_rows=policy.batch_rows,
            pause_s=policy.pause_s,
            throttle=policy.throttle,
        )
    result.rows["captures_truncated"] = cap_capture_rows(engine, policy.capture_row_bytes)
    result.rows["captures"] = prune_captures_to_budget(engine, policy.capture_total_bytes)
    log.info("retention as of %s: %s", now.isoformat(), result.rows)
    return result
