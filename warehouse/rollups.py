"""Rollups: set-based, idempotent aggregation of raw telemetry into 5-minute, hourly and daily buckets.

Every function takes an open connection and an explicit window ``[start, end)`` and rewrites each bucket it
touches with ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``, so a retry or a backfill of the same window
writes the same rows. The window is widened to whole buckets of each grain (5-minute windows are widened to
whole hours for host telemetry, because the hourly rows are derived from the 5-minute rows of the hour).
Buckets are half-open and aligned on the Unix epoch in UTC (``date_bin(width, t, '1970-01-01Z')``): a sample
at exactly ``12:05:00`` belongs to the ``12:05`` bucket, not the ``12:00`` one.

Host telemetry (``perf_samples``, ``gpu_samples`` → ``rollup_host_*``, ``rollup_gpu_*``)
    Means and maxima are over the samples whose ``sampled_at`` falls in the bucket. Hourly rows are derived
    from the twelve 5-minute rows: means are sample-weighted, maxima are maxima, energies are sums, which
    equals a direct computation over the raw samples.

    **Energy.** ``energy_j`` integrates GPU power over time with the trapezoidal rule: between two
    consecutive samples ``(t0, p0)`` and ``(t1, p1)`` of the same GPU, power is taken to change linearly, so
    the interval contributes ``(p0 + p1) / 2 * (t1 - t0)`` joules. An interval that crosses a bucket
    boundary is split there (power interpolated linearly at the boundary), so the energies of consecutive
    buckets add up to the integral over their union exactly, whatever window each was computed in.
    Intervals longer than ``max_gap_s`` (default 60 s; llama-swap samples every 5 s at the least) are
    treated as missing data and contribute nothing. ``covered_s`` is the number of seconds of the bucket
    covered by counted intervals, so ``energy_j / covered_s`` is the mean power over the covered time.
    In SQL this is one ordered pass: ``lead()`` pairs each sample with the next, each pair's part inside
    the first sample's bucket is summed there and the part past the boundary is carried to the next
    bucket (a ``lag()`` over the few aggregated rows). A host row's ``gpu_energy_j`` is the sum over that
    host's GPUs. A host bucket with GPU data but no system
    sample has ``samples = 0`` and NULL CPU/RAM/load columns.

Request activity (``activity`` + ``model_transitions`` → ``rollup_activity_{5m,1h,1d}``)
    Computed directly from the raw rows for every grain (percentiles do not compose).

    * A request belongs to the bucket of its ``finished_at`` (llama-swap records only the end time).
    * Canary probes are not requests of users: their rows (``canary_probes``) are left out of every column.
    * ``errors``: requests whose ``status_code`` is not 2xx.
    * Token sums ignore llama-swap's sentinels: ``-1`` (not reported) and ``0`` (parse failure) add nothing.
    * Speed percentiles (``percentile_cont``, linear interpolation, as llama-swap's own stats) are over the
      rows with a speed ``> 0``; ``-1`` and ``0`` are excluded. ``*_tps_samples`` counts those rows. NULL
      when no row qualifies.
    * ``request_ms``: the sum of ``duration_ms`` (queueing and load time included).
    * ``busy_ms``: wall-clock time within the bucket during which at least one request of that model was
      in flight: the union of the intervals ``[finished_at - duration_ms, finished_at]``, clipped to the
      bucket. A request is clipped to its last ``max_request_s`` (default 1 h). ``request_ms / busy_ms``
      is the mean concurrency while busy.
    * ``swaps``: model loads started in the bucket: transitions to ``starting``, plus ``stopped → ready``
      transitions (a load whose ``starting`` state was never observed).
    * ``loads_timed``, ``load_ms_sum``, ``load_ms_max``: loads whose next observed transition (within
      ``max_load_s``, default 1 h) is ``ready``; the load time is the time between the two observations.
      Loads are attributed to the bucket of their ``starting`` transition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from warehouse.queries.canaries import not_a_probe

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GRAINS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
ORIGIN = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"


def floor_to(ts: datetime, width: timedelta) -> datetime:
    """The start of the epoch-aligned bucket of ``width`` containing ``ts`` (tz-aware, UTC)."""
    _require_aware(ts)
    return EPOCH + ((ts - EPOCH) // width) * width


def ceil_to(ts: datetime, width: timedelta) -> datetime:
    """The smallest epoch-aligned boundary of ``width`` that is ``>= ts``."""
    floor = floor_to(ts, width)
    return floor if floor == ts else floor + width


def _require_aware(ts: datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"naive datetime {ts!r}: rollup windows must be timezone-aware (UTC)")


def _check_window(start: datetime, end: datetime) -> None:
    _require_aware(start)
    _require_aware(end)
    if end <= start:
        raise ValueError(f"empty rollup window [{start}, {end})")


@dataclass
class RollupResult:
    """Rows written per table (inserted or updated) and the aligned window each grain covered."""

    rows: dict[str, int] = field(default_factory=dict)
    windows: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def merge(self, other: RollupResult) -> RollupResult:
        rows = dict(self.rows)
        for k, v in other.rows.items():
            rows[k] = rows.get(k, 0) + v
        return RollupResult(rows, {**self.windows, **other.windows})


# --- host telemetry -------------------------------------------------------------------------------------

_GPU_5M = f"""
INSERT INTO rollup_gpu_5m AS r (
    provider_id, gpu_key, bucket_start, gpu_index, name, samples,
    temp_c_mean, temp_c_max, vram_used_mb_mean, vram_used_mb_max, vram_total_mb,
    util_pct_mean, util_pct_max, power_w_mean, power_w_max, energy_j, covered_s)
