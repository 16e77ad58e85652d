"""Canary probes: storing a cycle's probes, the last probes per model, and keeping probe traffic out of user
statistics.

Every probe is one real request through llama-swap, so llama-swap records an activity row for it. The probe
finds that row on the host right after its request (its id and its timestamp, see ``engines.canary``) and
stores both in ``canary_probes``; ``not_a_probe(alias)`` is the SQL predicate every query computing user
statistics adds for its ``activity`` rows, so probes never count as usage, errors or speed samples.
(Matching on the upstream id and llama-swap's own timestamp, exactly as the connector stored them, needs no
epoch: ids repeat only across epochs, never with the same microsecond timestamp.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection, insert, text

from warehouse.queries._frames import UTC_TS, Db, frame
from warehouse.schema_alerts import canary_cycles, canary_probes


def not_a_probe(alias: str = "activity") -> str:
    """``NOT EXISTS (...)``: the ``activity`` row ``alias`` was not made by a canary probe (a constant SQL
    fragment: ``alias`` is a table alias written in code, never user input)."""
    if not alias.replace("_", "").isalnum():
        raise ValueError(f"not a table alias: {alias!r}")
    return (f"NOT EXISTS (SELECT 1 FROM canary_probes cp WHERE cp.provider_id = {alias}.provider_id "
            f"AND cp.activity_upstream_id = {alias}.upstream_id "
            f"AND cp.activity_finished_at = {alias}.finished_at)")


@dataclass(frozen=True)
class ProbeRow:
    """One canary probe: what `engines.canary` measured and, once matched, the host's own activity row for it."""

    provider_id: str
    model_id: str
    sent_at: datetime
    ok: bool
    ttft_ms: float | None
    total_ms: float | None
    status_code: int | None
    error: str | None
    activity_upstream_id: int | None = None
    activity_finished_at: datetime | None = None


def store_cycle(conn: Connection, started_at: datetime, finished_at: datetime, hosts: int,
                probes: Sequence[ProbeRow], skipped: Mapping[str, str]) -> int:
    """One cycle and its probes in one transaction (the caller's); returns the cycle id."""
    cycle_id = int(conn.execute(
        insert(canary_cycles).values(
            started_at=started_at, finished_at=finished_at, hosts=hosts, probed=len(probes),
            failed=sum(1 for p in probes if not p.ok),
            unmatched=sum(1 for p in probes if p.activity_upstream_id is None),
            skipped=dict(skipped),
        ).returning(canary_cycles.c.id)
    ).scalar_one())
    if probes:
        conn.execute(insert(canary_probes), [{**p.__dict__, "cycle_id": cycle_id} for p in probes])
    return cycle_id


LATEST_SCHEMA = {
    "provider_id": pl.Utf8,
    "model_id": pl.Utf8,
    "last_sent_at": UTC_TS,
    "last_ok": pl.Boolean,
    "last_ttft_ms": pl.Float64,
    "last_error": pl.Utf8,
    "probes": pl.Int64,
    "failures": pl.Int64,
    "ttft_p50_ms": pl.Float64,
}


def latest_by_model(db: Db, since: datetime, provider_id: str | None = None) -> pl.DataFrame:
    """Per (provider, model) probed since ``since``: the last probe, and over the period the probe count,
    failures and the median TTFT of the successful ones."""
    sql = text(
        """
SELECT provider_id, model_id,
       max(sent_at) AS last_sent_at,
       (array_agg(ok ORDER BY sent_at DESC))[1] AS last_ok,
       (array_agg(ttft_ms ORDER BY sent_at DESC))[1] AS last_ttft_ms,
       (array_agg(error ORDER BY sent_at DESC))[1] AS last_error,
       count(*) AS probes,
       count(*) FILTER (WHERE NOT ok) AS failures,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) FILTER (WHERE ok) AS ttft_p50_ms
FROM canary_probes
WHERE sent_at >= :since AND (CAST(:p AS text) IS NULL OR provider_id = :p)
GROUP BY provider_id, model_id
ORDER BY provider_id, model_id
"""
    )
    return frame(db, sql, {"since": since, "p": provider_id}, LATEST_SCHEMA)


def probes(db: Db, since: datetime, limit: int = 500) -> pl.DataFrame:
    """The newest probes since ``since``."""
    sql = text(
        """
SELECT provider_id, model_id, sent_at, ok, ttft_ms, total_ms, status_code, error, activity_upstream_id
FROM canary_probes WHERE sent_at >= :since ORDER BY sent_at DESC, id DESC LIMIT :n
"""
    )
    schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "sent_at": UTC_TS, "ok": pl.Boolean,
              "ttft_ms": pl.Float64, "total_ms": pl.Float64, "status_code": pl.Int64, "error": pl.Utf8,
              "activity_upstream_id": pl.Int64}
    return frame(db, sql, {"since": since, "n": limit}, schema)


def cycles(db: Db, limit: int = 20) -> pl.DataFrame:
    sql = text(
        """
SELECT id, started_at, finished_at, hosts, probed, failed, unmatched, skipped::text AS skipped
FROM canary_cycles ORDER BY id DESC LIMIT :n
"""
    )
    schema = {"id": pl.Int64, "started_at": UTC_TS, "finished_at": UTC_TS, "hosts": pl.Int64,
              "probed": pl.Int64, "failed": pl.Int64, "unmatched": pl.Int64, "skipped": pl.Utf8}
    return frame(db, sql, {"n": limit}, schema)


def traffic_light(last_ok: bool | None, ttft_ms: float | None, slo_ms: float) -> str:
    """``green`` (last probe answered within the SLO), ``amber`` (answered, slower), ``red`` (failed),
    ``grey`` (not probed: not loaded, or its host skipped)."""
    if last_ok is None:
        return "grey"
    if not last_ok:
        return "red"
    return "green" if ttft_ms is not None and ttft_ms <= slo_ms else "amber"


def lights(db: Db, since: datetime, slo_ms: float) -> dict[tuple[str, str], dict[str, Any]]:
    """(provider, model) -> {light, ttft_ms, sent_at, error} from the last probe since ``since``."""
    df = latest_by_model(db, since)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in df.iter_rows(named=True):
        out[(r["provider_id"], r["model_id"])] = {
            "light": traffic_light(r["last_ok"], r["last_ttft_ms"], slo_ms),
            "ttft_ms": r["last_ttft_ms"], "sent_at": r["last_sent_at"], "error": r["last_error"],
        }
    return out


def held_hosts(db: Db, provider_id: str | None = None) -> dict[str, str]:
    """Hosts under a live host lease (``warehouse.lease``, scope ``host``): provider -> "holder (purpose)"."""
    sql = text(
        """
SELECT provider_id, holder, purpose FROM leases
WHERE scope = 'host' AND expires_at >= now() AND (CAST(:p AS text) IS NULL OR provider_id = :p)
"""
    )
    df = frame(db, sql, {"p": provider_id}, {"provider_id": pl.Utf8, "holder": pl.Utf8, "purpose": pl.Utf8})
    return {r["provider_id"]: f"{r['holder']} ({r['purpose']})" for r in df.iter_rows(named=True)}


CYCLE_LOCK = 0x626F6F63616E  # advisory lock key of the canary cycle ("boocan")


def try_cycle_lock(conn: Connection) -> bool:
    """Take the canary cycle's session advisory lock on ``conn`` (held until released or the connection closes);
    False when another cycle holds it."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": CYCLE_LOCK}).scalar_one())


def release_cycle_lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": CYCLE_LOCK})
