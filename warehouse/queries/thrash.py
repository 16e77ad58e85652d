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


_LOAD_EDGES = """
tr AS (
    SELECT provider_id, model_id, observed_at, to_state,
           lag(to_state) OVER w AS prev_state, lead(observed_at) OVER w AS next_at
    FROM model_transitions
    WHERE observed_at >= :s_early AND observed_at < :e_late AND (CAST(:p AS text) IS NULL OR provider_id = :p)
    WINDOW w AS (PARTITION BY provider_id, model_id ORDER BY observed_at,
                 CASE to_state WHEN 'starting' THEN 1 WHEN 'ready' THEN 2 WHEN 'stopping' THEN 3 ELSE 4 END)
),
loads AS (  -- engines.thrash's loads: `starting` to the next state, or stopped -> ready (no duration)
    SELECT provider_id, model_id, observed_at AS ls,
           CASE WHEN to_state = 'starting' THEN coalesce(next_at, observed_at) ELSE observed_at END AS le
    FROM tr
    WHERE (to_state = 'starting' AND prev_state IS DISTINCT FROM 'starting')
       OR (to_state = 'ready' AND prev_state = 'stopped')
)"""


def _params(start: datetime, end: datetime, provider_id: str | None) -> dict[str, object]:
    return {"s": start, "e": end, "s_early": start - BEFORE, "e_late": end + AFTER, "p": provider_id,
            "max_req": MAX_REQUEST}


def serving_seconds(db: Db, start: datetime, end: datetime, provider_id: str | None = None) -> pl.DataFrame:
    """Per host: seconds of ``[start, end)`` with at least one request on it and no model loading (engines.thrash's
    *serving*), computed in Postgres (a day of a big fleet is millions of requests): the union of request
    intervals minus the union of load intervals, both clipped to the window. Probe requests are left out."""
    sql = text(
        f"""
WITH {_LOAD_EDGES},
req AS (
    SELECT a.provider_id, greatest(a.finished_at - a.duration_ms * INTERVAL '1 millisecond', :s) AS s,
           least(a.finished_at, :e) AS e
    FROM activity a
    WHERE a.finished_at >= :s AND a.finished_at < CAST(:e AS timestamptz) + :max_req AND a.duration_ms > 0
      AND a.finished_at - a.duration_ms * INTERVAL '1 millisecond' < :e
      AND (CAST(:p AS text) IS NULL OR a.provider_id = :p) AND {not_a_probe("a")}
),
ld AS (
    SELECT provider_id, greatest(ls, :s) AS s, least(le, :e) AS e FROM loads WHERE le > :s AND ls < :e AND le > ls
),
req_m AS ({_merge("req")}),
ld_m AS ({_merge("ld")}),
overlap AS (
    SELECT r.provider_id, sum(extract(epoch FROM least(r.e, l.e) - greatest(r.s, l.s))) AS s
    FROM req_m r JOIN ld_m l ON l.provider_id = r.provider_id AND l.s < r.e AND l.e > r.s
    GROUP BY r.provider_id
)
SELECT r.provider_id, sum(extract(epoch FROM r.e - r.s)) - coalesce(max(o.s), 0) AS serving_s
FROM req_m r LEFT JOIN overlap o ON o.provider_id = r.provider_id
GROUP BY r.provider_id ORDER BY r.provider_id
"""
    )
    return frame(db, sql, _params(start, end, provider_id), {"provider_id": pl.Utf8, "serving_s": pl.Float64})


def _merge(src: str) -> str:
    """Intervals (provider_id, s, e) of CTE ``src`` merged per provider into disjoint islands (a constant CTE
    name written in code)."""
    return f"""
    SELECT provider_id, min(s) AS s, max(e) AS e FROM (
        SELECT provider_id, s, e, sum(new_island) OVER (PARTITION BY provider_id ORDER BY s, e
                                                       ROWS UNBOUNDED PRECEDING) AS island
        FROM (
            SELECT provider_id, s, e,
                   CASE WHEN s <= max(e) OVER (PARTITION BY provider_id ORDER BY s, e
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                        THEN 0 ELSE 1 END AS new_island
            FROM {src} WHERE e > s
        ) marked
    ) islands GROUP BY provider_id, island"""


def trigger_candidates(db: Db, start: datetime, end: datetime, provider_id: str | None = None,
                       tolerance_s: float = 1.0) -> pl.DataFrame:
    """The requests that may have triggered a load starting in the window (engines.thrash's *trigger*: a request
    of the loading model that started at most ``tolerance_s`` after the load began and finished after it was
    done), with a consumer hint from their capture. Probe requests are left out."""
    sql = text(
        f"""
WITH {_LOAD_EDGES}
SELECT DISTINCT a.provider_id, a.model_id, a.finished_at, a.duration_ms, a.upstream_id,
       nullif(coalesce(c.req_headers->>'X-Session-Id', c.req_headers->>'User-Agent'), '') AS consumer
FROM loads l
JOIN activity a ON a.provider_id = l.provider_id AND a.model_id = l.model_id
     AND a.finished_at >= l.le AND a.finished_at < l.le + :max_req
     AND a.finished_at - a.duration_ms * INTERVAL '1 millisecond' <= l.ls + :tol
LEFT JOIN captures c ON c.provider_id = a.provider_id AND c.epoch = a.epoch AND c.upstream_id = a.upstream_id
WHERE l.ls >= :s AND l.ls < :e AND {not_a_probe("a")}
ORDER BY a.provider_id, a.finished_at
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "finished_at": UTC_TS, "duration_ms": pl.Int64,
              "upstream_id": pl.Int64, "consumer": pl.Utf8}
    params = {**_params(start, end, provider_id), "tol": timedelta(seconds=tolerance_s)}
    return frame(db, sql, params, schema)


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