WITH pairs AS (
    SELECT provider_id, gpu_key, sampled_at AS t, gpu_index, name, temp_c, mem_used_mb, mem_total_mb, util_pct,
           power_w AS p, lead(sampled_at) OVER w AS t1, lead(power_w) OVER w AS p1
    FROM gpu_samples
    WHERE sampled_at >= :start - :gap AND sampled_at < :end + :gap
    WINDOW w AS (PARTITION BY provider_id, gpu_key ORDER BY sampled_at)
), timed AS (
    SELECT *, date_bin(:width, t, {ORIGIN}) AS b0,
           CASE WHEN t1 - t <= :gap THEN date_part('epoch', t1 - t) END AS dt
    FROM pairs
), cut AS (
    SELECT *, CASE WHEN dt IS NULL THEN NULL
                   WHEN b0 + :width < t1 THEN date_part('epoch', b0 + :width - t)
                   ELSE dt END AS d0
    FROM timed
), parts AS (
    SELECT *, p + (p1 - p) * d0 / dt AS pm FROM cut
), agg AS (
    SELECT provider_id, gpu_key, b0 AS bucket_start,
           max(gpu_index) AS gpu_index, max(name) AS name, count(*) AS samples,
           avg(temp_c) AS temp_c_mean, max(temp_c) AS temp_c_max,
           avg(mem_used_mb) AS vram_used_mb_mean, max(mem_used_mb) AS vram_used_mb_max,
           max(mem_total_mb) AS vram_total_mb,
           avg(util_pct) AS util_pct_mean, max(util_pct) AS util_pct_max,
           avg(p) AS power_w_mean, max(p) AS power_w_max,
           coalesce(sum((p + pm) / 2 * d0), 0) AS e_own, coalesce(sum(d0), 0) AS s_own,
           coalesce(sum((pm + p1) / 2 * (dt - d0)), 0) AS e_carry, coalesce(sum(dt - d0), 0) AS s_carry
    FROM parts
    GROUP BY 1, 2, 3
), shifted AS (
    SELECT *, lag(bucket_start) OVER w AS prev_bucket, lag(e_carry) OVER w AS prev_e, lag(s_carry) OVER w AS prev_s
    FROM agg
    WINDOW w AS (PARTITION BY provider_id, gpu_key ORDER BY bucket_start)
)
SELECT provider_id, gpu_key, bucket_start, gpu_index, name, samples,
       temp_c_mean, temp_c_max, vram_used_mb_mean, vram_used_mb_max, vram_total_mb,
       util_pct_mean, util_pct_max, power_w_mean, power_w_max,
       e_own + CASE WHEN prev_bucket = bucket_start - :width THEN prev_e ELSE 0 END,
       s_own + CASE WHEN prev_bucket = bucket_start - :width THEN prev_s ELSE 0 END
