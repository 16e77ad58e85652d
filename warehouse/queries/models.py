"""The model catalog: every model of every provider with favourites, load statistics and last use.

Load statistics come from ``model_transitions``. A *load* is a transition into ``ready`` from any other
state; its *load time* is measured only when the state just before was ``starting`` (time from the
``starting`` observation to the ``ready`` one). llama-swap may skip quick states in its status pushes,
so a ``stopped → ready`` load counts but has no load time. Last use is the newest ``activity.finished_at``
of the (provider, model), found through ``ix_activity_provider_model_time``.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame

# transitions in observation order, with a tie-break that follows the lifecycle when two share a time
_ORDERED = """
SELECT provider_id, model_id, observed_at, to_state,
       lag(to_state) OVER w AS prev_state, lag(observed_at) OVER w AS prev_at
FROM model_transitions
{where}
WINDOW w AS (PARTITION BY provider_id, model_id ORDER BY observed_at,
             CASE to_state WHEN 'starting' THEN 1 WHEN 'ready' THEN 2 WHEN 'stopping' THEN 3 ELSE 4 END)
"""

_CATALOG_SQL = text(
    f"""
WITH t AS ({_ORDERED.format(where="")}),
l AS (
    SELECT provider_id, model_id, observed_at,
           CASE WHEN prev_state = 'starting' THEN extract(epoch FROM observed_at - prev_at) * 1000 END AS load_ms
    FROM t WHERE to_state = 'ready' AND prev_state IS DISTINCT FROM 'ready'
),
loads AS (
    SELECT provider_id, model_id, count(*) AS loads,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY load_ms) AS load_ms_p50,
           (array_agg(load_ms ORDER BY observed_at DESC) FILTER (WHERE load_ms IS NOT NULL))[1] AS load_ms_last,
           max(observed_at) AS last_load_at
    FROM l GROUP BY 1, 2
)
SELECT m.provider_id, p.label AS provider_label, p.active AS provider_active,
       COALESCE(h.status, 'unknown') AS provider_status,
       (p.active AND COALESCE(h.status, '') = 'connected') AS provider_online,
       m.model_id, m.name, m.kind, m.state, m.unlisted, m.context_length,
       (f.model_id IS NOT NULL) AS favorite,
       COALESCE(l.loads, 0) AS loads, l.load_ms_p50, l.load_ms_last, l.last_load_at, u.last_used_at
FROM models m
JOIN providers p ON p.id = m.provider_id
LEFT JOIN connector_health h ON h.provider_id = m.provider_id
LEFT JOIN favorites f ON f.provider_id = m.provider_id AND f.model_id = m.model_id
LEFT JOIN loads l ON l.provider_id = m.provider_id AND l.model_id = m.model_id
LEFT JOIN LATERAL (
    SELECT a.finished_at AS last_used_at FROM activity a
    WHERE a.provider_id = m.provider_id AND a.model_id = m.model_id
    ORDER BY a.finished_at DESC LIMIT 1
) u ON true
ORDER BY m.provider_id, m.model_id
"""
)

CATALOG_SCHEMA = {
    "provider_id": pl.Utf8,
    "provider_label": pl.Utf8,
    "provider_active": pl.Boolean,
    "provider_status": pl.Utf8,
    "provider_online": pl.Boolean,
    "model_id": pl.Utf8,
    "name": pl.Utf8,
    "kind": pl.Utf8,
    "state": pl.Utf8,
    "unlisted": pl.Boolean,
    "context_length": pl.Int64,
    "favorite": pl.Boolean,
    "loads": pl.Int64,
    "load_ms_p50": pl.Float64,
    "load_ms_last": pl.Float64,
    "last_load_at": UTC_TS,
    "last_used_at": UTC_TS,
}


def model_catalog(db: Db) -> pl.DataFrame:
    """Every known model, provider by provider, with favourite flag and load/last-use statistics."""
    return frame(db, _CATALOG_SQL, {}, CATALOG_SCHEMA)


def favorites_section(catalog: pl.DataFrame) -> pl.DataFrame:
    """The Favorites section: favourites whose provider is online. The rows stay in their provider group too."""
    return catalog.filter(pl.col("favorite") & pl.col("provider_online"))


def hidden_favorites(db: Db) -> pl.DataFrame:
    """Favourites not shown right now, with why: the provider is offline/inactive or the model is gone.

    They are kept in the table and come back by themselves when the provider (or model) returns.
    """
    sql = text(
        """
