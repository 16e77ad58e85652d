"""Storage of the per-host action queue: the ``actions`` audit table.

Every host-mutating action is one row that moves ``queued → running → succeeded | failed | refused``.
The executor claims rows of one provider in id order while it holds that provider's host lease
(`warehouse.lease`, scope ``host``), so claims never race; ``FOR UPDATE SKIP LOCKED`` is a second guard (a
row is never claimed twice, even by an executor whose lease was just taken over). All times
come from the database clock (``clock_timestamp()``) so the audit trail of one host is totally ordered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import bindparam

from warehouse.queries._frames import UTC_TS, Db, frame

STATUSES = ("queued", "running", "succeeded", "failed", "refused")
FINAL = ("succeeded", "failed", "refused")


@dataclass(frozen=True)
class ActionRow:
    id: int
    provider_id: str
    action: str
    target: str | None
    params: dict[str, Any] = field(default_factory=dict)


def insert_action(
    conn: Connection,
    provider_id: str,
    action: str,
    target: str | None,
    params: Mapping[str, Any] | None,
    requested_by: str | None,
    status: str = "queued",
) -> int:
    started = "clock_timestamp()" if status == "running" else "NULL"
    stmt = text(
        f"""
INSERT INTO actions (provider_id, action, target, params, requested_by, requested_at, started_at, status)
VALUES (:p, :a, :t, :params, :by, clock_timestamp(), {started}, :status)
RETURNING id
"""
    ).bindparams(bindparam("params", type_=JSONB))
    row = conn.execute(
        stmt,
        {
            "p": provider_id,
            "a": action,
            "t": target,
            "params": dict(params or {}),
            "by": requested_by,
            "status": status,
        },
    ).one()
    return int(row[0])


def claim_next(conn: Connection, provider_id: str) -> ActionRow | None:
    """Mark the provider's oldest queued action running and return it (None when the queue is empty)."""
    row = conn.execute(
        text(
            """
UPDATE actions SET status = 'running', started_at = clock_timestamp()
WHERE id = (SELECT id FROM actions WHERE provider_id = :p AND status = 'queued'
            ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, provider_id, action, target, params
"""
        ),
        {"p": provider_id},
    ).first()
    if row is None:
        return None
    return ActionRow(int(row[0]), str(row[1]), str(row[2]), row[3], dict(row[4] or {}))


def finish_action(
    conn: Connection, action_id: int, status: str, result: Mapping[str, Any] | None, error: str | None
) -> None:
    if status not in FINAL:
        raise ValueError(f"final status must be one of {FINAL}, not {status!r}")
    stmt = text(
        """
UPDATE actions SET status = :s, result = :r, error = :e, finished_at = clock_timestamp(),
                   started_at = COALESCE(started_at, clock_timestamp())
WHERE id = :id
"""
    ).bindparams(bindparam("r", type_=JSONB))
    conn.execute(
        stmt, {"s": status, "r": dict(result) if result is not None else None, "e": error, "id": action_id}
    )


def interrupt_running(conn: Connection, provider_id: str, actions: tuple[str, ...]) -> int:
    """Fail rows left ``running`` by an executor that died (call only while holding the host lease)."""
    res = conn.execute(
        text(
            """
UPDATE actions SET status = 'failed', finished_at = clock_timestamp(),
                   error = 'interrupted: the executor stopped while this action was running'
WHERE provider_id = :p AND status = 'running' AND action = ANY(:a)
RETURNING id
"""
        ),
        {"p": provider_id, "a": list(actions)},
    )
    return len(res.fetchall())


def providers_with_queued(db: Db) -> list[str]:
    df = frame(
        db,
        text("SELECT DISTINCT provider_id FROM actions WHERE status = 'queued' ORDER BY 1"),
        {},
        {"provider_id": pl.Utf8},
    )
    return [str(p) for p in df["provider_id"].to_list()]


AUDIT_SCHEMA = {
    "id": pl.Int64,
    "provider_id": pl.Utf8,
    "action": pl.Utf8,
    "target": pl.Utf8,
    "status": pl.Utf8,
    "requested_by": pl.Utf8,
    "requested_at": UTC_TS,
    "started_at": UTC_TS,
    "finished_at": UTC_TS,
    "wait_ms": pl.Float64,
    "run_ms": pl.Float64,
    "result": pl.Utf8,
    "error": pl.Utf8,
}