FROM shifted
WHERE bucket_start >= :start AND bucket_start < :end
ON CONFLICT (provider_id, gpu_key, bucket_start) DO UPDATE SET
    gpu_index = EXCLUDED.gpu_index, name = EXCLUDED.name, samples = EXCLUDED.samples,
    temp_c_mean = EXCLUDED.temp_c_mean, temp_c_max = EXCLUDED.temp_c_max,
    vram_used_mb_mean = EXCLUDED.vram_used_mb_mean, vram_used_mb_max = EXCLUDED.vram_used_mb_max,
    vram_total_mb = EXCLUDED.vram_total_mb, util_pct_mean = EXCLUDED.util_pct_mean,
    util_pct_max = EXCLUDED.util_pct_max, power_w_mean = EXCLUDED.power_w_mean,
    power_w_max = EXCLUDED.power_w_max, energy_j = EXCLUDED.energy_j, covered_s = EXCLUDED.covered_s
"""

_GPU_1H = f"""
INSERT INTO rollup_gpu_1h AS r (
    provider_id, gpu_key, bucket_start, gpu_index, name, samples,
    temp_c_mean, temp_c_max, vram_used_mb_mean, vram_used_mb_max, vram_total_mb,
    util_pct_mean, util_pct_max, power_w_mean, power_w_max, energy_j, covered_s)
SELECT provider_id, gpu_key, date_bin(:width, bucket_start, {ORIGIN}),
       max(gpu_index), max(name), sum(samples),
       sum(temp_c_mean * samples) / sum(samples), max(temp_c_max),
       sum(vram_used_mb_mean * samples) / sum(samples), max(vram_used_mb_max), max(vram_total_mb),
       sum(util_pct_mean * samples) / sum(samples), max(util_pct_max),
       sum(power_w_mean * samples) / sum(samples), max(power_w_max),
       sum(energy_j), sum(covered_s)
FROM rollup_gpu_5m
WHERE bucket_start >= :start AND bucket_start < :end
GROUP BY 1, 2, 3
ON CONFLICT (provider_id, gpu_key, bucket_start) DO UPDATE SET
    gpu_index = EXCLUDED.gpu_index, name = EXCLUDED.name, samples = EXCLUDED.samples,
    temp_c_mean = EXCLUDED.temp_c_mean, temp_c_max = EXCLUDED.temp_c_max,
    vram_used_mb_mean = EXCLUDED.vram_used_mb_mean, vram_used_mb_max = EXCLUDED.vram_used_mb_max,
    vram_total_mb = EXCLUDED.vram_total_mb, util_pct_mean = EXCLUDED.util_pct_mean,
    util_pct_max = EXCLUDED.util_pct_max, power_w_mean = EXCLUDED.power_w_mean,
    power_w_max = EXCLUDED.power_w_max, energy_j = EXCLUDED.energy_j, covered_s = EXCLUDED.covered_s
"""

_HOST_SET = """
    samples = EXCLUDED.samples, cpu_util_pct_mean = EXCLUDED.cpu_util_pct_mean,
    cpu_util_pct_max = EXCLUDED.cpu_util_pct_max, mem_used_mb_mean = EXCLUDED.mem_used_mb_mean,
    mem_used_mb_max = EXCLUDED.mem_used_mb_max, mem_total_mb = EXCLUDED.mem_total_mb,
    load_avg_1_mean = EXCLUDED.load_avg_1_mean, load_avg_1_max = EXCLUDED.load_avg_1_max,
    gpu_count = EXCLUDED.gpu_count, gpu_energy_j = EXCLUDED.gpu_energy_j
