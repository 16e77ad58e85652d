"""The fleet leases as the cockpit shows them: who holds which host (or follows it), for what, since/until when."""

from __future__ import annotations

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame

LEASE_SCHEMA = {
    "provider_id": pl.Utf8,
    "scope": pl.Utf8,
    "holder": pl.Utf8,
    "purpose": pl.Utf8,
    "acquired_at": UTC_TS,
    "heartbeat_at": UTC_TS,
    "expires_at": UTC_TS,
    "held_s": pl.Float64,
    "heartbeat_age_s": pl.Float64,
    "expired": pl.Boolean,
}

_SQL = text(
    """
SELECT provider_id, scope, holder, purpose, acquired_at, heartbeat_at, expires_at,
       extract(epoch FROM now() - acquired_at) AS held_s,
       extract(epoch FROM now() - heartbeat_at) AS heartbeat_age_s,
       expires_at < now() AS expired
FROM leases
WHERE CAST(:scope AS text) IS NULL OR scope = :scope
ORDER BY scope DESC, provider_id
"""
)


def lease_board(db: Db, scope: str | None = None) -> pl.DataFrame:
    """Every lease (host leases first), with how long it has been held and how old its last heartbeat is."""
    return frame(db, _SQL, {"scope": scope}, LEASE_SCHEMA)