def action_log(db: Db, provider_ids: tuple[str, ...] = (), limit: int = 50) -> pl.DataFrame:
    """Newest actions first (queued and running ones included): the queue as the page shows it."""
    where = "WHERE provider_id = ANY(:p)" if provider_ids else ""
    sql = text(
        f"""
SELECT id, provider_id, action, target, status, requested_by, requested_at, started_at, finished_at,
       extract(epoch FROM started_at - requested_at) * 1000 AS wait_ms,
       extract(epoch FROM finished_at - started_at) * 1000 AS run_ms,
       result::text AS result, error
FROM actions {where} ORDER BY id DESC LIMIT :lim
"""
    )
    return frame(db, sql, {"p": list(provider_ids), "lim": int(limit)}, AUDIT_SCHEMA)


def queue_summary(db: Db) -> pl.DataFrame:
    """Per provider with unfinished actions: how many are queued, which one runs, the oldest wait."""
    sql = text(
        """
SELECT provider_id,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       min(requested_at) FILTER (WHERE status = 'queued') AS oldest_queued_at,
       string_agg(action || COALESCE(' ' || target, ''), ', ' ORDER BY id) FILTER (WHERE status = 'running')
           AS running_action
FROM actions WHERE status IN ('queued', 'running') GROUP BY provider_id ORDER BY provider_id
"""
    )
    schema = {
        "provider_id": pl.Utf8,
        "queued": pl.Int64,
        "running": pl.Int64,
        "oldest_queued_at": UTC_TS,
        "running_action": pl.Utf8,
    }
    return frame(db, sql, {}, schema)


def action_status(db: Db, action_id: int) -> tuple[str, str | None, datetime | None]:
    """(status, error, finished_at) of one action."""
    df = frame(
        db,
        text("SELECT status, error, finished_at FROM actions WHERE id = :id"),
        {"id": int(action_id)},
        {"status": pl.Utf8, "error": pl.Utf8, "finished_at": UTC_TS},
    )
    if df.height == 0:
        raise KeyError(f"no action {action_id}")
    r = df.row(0)
    return str(r[0]), r[1], r[2]


@dataclass(frozen=True)
class ActionProgress:
    """One action as its status line needs it: its row, the database's now, and what it may be waiting for."""

    id: int
    provider_id: str
    action: str
    target: str | None
    status: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    now: datetime
    error: str | None
    result: dict[str, Any] | None
    ahead: int  # unfinished actions of the same provider queued before this one
    lease_holder: str | None  # who holds the provider's host lease now (actions, a benchmark, an eval)
    lease_purpose: str | None
    lease_held_s: float | None
    lease_expired: bool | None
    target_state: str | None  # the target model's state now (models table), when the target is a model
    target_state_since: datetime | None  # its newest transition


_PROGRESS_SQL = text(
    """
SELECT a.id, a.provider_id, a.action, a.target, a.status, a.requested_at, a.started_at, a.finished_at,
       clock_timestamp() AS now, a.error, a.result,
       (SELECT count(*) FROM actions b
        WHERE b.provider_id = a.provider_id AND b.id < a.id AND b.status IN ('queued', 'running')) AS ahead,
       l.holder, l.purpose, extract(epoch FROM clock_timestamp() - l.acquired_at) AS held_s,
       l.expires_at < clock_timestamp() AS expired,
       m.state, t.observed_at
FROM actions a
LEFT JOIN leases l ON l.provider_id = a.provider_id AND l.scope = 'host'
LEFT JOIN models m ON m.provider_id = a.provider_id AND m.model_id = a.target
LEFT JOIN LATERAL (
    SELECT mt.observed_at FROM model_transitions mt
    WHERE mt.provider_id = a.provider_id AND mt.model_id = a.target
    ORDER BY mt.observed_at DESC LIMIT 1
) t ON true
WHERE a.id = :id
"""
)


def action_progress(db: Db, action_id: int) -> ActionProgress:
    """Where one action is (queued, running, finished), with timings on the database clock; KeyError if unknown."""
    if isinstance(db, Connection):
        row = db.execute(_PROGRESS_SQL, {"id": int(action_id)}).first()
    else:
        with db.connect() as conn:
            row = conn.execute(_PROGRESS_SQL, {"id": int(action_id)}).first()
    if row is None:
        raise KeyError(f"no action {action_id}")
    return ActionProgress(
        id=int(row[0]), provider_id=str(row[1]), action=str(row[2]), target=row[3], status=str(row[4]),
        requested_at=row[5], started_at=row[6], finished_at=row[7], now=row[8], error=row[9],
        result=dict(row[10]) if row[10] is not None else None, ahead=int(row[11]),
        lease_holder=row[12], lease_purpose=row[13],
        lease_held_s=float(row[14]) if row[14] is not None else None, lease_expired=row[15],
        target_state=row[16], target_state_since=row[17],
    )
