"""Gaps: the rows the connector knows may be missing (``gaps``, written by the follower), for the cockpit.

A gap names its stream (``activity``: request rows; ``capture``: a request's capture), the activity epoch,
the upstream id range (``to_id`` NULL: count unknown), the time span when known, when it was detected and
why. See docs/architecture.md, "Nothing lost, nothing twice".
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame

GAP_SCHEMA = {
    "id": pl.Int64,
    "provider_id": pl.Utf8,
    "stream": pl.Utf8,
    "epoch": pl.Utf8,
    "from_id": pl.Int64,
    "to_id": pl.Int64,
    "from_at": UTC_TS,
    "to_at": UTC_TS,
    "detected_at": UTC_TS,
    "reason": pl.Utf8,
}

# A gap is in a window when it was detected in it or its known span overlaps it (a restart seen late).
_IN_WINDOW = """((g.detected_at >= :start AND g.detected_at < :end)
     OR (COALESCE(g.from_at, g.to_at) < :end AND COALESCE(g.to_at, g.from_at) >= :start))"""


def gaps(
    db: Db, start: datetime, end: datetime, provider_ids: tuple[str, ...] = (), limit: int = 500
) -> pl.DataFrame:
    """Gaps in the window (all providers, or ``provider_ids``), per provider, newest detection first."""
    clauses = [_IN_WINDOW]
    params: dict[str, object] = {"start": start, "end": end, "limit": max(1, int(limit))}
    if provider_ids:
        clauses.append("g.provider_id = ANY(:providers)")
        params["providers"] = list(provider_ids)
    sql = text(
        f"""
SELECT g.id, g.provider_id, g.stream, g.epoch, g.from_id, g.to_id, g.from_at, g.to_at, g.detected_at, g.reason
FROM gaps g
WHERE {" AND ".join(clauses)}
ORDER BY g.provider_id, g.detected_at DESC, g.id DESC
LIMIT :limit
"""
    )
    return frame(db, sql, params, GAP_SCHEMA)


def gap_counts(db: Db, since: datetime) -> pl.DataFrame:
    """Per provider with any: gaps detected since ``since``, and how many of them have no known size."""
    sql = text(
        """
SELECT provider_id, count(*) AS gaps, count(*) FILTER (WHERE to_id IS NULL AND stream = 'activity') AS unknown
FROM gaps WHERE detected_at >= :since GROUP BY provider_id ORDER BY provider_id
"""
    )
    return frame(db, sql, {"since": since}, {"provider_id": pl.Utf8, "gaps": pl.Int64, "unknown": pl.Int64})
