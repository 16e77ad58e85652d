"""Alerts: what the rules look at (one cheap query per rule, each over an index and a short recent window), the
evaluator's remembered state, and the notice history.

The rule logic is in ``engines.alerts``; these return typed frames or write rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Connection, text

from warehouse.queries._frames import UTC_TS, Db, frame
from warehouse.queries.canaries import not_a_probe


def host_health(db: Db) -> pl.DataFrame:
    """Every active provider: the connector's status and its newest host sample (a sign of life)."""
    sql = text(
        """
SELECT p.id AS provider_id, coalesce(h.status, 'unknown') AS status,
       (SELECT max(ps.sampled_at) FROM perf_samples ps WHERE ps.provider_id = p.id) AS last_seen_at
FROM providers p LEFT JOIN connector_health h ON h.provider_id = p.id
WHERE p.active ORDER BY p.id
"""
    )
    return frame(db, sql, {}, {"provider_id": pl.Utf8, "status": pl.Utf8, "last_seen_at": UTC_TS})


def gpu_latest(db: Db, now: datetime, fresh: timedelta = timedelta(minutes=5)) -> pl.DataFrame:
    sql = text(
        """
SELECT DISTINCT ON (provider_id, gpu_key) provider_id, gpu_key, name, sampled_at, temp_c, mem_used_mb, mem_total_mb
FROM gpu_samples WHERE sampled_at >= :since AND sampled_at <= :now
ORDER BY provider_id, gpu_key, sampled_at DESC
"""
    )
    schema = {"provider_id": pl.Utf8, "gpu_key": pl.Utf8, "name": pl.Utf8, "sampled_at": UTC_TS,
              "temp_c": pl.Float64, "mem_used_mb": pl.Float64, "mem_total_mb": pl.Float64}
    return frame(db, sql, {"since": now - fresh, "now": now}, schema)


def error_counts(db: Db, now: datetime, window: timedelta) -> pl.DataFrame:
    """Requests and non-2xx requests per provider in ``(now - window, now]``, canary probes left out."""
    sql = text(
        f"""
SELECT a.provider_id, count(*) AS requests,
       count(*) FILTER (WHERE a.status_code NOT BETWEEN 200 AND 299) AS errors
FROM activity a WHERE a.finished_at > :since AND a.finished_at <= :now AND {not_a_probe("a")}
GROUP BY a.provider_id ORDER BY a.provider_id
"""
    )
    schema = {"provider_id": pl.Utf8, "requests": pl.Int64, "errors": pl.Int64}
    return frame(db, sql, {"since": now - window, "now": now}, schema)


def recent_gaps(db: Db, now: datetime, window: timedelta) -> pl.DataFrame:
    sql = text(
        """
SELECT provider_id, count(*) AS gaps, (array_agg(reason ORDER BY detected_at DESC))[1] AS last_reason
FROM gaps WHERE detected_at > :since AND detected_at <= :now GROUP BY provider_id ORDER BY provider_id
"""
    )
    schema = {"provider_id": pl.Utf8, "gaps": pl.Int64, "last_reason": pl.Utf8}
    return frame(db, sql, {"since": now - window, "now": now}, schema)


def bench_latest(db: Db) -> pl.DataFrame:
    """Per provider/model: the newest completed run's peak output tokens/s, and the median peak of the (up to 3)
    completed runs before it with the same mode and workload."""
    sql = text(
        """
WITH r AS (
    SELECT b.id, b.provider_id, b.model_id, b.mode, b.workload_key, b.started_at,
           (SELECT max(p.output_throughput) FROM bench_points p WHERE p.run_id = b.id) AS peak,
           row_number() OVER (PARTITION BY b.provider_id, b.model_id ORDER BY b.started_at DESC, b.id DESC) AS n
    FROM bench_runs b WHERE b.status = 'completed'
)
SELECT cur.provider_id, cur.model_id, cur.id AS run_id, cur.peak AS peak_tps,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY prev.peak) FROM (
            SELECT r2.peak FROM r r2
            WHERE r2.provider_id = cur.provider_id AND r2.model_id = cur.model_id AND r2.n > 1
              AND r2.mode = cur.mode AND r2.workload_key IS NOT DISTINCT FROM cur.workload_key
              AND r2.peak IS NOT NULL
            ORDER BY r2.started_at DESC LIMIT 3) prev) AS baseline_tps
FROM r cur WHERE cur.n = 1 AND cur.peak IS NOT NULL
ORDER BY cur.provider_id, cur.model_id
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "run_id": pl.Int64, "peak_tps": pl.Float64,
              "baseline_tps": pl.Float64}
    return frame(db, sql, {}, schema)


def eval_latest(db: Db) -> pl.DataFrame:
    """Per provider/model/suite/metric: the newest current (not stale) score and the one before it."""
    sql = text(
        """
WITH s AS (
    SELECT run_id, provider_id, model_id, suite_name, metric, value,
           row_number() OVER (PARTITION BY provider_id, model_id, suite_name, metric
                              ORDER BY computed_at DESC, run_id DESC) AS n
    FROM eval_scores WHERE stale_since IS NULL
)
SELECT cur.provider_id, cur.model_id, cur.suite_name AS suite, cur.metric, cur.run_id, cur.value,
       prev.value AS previous
FROM s cur LEFT JOIN s prev ON prev.provider_id = cur.provider_id AND prev.model_id = cur.model_id
     AND prev.suite_name = cur.suite_name AND prev.metric = cur.metric AND prev.n = 2
WHERE cur.n = 1 ORDER BY 1, 2, 3, 4
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "suite": pl.Utf8, "metric": pl.Utf8, "run_id": pl.Int64,
              "value": pl.Float64, "previous": pl.Float64}
    return frame(db, sql, {}, schema)


