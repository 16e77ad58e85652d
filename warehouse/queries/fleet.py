"""Fleet overview: one row per provider with what is true *now*, plus short sparkline windows.

Every "now" value is a latest-row lookup that an index answers directly (``LATERAL … ORDER BY t DESC
LIMIT 1`` on a primary key that starts with ``provider_id``; a loose index scan for the GPU keys), and
sparklines read a bounded recent window through the time indexes. Nothing here scans history, so the
board stays fast with 50 providers and 30 days of samples.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, connected, frame
from warehouse.queries.gaps import gap_counts

LOADED_STATES = ("starting", "ready", "stopping")
GAPS_BOARD_HOURS = 24

_OVERVIEW_SQL = text(
    """
SELECT p.id AS provider_id, p.label, p.base_url, p.active,
       COALESCE(h.status, 'unknown') AS status, h.last_error, h.last_error_at,
       h.connected_since, h.last_event_at,
       COALESCE(h.version, b.version) AS version, COALESCE(b.simulated, false) AS simulated,
       b.boot_marker, b.first_seen_at AS boot_seen_at, bc.boots,
       i.count AS inflight, i.observed_at AS inflight_at,
       COALESCE(m.loaded, 0) AS loaded, m.loaded_models,
       s.sampled_at AS perf_at, s.cpu_util_pct, s.mem_used_mb, s.mem_total_mb, s.load_avg_1
FROM providers p
LEFT JOIN connector_health h ON h.provider_id = p.id
LEFT JOIN LATERAL (
    SELECT ib.version, ib.boot_marker, ib.first_seen_at, ib.hardware->'simulated' = 'true'::jsonb AS simulated
    FROM instance_boots ib
    WHERE ib.provider_id = p.id ORDER BY ib.last_seen_at DESC, ib.first_seen_at DESC LIMIT 1
) b ON true
LEFT JOIN LATERAL (SELECT count(*) AS boots FROM instance_boots ib WHERE ib.provider_id = p.id) bc ON true
LEFT JOIN LATERAL (
    SELECT x.count, x.observed_at FROM inflight_snapshots x
    WHERE x.provider_id = p.id ORDER BY x.observed_at DESC LIMIT 1
) i ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS loaded,
           string_agg(mo.model_id || ' (' || mo.state || ')', ', ' ORDER BY mo.model_id) AS loaded_models
    FROM models mo WHERE mo.provider_id = p.id AND mo.state IN ('starting', 'ready', 'stopping')
) m ON true
LEFT JOIN LATERAL (
    SELECT ps.sampled_at, ps.cpu_util_pct, ps.mem_used_mb, ps.mem_total_mb, ps.load_avg_1 FROM perf_samples ps
    WHERE ps.provider_id = p.id ORDER BY ps.sampled_at DESC LIMIT 1
) s ON true
ORDER BY p.id
"""
)

_OVERVIEW_SCHEMA = {
    "provider_id": pl.Utf8,
    "label": pl.Utf8,
    "base_url": pl.Utf8,
    "active": pl.Boolean,
    "status": pl.Utf8,
    "last_error": pl.Utf8,
    "last_error_at": UTC_TS,
    "connected_since": UTC_TS,
    "last_event_at": UTC_TS,
    "version": pl.Utf8,
    "simulated": pl.Boolean,  # its newest boot's /api/hardware said "simulated": true (the demo fleet)
    "boot_marker": pl.Utf8,
    "boot_seen_at": UTC_TS,
    "boots": pl.Int64,
    "inflight": pl.Int64,
    "inflight_at": UTC_TS,
    "loaded": pl.Int64,
    "loaded_models": pl.Utf8,
    "perf_at": UTC_TS,
    "cpu_util_pct": pl.Float64,
    "mem_used_mb": pl.Float64,
    "mem_total_mb": pl.Float64,
    "load_avg_1": pl.Float64,
}

# Loose index scan: the distinct gpu_keys of each provider straight from the primary key
# (provider_id, gpu_key, sampled_at), then the newest row of each key.
_GPU_NOW_SQL = text(
    """
