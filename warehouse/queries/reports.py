"""Read side of the fleet digests (usage, busiest hours, speeds, uptime, errors) and the ``reports`` store.

Usage, hours and swaps come from ``rollup_activity_1h`` (the report flow rolls its period up first); speed
percentiles and error messages need the raw ``activity`` rows (kept 90 days, longer than any report
period). Every function takes a half-open UTC window ``[start, end)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Connection, text

from warehouse.queries._frames import UTC_TS, Db, connected, frame
from warehouse.queries.canaries import not_a_probe

USAGE_SCHEMA = {
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "requests": pl.Int64,
    "errors": pl.Int64,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cache_tokens": pl.Int64,
    "busy_ms": pl.Int64,
    "swaps": pl.Int64,
    "loads_timed": pl.Int64,
    "load_ms_sum": pl.Int64,
    "load_ms_max": pl.Int64,
}

_USAGE = text(
    """
    SELECT provider_id, model_id, sum(requests) AS requests, sum(errors) AS errors,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cache_tokens) AS cache_tokens, sum(busy_ms) AS busy_ms, sum(swaps) AS swaps,
           sum(loads_timed) AS loads_timed, sum(load_ms_sum) AS load_ms_sum, max(load_ms_max) AS load_ms_max
    FROM rollup_activity_1h
    WHERE bucket_start >= :start AND bucket_start < :end
    GROUP BY provider_id, model_id
    ORDER BY sum(output_tokens) + sum(input_tokens) DESC, provider_id, model_id
    """
)


def usage_by_model(db: Db, start: datetime, end: datetime) -> pl.DataFrame:
    """Requests, errors, tokens, busy time, swaps and load times per provider and model."""
    return frame(db, _USAGE, {"start": start, "end": end}, USAGE_SCHEMA)


HOURLY_SCHEMA = {
    "bucket_start": UTC_TS,
    "provider_id": pl.Utf8,
    "requests": pl.Int64,
    "output_tokens": pl.Int64,
}

_HOURLY = text(
    """
    SELECT bucket_start, provider_id, sum(requests) AS requests, sum(output_tokens) AS output_tokens
    FROM rollup_activity_1h
    WHERE bucket_start >= :start AND bucket_start < :end
    GROUP BY bucket_start, provider_id
    ORDER BY bucket_start, provider_id
    """
)


def requests_by_hour(db: Db, start: datetime, end: datetime) -> pl.DataFrame:
    """Requests and output tokens per UTC hour and provider."""
    return frame(db, _HOURLY, {"start": start, "end": end}, HOURLY_SCHEMA)


SPEED_SCHEMA = {
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "gen_n": pl.Int64,
    "gen_p50": pl.Float64,
    "gen_p95": pl.Float64,
    "gen_p99": pl.Float64,
    "prompt_n": pl.Int64,
    "prompt_p50": pl.Float64,
    "prompt_p95": pl.Float64,
    "prompt_p99": pl.Float64,
}

_SPEEDS = text(
    f"""
    SELECT provider_id, model_id,
           count(*) FILTER (WHERE tokens_per_second > 0) AS gen_n,
           (percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY tokens_per_second)
               FILTER (WHERE tokens_per_second > 0)) AS g,
           count(*) FILTER (WHERE prompt_per_second > 0) AS prompt_n,
           (percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY prompt_per_second)
               FILTER (WHERE prompt_per_second > 0)) AS p
    FROM activity
    WHERE finished_at >= :start AND finished_at < :end AND {not_a_probe("activity")}
    GROUP BY provider_id, model_id
    ORDER BY provider_id, model_id
    """
)


def speed_percentiles(db: Db, start: datetime, end: datetime) -> pl.DataFrame:
    """Generation and prompt speed p50/p95/p99 (tokens/s) per provider and model.

    Only rows with a speed ``> 0`` count (llama-swap writes ``-1`` for "not reported", ``0`` on failure).
    """
    with connected(db) as conn:
        rows = conn.execute(_SPEEDS, {"start": start, "end": end}).mappings().all()
    out: dict[str, list[Any]] = {k: [] for k in SPEED_SCHEMA}
    for r in rows:
        g = r["g"] or [None, None, None]
        p = r["p"] or [None, None, None]
        values = {
            "provider_id": r["provider_id"],
            "model_id": r["model_id"],
            "gen_n": r["gen_n"],
            "gen_p50": g[0],
            "gen_p95": g[1],
            "gen_p99": g[2],
            "prompt_n": r["prompt_n"],
            "prompt_p50": p[0],
            "prompt_p95": p[1],
            "prompt_p99": p[2],
        }
        for k, v in values.items():
            out[k].append(v)
    return pl.DataFrame(out, schema=SPEED_SCHEMA)


BOOTS_SCHEMA = {
    "provider_id": pl.Utf8,
    "boot_marker": pl.Utf8,
    "version": pl.Utf8,
    "first_seen_at": UTC_TS,
    "last_seen_at": UTC_TS,
}

# Sightings are the stored messages and polls of one boot. /api/version and /api/hardware are polled on
# connect *before* the connector knows the boot changed, so they carry the previous marker: left out.
_NOT_SIGHTINGS = "('poll:/api/version', 'poll:/api/hardware')"

_BOOTS = text(
    f"""
    SELECT b.provider_id, b.boot_marker, b.version, b.first_seen_at,
           greatest(b.last_seen_at, e.received_at) AS last_seen_at
    FROM instance_boots b
    LEFT JOIN LATERAL (
        SELECT r.received_at FROM raw_events r
        WHERE r.provider_id = b.provider_id AND r.boot_marker = b.boot_marker
          AND r.type NOT IN {_NOT_SIGHTINGS}
        ORDER BY r.received_at DESC LIMIT 1
    ) e ON true
    WHERE b.first_seen_at < :end
    ORDER BY b.provider_id, b.first_seen_at
    """
)


def boots_until(db: Db, end: datetime) -> pl.DataFrame:
    """Every boot first seen before ``end`` (one small row per process start), with its last sighting:
    the boot row's own or its newest stored message or poll, whichever is later."""
    return frame(db, _BOOTS, {"end": end}, BOOTS_SCHEMA)


