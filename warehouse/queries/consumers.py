"""Who uses the gateway: per-consumer requests, tokens, load share and SLO attainment (``gateway_requests``).

Definitions (every figure is over requests that *started* in ``[start, end)``):

* **tokens** — prompt + completion tokens as the upstream reported them (missing counts as 0);
* **load share** — the consumer's share of the gateway's serving time (sum of ``total_ms``): what part of
  the fleet's attention it took; **token share** the same over tokens;
* **SLO attainment** — the share of the consumer's requests that met the targets. A request meets them when
  it succeeded (status below 400, no error) and
  * streamed: its time to first byte ``ttft_ms`` ≤ the TTFT target and, with two or more completion tokens,
    its time per output token ``(total_ms − ttft_ms) / (completion_tokens − 1)`` ≤ the TPOT target;
  * not streamed (the first byte is the whole answer): ``total_ms`` ≤ TTFT target + completion tokens × TPOT
    target (embeddings: ≤ the TTFT target).

A request's resolved target (``provider_id/model_id``) and its policy are read from the row itself, so a
request to a since-removed ``auto:*`` policy still renders with what served it.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame

# One expression for "this request met the SLO", shared by every query below (targets are bound parameters).
MET_SLO = """(
    g.status < 400 AND g.error IS NULL AND CASE
      WHEN g.stream AND g.ttft_ms IS NOT NULL THEN
        g.ttft_ms <= :slo_ttft_ms AND (COALESCE(g.completion_tokens, 0) < 2
          OR (g.total_ms - g.ttft_ms) / (g.completion_tokens - 1) <= :slo_tpot_ms)
      ELSE g.total_ms <= :slo_ttft_ms + COALESCE(g.completion_tokens, 0) * :slo_tpot_ms
    END)"""

_SUMMARY_SQL = text(
    f"""
WITH g AS (SELECT * FROM gateway_requests g WHERE g.started_at >= :start AND g.started_at < :end),
per AS (
    SELECT g.consumer,
           (array_agg(g.consumer_source ORDER BY g.started_at DESC, g.id DESC))[1] AS source,
           count(*) AS requests,
           count(*) FILTER (WHERE g.status >= 400 OR g.error IS NOT NULL) AS errors,
           COALESCE(sum(g.prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(g.completion_tokens), 0) AS completion_tokens,
           sum(g.total_ms) AS busy_ms,
           count(*) FILTER (WHERE {MET_SLO}) AS met_slo,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY g.ttft_ms) AS ttft_p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY g.ttft_ms) AS ttft_p95_ms,
           max(g.started_at) AS last_request_at
    FROM g GROUP BY g.consumer
)
SELECT consumer, source, requests, errors, prompt_tokens, completion_tokens,
       prompt_tokens + completion_tokens AS tokens,
       busy_ms / NULLIF(sum(busy_ms) OVER (), 0) AS load_share,
       (prompt_tokens + completion_tokens)::double precision
           / NULLIF(sum(prompt_tokens + completion_tokens) OVER (), 0) AS token_share,
       met_slo::double precision / requests AS slo_attainment,
       ttft_p50_ms, ttft_p95_ms, last_request_at
FROM per
ORDER BY busy_ms DESC, consumer
"""
)

SUMMARY_SCHEMA = {
    "consumer": pl.Utf8, "source": pl.Utf8, "requests": pl.Int64, "errors": pl.Int64, "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64, "tokens": pl.Int64, "load_share": pl.Float64, "token_share": pl.Float64,
    "slo_attainment": pl.Float64, "ttft_p50_ms": pl.Float64, "ttft_p95_ms": pl.Float64, "last_request_at": UTC_TS,
}  # fmt: skip


def consumer_summary(db: Db, start: datetime, end: datetime, slo_ttft_ms: float, slo_tpot_ms: float) -> pl.DataFrame:
    """One row per consumer with requests in the window, the heaviest (by serving time) first."""
    params = {"start": start, "end": end, "slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms}
    return frame(db, _SUMMARY_SQL, params, SUMMARY_SCHEMA)


_TARGETS_SQL = text(
    f"""
