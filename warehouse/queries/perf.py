"""Host and GPU time series for the Performance page: several hosts over one window, bucketed.

Buckets (``date_bin``) keep every series at about ``points`` points whatever the window. Short windows
read the raw samples; once a bucket is at least 5 minutes (or 1 hour) wide the series is read from the
``rollup_*_5m`` (``_1h``) tables, which outlive the raw samples' 48 h retention, and the part of the window
the rollups do not cover yet (they run every few minutes) is filled from the raw samples. Means are
weighted by sample counts, so mixing rollup and raw rows gives the same mean as the raw rows alone.
"""

from __future__ import annotations

import math
from datetime import datetime

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame

# grain -> (table suffix, interval); table names come from this fixed table only
_GRAINS = {"1h": 3600, "5m": 300}


def bucket_seconds(start: datetime, end: datetime, points: int) -> int:
    """Bucket width giving at most ``points`` buckets, never below the 5 s sampling interval."""
    span = max((end - start).total_seconds(), 1.0)
    return max(5, math.ceil(span / max(points, 1)))


def source_grain(bucket_s: int) -> str | None:
    """Which rollup grain serves buckets of ``bucket_s`` seconds (None: raw samples)."""
    for grain, secs in _GRAINS.items():
        if bucket_s >= secs:
            return grain
    return None


HOST_SCHEMA = {
    "provider_id": pl.Utf8,
    "t": UTC_TS,
    "cpu_pct": pl.Float64,
    "mem_used_mb": pl.Float64,
    "mem_total_mb": pl.Float64,
    "mem_pct": pl.Float64,
    "load_avg_1": pl.Float64,
}

_RAW_HOST = """
SELECT provider_id, sampled_at AS t0, 1 AS w, cpu_util_pct AS cpu, mem_used_mb AS mem,
       mem_total_mb AS mem_total, load_avg_1 AS load1
FROM perf_samples
WHERE provider_id = ANY(:p) AND sampled_at >= :raw_from AND sampled_at < :end
"""


def host_series(
    db: Db, provider_ids: tuple[str, ...], start: datetime, end: datetime, points: int = 400
) -> pl.DataFrame:
    """CPU %, RAM used/total (MiB), RAM % and 1-minute load per provider and bucket."""
    b = bucket_seconds(start, end, points)
    grain = source_grain(b)
    if grain is None:
        rows = _RAW_HOST.replace(":raw_from", ":start")
    else:
        secs = _GRAINS[grain]
        rows = f"""
WITH r AS (
    SELECT provider_id, bucket_start AS t0, samples AS w, cpu_util_pct_mean AS cpu, mem_used_mb_mean AS mem,
           mem_total_mb AS mem_total, load_avg_1_mean AS load1
    FROM rollup_host_{grain}
    WHERE provider_id = ANY(:p) AND bucket_start >= :start AND bucket_start < :end AND samples > 0
),
cov AS (SELECT provider_id, max(t0) + make_interval(secs => {secs}) AS until FROM r GROUP BY 1)
SELECT * FROM r
UNION ALL
SELECT s.provider_id, s.sampled_at, 1, s.cpu_util_pct, s.mem_used_mb, s.mem_total_mb, s.load_avg_1
FROM perf_samples s LEFT JOIN cov ON cov.provider_id = s.provider_id
WHERE s.provider_id = ANY(:p) AND s.sampled_at >= GREATEST(:start, COALESCE(cov.until, :start))
  AND s.sampled_at < :end
"""
    sql = text(
        f"""
WITH u AS ({rows})
SELECT provider_id, date_bin(make_interval(secs => :b), t0, TIMESTAMPTZ '2000-01-01') AS t,
       sum(cpu * w) / sum(w) AS cpu_pct, sum(mem * w) / sum(w) AS mem_used_mb, max(mem_total) AS mem_total_mb,
       100.0 * (sum(mem * w) / sum(w)) / NULLIF(max(mem_total), 0) AS mem_pct,
       sum(load1 * w) / sum(w) AS load_avg_1
FROM u GROUP BY 1, 2 ORDER BY 1, 2
"""
    )
    params = {"p": list(provider_ids), "start": start, "end": end, "b": b}
    return frame(db, sql, params, HOST_SCHEMA)