def loads_last_hour(db: Db, now: datetime) -> pl.DataFrame:
    """Model loads per provider in the hour up to ``now`` (starting, or stopped -> ready: `engines.thrash`)."""
    sql = text(
        """
SELECT provider_id,
       count(*) FILTER (WHERE to_state = 'starting' OR (to_state = 'ready' AND from_state = 'stopped')) AS loads
FROM model_transitions WHERE observed_at > :since AND observed_at <= :now
GROUP BY provider_id ORDER BY provider_id
"""
    )
    return frame(db, sql, {"since": now - timedelta(hours=1), "now": now}, {"provider_id": pl.Utf8, "loads": pl.Int64})


def canary_latest(db: Db, now: datetime, fresh: timedelta = timedelta(minutes=15)) -> pl.DataFrame:
    sql = text(
        """
SELECT DISTINCT ON (provider_id, model_id) provider_id, model_id, sent_at, ok, ttft_ms, error
FROM canary_probes WHERE sent_at > :since AND sent_at <= :now
ORDER BY provider_id, model_id, sent_at DESC, id DESC
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "sent_at": UTC_TS, "ok": pl.Boolean,
              "ttft_ms": pl.Float64, "error": pl.Utf8}
    return frame(db, sql, {"since": now - fresh, "now": now}, schema)


# --- the evaluator's state and the history ----------------------------------------------------------------

STATE_SCHEMA = {"rule": pl.Utf8, "subject": pl.Utf8, "active": pl.Boolean, "changed_at": UTC_TS,
                "firing": pl.Boolean, "flapping": pl.Boolean, "flips": pl.Utf8, "value": pl.Float64,
                "message": pl.Utf8, "evaluated_at": UTC_TS}


def states(db: Db) -> pl.DataFrame:
    """Every remembered (rule, subject): firing ones first. ``flips`` is a JSON list of ISO times."""
    sql = text(
        """
SELECT rule, subject, active, changed_at, firing, flapping, flips::text AS flips, value, message, evaluated_at
FROM alert_states ORDER BY firing DESC, flapping DESC, active DESC, rule, subject
"""
    )
    return frame(db, sql, {}, STATE_SCHEMA)


def replace_states(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """The evaluator's whole memory after one evaluation (in the caller's transaction): what is not in ``rows``
    is forgotten."""
    conn.execute(text("DELETE FROM alert_states"))
    values = [{**r, "flips": json.dumps(list(r["flips"]))} for r in rows]
    if values:
        conn.execute(
            text(
                """
INSERT INTO alert_states (rule, subject, active, changed_at, firing, flapping, flips, value, message, evaluated_at)
VALUES (:rule, :subject, :active, :changed_at, :firing, :flapping, CAST(:flips AS jsonb), :value, :message,
        :evaluated_at)
"""
            ),
            values,
        )
    return len(values)


def insert_event(conn: Connection, rule: str, subject: str, kind: str, at: datetime, message: str,
                 value: float | None, delivery: Mapping[str, str]) -> int:
    row = conn.execute(
        text(
            """
INSERT INTO alert_events (rule, subject, kind, at, message, value, delivery)
VALUES (:rule, :subject, :kind, :at, :message, :value, CAST(:delivery AS jsonb)) RETURNING id
"""
        ),
        {"rule": rule, "subject": subject, "kind": kind, "at": at, "message": message, "value": value,
         "delivery": json.dumps(dict(delivery))},
    ).one()
    return int(row[0])


def events(db: Db, since: datetime, limit: int = 500) -> pl.DataFrame:
    sql = text(
        """
SELECT id, rule, subject, kind, at, message, value, delivery::text AS delivery
FROM alert_events WHERE at >= :since ORDER BY at DESC, id DESC LIMIT :n
"""
    )
    schema = {"id": pl.Int64, "rule": pl.Utf8, "subject": pl.Utf8, "kind": pl.Utf8, "at": UTC_TS,
              "message": pl.Utf8, "value": pl.Float64, "delivery": pl.Utf8}
    return frame(db, sql, {"since": since, "n": limit}, schema)


def undelivered(db: Db, since: datetime) -> pl.DataFrame:
    """The newest notice of every (rule, subject) decided at or after ``since``, where at least one channel has not
    taken it (its recorded outcome is not "ok…"); silenced notices (``{"silenced": …}``) are not."""
    sql = text(
        """
SELECT id, rule, subject, kind, at, message, value, delivery::text AS delivery FROM (
    SELECT DISTINCT ON (rule, subject) id, rule, subject, kind, at, message, value, delivery
    FROM alert_events WHERE at >= :since ORDER BY rule, subject, at DESC, id DESC
) newest
WHERE NOT newest.delivery ? 'silenced'
  AND EXISTS (SELECT 1 FROM jsonb_each_text(newest.delivery) d WHERE d.value <> 'ok' AND d.value NOT LIKE 'ok (%')
ORDER BY at, id
"""
    )
    schema = {"id": pl.Int64, "rule": pl.Utf8, "subject": pl.Utf8, "kind": pl.Utf8, "at": UTC_TS,
              "message": pl.Utf8, "value": pl.Float64, "delivery": pl.Utf8}
    return frame(db, sql, {"since": since}, schema)


def set_delivery(conn: Connection, event_id: int, delivery: Mapping[str, str]) -> None:
    conn.execute(text("UPDATE alert_events SET delivery = CAST(:d AS jsonb) WHERE id = :id"),
                 {"d": json.dumps(dict(delivery)), "id": event_id})