SELECT g.consumer, g.requested_model,
       CASE WHEN g.provider_id IS NULL THEN NULL ELSE g.provider_id || '/' || g.model_id END AS target,
       count(*) AS requests,
       COALESCE(sum(g.prompt_tokens), 0) + COALESCE(sum(g.completion_tokens), 0) AS tokens,
       count(*) FILTER (WHERE {MET_SLO})::double precision / count(*) AS slo_attainment
FROM gateway_requests g
WHERE g.started_at >= :start AND g.started_at < :end AND (CAST(:consumer AS text) IS NULL OR g.consumer = :consumer)
GROUP BY 1, 2, 3
ORDER BY g.consumer, requests DESC, g.requested_model, target NULLS LAST
"""
)

TARGETS_SCHEMA = {"consumer": pl.Utf8, "requested_model": pl.Utf8, "target": pl.Utf8, "requests": pl.Int64,
                  "tokens": pl.Int64, "slo_attainment": pl.Float64}  # fmt: skip


def consumer_targets(db: Db, start: datetime, end: datetime, slo_ttft_ms: float, slo_tpot_ms: float,
                     consumer: str | None = None) -> pl.DataFrame:
    """Per consumer, what it asked for (``requested_model``, e.g. ``auto:code``) and what served it."""
    params = {"start": start, "end": end, "slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms,
              "consumer": consumer}  # fmt: skip
    return frame(db, _TARGETS_SQL, params, TARGETS_SCHEMA)


_REQUESTS_SQL = text(
    f"""
SELECT g.started_at, g.consumer, g.consumer_source, g.requested_model, g.policy,
       CASE WHEN g.provider_id IS NULL THEN NULL ELSE g.provider_id || '/' || g.model_id END AS target,
       g.reason, jsonb_array_length(g.fallbacks) AS fallbacks, g.endpoint, g.stream, g.status, g.error,
       g.ttft_ms, g.total_ms, g.prompt_tokens, g.completion_tokens, {MET_SLO} AS met_slo, g.replica
FROM gateway_requests g
WHERE g.started_at >= :start AND g.started_at < :end AND (CAST(:consumer AS text) IS NULL OR g.consumer = :consumer)
ORDER BY g.started_at DESC, g.id DESC
LIMIT :limit
"""
)

REQUESTS_SCHEMA = {
    "started_at": UTC_TS, "consumer": pl.Utf8, "consumer_source": pl.Utf8, "requested_model": pl.Utf8,
    "policy": pl.Utf8, "target": pl.Utf8, "reason": pl.Utf8, "fallbacks": pl.Int64, "endpoint": pl.Utf8,
    "stream": pl.Boolean, "status": pl.Int64, "error": pl.Utf8, "ttft_ms": pl.Float64, "total_ms": pl.Float64,
    "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64, "met_slo": pl.Boolean, "replica": pl.Utf8,
}  # fmt: skip


def gateway_requests(db: Db, start: datetime, end: datetime, slo_ttft_ms: float, slo_tpot_ms: float,
                     consumer: str | None = None, limit: int = 200) -> pl.DataFrame:
    """The newest gateway requests of the window (of one consumer when given), with whether each met the SLO."""
    params = {"start": start, "end": end, "slo_ttft_ms": slo_ttft_ms, "slo_tpot_ms": slo_tpot_ms,
              "consumer": consumer, "limit": limit}  # fmt: skip
    return frame(db, _REQUESTS_SQL, params, REQUESTS_SCHEMA)


_CONSUMERS_SQL = text(
    """
SELECT DISTINCT consumer FROM gateway_requests WHERE started_at >= :start AND started_at < :end ORDER BY consumer
"""
)


def consumer_names(db: Db, start: datetime, end: datetime) -> list[str]:
    """Every consumer with a request in the window, alphabetically (for filters)."""
    return [str(c) for c in frame(db, _CONSUMERS_SQL, {"start": start, "end": end}, {"consumer": pl.Utf8})["consumer"]]