RUNS_SCHEMA = {"provider_id": pl.Utf8, "boot_marker": pl.Utf8, "first_at": UTC_TS, "last_at": UTC_TS}

_RUNS = text(
    f"""
    WITH ev AS (
        SELECT provider_id, boot_marker, received_at AS t,
               received_at - lag(received_at) OVER (PARTITION BY provider_id, boot_marker
                                                    ORDER BY received_at) AS gap
        FROM raw_events
        WHERE received_at >= :start AND received_at < :end AND boot_marker = ANY(:markers)
          AND type NOT IN {_NOT_SIGHTINGS}
    ), runs AS (
        SELECT *, count(*) FILTER (WHERE gap IS NULL OR gap > :max_gap)
                      OVER (PARTITION BY provider_id, boot_marker ORDER BY t) AS run
        FROM ev
    )
    SELECT provider_id, boot_marker, min(t) AS first_at, max(t) AS last_at
    FROM runs GROUP BY provider_id, boot_marker, run
    ORDER BY provider_id, first_at
    """
)


def sighting_runs(
    db: Db, start: datetime, end: datetime, max_gap: timedelta, markers: Sequence[str]
) -> pl.DataFrame:
    """Runs of stored sightings of the boots named ``markers`` in ``[start, end)``: consecutive sightings
    of one boot no more than ``max_gap`` apart form one run ``[first_at, last_at]``."""
    params = {"start": start, "end": end, "max_gap": max_gap, "markers": list(markers)}
    return frame(db, _RUNS, params, RUNS_SCHEMA)