WITH RECURSIVE keys AS (
    SELECT p.id AS provider_id,
           (SELECT min(g.gpu_key) FROM gpu_samples g WHERE g.provider_id = p.id) AS gpu_key
    FROM providers p
  UNION ALL
    SELECT k.provider_id,
           (SELECT min(g.gpu_key) FROM gpu_samples g WHERE g.provider_id = k.provider_id AND g.gpu_key > k.gpu_key)
    FROM keys k WHERE k.gpu_key IS NOT NULL
)
SELECT k.provider_id, k.gpu_key, g.gpu_index, g.name, g.sampled_at, g.temp_c, g.util_pct,
       g.mem_used_mb, g.mem_total_mb, g.power_w, g.fan_pct
FROM keys k
CROSS JOIN LATERAL (
    SELECT * FROM gpu_samples g
    WHERE g.provider_id = k.provider_id AND g.gpu_key = k.gpu_key
    ORDER BY g.sampled_at DESC LIMIT 1
) g
WHERE k.gpu_key IS NOT NULL
ORDER BY k.provider_id, g.gpu_index, k.gpu_key
"""
)

_GPU_NOW_SCHEMA = {
    "provider_id": pl.Utf8,
    "gpu_key": pl.Utf8,
    "gpu_index": pl.Int64,
    "name": pl.Utf8,
    "sampled_at": UTC_TS,
    "temp_c": pl.Float64,
    "util_pct": pl.Float64,
    "mem_used_mb": pl.Float64,
    "mem_total_mb": pl.Float64,
    "power_w": pl.Float64,
    "fan_pct": pl.Float64,
}

_PERF_SPARK_SQL = text(
    """
SELECT provider_id, date_bin(make_interval(secs => :bucket_s), sampled_at, TIMESTAMPTZ '2000-01-01') AS t,
       avg(cpu_util_pct) AS cpu_pct,
       avg(100.0 * mem_used_mb / NULLIF(mem_total_mb, 0)) AS mem_pct
FROM perf_samples
WHERE sampled_at >= :since AND sampled_at <= :now
GROUP BY 1, 2 ORDER BY 1, 2
"""
)

_GPU_SPARK_SQL = text(
    """
SELECT provider_id, date_bin(make_interval(secs => :bucket_s), sampled_at, TIMESTAMPTZ '2000-01-01') AS t,
       avg(util_pct) AS gpu_util_pct, max(temp_c) AS gpu_temp_c
FROM gpu_samples
WHERE sampled_at >= :since AND sampled_at <= :now
GROUP BY 1, 2 ORDER BY 1, 2
"""
)

_LOADED_SQL = text(
    """
SELECT provider_id, model_id, state FROM models
WHERE state IN ('starting', 'ready', 'stopping') ORDER BY provider_id, model_id
"""
)

_INFLIGHT_SQL = text(
    """
SELECT x.observed_at, r->>'id' AS request_id, r->>'model' AS model_id, r->>'req_path' AS req_path,
       r->>'method' AS method, (r->>'elapsed_ms')::bigint AS elapsed_ms, (r->>'resp_bytes')::bigint AS resp_bytes
FROM (SELECT observed_at, requests FROM inflight_snapshots WHERE provider_id = :p
      ORDER BY observed_at DESC LIMIT 1) x
CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(x.requests) WHEN 'array' THEN x.requests
                                              ELSE '[]'::jsonb END) r
