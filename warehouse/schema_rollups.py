"""Rollup and report tables (issue 4), on the shared MetaData of ``warehouse.schema``.

Rollups are built by ``warehouse.rollups`` with set-based upserts keyed on the primary key, so a re-run
of any window rewrites the same rows. ``bucket_start`` is the UTC start of a half-open bucket
``[bucket_start, bucket_start + grain)``; buckets are aligned on the Unix epoch (``date_bin`` with origin
``1970-01-01 00:00Z``), so hours and days are UTC hours and UTC days.

* ``rollup_host_<grain>``: one row per provider and bucket, from ``perf_samples`` (CPU, RAM, load) plus
  the sum of that host's GPU energy from ``rollup_gpu_<grain>``.
* ``rollup_gpu_<grain>``: one row per provider, GPU and bucket, from ``gpu_samples``. ``energy_j`` is the
  integral of the piecewise-linear power curve through the samples (see ``warehouse.rollups``).
* ``rollup_activity_<grain>``: one row per provider, model and bucket, from ``activity`` (bucketed by
  ``finished_at``) and ``model_transitions`` (swaps, load times).
* ``reports``: rendered fleet digests, one per (kind, period_start).

Rollup rows carry no foreign key to ``providers``: history outlives a provider's registration.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, Index, Integer, Table, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from warehouse.schema import metadata

TS = TIMESTAMP(timezone=True)

HOST_GRAINS = ("5m", "1h")
ACTIVITY_GRAINS = ("5m", "1h", "1d")


def _host_table(grain: str) -> Table:
    t = Table(
        f"rollup_host_{grain}",
        metadata,
        Column("provider_id", Text, primary_key=True),
        Column("bucket_start", TS, primary_key=True),
        Column("samples", Integer, nullable=False),
        Column("cpu_util_pct_mean", Double),
        Column("cpu_util_pct_max", Double),
        Column("mem_used_mb_mean", Double),
        Column("mem_used_mb_max", Double),
        Column("mem_total_mb", Double),
        Column("load_avg_1_mean", Double),
        Column("load_avg_1_max", Double),
        Column("gpu_count", Integer, nullable=False),
        Column("gpu_energy_j", Double, nullable=False),
    )
    Index(f"ix_rollup_host_{grain}_bucket", t.c.bucket_start)
    return t


def _gpu_table(grain: str) -> Table:
    t = Table(
        f"rollup_gpu_{grain}",
        metadata,
        Column("provider_id", Text, primary_key=True),
        Column("gpu_key", Text, primary_key=True),
        Column("bucket_start", TS, primary_key=True),
        Column("gpu_index", Integer, nullable=False),
        Column("name", Text, nullable=False),
        Column("samples", Integer, nullable=False),
        Column("temp_c_mean", Double, nullable=False),
        Column("temp_c_max", Double, nullable=False),
        Column("vram_used_mb_mean", Double, nullable=False),
        Column("vram_used_mb_max", Double, nullable=False),
        Column("vram_total_mb", Double, nullable=False),
        Column("util_pct_mean", Double, nullable=False),
        Column("util_pct_max", Double, nullable=False),
        Column("power_w_mean", Double, nullable=False),
        Column("power_w_max", Double, nullable=False),
        Column("energy_j", Double, nullable=False),
        Column("covered_s", Double, nullable=False),
    )
    Index(f"ix_rollup_gpu_{grain}_bucket", t.c.bucket_start)
    return t


def _activity_table(grain: str) -> Table:
    t = Table(
        f"rollup_activity_{grain}",
        metadata,
        Column("provider_id", Text, primary_key=True),
        Column("model_id", Text, primary_key=True),
        Column("bucket_start", TS, primary_key=True),
        Column("requests", Integer, nullable=False),
        Column("errors", Integer, nullable=False),
        Column("input_tokens", BigInteger, nullable=False),
        Column("output_tokens", BigInteger, nullable=False),
        Column("cache_tokens", BigInteger, nullable=False),
        Column("request_ms", BigInteger, nullable=False),
        Column("busy_ms", BigInteger, nullable=False),
        Column("prompt_tps_samples", Integer, nullable=False),
        Column("prompt_tps_p50", Double),
        Column("prompt_tps_p95", Double),
        Column("prompt_tps_p99", Double),
        Column("gen_tps_samples", Integer, nullable=False),
        Column("gen_tps_p50", Double),
        Column("gen_tps_p95", Double),
        Column("gen_tps_p99", Double),
        Column("swaps", Integer, nullable=False),
        Column("loads_timed", Integer, nullable=False),
        Column("load_ms_sum", BigInteger, nullable=False),
        Column("load_ms_max", BigInteger),
    )
    Index(f"ix_rollup_activity_{grain}_bucket", t.c.bucket_start)
    return t


rollup_host_5m = _host_table("5m")
rollup_host_1h = _host_table("1h")
rollup_gpu_5m = _gpu_table("5m")
rollup_gpu_1h = _gpu_table("1h")
rollup_activity_5m = _activity_table("5m")
rollup_activity_1h = _activity_table("1h")
rollup_activity_1d = _activity_table("1d")

ROLLUP_TABLES = (
    rollup_host_5m,
    rollup_host_1h,
    rollup_gpu_5m,
    rollup_gpu_1h,
    rollup_activity_5m,
    rollup_activity_1h,
    rollup_activity_1d,
)

reports = Table(
    "reports",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("period_start", TS, nullable=False),
    Column("period_end", TS, nullable=False),
    Column("title", Text, nullable=False),
    Column("generated_at", TS, nullable=False, server_default=func.now()),
    Column("markdown", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("figures", JSONB, nullable=False),
    Column("summary", JSONB, nullable=False),
    UniqueConstraint("kind", "period_start", name="uq_reports_kind_period"),
)
Index("ix_reports_period", reports.c.period_start)