GPU_SCHEMA = {
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


def gpu_series(
    db: Db, provider_ids: tuple[str, ...], start: datetime, end: datetime, points: int = 400
) -> pl.DataFrame:
    """Per provider and GPU: temperature (°C), utilisation (%), VRAM used (MiB) and power (W) per bucket.

    ``series`` names the line: ``provider`` alone for single-GPU hosts, ``provider/gpuN`` otherwise.
    """
    b = bucket_seconds(start, end, points)
    grain = source_grain(b)
    raw = """
SELECT s.provider_id, s.gpu_key, s.gpu_index, s.sampled_at AS t0, 1 AS w, s.temp_c AS temp, s.util_pct AS util,
       s.mem_used_mb AS vram, s.mem_total_mb AS vram_total, s.power_w AS power
FROM gpu_samples s {join}
WHERE s.provider_id = ANY(:p) AND s.sampled_at >= {raw_from} AND s.sampled_at < :end
"""
    if grain is None:
        rows = raw.format(join="", raw_from=":start")
    else:
        secs = _GRAINS[grain]
        rows = f"""
WITH r AS (
    SELECT provider_id, gpu_key, gpu_index, bucket_start AS t0, samples AS w, temp_c_mean AS temp,
           util_pct_mean AS util, vram_used_mb_mean AS vram, vram_total_mb AS vram_total, power_w_mean AS power
    FROM rollup_gpu_{grain}
    WHERE provider_id = ANY(:p) AND bucket_start >= :start AND bucket_start < :end AND samples > 0
),
cov AS (SELECT provider_id, gpu_key, max(t0) + make_interval(secs => {secs}) AS until FROM r GROUP BY 1, 2)
SELECT * FROM r
UNION ALL
{
            raw.format(
                join="LEFT JOIN cov ON cov.provider_id = s.provider_id AND cov.gpu_key = s.gpu_key",
                raw_from="GREATEST(:start, COALESCE(cov.until, :start))",
            )
        }
"""
    sql = text(
        f"""
WITH u AS ({rows}),
n AS (SELECT provider_id, count(DISTINCT gpu_key) AS n_gpus FROM u GROUP BY 1)
SELECT u.provider_id, u.gpu_key, min(u.gpu_index) AS gpu_index,
       CASE WHEN max(n.n_gpus) > 1 THEN u.provider_id || '/gpu' || min(u.gpu_index) ELSE u.provider_id END
           AS series,
       date_bin(make_interval(secs => :b), u.t0, TIMESTAMPTZ '2000-01-01') AS t,
       sum(temp * w) / sum(w) AS temp_c, sum(util * w) / sum(w) AS util_pct, sum(vram * w) / sum(w) AS mem_used_mb,
       max(vram_total) AS mem_total_mb, sum(power * w) / sum(w) AS power_w
FROM u JOIN n ON n.provider_id = u.provider_id
GROUP BY u.provider_id, u.gpu_key, t ORDER BY u.provider_id, gpu_index, t
"""
    )
    params = {"p": list(provider_ids), "start": start, "end": end, "b": b}
    return frame(db, sql, params, GPU_SCHEMA)


def provider_choices(db: Db) -> pl.DataFrame:
    """Providers for pickers: id, label, whether it is active and connected, and whether it is a simulated host
    (its newest boot's /api/hardware said ``"simulated": true``: the demo fleet)."""
    sql = text(
        """
SELECT p.id AS provider_id, p.label, p.active, COALESCE(h.status, 'unknown') AS status,
       COALESCE(b.simulated, false) AS simulated
FROM providers p LEFT JOIN connector_health h ON h.provider_id = p.id
LEFT JOIN LATERAL (
    SELECT ib.hardware->'simulated' = 'true'::jsonb AS simulated FROM instance_boots ib
    WHERE ib.provider_id = p.id ORDER BY ib.first_seen_at DESC LIMIT 1
) b ON true
ORDER BY p.id
"""
    )
    return frame(
        db, sql, {},
        {"provider_id": pl.Utf8, "label": pl.Utf8, "active": pl.Boolean, "status": pl.Utf8, "simulated": pl.Boolean},
    )
