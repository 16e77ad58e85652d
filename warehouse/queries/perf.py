"""Host and GPU time series for the Performance page: several hosts over one window, bucketed.

Buckets (``date_bin``) keep every series at about ``points`` points whatever the window, and the
``provider_id = ANY(...) AND sampled_at`` range is answered by the primary keys.
"""

from __future__ import annotations

import math
from datetime import datetime

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame


def bucket_seconds(start: datetime, end: datetime, points: int) -> int:
    """Bucket width giving at most ``points`` buckets, never below the 5 s sampling interval."""
    span = max((end - start).total_seconds(), 1.0)
    return max(5, math.ceil(span / max(points, 1)))


def host_series(
    db: Db, provider_ids: tuple[str, ...], start: datetime, end: datetime, points: int = 400
) -> pl.DataFrame:
    """CPU %, RAM used/total (MiB), RAM % and 1-minute load per provider and bucket."""
    sql = text(
        """
SELECT provider_id, date_bin(make_interval(secs => :b), sampled_at, TIMESTAMPTZ '2000-01-01') AS t,
       avg(cpu_util_pct) AS cpu_pct, avg(mem_used_mb) AS mem_used_mb, max(mem_total_mb) AS mem_total_mb,
       avg(100.0 * mem_used_mb / NULLIF(mem_total_mb, 0)) AS mem_pct, avg(load_avg_1) AS load_avg_1
FROM perf_samples
WHERE provider_id = ANY(:p) AND sampled_at >= :start AND sampled_at < :end
GROUP BY 1, 2 ORDER BY 1, 2
"""
    )
    schema = {
        "provider_id": pl.Utf8,
        "t": UTC_TS,
        "cpu_pct": pl.Float64,
        "mem_used_mb": pl.Float64,
        "mem_total_mb": pl.Float64,
        "mem_pct": pl.Float64,
        "load_avg_1": pl.Float64,
    }
    params = {"p": list(provider_ids), "start": start, "end": end, "b": bucket_seconds(start, end, points)}
    return frame(db, sql, params, schema)


def gpu_series(
    db: Db, provider_ids: tuple[str, ...], start: datetime, end: datetime, points: int = 400
) -> pl.DataFrame:
    """Per provider and GPU: temperature (°C), utilisation (%), VRAM used (MiB) and power (W) per bucket.

    ``series`` names the line: ``provider`` alone for single-GPU hosts, ``provider/gpuN`` otherwise.
    """
    sql = text(
        """
WITH s AS (
    SELECT provider_id, gpu_key, min(gpu_index) OVER (PARTITION BY provider_id, gpu_key) AS gpu_index,
           count(DISTINCT gpu_key) OVER (PARTITION BY provider_id) AS n_gpus,
           date_bin(make_interval(secs => :b), sampled_at, TIMESTAMPTZ '2000-01-01') AS t,
           temp_c, util_pct, mem_used_mb, mem_total_mb, power_w
    FROM gpu_samples
    WHERE provider_id = ANY(:p) AND sampled_at >= :start AND sampled_at < :end
)
SELECT provider_id, gpu_key, gpu_index,
       CASE WHEN max(n_gpus) > 1 THEN provider_id || '/gpu' || gpu_index ELSE provider_id END AS series, t,
       avg(temp_c) AS temp_c, avg(util_pct) AS util_pct, avg(mem_used_mb) AS mem_used_mb,
       max(mem_total_mb) AS mem_total_mb, avg(power_w) AS power_w
FROM s GROUP BY provider_id, gpu_key, gpu_index, t ORDER BY provider_id, gpu_index, t
"""
    )
    schema = {
        "provider_id": pl.Utf8,
        "gpu_key": pl.Utf8,
        "gpu_index": pl.Int64,
        "series": pl.Utf8,
        "t": UTC_TS,
        "temp_c": pl.Float64,
        "util_pct": pl.Float64,
        "mem_used_mb": pl.Float64,
        "mem_total_mb": pl.Float64,
        "power_w": pl.Float64,
    }
    params = {"p": list(provider_ids), "start": start, "end": end, "b": bucket_seconds(start, end, points)}
    return frame(db, sql, params, schema)


def provider_choices(db: Db) -> pl.DataFrame:
    """Providers for pickers: id, label, whether it is active and connected."""
    sql = text(
        """
SELECT p.id AS provider_id, p.label, p.active, COALESCE(h.status, 'unknown') AS status
FROM providers p LEFT JOIN connector_health h ON h.provider_id = p.id ORDER BY p.id
"""
    )
    return frame(
        db, sql, {}, {"provider_id": pl.Utf8, "label": pl.Utf8, "active": pl.Boolean, "status": pl.Utf8}
    )