SELECT f.provider_id, f.model_id,
       CASE WHEN p.id IS NULL THEN 'provider unknown'
            WHEN NOT p.active THEN 'provider inactive'
            WHEN COALESCE(h.status, '') <> 'connected' THEN 'provider offline'
            ELSE 'model not on provider' END AS reason
FROM favorites f
LEFT JOIN providers p ON p.id = f.provider_id
LEFT JOIN connector_health h ON h.provider_id = f.provider_id
LEFT JOIN models m ON m.provider_id = f.provider_id AND m.model_id = f.model_id
WHERE p.id IS NULL OR NOT p.active OR COALESCE(h.status, '') <> 'connected' OR m.model_id IS NULL
ORDER BY f.provider_id, f.model_id
"""
    )
    return frame(db, sql, {}, {"provider_id": pl.Utf8, "model_id": pl.Utf8, "reason": pl.Utf8})


def model_loads(db: Db, provider_id: str, model_id: str) -> pl.DataFrame:
    """Every load of one model: when it reached ready, the state before, and its load time when known."""
    sql = text(
        f"""
WITH t AS ({_ORDERED.format(where="WHERE provider_id = :p AND model_id = :m")})
SELECT prev_at AS started_at, observed_at AS ready_at, prev_state,
       CASE WHEN prev_state = 'starting' THEN extract(epoch FROM observed_at - prev_at) * 1000 END AS load_ms
FROM t WHERE to_state = 'ready' AND prev_state IS DISTINCT FROM 'ready'
ORDER BY observed_at DESC
"""
    )
    schema = {"started_at": UTC_TS, "ready_at": UTC_TS, "prev_state": pl.Utf8, "load_ms": pl.Float64}
    return frame(db, sql, {"p": provider_id, "m": model_id}, schema)


def state_timeline(db: Db, provider_id: str, model_id: str, start: datetime, end: datetime) -> pl.DataFrame:
    """State segments of one model overlapping [start, end): state, from, until (clipped to the window).

    The state in force at ``start`` comes from the last transition before it.
    """
    sql = text(
        """
WITH w AS (
    (SELECT observed_at, to_state FROM model_transitions
     WHERE provider_id = :p AND model_id = :m AND observed_at < :start
     ORDER BY observed_at DESC LIMIT 1)
    UNION ALL
    SELECT observed_at, to_state FROM model_transitions
    WHERE provider_id = :p AND model_id = :m AND observed_at >= :start AND observed_at < :end
),
seg AS (
    SELECT to_state AS state, observed_at AS since,
           lead(observed_at) OVER (ORDER BY observed_at,
               CASE to_state WHEN 'starting' THEN 1 WHEN 'ready' THEN 2 WHEN 'stopping' THEN 3 ELSE 4 END) AS next_at
    FROM w
)
SELECT state, GREATEST(since, :start) AS since, LEAST(COALESCE(next_at, :end), :end) AS until
FROM seg WHERE COALESCE(next_at, :end) > :start
ORDER BY since
"""
    )
    schema = {"state": pl.Utf8, "since": UTC_TS, "until": UTC_TS}
    return frame(db, sql, {"p": provider_id, "m": model_id, "start": start, "end": end}, schema)


def model_states(db: Db) -> pl.DataFrame:
    """Every model's state and its provider's connection now (cheap: no history), to refresh the catalog's
    live columns between its slower recomputations."""
    sql = text(
        """
SELECT m.provider_id, m.model_id, m.state, COALESCE(h.status, 'unknown') AS provider_status,
       (p.active AND COALESCE(h.status, '') = 'connected') AS provider_online
FROM models m
JOIN providers p ON p.id = m.provider_id
LEFT JOIN connector_health h ON h.provider_id = m.provider_id
ORDER BY m.provider_id, m.model_id
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "state": pl.Utf8, "provider_status": pl.Utf8,
              "provider_online": pl.Boolean}  # fmt: skip
    return frame(db, sql, {}, schema)