def active_providers(db: Db) -> list[str]:
    df = frame(db, text("SELECT id FROM providers WHERE active ORDER BY id"), {}, {"id": pl.Utf8})
    return [str(p) for p in df["id"].to_list()]


ERRORS_SCHEMA = {
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "status_code": pl.Int64,
    "error_msg": pl.Utf8,
    "count": pl.Int64,
    "last_at": UTC_TS,
}

_ERRORS = text(
    f"""
    SELECT provider_id, model_id, status_code, coalesce(nullif(error_msg, ''), '') AS error_msg,
           count(*) AS count, max(finished_at) AS last_at
    FROM activity
    WHERE finished_at >= :start AND finished_at < :end AND status_code NOT BETWEEN 200 AND 299
      AND {not_a_probe("activity")}
    GROUP BY 1, 2, 3, 4
    ORDER BY count(*) DESC, max(finished_at) DESC
    LIMIT :limit
    """
)


def top_errors(db: Db, start: datetime, end: datetime, limit: int = 10) -> pl.DataFrame:
    """The most frequent (provider, model, status, message) error groups (non-2xx requests)."""
    return frame(db, _ERRORS, {"start": start, "end": end, "limit": limit}, ERRORS_SCHEMA)


# --- the reports table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredReport:
    id: int
    kind: str
    period_start: datetime
    period_end: datetime
    title: str
    generated_at: datetime
    markdown: str
    html: str
    figures: dict[str, Any]
    summary: dict[str, Any]


_UPSERT = text(
    """
    INSERT INTO reports (kind, period_start, period_end, title, generated_at, markdown, html, figures, summary)
    VALUES (:kind, :start, :end, :title, now(), :markdown, :html,
            CAST(:figures AS jsonb), CAST(:summary AS jsonb))
    ON CONFLICT (kind, period_start) DO UPDATE SET
        period_end = EXCLUDED.period_end, title = EXCLUDED.title, generated_at = EXCLUDED.generated_at,
        markdown = EXCLUDED.markdown, html = EXCLUDED.html, figures = EXCLUDED.figures,
        summary = EXCLUDED.summary
    RETURNING id
    """
)


def upsert_report(
    conn: Connection,
    *,
    kind: str,
    start: datetime,
    end: datetime,
    title: str,
    markdown: str,
    html: str,
    figures: dict[str, Any],
    summary: dict[str, Any],
) -> int:
    """Store a rendered report; re-rendering the same (kind, period) replaces it and keeps its id."""
    row = conn.execute(
        _UPSERT,
        {
            "kind": kind,
            "start": start,
            "end": end,
            "title": title,
            "markdown": markdown,
            "html": html,
            "figures": json.dumps(figures),
            "summary": json.dumps(summary),
        },
    ).one()
    return int(row[0])


LIST_SCHEMA = {
    "id": pl.Int64,
    "kind": pl.Utf8,
    "period_start": UTC_TS,
    "period_end": UTC_TS,
    "title": pl.Utf8,
    "generated_at": UTC_TS,
}


def list_reports(db: Db, kind: str | None = None, limit: int = 200) -> pl.DataFrame:
    """Stored reports, newest period first (without their bodies)."""
    stmt = text(
        "SELECT id, kind, period_start, period_end, title, generated_at FROM reports "
        "WHERE (CAST(:kind AS text) IS NULL OR kind = :kind) ORDER BY period_start DESC, kind LIMIT :limit"
    )
    return frame(db, stmt, {"kind": kind, "limit": limit}, LIST_SCHEMA)


def get_report(db: Db, report_id: int) -> StoredReport | None:
    stmt = text(
        "SELECT id, kind, period_start, period_end, title, generated_at, markdown, html, figures, summary "
        "FROM reports WHERE id = :id"
    )
    with connected(db) as conn:
        r = conn.execute(stmt, {"id": report_id}).mappings().first()
    if r is None:
        return None
    return StoredReport(**dict(r))