"""

_HOST_5M = f"""
INSERT INTO rollup_host_5m AS r (
    provider_id, bucket_start, samples, cpu_util_pct_mean, cpu_util_pct_max,
    mem_used_mb_mean, mem_used_mb_max, mem_total_mb, load_avg_1_mean, load_avg_1_max,
    gpu_count, gpu_energy_j)
WITH p AS (
    SELECT provider_id, date_bin(:width, sampled_at, {ORIGIN}) AS bucket_start, count(*) AS samples,
           avg(cpu_util_pct) AS cpu_mean, max(cpu_util_pct) AS cpu_max,
           avg(mem_used_mb) AS mem_mean, max(mem_used_mb) AS mem_max, max(mem_total_mb) AS mem_total,
           avg(load_avg_1) AS load_mean, max(load_avg_1) AS load_max
    FROM perf_samples
    WHERE sampled_at >= :start AND sampled_at < :end
    GROUP BY 1, 2
), g AS (
    SELECT provider_id, bucket_start, count(*) AS gpu_count, sum(energy_j) AS energy_j
    FROM rollup_gpu_5m
    WHERE bucket_start >= :start AND bucket_start < :end
    GROUP BY 1, 2
)
SELECT provider_id, bucket_start, coalesce(p.samples, 0), p.cpu_mean, p.cpu_max, p.mem_mean, p.mem_max,
       p.mem_total, p.load_mean, p.load_max, coalesce(g.gpu_count, 0), coalesce(g.energy_j, 0)
FROM p FULL JOIN g USING (provider_id, bucket_start)
ON CONFLICT (provider_id, bucket_start) DO UPDATE SET {_HOST_SET}
"""

_HOST_1H = f"""
INSERT INTO rollup_host_1h AS r (
    provider_id, bucket_start, samples, cpu_util_pct_mean, cpu_util_pct_max,
    mem_used_mb_mean, mem_used_mb_max, mem_total_mb, load_avg_1_mean, load_avg_1_max,
    gpu_count, gpu_energy_j)
SELECT provider_id, date_bin(:width, bucket_start, {ORIGIN}), sum(samples),
       sum(cpu_util_pct_mean * samples) / nullif(sum(samples), 0), max(cpu_util_pct_max),
       sum(mem_used_mb_mean * samples) / nullif(sum(samples), 0), max(mem_used_mb_max), max(mem_total_mb),
       sum(load_avg_1_mean * samples) / nullif(sum(samples), 0), max(load_avg_1_max),
       max(gpu_count), sum(gpu_energy_j)
FROM rollup_host_5m
WHERE bucket_start >= :start AND bucket_start < :end
GROUP BY 1, 2
ON CONFLICT (provider_id, bucket_start) DO UPDATE SET {_HOST_SET}
"""


def rollup_perf(conn: Connection, start: datetime, end: datetime, *, max_gap_s: float = 60.0) -> RollupResult:
    """Roll host and GPU samples of ``[start, end)`` (widened to whole UTC hours) into 5-minute and hourly rows."""
    _check_window(start, end)
    five, hour = GRAINS["5m"], GRAINS["1h"]
    if not 0 < max_gap_s <= five.total_seconds():
        raise ValueError("max_gap_s must be in (0, 300]: an interval may cross at most one 5-minute boundary")
    s, e = floor_to(start, hour), ceil_to(end, hour)
    gap = timedelta(seconds=max_gap_s)
    result = RollupResult(windows={"5m": (s, e), "1h": (s, e)})
    steps = (
        ("rollup_gpu_5m", _GPU_5M, five),
        ("rollup_gpu_1h", _GPU_1H, hour),
        ("rollup_host_5m", _HOST_5M, five),
        ("rollup_host_1h", _HOST_1H, hour),
    )
    for table, sql, width in steps:
        cur = conn.execute(text(sql), {"start": s, "end": e, "gap": gap, "width": width})
        result.rows[table] = cur.rowcount
    log.info("perf rollup [%s, %s): %s", s.isoformat(), e.isoformat(), result.rows)
    return result


# --- request activity -----------------------------------------------------------------------------------

_ACTIVITY = """
INSERT INTO {table} AS r (
    provider_id, model_id, bucket_start, requests, errors, input_tokens, output_tokens, cache_tokens,
    request_ms, busy_ms, prompt_tps_samples, prompt_tps_p50, prompt_tps_p95, prompt_tps_p99,
    gen_tps_samples, gen_tps_p50, gen_tps_p95, gen_tps_p99, swaps, loads_timed, load_ms_sum, load_ms_max)
