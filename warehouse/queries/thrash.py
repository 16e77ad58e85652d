"""What swap-thrash analytics reads (``engines.thrash``): model transitions, requests with a consumer hint, warm
actions and the gateway's consumer attribution around a window.

Each returns a typed frame; the engine turns rows into its dataclasses. Probe traffic is left out of the
requests (``canaries.NOT_A_PROBE``): a canary never loads a model and is not a user's request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame
from warehouse.queries.canaries import not_a_probe

# transitions this long before the window give each model its state at the start (and a load that began
# just before it its start); after the end, a load that started inside the window its end
BEFORE = timedelta(hours=1)
AFTER = timedelta(minutes=30)
MAX_REQUEST = timedelta(hours=1)  # a request finishing this long after the end may have started inside it


def transitions(db: Db, start: datetime, end: datetime, provider_id: str | None = None) -> pl.DataFrame:
    sql = text(
        """
SELECT provider_id, model_id, observed_at, to_state FROM model_transitions
WHERE observed_at >= :s AND observed_at < :e AND (CAST(:p AS text) IS NULL OR provider_id = :p)
ORDER BY provider_id, model_id, observed_at
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "observed_at": UTC_TS, "to_state": pl.Utf8}
    return frame(db, sql, {"s": start - BEFORE, "e": end + AFTER, "p": provider_id}, schema)


def requests(db: Db, start: datetime, end: datetime, provider_id: str | None = None) -> pl.DataFrame:
    """Requests whose time on the host overlaps ``[start, end)``, with a consumer hint from their capture."""
    sql = text(
        f"""
SELECT a.provider_id, a.model_id, a.finished_at, a.duration_ms, a.upstream_id,
       nullif(coalesce(c.req_headers->>'X-Session-Id', c.req_headers->>'User-Agent'), '') AS consumer
FROM activity a
LEFT JOIN captures c ON c.provider_id = a.provider_id AND c.epoch = a.epoch AND c.upstream_id = a.upstream_id
WHERE a.finished_at >= :s AND a.finished_at < :e_late
  AND a.finished_at - a.duration_ms * INTERVAL '1 millisecond' < :e
  AND (CAST(:p AS text) IS NULL OR a.provider_id = :p)
  AND {not_a_probe("a")}
ORDER BY a.provider_id, a.finished_at
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "finished_at": UTC_TS, "duration_ms": pl.Int64,
              "upstream_id": pl.Int64, "consumer": pl.Utf8}
    return frame(db, sql, {"s": start, "e": end, "e_late": end + MAX_REQUEST, "p": provider_id}, schema)


def warms(db: Db, start: datetime, end: datetime) -> pl.DataFrame:
    """Warm actions that ran during the window (or just before it)."""
    sql = text(
        """
SELECT id, provider_id, target AS model_id, started_at, finished_at, requested_by FROM actions
WHERE action = 'warm' AND started_at IS NOT NULL AND target IS NOT NULL
  AND started_at < :e AND coalesce(finished_at, 'infinity'::timestamptz) >= :s
ORDER BY id
"""
    )
    schema = {"id": pl.Int64, "provider_id": pl.Utf8, "model_id": pl.Utf8, "started_at": UTC_TS,
              "finished_at": UTC_TS, "requested_by": pl.Utf8}
    return frame(db, sql, {"s": start - BEFORE, "e": end}, schema)


def attributions(db: Db, start: datetime, end: datetime) -> pl.DataFrame:
    """Who asked, for requests the gateway sent to a provider in the window."""
    sql = text(
        """
SELECT provider_id, model_id, started_at, consumer FROM gateway_requests
WHERE provider_id IS NOT NULL AND model_id IS NOT NULL AND started_at >= :s AND started_at < :e
ORDER BY started_at
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "started_at": UTC_TS, "consumer": pl.Utf8}
    return frame(db, sql, {"s": start - BEFORE, "e": end}, schema)


def load_history_ms(db: Db, provider_id: str, model_id: str, limit: int = 50) -> list[float]:
    """The model's most recent measured load times (``starting`` to ``ready``), newest first, in ms."""
    sql = text(
        """
WITH t AS (
    SELECT observed_at, to_state, lag(to_state) OVER w AS prev_state, lag(observed_at) OVER w AS prev_at
    FROM model_transitions WHERE provider_id = :p AND model_id = :m
    WINDOW w AS (ORDER BY observed_at,
                 CASE to_state WHEN 'starting' THEN 1 WHEN 'ready' THEN 2 WHEN 'stopping' THEN 3 ELSE 4 END)
)
SELECT extract(epoch FROM observed_at - prev_at) * 1000 AS load_ms FROM t
WHERE to_state = 'ready' AND prev_state = 'starting'
ORDER BY observed_at DESC LIMIT :n
"""
    )
    df = frame(db, sql, {"p": provider_id, "m": model_id, "n": limit}, {"load_ms": pl.Float64})
    return [float(v) for v in df["load_ms"].to_list()]
