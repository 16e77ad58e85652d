"""Rollup flow: raw host telemetry and request activity into 5-minute, hourly and daily rollups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from flows.windows import resolve_window, split_days
from tasks.warehouse import rollup_activity, rollup_perf


@flow(name="rollup")
def rollup(start: datetime | None = None, end: datetime | None = None, hours: float = 3.0) -> dict[str, Any]:
    """Roll up ``[start, end)``; by default the last ``hours`` hours up to now.

    Idempotent: every bucket touched is recomputed from the raw rows and upserted, so a retry or a backfill
    (set ``start``/``end``) rewrites the same rows. Host telemetry is widened to whole hours, activity to
    whole buckets of each grain (so the daily row is recomputed from the whole day). The window is split
    at UTC midnights, one pair of task runs per day.
    """
    s, e = resolve_window(start, end, hours)
    log = get_run_logger()
    totals: dict[str, int] = {}
    for ds, de in split_days(s, e):
        for rows in (rollup_perf(ds, de), rollup_activity(ds, de)):
            for table, n in rows.items():
                totals[table] = totals.get(table, 0) + n
    log.info("rolled up [%s, %s): %s", s.isoformat(), e.isoformat(), totals)
    return {"start": s.isoformat(), "end": e.isoformat(), "rows": totals}