WITH agg AS (
    SELECT provider_id, model_id, date_bin(:width, finished_at, {origin}) AS bucket_start,
           count(*) AS requests,
           count(*) FILTER (WHERE status_code NOT BETWEEN 200 AND 299) AS errors,
           sum(greatest(input_tokens, 0)) AS input_tokens,
           sum(greatest(output_tokens, 0)) AS output_tokens,
           sum(greatest(cache_tokens, 0)) AS cache_tokens,
           sum(greatest(duration_ms, 0)) AS request_ms,
           count(*) FILTER (WHERE prompt_per_second > 0) AS prompt_n,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY prompt_per_second)
               FILTER (WHERE prompt_per_second > 0) AS prompt_p,
           count(*) FILTER (WHERE tokens_per_second > 0) AS gen_n,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY tokens_per_second)
               FILTER (WHERE tokens_per_second > 0) AS gen_p
    FROM activity
    WHERE finished_at >= :start AND finished_at < :end AND {not_probe}
    GROUP BY 1, 2, 3
), iv AS (
    SELECT provider_id, model_id,
           greatest(finished_at - duration_ms * INTERVAL '1 millisecond', finished_at - :max_req) AS s,
           finished_at AS e
    FROM activity
    WHERE finished_at >= :start AND finished_at < :end + :max_req AND duration_ms > 0 AND {not_probe}
), marked AS (
    SELECT *, CASE WHEN s <= max(e) OVER (
                  PARTITION BY provider_id, model_id ORDER BY s, e
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS new_island
    FROM iv
), islands AS (
    SELECT *, sum(new_island) OVER (PARTITION BY provider_id, model_id ORDER BY s, e
                                    ROWS UNBOUNDED PRECEDING) AS island
    FROM marked
), merged AS (
    SELECT provider_id, model_id, greatest(min(s), :start) AS s, least(max(e), :end) AS e
    FROM islands
    GROUP BY provider_id, model_id, island
    HAVING max(e) > :start AND min(s) < :end
), busy AS (
    SELECT provider_id, model_id, b AS bucket_start,
           sum(extract(epoch FROM least(e, b + :width) - greatest(s, b)) * 1000) AS busy_ms
    FROM merged, generate_series(date_bin(:width, s, {origin}), e, :width) AS b
    WHERE b < e
    GROUP BY 1, 2, 3
), tr AS (
    SELECT provider_id, model_id, observed_at, from_state, to_state,
           lead(observed_at) OVER w AS next_at, lead(to_state) OVER w AS next_state
    FROM model_transitions
    WHERE observed_at >= :start AND observed_at < :end + :max_load
    WINDOW w AS (PARTITION BY provider_id, model_id ORDER BY observed_at, to_state)
), loads AS (
    SELECT provider_id, model_id, date_bin(:width, observed_at, {origin}) AS bucket_start,
           count(*) FILTER (WHERE to_state = 'starting'
                            OR (to_state = 'ready' AND from_state = 'stopped')) AS swaps,
           count(*) FILTER (WHERE timed) AS loads_timed,
           coalesce(sum(load_ms) FILTER (WHERE timed), 0) AS load_ms_sum,
           max(load_ms) FILTER (WHERE timed) AS load_ms_max
    FROM (
        SELECT *, round(extract(epoch FROM next_at - observed_at) * 1000)::bigint AS load_ms,
               (to_state = 'starting' AND next_state = 'ready' AND next_at - observed_at <= :max_load)
                   AS timed
        FROM tr
        WHERE observed_at >= :start AND observed_at < :end
    ) t
    GROUP BY 1, 2, 3
), keys AS (
    SELECT provider_id, model_id, bucket_start FROM agg
    UNION SELECT provider_id, model_id, bucket_start FROM busy
    UNION SELECT provider_id, model_id, bucket_start FROM loads
)
SELECT k.provider_id, k.model_id, k.bucket_start,
       coalesce(a.requests, 0), coalesce(a.errors, 0), coalesce(a.input_tokens, 0),
       coalesce(a.output_tokens, 0), coalesce(a.cache_tokens, 0), coalesce(a.request_ms, 0),
       coalesce(round(b.busy_ms)::bigint, 0),
       coalesce(a.prompt_n, 0), a.prompt_p[1], a.prompt_p[2], a.prompt_p[3],
       coalesce(a.gen_n, 0), a.gen_p[1], a.gen_p[2], a.gen_p[3],
       coalesce(l.swaps, 0), coalesce(l.loads_timed, 0), coalesce(l.load_ms_sum, 0), l.load_ms_max
FROM keys k
LEFT JOIN agg a USING (provider_id, model_id, bucket_start)
LEFT JOIN busy b USING (provider_id, model_id, bucket_start)
LEFT JOIN loads l USING (provider_id, model_id, bucket_start)
ON CONFLICT (provider_id, model_id, bucket_start) DO UPDATE SET
    requests = EXCLUDED.requests, errors = EXCLUDED.errors, input_tokens = EXCLUDED.input_tokens,
    output_tokens = EXCLUDED.output_tokens, cache_tokens = EXCLUDED.cache_tokens,
    request_ms = EXCLUDED.request_ms, busy_ms = EXCLUDED.busy_ms,
    prompt_tps_samples = EXCLUDED.prompt_tps_samples, prompt_tps_p50 = EXCLUDED.prompt_tps_p50,
    prompt_tps_p95 = EXCLUDED.prompt_tps_p95, prompt_tps_p99 = EXCLUDED.prompt_tps_p99,
    gen_tps_samples = EXCLUDED.gen_tps_samples, gen_tps_p50 = EXCLUDED.gen_tps_p50,
    gen_tps_p95 = EXCLUDED.gen_tps_p95, gen_tps_p99 = EXCLUDED.gen_tps_p99,
    swaps = EXCLUDED.swaps, loads_timed = EXCLUDED.loads_timed, load_ms_sum = EXCLUDED.load_ms_sum,
    load_ms_max = EXCLUDED.load_ms_max
"""


def rollup_activity(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    grains: tuple[str, ...] = ("5m", "1h", "1d"),
    max_request_s: float = 3600.0,
    max_load_s: float = 3600.0,
) -> RollupResult:
    """Roll request activity and model transitions of ``[start, end)`` into the given grains.

    Each grain's window is widened to whole buckets of that grain, so the daily row of a partly covered day
    is recomputed from all of that day's activity.
    """
    _check_window(start, end)
    result = RollupResult()
    for grain in grains:
        width = GRAINS[grain]
        s, e = floor_to(start, width), ceil_to(end, width)
        table = f"rollup_activity_{grain}"
        sql = _ACTIVITY.format(table=table, origin=ORIGIN, not_probe=not_a_probe("activity"))
        cur = conn.execute(
            text(sql),
            {
                "start": s,
                "end": e,
                "width": width,
                "max_req": timedelta(seconds=max_request_s),
                "max_load": timedelta(seconds=max_load_s),
            },
        )
        result.rows[table] = cur.rowcount
        result.windows[grain] = (s, e)
    log.info("activity rollup [%s, %s): %s", start.isoformat(), end.isoformat(), result.rows)
    return result


def rollup_window(conn: Connection, start: datetime, end: datetime) -> RollupResult:
    """Everything: host telemetry and request activity for ``[start, end)``."""
    return rollup_perf(conn, start, end).merge(rollup_activity(conn, start, end))
