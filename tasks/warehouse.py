"""Prefect tasks over the warehouse: one domain call each, plus retries, tags and no caching.

Settings are read here (``get_settings()`` at the top of each task) and turned into plain values for the
domain functions in ``warehouse``. Retries live here, never in the domain code. Caching is off
(``NO_CACHE``): a re-run must recompute, that is what makes re-runs and backfills rewrite the same rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from core.settings import RetentionSettings, get_settings
from warehouse import exports, retention, rollups
from warehouse.db import make_engine

RETRIES: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [5, 30, 120]}


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    return make_engine(url, pool_size=2)


def warehouse_engine() -> Engine:
    """The process-wide engine for the configured database (one per URL)."""
    return _engine_for(get_settings().resolved_database_url())


def retention_policy(r: RetentionSettings) -> retention.RetentionPolicy:
    """Plain retention values for the domain code, from the settings object.

    ``capture_row_kb`` and ``throttle`` are read if the settings define them, else the domain defaults.
    """
    return retention.RetentionPolicy(
        raw_perf=timedelta(hours=r.raw_perf_hours),
        rollups=timedelta(days=r.rollup_days),
        activity=timedelta(days=r.activity_days),
        raw_events=timedelta(days=r.raw_event_days),
        logs=timedelta(days=r.log_days),
        capture_row_bytes=int(getattr(r, "capture_row_kb", 256)) * 1024,
        capture_total_bytes=r.capture_total_mb * 1024 * 1024,
        batch_rows=r.batch_rows,
        throttle=float(getattr(r, "throttle", retention.RetentionPolicy.throttle)),
    )


@task(name="rollup-perf", tags=["postgres"], cache_policy=NO_CACHE, **RETRIES)
def rollup_perf(start: datetime, end: datetime) -> dict[str, int]:
    """Host and GPU samples of ``[start, end)`` into the 5-minute and hourly rollups."""
    with warehouse_engine().begin() as conn:
        return rollups.rollup_perf(conn, start, end).rows


@task(name="rollup-activity", tags=["postgres"], cache_policy=NO_CACHE, **RETRIES)
def rollup_activity(start: datetime, end: datetime) -> dict[str, int]:
    """Request activity and model transitions of ``[start, end)`` into the 5-minute, hourly, daily rollups."""
    with warehouse_engine().begin() as conn:
        return rollups.rollup_activity(conn, start, end).rows


@task(name="retention-cutoffs", cache_policy=NO_CACHE)
def retention_cutoffs(now: datetime) -> dict[str, datetime]:
    """The cutoff of every pruned table as of ``now`` under the configured retention."""
    return retention.cutoffs(now, retention_policy(get_settings().retention))


@task(name="prune-table", tags=["postgres"], cache_policy=NO_CACHE, **RETRIES)
def prune_table(table: str, cutoff: datetime) -> int:
    """Delete ``table``'s rows older than ``cutoff`` in small batches."""
    policy = retention_policy(get_settings().retention)
    return retention.prune_table(
        warehouse_engine(),
        table,
        cutoff,
        batch_rows=policy.batch_rows,
        pause_s=policy.pause_s,
        throttle=policy.throttle,
    )


@task(name="prune-captures", tags=["postgres"], cache_policy=NO_CACHE, **RETRIES)
def prune_captures() -> dict[str, int]:
    """Cap each capture row, then keep the newest captures within the total budget."""
    policy = retention_policy(get_settings().retention)
    engine = warehouse_engine()
    return {
        "captures_truncated": retention.cap_capture_rows(engine, policy.capture_row_bytes),
        "captures": retention.prune_captures_to_budget(engine, policy.capture_total_bytes),
    }


@task(name="export-day", tags=["postgres", "lake"], cache_policy=NO_CACHE, **RETRIES)
def export_day(table: str, day: date, lake_dir: str | None = None) -> dict[str, Any]:
    """Export one table's UTC day to the lake, unless the database no longer holds that whole day.

    A day older than the table's retention cutoff is skipped: re-exporting it would replace a complete
    partition with what is left after pruning.
    """
    settings = get_settings()
    lake = Path(lake_dir) if lake_dir else settings.lake_dir
    start, _ = exports.day_window(day)
    cutoff = retention.cutoffs(datetime.now(UTC), retention_policy(settings.retention)).get(table)
    if cutoff is not None and start < cutoff:
        return {
            "table": table,
            "day": day.isoformat(),
            "rows": 0,
            "skipped": f"older than {cutoff.isoformat()}",
        }
    res = exports.export_day(warehouse_engine(), table, day, lake)
    return {
        "table": table,
        "day": day.isoformat(),
        "rows": res.rows,
        "bytes": res.bytes,
        "path": str(res.path),
    }