ORDER BY (r->>'elapsed_ms')::bigint DESC NULLS LAST
"""
)


def _parse_marker(marker: str | None) -> datetime | None:
    """The boot marker is llama-swap's ``/api/hardware`` ``captured_at`` (process start) when it has one."""
    if not marker:
        return None
    try:
        t = datetime.fromisoformat(marker.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def fleet_overview(db: Db) -> pl.DataFrame:
    """One row per provider: health, version, current boot, in-flight, loaded models, latest CPU/RAM.

    ``booted_at`` is the process start parsed from the boot marker, else when that boot was first seen.
    """
    df = frame(db, _OVERVIEW_SQL, {}, _OVERVIEW_SCHEMA)
    booted = [
        _parse_marker(m) or seen
        for m, seen in zip(df["boot_marker"].to_list(), df["boot_seen_at"].to_list(), strict=True)
    ]
    return df.with_columns(pl.Series("booted_at", booted, dtype=UTC_TS))


def gpu_now(db: Db) -> pl.DataFrame:
    """The newest sample of every GPU of every provider (however old it is: see ``sampled_at``)."""
    return frame(db, _GPU_NOW_SQL, {}, _GPU_NOW_SCHEMA)


def loaded_models(db: Db) -> pl.DataFrame:
    return frame(db, _LOADED_SQL, {}, {"provider_id": pl.Utf8, "model_id": pl.Utf8, "state": pl.Utf8})


def inflight_requests(db: Db, provider_id: str) -> pl.DataFrame:
    """Requests of the provider's latest in-flight snapshot (ids are what cancel takes)."""
    schema = {
        "observed_at": UTC_TS,
        "request_id": pl.Utf8,
        "model_id": pl.Utf8,
        "req_path": pl.Utf8,
        "method": pl.Utf8,
        "elapsed_ms": pl.Int64,
        "resp_bytes": pl.Int64,
    }
    return frame(db, _INFLIGHT_SQL, {"p": provider_id}, schema)


def sparklines(db: Db, now: datetime, minutes: int = 60, points: int = 30) -> pl.DataFrame:
    """Per provider, lists of bucketed CPU %, RAM %, GPU util % and GPU temperature over the last window."""
    since = now - timedelta(minutes=minutes)
    bucket_s = max(5, int(minutes * 60 / points))
    params = {"since": since, "now": now, "bucket_s": bucket_s}
    perf = frame(
        db,
        _PERF_SPARK_SQL,
        params,
        {"provider_id": pl.Utf8, "t": UTC_TS, "cpu_pct": pl.Float64, "mem_pct": pl.Float64},
    )
    gpu = frame(
        db,
        _GPU_SPARK_SQL,
        params,
        {"provider_id": pl.Utf8, "t": UTC_TS, "gpu_util_pct": pl.Float64, "gpu_temp_c": pl.Float64},
    )
    p = perf.group_by("provider_id", maintain_order=True).agg(
        pl.col("cpu_pct").alias("cpu_spark"), pl.col("mem_pct").alias("mem_spark")
    )
    g = gpu.group_by("provider_id", maintain_order=True).agg(
        pl.col("gpu_util_pct").alias("gpu_util_spark"), pl.col("gpu_temp_c").alias("gpu_temp_spark")
    )
    return p.join(g, on="provider_id", how="full", coalesce=True)


def fleet_board(db: Db, now: datetime, spark_minutes: int = 60, stale_after_s: int = 120) -> pl.DataFrame:
    """The Fleet page's table: `fleet_overview` + per-provider GPU summary + sparkline lists + ``gaps_recent``
    (gaps detected in the last `GAPS_BOARD_HOURS`).

    GPU columns summarise all GPUs of a host: hottest temperature, summed VRAM and power, mean
    utilisation. ``perf_stale``/``gpu_stale`` are true when the newest sample is older than
    ``stale_after_s`` (a host that stopped reporting must not look idle and healthy).
    """
    ov = fleet_overview(db)
    gpus = gpu_now(db)
    spark = sparklines(db, now, spark_minutes)
    g = gpus.group_by("provider_id").agg(
        pl.len().alias("gpus"),
        pl.col("temp_c").max().alias("gpu_temp_c"),
        pl.col("util_pct").mean().alias("gpu_util_pct"),
        pl.col("mem_used_mb").sum().alias("vram_used_mb"),
        pl.col("mem_total_mb").sum().alias("vram_total_mb"),
        pl.col("power_w").sum().alias("gpu_power_w"),
        pl.col("sampled_at").max().alias("gpu_at"),
    )
    out = ov.join(g, on="provider_id", how="left").join(spark, on="provider_id", how="left")
    # rows that may be missing, per provider (the gaps table holds a few rows per restart: a scan is cheap)
    counts = gap_counts(db, now - timedelta(hours=GAPS_BOARD_HOURS)).select(
        "provider_id", pl.col("gaps").alias("gaps_recent")
    )
    out = out.join(counts, on="provider_id", how="left").with_columns(pl.col("gaps_recent").fill_null(0))
    cutoff = now - timedelta(seconds=stale_after_s)
    up = pl.col("booted_at").is_not_null() & (pl.col("status") == "connected")
    return out.with_columns(
        (pl.col("perf_at").is_null() | (pl.col("perf_at") < cutoff)).alias("perf_stale"),
        (pl.col("gpu_at").is_null() | (pl.col("gpu_at") < cutoff)).alias("gpu_stale"),
        pl.when(up)
        .then((pl.lit(now, dtype=UTC_TS) - pl.col("booted_at")).dt.total_seconds())
        .otherwise(None)
        .alias("uptime_s"),
        pl.col("gpus").fill_null(0),
    ).sort("provider_id")


def fleet_summary(board: pl.DataFrame) -> dict[str, float | int]:
    """Headline numbers for the top of the Fleet page, computed from `fleet_board`'s frame."""
    online = board.filter(pl.col("status") == "connected")
    return {
        "providers": board.height,
        "online": online.height,
        "models_loaded": int(board["loaded"].sum() or 0),
        "inflight": int(online["inflight"].fill_null(0).sum() or 0),
        "gpus": int(board["gpus"].sum() or 0),
        "gpu_power_w": float(board.filter(~pl.col("gpu_stale"))["gpu_power_w"].fill_null(0).sum() or 0.0),
        "hottest_gpu_c": float(board.filter(~pl.col("gpu_stale"))["gpu_temp_c"].max() or 0.0),  # type: ignore[arg-type]
        # GPUs of simulated hosts (the demo fleet): their power and temperature above are synthetic
        "simulated_gpus": int(board.filter(pl.col("simulated").fill_null(False))["gpus"].sum() or 0),
    }


_SIMULATED_SQL = text(
    """
SELECT p.id FROM providers p
CROSS JOIN LATERAL (
    SELECT ib.hardware FROM instance_boots ib
    WHERE ib.provider_id = p.id AND (CAST(:until AS timestamptz) IS NULL OR ib.first_seen_at < :until)
    ORDER BY ib.first_seen_at DESC LIMIT 1
) b
WHERE b.hardware->'simulated' = 'true'::jsonb
ORDER BY p.id
"""
)


def simulated_providers(db: Db, until: datetime | None = None) -> list[str]:
    """Providers that are simulated hosts (the demo fleet): the newest boot first seen before ``until`` (default:
    the newest boot) said ``"simulated": true`` in its /api/hardware. A real llama-swap never says so."""
    with connected(db) as conn:
        return [str(r[0]) for r in conn.execute(_SIMULATED_SQL, {"until": until})]


def provider_rows(db: Db) -> pl.DataFrame:
    """The providers table (id, label, base_url, kind, active), for when no registry file is at hand."""
    sql = text("SELECT id AS provider_id, label, base_url, kind, active FROM providers ORDER BY id")
    schema = {
        "provider_id": pl.Utf8,
        "label": pl.Utf8,
        "base_url": pl.Utf8,
        "kind": pl.Utf8,
        "active": pl.Boolean,
    }
    return frame(db, sql, {}, schema)


def provider_models(db: Db, provider_id: str) -> pl.DataFrame:
    """One provider's models and their states (cheap: the models table only)."""
    sql = text("SELECT model_id, state FROM models WHERE provider_id = :p ORDER BY model_id")
    return frame(db, sql, {"p": provider_id}, {"model_id": pl.Utf8, "state": pl.Utf8})
